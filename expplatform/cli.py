"""The `expplatform` command: sample data, materialization through Dagster, the allocation report."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from expplatform.config import ConfigError, get_settings, parse_date


def _err(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _date_arg(what: str):
    def parse(value: str) -> date:
        try:
            return parse_date(value, what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {n}")
    return n


# --- prepare ----------------------------------------------------------------------------------------


def cmd_prepare(args: argparse.Namespace) -> int:
    from expplatform.transform.project import prepare_manifest

    path = prepare_manifest(force=True)
    print(f"dbt manifest ready: {path}")
    return 0


# --- sample-data --------------------------------------------------------------------------------------


def cmd_sample_data(args: argparse.Namespace) -> int:
    from expplatform.sample_data import generate_landing_zone

    settings = get_settings()
    landing = Path(args.landing_dir) if args.landing_dir else settings.landing_dir
    start = args.start or (datetime.now(UTC).date() - timedelta(days=args.days))
    print(
        f"writing sample landing zone to {landing} ({args.days} days from {start}, {args.users} users)"
    )
    summary = generate_landing_zone(
        landing,
        start=start,
        days=args.days,
        users=args.users,
        seed=args.seed,
        events_per_day=args.events_per_day,
        files_per_day=args.files_per_day,
        compress=args.gzip,
        progress=lambda line: print(f"  {line}", flush=True),
    )
    print(summary.as_text())
    return 0


# --- materialize --------------------------------------------------------------------------------------


def sample_range(landing_dir: Path) -> tuple[date, date]:
    """The first and last arrival date present in the landing zone (both daily sources)."""
    from expplatform.ingestion.landing import LAUNCHDARKLY, LEGACY, arrival_dates, check_landing_dir

    check_landing_dir(landing_dir)
    dates = sorted({*arrival_dates(landing_dir, LAUNCHDARKLY), *arrival_dates(landing_dir, LEGACY)})
    if not dates:
        raise ConfigError(
            f"the landing zone {landing_dir} has no launchdarkly/date=… or legacy/date=… folders; "
            "add files or create a sample with `expplatform sample-data`"
        )
    return dates[0], dates[-1]


#: Dagster's tags for a single-run partition range (end inclusive).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: The process executing a run of this command (to recognise a run whose process died).
PID_TAG = "expplatform/pid"
HOST_TAG = "expplatform/host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_runs(instance, echo=print) -> list[str]:
    """Fail the runs of this command whose process is gone, freeing their warehouse pool slot.

    A run killed mid-step (SIGKILL, OOM, reboot) stays "started" and keeps the
    `duckdb_warehouse` slot it claimed; with no daemon to notice, every later
    run would wait for that slot forever. Returns the ids of the runs released.
    """
    from dagster import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED],
            tags={"expplatform/launched_by": "cli", HOST_TAG: socket.gethostname()},
        )
    )
    released = []
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        instance.report_run_failed(
            run,
            message=f"the `expplatform materialize` process of this run (pid {pid}) is gone "
            "(killed or crashed); marked failed by the next run, its warehouse slot freed",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        echo(f"run {run.run_id[:8]}: its process (pid {pid}) is gone; marked failed, slot freed")
        released.append(run.run_id)
    return released


def run_materialization(start: date, end: date, *, echo=print, poll_seconds: float = 0.5) -> bool:
    """Materialize every asset for arrival dates [start, end] in one Dagster run; True on success.

    The run is recorded in DAGSTER_HOME (it shows in the UI); progress is
    printed per step while it runs.
    """
    from dagster import DagsterEventType, DagsterInstance

    from expplatform.config import ensure_dagster_home
    from expplatform.definitions import defs
    from expplatform.jobs import materialize_all_job

    ensure_dagster_home()
    settings = get_settings()
    first = settings.start_date
    if start < first:
        raise ConfigError(
            f"--start {start} is before the first partition {first} (EXPPLATFORM_START_DATE)"
        )
    if end < start:
        raise ConfigError(f"--end {end} is before --start {start}")
    instance = DagsterInstance.get()
    release_dead_runs(instance, echo)
    job = defs.resolve_job_def(materialize_all_job.name)
    run_id = str(uuid.uuid4())
    tags = {
        RANGE_START_TAG: start.isoformat(),
        RANGE_END_TAG: end.isoformat(),
        "expplatform/launched_by": "cli",
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
    }
    outcome: dict[str, object] = {}

    def execute() -> None:
        try:
            result = job.execute_in_process(
                # Dagster's console log would drown the per-step progress printed below;
                # warnings and errors still show, and every event is in the UI.
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                instance=instance,
                run_id=run_id,
                tags=tags,
                raise_on_error=False,
            )
            outcome["success"] = result.success
        except BaseException as exc:  # reported below; the thread must not die silently
            outcome["error"] = exc

    echo(f"run {run_id[:8]}: materializing arrival dates {start} .. {end}")
    started = time.monotonic()
    worker = threading.Thread(target=execute, daemon=True)
    worker.start()
    seen = 0
    step_started: dict[str, float] = {}
    kinds = {
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_CHECK_EVALUATION,
    }
    failures: list[str] = []
    materialized = checks_failed = checks_total = 0

    def drain() -> None:
        nonlocal seen, materialized, checks_failed, checks_total
        records = instance.all_logs(run_id)
        for record in records[seen:]:
            event = record.dagster_event
            if event is None or event.event_type not in kinds:
                continue
            step = event.step_key or ""
            if event.event_type == DagsterEventType.STEP_START:
                step_started[step] = record.timestamp
                echo(f"  → {step} started")
            elif event.event_type == DagsterEventType.STEP_SUCCESS:
                took = record.timestamp - step_started.get(step, record.timestamp)
                echo(f"  ✓ {step} done in {took:.1f}s")
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                error = event.step_failure_data.error if event.step_failure_data else None
                message = error.message.strip().splitlines()[0] if error else "failed"
                failures.append(f"{step}: {message}")
                echo(f"  ✗ {step} FAILED: {message}")
            elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialized += 1
            elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                checks_total += 1
                if not event.event_specific_data.passed:
                    checks_failed += 1
                    key = event.event_specific_data.asset_key.to_user_string()
                    echo(f"  ! check {event.event_specific_data.check_name} on {key} failed")
        seen = len(records)

    while worker.is_alive():
        worker.join(poll_seconds)
        drain()
    drain()
    elapsed = time.monotonic() - started
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    ok = bool(outcome.get("success"))
    echo(
        f"run {run_id[:8]} {'succeeded' if ok else 'FAILED'} in {elapsed:.1f}s: "
        f"{materialized} materializations, {checks_total - checks_failed}/{checks_total} checks passed"
    )
    for failure in failures:
        echo(f"  failure: {failure}")
    return ok


def cmd_materialize(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.sample_range:
        start, end = sample_range(settings.landing_dir)
    else:
        if not (args.start and args.end):
            return _err("give --start DATE and --end DATE (inclusive), or --sample-range")
        start, end = args.start, args.end
    return 0 if run_materialization(start, end) else 1


# --- report -------------------------------------------------------------------------------------------

REPORT_COLUMNS = (
    "date",
    "variation_name",
    "new_users",
    "cumulative_users",
    "active_users",
    "exposures",
)


def allocation_report(
    con, experiment: str, *, by_tier: bool, start: date | None, end: date | None
) -> list[dict[str, object]]:
    """Allocation over time for one experiment from the mart (parameterised SQL)."""
    tier = ", subscription_tier" if by_tier else ""
    rows = con.execute(
        f"""
        select date, variation_name{tier},
               sum(new_users)::bigint as new_users,
               sum(cumulative_users)::bigint as cumulative_users,
               sum(active_users)::bigint as active_users,
               sum(exposures)::bigint as exposures
        from marts.mart_experiment_allocation_daily
        where experiment_key = $experiment
          and ($start::date is null or date >= $start::date)
          and ($end::date is null or date <= $end::date)
        group by all
        order by date, variation_name{tier}
        """,
        {"experiment": experiment, "start": start, "end": end},
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]


def format_rows(rows: Sequence[dict[str, object]], fmt: str) -> str:
    """Render report rows as an aligned table, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, default=str, indent=2)
    if not rows:
        return ""
    names = list(rows[0])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    cells = [[str(r[n]) for n in names] for r in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    numeric = [isinstance(rows[0][n], int | float) for n in names]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def cmd_report(args: argparse.Namespace) -> int:
    from expplatform.warehouse import WarehouseBusyError, connect

    settings = get_settings()
    if args.start and args.end and args.end < args.start:
        return _err(f"--end {args.end} is before --start {args.start}")
    if not settings.duckdb_path.exists():
        return _err(
            f"warehouse {settings.duckdb_path} does not exist yet: run `expplatform materialize` "
            "(or `make run`) first"
        )
    started = time.perf_counter()
    try:
        with connect(
            settings.duckdb_path,
            read_only=True,
            on_wait=lambda m: print(m, file=sys.stderr),
            wait_seconds=args.wait,
        ) as con:
            known = con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = 'marts' and table_name = 'mart_experiment_allocation_daily'"
            ).fetchone()[0]
            if not known:
                return _err("the marts are not built yet: run `expplatform materialize` first")
            rows = allocation_report(
                con, args.experiment, by_tier=args.by == "tier", start=args.start, end=args.end
            )
            if not rows:
                experiments = [
                    r[0]
                    for r in con.execute(
                        "select distinct experiment_key from marts.mart_experiment_allocation_daily "
                        "order by 1"
                    ).fetchall()
                ]
                return _err(
                    f"no allocation rows for experiment {args.experiment!r} in that range; "
                    f"experiments with data: {', '.join(experiments) or 'none'}"
                )
            if args.chart:
                from expplatform.charts import write_allocation_chart

                chart = write_allocation_chart(
                    con, args.experiment, Path(args.chart), by_tier=args.by == "tier"
                )
    except WarehouseBusyError as exc:
        return _err(str(exc))
    print(format_rows(rows, args.format))
    print(f"({len(rows)} rows in {1000 * (time.perf_counter() - started):.0f} ms)", file=sys.stderr)
    if args.chart:
        print(f"chart written to {chart}", file=sys.stderr)
    return 0


# --- bench --------------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from expplatform.bench.cli import run_from_args

    return run_from_args(args)


# --- spark-check -------------------------------------------------------------------------------------


def cmd_spark_check(args: argparse.Namespace) -> int:
    from expplatform.spark import (
        SparkUnavailable,
        build_and_compare,
        comparison_report,
        spark_session,
    )

    settings = get_settings()
    duckdb_path = Path(args.duckdb_path) if args.duckdb_path else settings.duckdb_path
    if not duckdb_path.exists():
        return _err(f"{duckdb_path}: no warehouse there; run `expplatform materialize` first")
    work_dir = Path(args.work_dir)
    try:
        print(f"starting a local Spark session in {work_dir}", file=sys.stderr)
        spark = spark_session(work_dir)
    except SparkUnavailable as exc:
        return _err(str(exc))
    check = build_and_compare(
        spark, duckdb_path, work_dir, progress=lambda m: print(m, file=sys.stderr)
    )
    print(comparison_report(check))
    return 0 if check.equal else 1


# --- entry point --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expplatform",
        description="Experiment data platform: sample data, materialization, allocation reports.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build the dbt manifest (needed before Dagster loads)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("sample-data", help="write a realistic sample landing zone")
    p.add_argument(
        "--start", type=_date_arg("--start"), help="first arrival date (default: DAYS ago)"
    )
    p.add_argument("--days", type=_positive, default=30)
    p.add_argument("--users", type=_positive, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--landing-dir", help="default: EXPPLATFORM_LANDING_DIR")
    p.add_argument("--events-per-day", type=_positive, help="total events per day (benchmarks)")
    p.add_argument("--files-per-day", type=_positive, default=1)
    p.add_argument("--gzip", action="store_true", help="write LaunchDarkly files as .jsonl.gz")
    p.set_defaults(func=cmd_sample_data)

    p = sub.add_parser("materialize", help="materialize every asset for a range of arrival dates")
    p.add_argument("--start", type=_date_arg("--start"))
    p.add_argument("--end", type=_date_arg("--end"), help="inclusive")
    p.add_argument(
        "--sample-range", action="store_true", help="the arrival dates present in the landing zone"
    )
    p.set_defaults(func=cmd_materialize)

    p = sub.add_parser("report", help="allocation over time of one experiment (from the marts)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--by", choices=["variation", "tier"], default="variation")
    p.add_argument("--start", type=_date_arg("--start"))
    p.add_argument("--end", type=_date_arg("--end"))
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--chart", metavar="PNG", help="also draw the allocation chart to this file")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a busy warehouse")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="benchmark backfill, daily run, bare floor and dashboard")
    from expplatform.bench.cli import add_bench_arguments

    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "spark-check",
        help="build the dbt models on a local Spark from the warehouse's raw tables and compare",
    )
    p.add_argument("--duckdb-path", help="the DuckDB warehouse (default: EXPPLATFORM_DUCKDB_PATH)")
    p.add_argument(
        "--work-dir",
        default="spark_work",
        help="Spark metastore, warehouse and dbt output (default: ./spark_work)",
    )
    p.set_defaults(func=cmd_spark_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    # Dagster flags beta/preview parameters on every import; they say nothing to a CLI user.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        return _err(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: one clear line, not a traceback, for known errors
        from expplatform.ingestion.landing import LandingZoneError
        from expplatform.ingestion.loaders import LoadError
        from expplatform.warehouse import WarehouseBusyError

        if isinstance(exc, LandingZoneError | LoadError | WarehouseBusyError):
            return _err(str(exc))
        raise


if __name__ == "__main__":
    sys.exit(main())
