"""The experiment health page: one self-contained HTML file per experiment, and an index.

A page inlines everything it needs (styles, Plotly's JavaScript bundle, the data of
each chart) and declares a Content-Security-Policy that forbids loading anything
else, so it opens the same from a web server, a file share or an e-mail attachment,
with no network. Plotly, rather than static images, because the people reading it
(product managers, analysts used to GrowthBook, Eppo or Statsig) expect to hover a
day to read its numbers and to zoom into a week.

What a page shows (top to bottom): the sample-ratio banner of the latest date; users
per arm over time (cumulative, and new per day); observed share against expected
weight with the day's status as a strip under the lines; the per-tier tests; the
latest data-quality results; and when the data was built.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from expplatform.health.data import (
    BuildInfo,
    CheckResult,
    ExperimentHealth,
    ServingSnapshot,
    load_snapshot,
    tier_sort_key,
)
from expplatform.health.formatting import (
    DASH,
    STATUS_COLOURS,
    STATUS_EXPLANATIONS,
    STATUS_LABELS,
    STATUS_ORDER,
    arm_shares,
    degrees_of_freedom,
    format_chi_square,
    format_count,
    format_p_value,
    format_points,
    format_share,
    format_timestamp,
)
from expplatform.health.links import page_filename

#: Arm colours in registry order (control first); unregistered variations are grey.
ARM_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
UNREGISTERED_COLOUR = "#7f7f7f"
ONE_DAY_MS = 86_400_000

#: The page may run its own inline scripts and styles and nothing else: no network at view time.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:"
)
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
#: Each chart registers its drawing promise; the page marks <body data-charts-drawn="N"> when
#: all are drawn (the browser test waits for it).
CHART_SETUP = (
    "<script>window.healthCharts = [];"
    "function drawChart(id, fig) { window.healthCharts.push("
    f"Plotly.newPlot(id, fig.data, fig.layout, {json.dumps(PLOTLY_CONFIG)})); }}</script>"
)

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; color: #212121; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
header h1 { margin: 8px 0 4px; font-size: 1.6rem; }
header p { margin: 2px 0; color: #555; }
a { color: #1565c0; }
section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 12px 18px;
          margin: 16px 0; }
h2 { font-size: 1.15rem; margin: 4px 0 10px; }
.banner { border-left: 10px solid var(--status); }
.banner .status { display: inline-block; color: #fff; background: var(--status);
                  padding: 3px 12px; border-radius: 4px; font-weight: 700; font-size: 1.2rem; }
.banner .as-of { color: #555; margin-left: 8px; }
.banner dl { display: flex; flex-wrap: wrap; gap: 4px 28px; margin: 10px 0; }
.banner dt { color: #555; font-size: .85rem; }
.banner dd { margin: 0; font-size: 1.25rem; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 4px 10px; text-align: right; }
th { background: #f5f5f5; font-weight: 600; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
.badge { display: inline-block; color: #fff; padding: 1px 8px; border-radius: 3px;
         font-size: .85rem; white-space: nowrap; }
.note { color: #555; font-size: .9rem; }
.chart { width: 100%; }
.empty { color: #757575; font-style: italic; }
.nowrap { white-space: nowrap; text-align: left; }
.failed { color: #c62828; font-weight: 600; }
details { margin-top: 8px; }
footer { color: #757575; font-size: .85rem; margin-top: 24px; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#616161")
    label = STATUS_LABELS.get(status, status)
    return f'<span class="badge" style="background:{colour}" data-status="{_e(status)}">{_e(label)}</span>'


@cache
def _plotly_js() -> str:
    # A `</script>` inside the bundle would end the inline script early.
    return get_plotlyjs().replace("</script", "<\\/script")


def _document(title: str, body: str, *, with_plotly: bool) -> str:
    script = f"<script>{_plotly_js()}</script>" if with_plotly else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # an empty inline icon: the browser then asks the server for no /favicon.ico
        "<link rel='icon' href='data:,'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style>{script}</head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _build_line(build: BuildInfo) -> str:
    run = f" (run {_e(build.run_id)})" if build.run_id else ""
    return (
        f'<p id="build-info">Data through <b>{_e(build.data_through or DASH)}</b>, '
        f"built at <b>{_e(format_timestamp(build.built_at))}</b>{run}</p>"
    )


# --- the banner -----------------------------------------------------------------------------------


def _banner(exp: ExperimentHealth) -> str:
    status = exp.status
    latest = exp.latest
    colour = STATUS_COLOURS.get(status, "#616161")
    as_of = f'<span class="as-of">as of {_e(latest.date)}</span>' if latest else ""
    dof = degrees_of_freedom(len(exp.arms))
    p_value = format_p_value(latest.p_value if latest else None)
    chi_square = format_chi_square(latest.chi_square if latest else None)
    stats = (
        "<dl>"
        f'<div><dt>p-value</dt><dd id="srm-p-value">{_e(p_value)}</dd></div>'
        f'<div><dt>χ²</dt><dd id="srm-chi-square">{_e(chi_square)}</dd></div>'
        f'<div><dt>degrees of freedom</dt><dd id="srm-dof">{_e(dof if dof is not None else DASH)}</dd></div>'
        f'<div><dt>users assigned</dt><dd id="srm-assigned">{_e(format_count(latest.assigned_users if latest else 0))}</dd></div>'
        "</dl>"
    )
    arms_table = ""
    left_out = ""
    if exp.arms:
        users = {arm: series[-1] if series else 0 for arm, series in exp.test_users.items()}
        shares = arm_shares(users, [(a.name, a.expected_weight) for a in exp.arms])
        rows = "".join(
            f'<tr data-arm="{_e(s.arm)}"><td>{_e(s.arm)}</td><td>{format_count(s.users)}</td>'
            f"<td>{format_share(s.observed_share)}</td><td>{format_share(s.expected_share)}</td>"
            f"<td>{format_points(s.difference)}</td></tr>"
            for s in shares
        )
        arms_table = (
            '<table id="srm-arms"><thead><tr><th>arm</th><th>users in the test</th>'
            "<th>observed share</th><th>expected share</th><th>difference</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
        multiple = latest.multiple_variation_users if latest else 0
        left_out = (
            f'<p class="note" id="srm-left-out">Left out of the test: '
            f"<b>{format_count(multiple)}</b> users seen in several variations and "
            f"<b>{format_count(exp.unregistered_users)}</b> users assigned to an unregistered "
            "variation (they stay counted in their assigned variation in the charts below). "
            "Expected shares are the registry's weights normalised to sum 1.</p>"
        )
    else:
        left_out = '<p class="note">No variation is registered for this experiment.</p>'
    return (
        f'<section class="banner" id="srm-banner" data-status="{_e(status)}" '
        f'style="--status:{colour}">'
        f'<h2>Sample ratio</h2><span class="status" id="srm-status">'
        f"{_e(STATUS_LABELS.get(status, status))}</span>{as_of}"
        f'<p id="srm-explanation">{_e(STATUS_EXPLANATIONS.get(status, ""))}</p>'
        f"{stats}{arms_table}{left_out}</section>"
    )


# --- charts ---------------------------------------------------------------------------------------


def _arm_colours(exp: ExperimentHealth) -> dict[str, str]:
    colours = {a.name: ARM_COLOURS[i % len(ARM_COLOURS)] for i, a in enumerate(exp.arms)}
    for v in exp.variations:
        colours.setdefault(v.name, UNREGISTERED_COLOUR)
    return colours


def _variation_label(name: str, registered: bool) -> str:
    return name if registered else f"{name} (unregistered)"


def _date_axis(dates_count: int) -> dict:
    """Day ticks (never 12:00 ticks between days), at most ~12 labels however long the span."""
    step = max(1, -(-dates_count // 12))
    return {
        "type": "date",
        "tickformat": "%b %-d",
        "hoverformat": "%Y-%m-%d",
        "dtick": ONE_DAY_MS * step,
    }


def _base_layout(title: str, dates_count: int, **extra: object) -> dict:
    return {
        "xaxis": _date_axis(dates_count),
        "title": {"text": title, "x": 0.01},
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 48, "b": 40},
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": "x unified",
        **extra,
    }


def cumulative_figure(exp: ExperimentHealth) -> go.Figure:
    """Cumulative assigned users per variation (intent-to-treat, every assigned user)."""
    colours = _arm_colours(exp)
    x = [d.isoformat() for d in exp.dates]
    fig = go.Figure(
        [
            go.Scatter(
                x=x,
                y=v.cumulative_users,
                name=_variation_label(v.name, v.registered),
                mode="lines+markers",
                line={"color": colours[v.name], "dash": "solid" if v.registered else "dot"},
                hovertemplate="%{y:,}",
            )
            for v in exp.variations
        ]
    )
    fig.update_layout(
        **_base_layout("Assigned users per variation (cumulative)", len(x)),
        yaxis={"title": "users", "rangemode": "tozero"},
    )
    return fig


def daily_new_figure(exp: ExperimentHealth) -> go.Figure:
    """New users per variation per day (by assignment date)."""
    colours = _arm_colours(exp)
    x = [d.isoformat() for d in exp.dates]
    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=v.new_users,
                name=_variation_label(v.name, v.registered),
                marker={"color": colours[v.name]},
                hovertemplate="%{y:,}",
            )
            for v in exp.variations
        ]
    )
    fig.update_layout(
        **_base_layout("New users per variation per day", len(x)),
        barmode="group",
        yaxis={"title": "users", "rangemode": "tozero"},
    )
    return fig


def share_figure(exp: ExperimentHealth) -> go.Figure:
    """Observed share of each arm in the test vs its expected weight, the status strip below."""
    colours = _arm_colours(exp)
    x = [d.isoformat() for d in exp.dates]
    single = len(x) == 1
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.84, 0.16], vertical_spacing=0.06
    )
    totals = [sum(series[i] for series in exp.test_users.values()) for i in range(len(x))]
    weights_total = sum(a.expected_weight for a in exp.arms) or 1.0
    for arm in exp.arms:
        counts = exp.test_users[arm.name]
        observed = [c / t if t else None for c, t in zip(counts, totals, strict=True)]
        expected = arm.expected_weight / weights_total
        fig.add_trace(
            go.Scatter(
                x=x,
                y=observed,
                name=f"{arm.name} observed",
                legendgroup=arm.name,
                mode="lines+markers",
                line={"color": colours[arm.name]},
                hovertemplate="%{y:.2%}",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[expected] * len(x),
                name=f"{arm.name} expected {format_share(expected)}",
                legendgroup=arm.name,
                mode="markers" if single else "lines",
                line={"color": colours[arm.name], "dash": "dash", "width": 1.5},
                marker={"symbol": "line-ew-open", "size": 14},
                hovertemplate="%{y:.2%}",
            ),
            row=1,
            col=1,
        )
    # The day's status as a strip under the lines (never over them): one bar per date.
    by_status: dict[str, list[int]] = {}
    for i, day in enumerate(exp.days):
        by_status.setdefault(day.status, []).append(i)
    for status in sorted(
        by_status, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 99
    ):
        idx = by_status[status]
        fig.add_trace(
            go.Bar(
                x=[exp.days[i].date.isoformat() for i in idx],
                y=[1] * len(idx),
                width=[ONE_DAY_MS * 0.92] * len(idx),
                name=f"status: {STATUS_LABELS.get(status, status)}",
                legendgroup="status",
                marker={"color": STATUS_COLOURS.get(status, "#616161")},
                customdata=[
                    [format_p_value(exp.days[i].p_value), format_chi_square(exp.days[i].chi_square)]
                    for i in idx
                ],
                hovertemplate=(
                    f"{STATUS_LABELS.get(status, status)}: p = %{{customdata[0]}}, "
                    "χ² = %{customdata[1]}<extra></extra>"
                ),
            ),
            row=2,
            col=1,
        )
    fig.update_layout(
        **_base_layout("Observed share in the test vs expected weight", len(x)),
        bargap=0,
        height=460,
    )
    fig.update_xaxes(**_date_axis(len(x)))
    fig.update_yaxes(title="share of users in the test", tickformat=".0%", row=1, col=1)
    fig.update_yaxes(
        title="status", showticklabels=False, range=[0, 1], fixedrange=True, showgrid=False,
        row=2, col=1,
    )  # fmt: skip
    return fig


def tier_status_figure(exp: ExperimentHealth) -> go.Figure:
    """The per-tier status (Bonferroni-corrected) per date: one row of squares per tier."""
    tiers = sorted({t.tier for t in exp.tier_days}, key=tier_sort_key)
    dates_count = len({t.date for t in exp.tier_days})
    by_status: dict[str, list] = {}
    for t in exp.tier_days:
        by_status.setdefault(t.status, []).append(t)
    fig = go.Figure()
    for status in sorted(
        by_status, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 99
    ):
        rows = by_status[status]
        fig.add_trace(
            go.Scatter(
                x=[t.date.isoformat() for t in rows],
                y=[t.tier for t in rows],
                mode="markers",
                name=STATUS_LABELS.get(status, status),
                marker={
                    "symbol": "square",
                    "size": 16,
                    "color": STATUS_COLOURS.get(status, "#616161"),
                },
                customdata=[
                    [format_p_value(t.p_value_bonferroni), format_count(t.test_users)] for t in rows
                ],
                hovertemplate=(
                    "%{y} %{x}: "
                    + STATUS_LABELS.get(status, status)
                    + ", Bonferroni p = %{customdata[0]}, %{customdata[1]} users in the test"
                    "<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        **{
            **_base_layout("Sample-ratio status per tier and day (Bonferroni)", dates_count),
            "hovermode": "closest",
        },
        height=140 + 36 * len(tiers),
        yaxis={
            "categoryorder": "array",
            "categoryarray": list(reversed(tiers)),
            "type": "category",
        },
    )
    return fig


def _chart(div_id: str, fig: go.Figure) -> str:
    payload = pio.to_json(fig, validate=False).replace("</", "<\\/")
    return (
        f'<div id="{div_id}" class="chart"></div>'
        f"<script>drawChart({json.dumps(div_id)}, {payload});</script>"
    )


# --- tables ---------------------------------------------------------------------------------------


def _tier_section(exp: ExperimentHealth) -> str:
    if not exp.tiers:
        return (
            '<section id="tiers"><h2>By subscription tier</h2>'
            '<p class="empty">No per-tier test yet.</p></section>'
        )
    tiers_present = len(exp.tiers)
    arm_headers = "".join(f"<th>{_e(a.name)} share (users)</th>" for a in exp.arms)
    rows = []
    for t in exp.tiers:
        shares = (
            arm_shares(t.arm_users, [(a.name, a.expected_weight) for a in exp.arms])
            if exp.arms
            else []
        )
        arm_cells = "".join(
            f"<td>{format_share(s.observed_share)} ({format_count(s.users)})</td>" for s in shares
        )
        rows.append(
            f'<tr data-tier="{_e(t.tier)}"><td>{_e(t.tier)}</td>'
            f"<td>{format_count(t.assigned_users)}</td><td>{format_count(t.test_users)}</td>"
            f"{arm_cells}<td>{format_chi_square(t.chi_square)}</td>"
            f"<td>{format_p_value(t.p_value)}</td><td>{format_p_value(t.p_value_bonferroni)}</td>"
            f'<td class="text">{_badge(t.status)}</td></tr>'
        )
    expected = ", ".join(
        f"{_e(s.arm)} {format_share(s.expected_share)}"
        for s in arm_shares({}, [(a.name, a.expected_weight) for a in exp.arms])
    )
    return (
        '<section id="tiers"><h2>By subscription tier</h2>'
        f'<p class="note">Tier at assignment, as of {_e(exp.tiers[0].date)}. Each tier is tested '
        f"against the same expected shares ({expected}); with {tiers_present} tiers present the "
        f"p-value is multiplied by {tiers_present} (Bonferroni, capped at 1) and the status "
        "applies the overall rules to the corrected p-value.</p>"
        '<table id="tier-table"><thead><tr><th>tier</th><th>assigned</th><th>in the test</th>'
        f"{arm_headers}<th>χ²</th><th>p</th><th>p (Bonferroni)</th>"
        f'<th class="text">status</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f"{_chart('chart-tier-status', tier_status_figure(exp))}</section>"
    )


def _check_rows(checks: Sequence[CheckResult]) -> str:
    return "".join(
        f'<tr data-check="{_e(c.check_name)}"><td class="text">'
        f"{'passed' if c.passed else '<span class=failed>failed</span>'}</td>"
        f'<td class="text">{_e(c.severity)}</td><td class="text">{_e(c.check_name)}</td>'
        f'<td class="text">{_e(c.asset_key)}</td><td class="nowrap">{_e(c.partition or DASH)}</td>'
        f'<td class="text">{_e(c.description or "")}</td>'
        f'<td class="nowrap">{_e(format_timestamp(c.evaluated_at))}</td></tr>'
        for c in checks
    )


def _quality_section(checks: Sequence[CheckResult]) -> str:
    header = (
        '<thead><tr><th class="text">result</th><th class="text">severity</th>'
        '<th class="text">check</th><th class="text">asset</th><th class="text">partition</th>'
        '<th class="text">description</th><th class="text">evaluated at</th></tr></thead>'
    )
    if not checks:
        return (
            '<section id="data-quality"><h2>Data quality</h2>'
            '<p class="empty">No check results in the serving copy.</p></section>'
        )
    failed = [c for c in checks if not c.passed]
    by_severity = Counter(c.severity for c in failed)
    summary = (
        f"{len(failed)} of {len(checks)} checks failed"
        + (
            " (" + ", ".join(f"{n} {_e(s)}" for s, n in sorted(by_severity.items())) + ")"
            if failed
            else ""
        )
        + " at their latest evaluation."
    )
    failed_table = (
        f'<table id="failed-checks">{header}<tbody>{_check_rows(failed)}</tbody></table>'
        if failed
        else ""
    )
    return (
        '<section id="data-quality"><h2>Data quality</h2>'
        f'<p id="dq-summary" class="{"failed" if failed else ""}">{summary}</p>{failed_table}'
        f"<details><summary>All {len(checks)} checks</summary>"
        f'<table id="all-checks">{header}<tbody>{_check_rows(checks)}</tbody></table></details>'
        "</section>"
    )


# --- pages ----------------------------------------------------------------------------------------


def render_experiment(
    snapshot: ServingSnapshot, experiment_key: str, *, index_href: str | None = None
) -> str:
    """The HTML page of one experiment of an already loaded snapshot."""
    exp = snapshot.experiments[experiment_key]
    dates = (
        f"{_e(exp.start_date)} – {_e(exp.end_date) if exp.end_date else 'running'}"
        if exp.start_date
        else DASH
    )
    back = f'<p><a href="{_e(index_href)}">← all experiments</a></p>' if index_href else ""
    header = (
        f"<header>{back}<h1>Experiment health: {_e(exp.key)}</h1>"
        f"<p>{_e(exp.description or '')}</p>"
        f"<p>Owner: {_e(exp.owner or DASH)} · dates {dates}</p>"
        f"{_build_line(snapshot.build)}</header>"
    )
    if exp.dates:
        charts = (
            '<section id="allocation"><h2>Allocation over time</h2>'
            f"{_chart('chart-cumulative', cumulative_figure(exp))}"
            f"{_chart('chart-daily-new', daily_new_figure(exp))}</section>"
            '<section id="share"><h2>Observed share vs expected weight</h2>'
            '<p class="note">Share of each arm among the users in the test (users in several '
            "variations and unregistered variations left out), against the registry's weight. "
            "The strip under the lines is each day's sample-ratio status.</p>"
            f"{_chart('chart-share', share_figure(exp))}</section>"
        )
    else:
        charts = (
            '<section id="allocation"><h2>Allocation over time</h2>'
            '<p class="empty">No user has been assigned yet: nothing to draw.</p></section>'
        )
    body = (
        header
        + _banner(exp)
        + CHART_SETUP
        + charts
        + _tier_section(exp)
        + _quality_section(snapshot.checks)
        + "<script>Promise.all(window.healthCharts).then(() => "
        "document.body.setAttribute('data-charts-drawn', String(window.healthCharts.length)));"
        "</script>" + "<footer>Generated by expplatform from the serving copy. Status rules: "
        "not enough traffic while an arm has fewer than 8 users in the test; unhealthy when "
        "p &lt; 0.001 and an arm's share is off by at least 0.1 percentage points; warning when "
        "p &lt; 0.01; else healthy (DATA_CONTRACT §5).</footer>"
    )
    with_charts = bool(exp.dates or exp.tiers)
    return _document(f"Experiment health: {exp.key}", body, with_plotly=with_charts)


def render_index(snapshot: ServingSnapshot, links: dict[str, str]) -> str:
    """The index page: every experiment with its latest status, linking to its page."""
    rows = []
    for key, exp in sorted(snapshot.experiments.items()):
        latest = exp.latest
        rows.append(
            f'<tr data-experiment="{_e(key)}"><td><a href="{_e(links[key])}">{_e(key)}</a></td>'
            f'<td class="text">{_badge(exp.status)}</td>'
            f"<td>{format_p_value(latest.p_value if latest else None)}</td>"
            f"<td>{format_count(latest.assigned_users if latest else 0)}</td>"
            f"<td>{_e(latest.date if latest else DASH)}</td>"
            f'<td class="text">{_e(exp.owner or "")}</td>'
            f'<td class="text">{_e(exp.description or "")}</td></tr>'
        )
    counts = Counter(exp.status for exp in snapshot.experiments.values())
    summary = ", ".join(
        f"{counts[s]} {STATUS_LABELS[s].lower()}" for s in STATUS_ORDER if counts.get(s)
    )
    body = (
        "<header><h1>Experiment health</h1>"
        f"{_build_line(snapshot.build)}"
        '<p>Model documentation: <a href="dbt-docs/">dbt docs</a> (served next to these pages by '
        "<code>make run</code> and <code>make docs</code>).</p></header>"
        f'<section><h2>Experiments</h2><p id="status-summary">{_e(summary or "none registered")}</p>'
        '<table id="experiments"><thead><tr><th>experiment</th><th class="text">sample ratio</th>'
        "<th>p-value</th><th>assigned users</th><th>as of</th><th class='text'>owner</th>"
        f"<th class='text'>description</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</section>"
        f"{_quality_section(snapshot.checks)}"
    )
    return _document("Experiment health", body, with_plotly=False)


def render_health_page(
    serving_db: Path, experiment_key: str, *, index_href: str | None = None
) -> str:
    """The self-contained HTML health page of one experiment, read from a serving copy.

    The file is opened read-only and closed before rendering. Raises
    `ServingCopyError` (a ValueError naming the file) when it is missing, lacks a
    table, or does not register `experiment_key`.
    """
    snapshot = load_snapshot(serving_db, [experiment_key])
    return render_experiment(snapshot, experiment_key, index_href=index_href)


def _write_atomically(path: Path, text: str) -> None:
    # The page server may be reading the old page: replace it in one rename, never half-written.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_health_pages(serving_db: Path, out_dir: Path) -> list[Path]:
    """Write `index.html` and `experiments/<key>.html` for every registered experiment.

    Returns the written paths, the index first. Pages of experiments no longer in the
    registry are removed, so the folder always mirrors the serving copy it was built from.
    """
    snapshot = load_snapshot(serving_db)
    out_dir = Path(out_dir)
    pages_dir = out_dir / "experiments"
    pages_dir.mkdir(parents=True, exist_ok=True)
    names = {key: page_filename(key) for key in snapshot.experiments}  # see page_path()
    written = []
    for key, name in sorted(names.items()):
        path = pages_dir / name
        _write_atomically(path, render_experiment(snapshot, key, index_href="../index.html"))
        written.append(path)
    for stale in pages_dir.glob("*.html"):
        if stale.name not in set(names.values()):
            stale.unlink()
    index = out_dir / "index.html"
    _write_atomically(
        index, render_index(snapshot, {k: f"experiments/{n}" for k, n in names.items()})
    )
    return [index, *written]
