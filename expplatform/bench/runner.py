"""What the benchmark runs in a measured child process: `python -m expplatform.bench.runner`.

Each measurement runs in a fresh process so that its wall time includes
what a real `expplatform materialize` pays (imports, loading the
definitions) and its peak RSS is its own, not left over from an earlier
measurement. Three commands:

- ``job START END OUT``: the `materialize_all` Dagster job for arrival dates
  [START, END] as one single-run backfill, in process, recorded in
  ``DAGSTER_HOME``; configuration comes from the environment
  (``EXPPLATFORM_*``), as for the CLI.
- ``bare DB LANDING OUT MEMORY_LIMIT THREADS``: ``bench/bare_pipeline.sql`` on a new
  DuckDB file, with the dev target's sample when ``EXPPLATFORM_DBT_TARGET=dev``.
- ``last-run OUT``: not measured itself: the step timings of the newest run recorded in
  ``DAGSTER_HOME`` (section E times the `expplatform` command as a whole, then asks).

Each writes a JSON summary to OUT (stdout and stderr carry the logs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def run_job(start: date, end: date) -> dict[str, Any]:
    """Execute the whole graph for [start, end]; timings per step and per dbt model."""
    began = time.monotonic()
    from dagster import DagsterInstance

    from expplatform.definitions import build_definitions
    from expplatform.jobs import MATERIALIZE_ALL

    # What `expplatform materialize` runs: the job executed in this process, no step pools.
    job = build_definitions(step_pools=False).resolve_job_def(MATERIALIZE_ALL)
    instance = DagsterInstance.get()
    loaded = time.monotonic()
    result = job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
        raise_on_error=False,
    )
    finished = time.monotonic()
    import expplatform

    return {
        **summarize_run(instance, result.run_id),
        "success": bool(result.success),
        "code": str(Path(expplatform.__file__).parent),
        "startup_s": loaded - began,
        "execute_s": finished - loaded,
    }


def summarize_run(instance: Any, run_id: str) -> dict[str, Any]:
    """Timings per step and per dbt model and test, row counts of the loads, failures."""
    from dagster import DagsterEventType

    steps: dict[str, dict[str, float]] = {}
    models: dict[str, float] = {}
    tests: dict[str, float] = {}
    owners: dict[tuple[str, str], str] = {}  # (measure, model or test) -> its step
    loads: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        step = event.step_key or ""
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            steps.setdefault(step, {})["start"] = record.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            steps.setdefault(step, {})["end"] = record.timestamp
            if kind == DagsterEventType.STEP_FAILURE and event.step_failure_data:
                error = event.step_failure_data.error
                failures.append(f"{step}: {error.message.strip()[:500] if error else 'failed'}")
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            key = materialization.asset_key.to_user_string()
            metadata = materialization.metadata
            if "Execution Duration" in metadata:
                # a partitioned dbt asset reports one materialization per partition of the
                # range, each with the same model's duration: count it once
                models[key] = float(metadata["Execution Duration"].value)
                owners[("models_s", key)] = step
            if "rows_loaded" in metadata:
                loads[key] = {
                    name: metadata[name].value
                    for name in ("files", "lines", "rows_loaded", "rows_rejected")
                    if name in metadata
                }
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            duration = evaluation.metadata.get("Execution Duration")
            if duration is not None and duration.value is not None:
                name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                tests[name] = float(duration.value)
                owners[("tests_s", name)] = step
    for (measure, name), step in owners.items():
        duration = models[name] if measure == "models_s" else tests[name]
        step_times = steps.setdefault(step, {})
        step_times[measure] = step_times.get(measure, 0.0) + duration
    return {
        "run_id": run_id,
        "steps": {
            name: {**times, "seconds": times.get("end", 0.0) - times.get("start", 0.0)}
            for name, times in steps.items()
        },
        "dbt_models_s": models,
        "dbt_tests_s": tests,
        "loads": loads,
        "failures": failures,
    }


def last_run() -> dict[str, Any]:
    """The step timings of the newest run in ``DAGSTER_HOME``, and its own duration."""
    from dagster import DagsterInstance, DagsterRunStatus

    instance = DagsterInstance.get()
    runs = instance.get_runs(limit=1)
    if not runs:
        return {"success": False, "failures": ["no run recorded in DAGSTER_HOME"]}
    run = runs[0]
    stats = instance.get_run_stats(run.run_id)
    execute = None
    if stats.start_time is not None and stats.end_time is not None:
        execute = stats.end_time - stats.start_time
    return {
        **summarize_run(instance, run.run_id),
        "success": run.status == DagsterRunStatus.SUCCESS,
        "execute_s": execute,
    }


def run_bare(db_path: Path, landing: Path, memory_limit: str, threads: int) -> dict[str, Any]:
    """Run the bare SQL script statement by statement; time each one."""
    import duckdb

    from expplatform.bench.sql import DevSample, bare_statements
    from expplatform.transform.duckdb_udfs import register_udfs

    began = time.monotonic()
    con = duckdb.connect(str(db_path))
    try:
        con.execute(f"set memory_limit = '{memory_limit}'")
        con.execute(f"set threads = {int(threads)}")
        register_udfs(con)
        timings: list[dict[str, Any]] = []
        for label, statement in bare_statements(landing, sample=DevSample.from_env(os.environ)):
            t = time.monotonic()
            con.execute(statement)
            timings.append({"statement": label, "seconds": time.monotonic() - t})
        con.execute("checkpoint")
        counts = {
            name: con.execute(f"select count(*) from bare.{name}").fetchone()[0]
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'bare' order by 1"
            ).fetchall()
        }
    finally:
        con.close()
    return {
        "success": True,
        "execute_s": time.monotonic() - began,
        "statements": timings,
        "row_counts": counts,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = args[0], args[1:]
    if command == "job":
        start, end, out = date.fromisoformat(rest[0]), date.fromisoformat(rest[1]), Path(rest[2])
        summary = run_job(start, end)
    elif command == "last-run":
        out = Path(rest[0])
        summary = last_run()
    elif command == "bare":
        db, landing, out = Path(rest[0]), Path(rest[1]), Path(rest[2])
        summary = run_bare(db, landing, rest[3], int(rest[4]))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    out.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary.get("success") else 1


if __name__ == "__main__":
    sys.exit(main())
