"""The whole benchmark run: :func:`run_bench` runs the chosen sections in order and writes the result.

Every pipeline measurement (A, B, E) is a fresh child process running the real
pipeline (``expplatform.bench.runner``, or the `expplatform` command itself for E),
on a warehouse at one fixed work path (so dbt's partial parsing behaves as in
production), restored from a copy before each repetition so that every
repetition starts from the same state. The parent only samples memory and keeps
time; it never imports Dagster.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psutil

from expplatform.bench.landing import ensure_landing
from expplatform.bench.options import MAIN_SCALE_SECTIONS, SECTIONS, BenchOptions
from expplatform.bench.report import markdown_report
from expplatform.bench.sections import (
    section_backfill,
    section_bare,
    section_daily,
    section_dashboard,
    section_single,
)
from expplatform.bench.split import daily_split
from expplatform.bench.sql import compare_outputs
from expplatform.bench.targets import evaluate_targets
from expplatform.bench.workspace import BenchError, Workspace, database_bytes
from expplatform.config import PROJECT_ROOT


def machine_info() -> dict[str, Any]:
    """CPU, memory and software versions: numbers mean nothing without them."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": os.getloadavg()[0],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }
    info["memory_gib"] = round(psutil.virtual_memory().total / 1024**3, 1)
    try:
        # Neither psutil nor platform names the CPU model on Linux.
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        for package in ("dagster", "dagster-dbt", "dbt-core", "dbt-duckdb"):
            info[package] = version(package)
    except Exception:  # informational only
        pass
    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=False,
        )
        info["git_commit"] = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return info


def run_bench(options: BenchOptions) -> tuple[dict[str, Any], Path]:
    """Run every section; write bench/results/<timestamp>.json; returns (result, path).

    A failing section is recorded under `errors` and the sections that do not
    depend on it still run; the result file is written either way.
    """
    progress = options.progress
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scale = options.scale
    unknown = set(options.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    if "daily" in options.sections and scale.days < 2:
        raise ValueError("the benchmark needs at least 2 days (B compares two daily runs)")
    main_scale = any(s in MAIN_SCALE_SECTIONS for s in options.sections)
    result: dict[str, Any] = {
        "timestamp": stamp,
        "quick": options.quick,
        "scale": {**asdict(scale), "start": scale.start.isoformat()},
        "settings": {
            "repeats": options.repeats,
            "early_day": options.early_day,
            "duckdb_memory_limit": options.memory_limit,
            "duckdb_threads": options.threads,
            "dev_sample_pct": options.dev_sample_pct,
            "dev_days": options.dev_days,
            "lookback_days": int(os.environ.get("EXPPLATFORM_LOOKBACK_DAYS", "2")),
            "single_day": options.single_day,
        },
        "machine": machine_info(),
        "sections": list(options.sections),
        "errors": {},
    }
    started = time.monotonic()
    landing, landing_meta = None, {}
    if main_scale:  # E alone never generates the (large) main landing zone
        landing, landing_meta = ensure_landing(scale, options.cache_dir, progress)
        result["landing"] = {**landing_meta, "path": str(landing)}
    single_landing = None
    if "single" in options.sections:
        single_landing, single_meta = ensure_landing(
            options.single_scale, options.cache_dir, progress
        )
        result["single_landing"] = {**single_meta, "path": str(single_landing)}
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{stamp}.json"

    def save() -> None:
        # Written after every measurement with complete=false, so nothing is lost if killed.
        path.write_text(json.dumps(result, indent=2, default=str))

    result["complete"] = False
    ws = Workspace(options, landing)
    result["completed_runs"] = ws.completed
    ws.checkpoint = save
    full = floor = None
    try:
        try:
            if "bare" in options.sections:
                result["bare"], floor = section_bare(ws, options)
        except BenchError as exc:
            result["errors"]["bare"] = str(exc)
            progress(f"C failed: {exc}")
        try:
            if "backfill" in options.sections:
                events = landing_meta["event_lines"]
                result["backfill"], full = section_backfill(ws, options, events)
        except BenchError as exc:
            result["errors"]["backfill"] = str(exc)
            progress(f"A failed: {exc}")
        if full is not None and floor is not None:
            # Under the dev target both sides apply the same sample: still comparable.
            result["equivalence"] = compare_outputs(
                full, floor, memory_limit=options.memory_limit, threads=options.threads
            )
            verdict = "equal" if result["equivalence"]["equal"] else "DIFFERENT"
            progress(f"C vs A outputs: {verdict}")
        if full is not None:
            result["dashboard"] = section_dashboard(full, options)
            result["storage"] = {
                "warehouse_bytes": database_bytes(full),
                "bare_bytes": database_bytes(floor) if floor is not None else None,
                "landing_bytes": landing_meta["bytes"],
            }
            save()
        try:
            if "daily" in options.sections:
                result["daily"] = section_daily(ws, options)
        except BenchError as exc:
            result["errors"]["daily"] = str(exc)
            progress(f"B failed: {exc}")
        try:
            if single_landing is not None:
                site = ws.site("single", single_landing, options.single_scale)
                result["single"] = section_single(site, options)
        except BenchError as exc:
            result["errors"]["single"] = str(exc)
            progress(f"E failed: {exc}")
    finally:
        ws.close()
    result["total_s"] = time.monotonic() - started
    result["daily_split"] = daily_split(result)
    result["targets"] = evaluate_targets(result)
    result.pop("completed_runs")  # every run is in its section now
    result["complete"] = True
    save()
    path.with_suffix(".md").write_text(markdown_report(result))
    return result, path
