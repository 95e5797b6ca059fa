"""The measured sections: C (bare script), A (backfill), B (daily run), D (dashboard) and E
(one daily partition of the `make run` sample, as the `expplatform` command)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb

from expplatform.bench.landing import day_event_lines
from expplatform.bench.options import BenchOptions
from expplatform.bench.sql import adhoc_query, dashboard_queries
from expplatform.bench.workspace import Workspace, fmt_s, series_of, summarize


def section_bare(ws: Workspace, options: BenchOptions) -> tuple[dict[str, Any], Path]:
    """C: the bare SQL script, `repeats` times; returns the series and the last output database."""
    db = ws.root / "floor.duckdb"
    runs = []
    for i in range(options.repeats):
        run = ws.run_bare(f"C-bare-{i + 1}", db)
        runs.append(run)
        options.progress(
            f"C bare script {i + 1}/{options.repeats}: {fmt_s(run['wall_s'])}, "
            f"peak {run['peak_rss_gib']:.2f} GiB"
        )
    return series_of(runs), db


def section_backfill(
    ws: Workspace, options: BenchOptions, event_lines: int
) -> tuple[dict[str, Any], Path]:
    """A: the whole range as one single-run backfill, from an empty warehouse each time."""
    scale = options.scale
    end = scale.start + timedelta(days=scale.days - 1)
    runs = []
    for i in range(options.repeats):
        ws.restore(None)
        run = ws.run_job(f"A-backfill-{i + 1}", scale.start, end)
        run["events_per_s"] = event_lines / run["wall_s"]
        runs.append(run)
        options.progress(
            f"A backfill {scale.start}..{end} {i + 1}/{options.repeats}: "
            f"{fmt_s(run['wall_s'])} ({run['events_per_s']:,.0f} events/s), "
            f"peak {run['peak_rss_gib']:.2f} GiB"
        )
    series = series_of(runs)
    series["events_per_s"] = summarize([r["events_per_s"] for r in runs])
    series["range"] = [scale.start.isoformat(), end.isoformat()]
    return series, ws.save("full_history")


def section_daily(ws: Workspace, options: BenchOptions) -> dict[str, Any]:
    """B: one new arrival day on top of the history, at an early and at the last day.

    The history is built by single-run backfills and reused: backfill days
    1..e-1, time day e; keep that result, backfill e+1..N-1, time day N.
    Each repetition restores the saved history first.
    """
    scale = options.scale
    day = lambda n: scale.start + timedelta(days=n - 1)  # noqa: E731  (1-based day numbers)
    late = scale.days
    early = max(1, min(options.early_day, late - 1))
    history: dict[str, Any] = {}

    def backfill(first: int, last: int, label: str) -> None:
        run = ws.run_job(label, day(first), day(last))
        history[label] = {
            "range": [day(first).isoformat(), day(last).isoformat()],
            "wall_s": run["wall_s"],
            "peak_rss_gib": run["peak_rss_gib"],
        }
        options.progress(f"B history: backfill days {first}..{last} in {fmt_s(run['wall_s'])}")

    def daily(n: int, base: Path | None, keep: str | None) -> tuple[dict[str, Any], Path | None]:
        runs, kept = [], None
        for i in range(options.repeats):
            ws.restore(base)
            run = ws.run_job(f"B-day{n}-{i + 1}", day(n), day(n))
            runs.append(run)
            options.progress(
                f"B daily run day {n} ({day(n)}) {i + 1}/{options.repeats}: "
                f"{fmt_s(run['wall_s'])}, peak {run['peak_rss_gib']:.2f} GiB"
            )
            if keep and kept is None:
                kept = ws.save(keep)
        series = series_of(runs)
        series["day"] = n
        series["date"] = day(n).isoformat()
        series["event_lines"] = day_event_lines(ws.landing, day(n)) if ws.landing else None
        return series, kept

    ws.restore(None)
    base_early = None
    if early > 1:
        backfill(1, early - 1, f"history-1-{early - 1}")
        base_early = ws.save("history_early")
    early_series, after_early = daily(early, base_early, keep="after_early")
    if late - 1 > early:
        ws.restore(after_early)
        backfill(early + 1, late - 1, f"history-{early + 1}-{late - 1}")
        base_late = ws.save("history_late")
    else:
        base_late = after_early
    late_series, _ = daily(late, base_late, keep=None)
    ratio = late_series["wall_s"]["median"] / early_series["wall_s"]["median"]
    ratio_execute = None
    if late_series["execute_s"]["median"] and early_series["execute_s"]["median"]:
        ratio_execute = late_series["execute_s"]["median"] / early_series["execute_s"]["median"]
    return {
        "early": early_series,
        "late": late_series,
        "late_over_early": ratio,
        "late_over_early_execute": ratio_execute,
        "history_backfills": history,
    }


def section_single(ws: Workspace, options: BenchOptions) -> dict[str, Any]:
    """E: one daily partition of the `make run` sample on a built warehouse, as a user runs it.

    `ws` is a site holding the make-run sample. The warehouse is built once by
    `expplatform materialize --start <first day> --end <last day>`; then
    `expplatform materialize --start D --end D` is timed as a whole process (command
    start to exit: interpreter, imports, definitions, the Dagster run, exit), each
    repetition on a copy of the built warehouse. The partition is already there, so
    each repetition replaces it, through the same steps as its first arrival: load the
    day's files, recompute the lookback window and what depends on it.
    """
    scale = ws.scale
    day = lambda n: scale.start + timedelta(days=n - 1)  # noqa: E731  (1-based day numbers)
    n = max(1, min(options.single_day or scale.days, scale.days))
    ws.restore(None)
    build = ws.run_cli("E-build", day(1), day(scale.days), steps=False)
    options.progress(
        f"E build: expplatform materialize {day(1)}..{day(scale.days)} in {fmt_s(build['wall_s'])}"
    )
    built = ws.save("built")
    runs = []
    for i in range(options.repeats):
        ws.restore(built)
        run = ws.run_cli(f"E-day{n}-{i + 1}", day(n), day(n))
        runs.append(run)
        options.progress(
            f"E expplatform materialize --start {day(n)} --end {day(n)} {i + 1}/{options.repeats}: "
            f"{fmt_s(run['wall_s'])} (start to exit), peak {run['peak_rss_gib']:.2f} GiB"
        )
    series = series_of(runs)
    series["outside_run_s"] = summarize([r["outside_run_s"] for r in runs if "outside_run_s" in r])
    series["day"] = n
    series["date"] = day(n).isoformat()
    series["event_lines"] = day_event_lines(ws.landing, day(n))
    series["scale"] = {**asdict(scale), "start": scale.start.isoformat()}
    series["build"] = {
        "range": [day(1).isoformat(), day(scale.days).isoformat()],
        "wall_s": build["wall_s"],
        "peak_rss_gib": build["peak_rss_gib"],
    }
    return series


def _time_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return (time.perf_counter() - started) * 1000, len(rows)


def section_dashboard(db: Path, options: BenchOptions) -> dict[str, Any]:
    """D: the dashboard's mart queries vs the seed's ad-hoc SQL over the raw tables.

    Read-only connection with the same DuckDB limits as the pipeline. "cold"
    is the first execution on a newly opened connection (DuckDB's buffers
    empty; the OS page cache may hold the file), "warm" the repetitions after.
    """

    def connect() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(db), read_only=True)
        con.execute(f"set memory_limit = '{options.memory_limit}'")
        con.execute(f"set threads = {int(options.threads)}")
        con.execute("set TimeZone = 'UTC'")
        return con

    adhoc_repeats = max(1, options.repeats)
    con = connect()
    try:
        con.execute("set search_path = 'raw,main'")
        cold, rows = _time_query(con, adhoc_query())
        warm = [_time_query(con, adhoc_query())[0] for _ in range(adhoc_repeats)]
    finally:
        con.close()
    adhoc = {"cold_ms": cold, "warm_ms": summarize(warm), "rows": rows}
    options.progress(
        f"D ad-hoc dashboard SQL: {statistics.median(warm):,.1f} ms median ({rows} rows)"
    )

    queries: dict[str, Any] = {}
    for name, sql in dashboard_queries().items():
        con = connect()
        try:
            cold, rows = _time_query(con, sql)
            warm = [_time_query(con, sql)[0] for _ in range(options.dashboard_repeats)]
        finally:
            con.close()
        median = statistics.median(warm)
        queries[name] = {
            "cold_ms": cold,
            "warm_ms": summarize(warm),
            "rows": rows,
            "speedup_vs_adhoc": adhoc["warm_ms"]["median"] / median if median else None,
        }
        options.progress(
            f"D {name}: {median:.2f} ms median, cold {cold:.1f} ms ({rows} rows), "
            f"{queries[name]['speedup_vs_adhoc']:,.0f}x faster than the ad-hoc SQL"
        )
    return {"adhoc": adhoc, "queries": queries}
