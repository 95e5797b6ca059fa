"""The allocation chart: cumulative and daily new users per variation over time (matplotlib).

Drawn by `expplatform report --chart out.png` and attached (as an inline PNG)
to the health mart's materialization so the Dagster UI shows it.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from datetime import date
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")  # no display: render to files and bytes only
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

STATUS_COLOURS = {
    "healthy": "#2e7d32",
    "warning": "#f9a825",
    "unhealthy": "#c62828",
    "not_enough_traffic": "#9e9e9e",
}


def load_allocation(
    con: duckdb.DuckDBPyConnection, experiment: str, *, by_tier: bool = False
) -> tuple[dict[tuple[str, str], list[tuple[date, int, int]]], list[tuple[date, str]]]:
    """Series per (tier or 'all', variation): (date, new, cumulative); and the SRM status per date."""
    tier = "subscription_tier" if by_tier else "'all'"
    rows = con.execute(
        f"""
        select {tier} as facet, variation_name, date,
               sum(new_users)::bigint, sum(cumulative_users)::bigint
        from marts.mart_experiment_allocation_daily
        where experiment_key = $experiment
        group by all order by facet, variation_name, date
        """,
        {"experiment": experiment},
    ).fetchall()
    series: dict[tuple[str, str], list[tuple[date, int, int]]] = defaultdict(list)
    for facet, variation, day, new, cumulative in rows:
        series[(facet, variation or "(none)")].append((day, new, cumulative))
    statuses = con.execute(
        "select date, srm_status from marts.mart_experiment_health_daily "
        "where experiment_key = $experiment order by date",
        {"experiment": experiment},
    ).fetchall()
    return dict(series), statuses


def render_allocation_chart(
    con: duckdb.DuckDBPyConnection, experiment: str, *, by_tier: bool = False
) -> bytes:
    """PNG bytes of the allocation chart of one experiment (empty series raise ValueError)."""
    series, statuses = load_allocation(con, experiment, by_tier=by_tier)
    if not series:
        raise ValueError(f"no allocation rows for experiment {experiment!r}")
    facets = sorted({facet for facet, _ in series})
    fig, axes = plt.subplots(
        2, len(facets), figsize=(max(7, 4.5 * len(facets)), 7), sharex=True, squeeze=False
    )
    for column, facet in enumerate(facets):
        top, bottom = axes[0][column], axes[1][column]
        for (f, variation), points in sorted(series.items()):
            if f != facet:
                continue
            days = [p[0] for p in points]
            top.plot(days, [p[2] for p in points], marker=".", label=variation)
            bottom.plot(days, [p[1] for p in points], marker=".", label=variation)
        title = experiment if facet == "all" else f"{experiment} — tier {facet}"
        top.set_title(title)
        top.set_ylabel("cumulative users")
        bottom.set_ylabel("new users per day")
        top.legend(loc="upper left", fontsize="small")
        # Sample-ratio status as a coloured band under the cumulative curve.
        for day, status in statuses:
            top.axvspan(day, day, color=STATUS_COLOURS.get(status, "#9e9e9e"), alpha=0.5, lw=3)
        bottom.tick_params(axis="x", rotation=45)
    present = sorted({s for _, s in statuses})
    fig.suptitle(
        "sample-ratio status: " + ", ".join(present) if present else "sample-ratio status: n/a",
        fontsize="small",
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def write_allocation_chart(
    con: duckdb.DuckDBPyConnection, experiment: str, path: Path, *, by_tier: bool = False
) -> Path:
    """Write the chart to `path` (PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_allocation_chart(con, experiment, by_tier=by_tier))
    return path


def markdown_image(png: bytes, alt: str) -> str:
    """A markdown image with the PNG inlined (the Dagster UI renders data URIs)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
