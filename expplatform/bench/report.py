"""The markdown report of a result: the main table, the targets, where the time went."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def _range(s: dict[str, Any], fmt: str, scale: float = 1.0) -> tuple[str, str]:
    if not s or s.get("median") is None:
        return "–", "–"
    median = format(s["median"] * scale, fmt)
    spread = f"{format(s['min'] * scale, fmt)} – {format(s['max'] * scale, fmt)}"
    return median, spread


def _step_breakdown(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown bullets: median seconds per Dagster step (dbt steps split into models, tests
    and the rest: dbt start-up, parsing, Dagster), the slowest dbt models, start-up."""
    steps: dict[str, dict[str, list[float]]] = {}
    models: dict[str, list[float]] = {}
    startup: list[float] = []
    for run in runs:
        detail = run.get("detail", {})
        for step, times in detail.get("steps", {}).items():
            parts = steps.setdefault(step, {})
            for part in ("seconds", "models_s", "tests_s"):
                parts.setdefault(part, []).append(times.get(part, 0.0))
        for model, seconds in detail.get("dbt_models_s", {}).items():
            models.setdefault(model, []).append(seconds)
        if detail.get("startup_s") is not None:
            startup.append(detail["startup_s"])
    med = statistics.median
    lines = []
    for step, parts in sorted(steps.items(), key=lambda kv: -med(kv[1]["seconds"])):
        total, in_models, in_tests = (med(parts[p]) for p in ("seconds", "models_s", "tests_s"))
        if total < 0.5:
            continue
        split = ""
        if in_models or in_tests:
            rest = total - in_models - in_tests
            split = f" (models {in_models:.1f}, tests {in_tests:.1f}, dbt/Dagster rest {rest:.1f})"
        lines.append(f"- step {step}: {total:.1f}{split}")
    if startup:
        lines.append(f"- process start-up (imports, definitions): {med(startup):.1f}")
    slow = sorted(((m, med(v)) for m, v in models.items()), key=lambda r: -r[1])[:5]
    if slow:
        lines.append(
            "- slowest dbt models: " + ", ".join(f"{m} {sec:.1f}" for m, sec in slow if sec >= 0.05)
        )
    return lines


def _components(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of every step, dbt model and dbt test over the runs."""
    per: dict[str, list[float]] = {}
    for run in runs:
        detail = run.get("detail", {})
        for step, times in detail.get("steps", {}).items():
            per.setdefault(f"step {step}", []).append(times.get("seconds", 0.0))
        for kind in ("dbt_models_s", "dbt_tests_s"):
            for name, seconds in detail.get(kind, {}).items():
                label = "model" if kind == "dbt_models_s" else "test"
                per.setdefault(f"{label} {name}", []).append(seconds)
    return {name: statistics.median(values) for name, values in per.items()}


def _growth_lines(daily: dict[str, Any], top: int = 8) -> list[str]:
    """What grew most from the early to the late daily run: the profile of B's ratio."""
    early = _components(daily["early"]["runs"])
    late = _components(daily["late"]["runs"])
    growth = sorted(
        ((name, early.get(name, 0.0), seconds) for name, seconds in late.items()),
        key=lambda row: -(row[2] - row[1]),
    )
    lines = [
        f"What grew most from day {daily['early']['day']} to day {daily['late']['day']} "
        "(median seconds, early → late):",
        "",
    ]
    lines += [f"- {name}: {a:.2f} → {b:.2f}" for name, a, b in growth[:top] if b - a >= 0.05]
    return lines


def _memory_lines(label: str, runs: Sequence[dict[str, Any]], top: int = 5) -> list[str]:
    """The steps with the highest sampled tree RSS (max over runs)."""
    peaks: dict[str, float] = {}
    for run in runs:
        for step, gib in run.get("peak_tree_rss_gib_by_step", {}).items():
            peaks[step] = max(peaks.get(step, 0.0), gib)
    if not peaks:
        return []
    ranked = sorted(peaks.items(), key=lambda kv: -kv[1])[:top]
    return [
        f"{label}'s peak RSS by step (sampled tree, GiB): "
        + ", ".join(f"{step} {gib:.2f}" for step, gib in ranked)
    ]


def _load_note(result: dict[str, Any]) -> str:
    loads = [
        run["load_average_1m"]
        for section in ("backfill", "bare", "single")
        for run in (result.get(section) or {}).get("runs", [])
    ]
    for key in ("early", "late"):
        loads += [
            run["load_average_1m"]
            for run in (result.get("daily") or {}).get(key, {}).get("runs", [])
        ]
    if not loads:
        return ""
    cpus = result.get("machine", {}).get("cpus")
    note = (
        f"Load average (1 min) at the end of the measured runs: {min(loads):.1f} – {max(loads):.1f} "
        f"on {cpus} CPUs"
    )
    # A measured run keeps `threads` cores busy itself: up to the CPU count is its own load.
    if cpus and max(loads) > cpus + 0.5:
        return note + " (above the CPU count: other work was competing, times are inflated)."
    return note + " (the benchmark's own load: nothing else competed noticeably)."


def _single_scale_note(result: dict[str, Any]) -> str:
    e, meta = result.get("single"), result.get("single_landing") or {}
    if not e:
        return ""
    s = e["scale"]
    per_day = meta.get("event_lines", 0) / max(1, s["days"])
    return (
        f"E: the `make run` sample ({s['users']:,} users, {s['days']} days from {s['start']}, "
        f"{meta.get('event_lines', 0):,} event lines, {per_day:,.0f} a day on average; day "
        f"{e['day']} has {e['event_lines']:,}), default dbt target, DAGSTER_HOME of its own. "
    )


def _split_lines(split: dict[str, Any] | None) -> list[str]:
    """B's late daily run as a fixed part plus a per-event part (expplatform/bench/split.py)."""
    if not split:
        return []
    events = split.get("event_lines")
    head = f"B's daily run at day {split['day']} ({split['wall_s']:.1f} s"
    head += f", {events:,} event lines)" if events else ")"
    lines = ["", head + " as a fixed part plus a part per event:", ""]
    fit = split.get("two_sizes")
    if fit:
        small, large = fit["small"], fit["large"]
        per_event = fit["per_million_events_s"]
        lines.append(
            f"- from two sizes (E's day {small['day']}: {small['event_lines']:,} event lines; "
            f"B's day {large['day']}: {large['event_lines']:,}), the line through both whole "
            f"runs: **fixed {fit['fixed_s']:.1f} s + {per_event:.1f} s per million events** "
            f"(fixed part of B: {fit['fixed_s'] / split['wall_s']:.0%}). Assumes time linear in "
            "the day's events and independent of history (B's late/early ratio checks that); "
            "E runs the `expplatform` command on the default target, B the same job in-process "
            "(on the dev target when sampling)."
        )
    steps = split.get("from_steps")
    if steps:
        lines.append(
            f"- from B's step timings: fixed at least {steps['fixed_s']:.1f} s = start-up "
            f"{steps['startup_s']:.1f} + exit {steps['exit_s']:.1f} + dbt start-up and parsing "
            f"inside dbt steps {steps['dbt_overhead_s']:.1f} + Dagster between steps "
            f"{steps['between_steps_s']:.1f}; the other {steps['rest_s']:.1f} s (loads, models, "
            "tests, Python checks) counted as per-event, an upper bound: part of it scales "
            "with users or history, not with the day's events."
        )
    return lines


def _sample_note(settings: dict[str, Any]) -> str:
    if settings.get("dev_sample_pct") is None and settings.get("dev_days") is None:
        return ""
    days = f", last {settings['dev_days']} days" if settings.get("dev_days") else ""
    pct = settings.get("dev_sample_pct") or 100
    return f" dbt on the **dev target** ({pct:g}% of users{days}; the bare script samples alike)."


def markdown_report(result: dict[str, Any]) -> str:
    """The result as markdown: the main table, the targets, where the time went."""
    scale = result["scale"]
    machine = result.get("machine", {})
    landing = result.get("landing", {})
    scale_line = ""
    if landing:
        scale_line = (
            f"Scale: {scale['users']:,} users, {scale['days']} days, "
            f"{scale['events_per_day'] or 0:,} events/day "
            f"({landing.get('event_lines', 0):,} event lines, "
            f"{scale['files_per_day']} files/day, gzip={scale['compress']}). "
        )
    lines = [
        f"### expplatform bench {result['timestamp']}"
        + (" (quick scale: targets apply to the default scale)" if result.get("quick") else ""),
        "",
        scale_line + _single_scale_note(result) + f"Machine: {machine.get('cpus')} CPUs "
        f"({machine.get('cpu_model', '?')}), "
        f"{machine.get('memory_gib', '?')} GiB; DuckDB {machine.get('duckdb')} with "
        f"memory_limit={result['settings']['duckdb_memory_limit']}, "
        f"threads={result['settings']['duckdb_threads']}; "
        f"{result['settings']['repeats']} repetition(s)."
        + (_sample_note(result["settings"]) if landing else ""),
        "",
        _load_note(result),
        "",
        "| section | measure | median | min – max |",
        "|---|---|---:|---:|",
    ]

    def row(section: str, measure: str, s: dict[str, Any] | None, fmt: str, k: float = 1.0):
        median, spread = _range(s or {}, fmt, k)
        lines.append(f"| {section} | {measure} | {median} | {spread} |")

    a = result.get("backfill")
    if a:
        label = f"A backfill {a['range'][0]}..{a['range'][1]}"
        row(label, "wall time (s)", a["wall_s"], ".1f")
        row(label, "of which job execution (s)", a["execute_s"], ".1f")
        row(label, "events/s", a["events_per_s"], ",.0f")
        row(label, "peak RSS, process tree (GiB)", a["peak_rss_gib"], ".2f")
    b = result.get("daily")
    if b:
        for key in ("early", "late"):
            s = b[key]
            label = f"B daily run, day {s['day']} ({s['date']})"
            row(label, "wall time (s)", s["wall_s"], ".1f")
            row(label, "of which job execution (s)", s["execute_s"], ".1f")
            row(label, "peak RSS, process tree (GiB)", s["peak_rss_gib"], ".2f")
        lines.append(
            f"| B | day {b['late']['day']} / day {b['early']['day']} | "
            f"{b['late_over_early']:.2f} | execution only: "
            f"{(b['late_over_early_execute'] or 0):.2f} |"
        )
    c = result.get("bare")
    if c:
        row("C bare DuckDB script", "wall time (s)", c["wall_s"], ".1f")
        row("C bare DuckDB script", "peak RSS (GiB)", c["peak_rss_gib"], ".2f")
    if a and c:
        ratio = a["wall_s"]["median"] / c["wall_s"]["median"]
        best = a["wall_s"]["min"] / c["wall_s"]["min"]
        lines.append(
            f"| A / C | backfill over floor | {ratio:.2f} | fastest / fastest: {best:.2f} |"
        )
    d = result.get("dashboard")
    if d:
        adhoc = d["adhoc"]
        row("D ad-hoc seed SQL (raw)", "warm (ms)", adhoc["warm_ms"], ",.1f")
        lines.append(f"| D ad-hoc seed SQL (raw) | cold (ms) | {adhoc['cold_ms']:,.1f} | |")
        for name, q in d["queries"].items():
            row(f"D {name} (marts)", "warm (ms)", q["warm_ms"], ".2f")
            lines.append(
                f"| D {name} (marts) | cold (ms); speed-up vs ad-hoc | {q['cold_ms']:.1f} | "
                f"{q['speedup_vs_adhoc']:,.0f}x |"
            )
    storage = result.get("storage")
    if storage:
        lines.append(
            f"| storage | warehouse file (MiB) | {storage['warehouse_bytes'] / 2**20:,.0f} | "
            f"landing zone: {storage['landing_bytes'] / 2**20:,.0f} |"
        )
    e = result.get("single")
    if e:
        label = f"E make-run day {e['day']} ({e['date']}), `expplatform materialize`"
        row(label, "wall time, command start to exit (s)", e["wall_s"], ".1f")
        row(label, "of which the Dagster run (s)", e["execute_s"], ".1f")
        row(label, "of which outside the run: start-up, exit (s)", e.get("outside_run_s"), ".1f")
        row(label, "peak RSS, process tree (GiB)", e["peak_rss_gib"], ".2f")
        build = e["build"]
        lines.append(
            f"| E build {build['range'][0]}..{build['range'][1]} | wall time (s), once | "
            f"{build['wall_s']:.1f} | |"
        )
    eq = result.get("equivalence")
    if eq:
        verdict = {True: "identical", False: "DIFFERENT", None: eq.get("skipped", "skipped")}
        lines.append(f"| C vs A | §5 tables compared row by row | {verdict[eq['equal']]} | |")

    lines += ["", "| target | value | rule | met |", "|---|---:|---|---|"]
    for t in result.get("targets", []):
        value = "–" if t["value"] is None else f"{t['value']:,.2f}"
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {t['target']} | {value} | {t['rule']} {t['limit']:g} | {met} |")

    if a:
        lines += ["", "Where A's time went (median seconds):", ""]
        lines += _step_breakdown(a["runs"])
        lines += ["", *_memory_lines("A", a["runs"])]
    if b:
        for key in ("early", "late"):
            lines += ["", f"Where B's time went at day {b[key]['day']} (median seconds):", ""]
            lines += _step_breakdown(b[key]["runs"])
    if b:
        lines += ["", *_growth_lines(b)]
    if e:
        lines += ["", f"Where E's time went at day {e['day']} (median seconds):", ""]
        lines += _step_breakdown(e["runs"])
        if e.get("outside_run_s", {}).get("median") is not None:
            lines.append(
                "- outside the Dagster run (interpreter, imports, definitions, exit): "
                f"{e['outside_run_s']['median']:.1f}"
            )
    lines += _split_lines(result.get("daily_split"))
    if c:
        per: dict[str, list[float]] = {}
        for run in c["runs"]:
            for st in run["detail"].get("statements", []):
                per.setdefault(st["statement"], []).append(st["seconds"])
        top = sorted(((n, statistics.median(v)) for n, v in per.items()), key=lambda r: -r[1])
        lines += ["", "Where C's time went (median seconds):", ""]
        lines += [f"- {name}: {seconds:.1f}" for name, seconds in top[:6]]
    for section, message in result.get("errors", {}).items():
        lines.append(f"\n**{section} failed**: {message}")
    return "\n".join(lines) + "\n"
