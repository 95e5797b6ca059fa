"""`expplatform materialize`: every asset for a range of arrival dates, as one Dagster run.

The run executes in this process and is recorded in DAGSTER_HOME (it shows in the UI and the
alert sensors see it). Writers queue at the run level (config/dagster.yaml): the daemon starts
one run of the code location at a time. This command is a writer too, so before it starts it
waits until no run of the instance is in progress, and it tags its run with the code location,
so the daemon does not start another writer while it runs. Its steps claim no pool slot: a
killed `materialize` would otherwise keep the warehouse slot forever when no daemon runs.

A run of this command whose process is gone (SIGKILL, OOM, reboot) stays "started" in the
instance and would hold up the queue; the next `materialize`, and the daemon's
`reap_dead_cli_runs` sensor, mark it failed (docs/RUNBOOK.md).
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

from expplatform.cli.common import EXIT_FAILED, EXIT_OK, ProgressBar, err, note
from expplatform.config import ConfigError, Settings, get_settings
from expplatform.sources import DEFAULT_REGISTRY, SourceRegistry

#: Dagster's tags for a single-run partition range (end inclusive).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: The process executing a run of this command (to recognise a run whose process died).
PID_TAG = "expplatform/pid"
HOST_TAG = "expplatform/host"
LAUNCHED_BY_TAG = "expplatform/launched_by"


def sample_range(
    landing_dir: Path, registry: SourceRegistry = DEFAULT_REGISTRY
) -> tuple[date, date]:
    """The first and last arrival date present in the landing zone (every daily source)."""
    from expplatform.ingestion.landing import arrival_dates, check_landing_dir

    check_landing_dir(landing_dir)
    dates = sorted({d for source in registry.daily for d in arrival_dates(landing_dir, source)})
    if not dates:
        folders = ", ".join(f"{s.folder}/date=…" for s in registry.daily)
        raise ConfigError(
            f"the landing zone {landing_dir} has no {folders} folders; "
            "add files or create a sample with `expplatform sample-data`"
        )
    return dates[0], dates[-1]


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_runs(instance, echo: Callable[[str], None] = note) -> list[str]:
    """Mark failed the runs of this command on this host whose process is gone; returns their ids."""
    from dagster import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED],
            tags={LAUNCHED_BY_TAG: "cli", HOST_TAG: socket.gethostname()},
        )
    )
    released = []
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        instance.report_run_failed(
            run,
            message=f"the `expplatform materialize` process of this run (pid {pid}) is gone "
            "(killed or crashed); marked failed so that the run queue moves on",
        )
        echo(f"run {run.run_id[:8]}: its process (pid {pid}) is gone; marked failed")
        released.append(run.run_id)
    return released


def wait_for_writers(
    instance, echo: Callable[[str], None] = note, poll_seconds: float = 0.5
) -> None:
    """Wait until no run of the instance is in progress (the warehouse has one writer).

    A look is one indexed query of the run storage; every half second keeps the hand-over after
    the writer's run short (a drop of files is often a sensor run and this command's, one after
    the other: docs/RELIABILITY.md).
    """
    from dagster import DagsterRunStatus, RunsFilter

    announced: set[str] = set()
    while True:
        release_dead_runs(instance, echo)
        busy = instance.get_runs(
            filters=RunsFilter(
                statuses=[
                    DagsterRunStatus.STARTING,
                    DagsterRunStatus.STARTED,
                    DagsterRunStatus.CANCELING,
                ]
            )
        )
        if not busy:
            return
        for run in busy:
            if run.run_id not in announced:
                echo(
                    f"waiting for run {run.run_id[:8]} ({run.job_name}, "
                    f"{run.status.value.lower()}) to finish: the warehouse has one writer"
                )
                announced.add(run.run_id)
        time.sleep(poll_seconds)


def run_materialization(
    start: date,
    end: date,
    *,
    settings: Settings | None = None,
    registry: SourceRegistry = DEFAULT_REGISTRY,
    echo: Callable[[str], None] = note,
    poll_seconds: float = 0.5,
    show_progress: bool = True,
) -> bool:
    """Materialize every asset for arrival dates [start, end] in one Dagster run; True on success."""
    from dagster import DagsterEventType, DagsterInstance

    from expplatform.definitions import build_definitions
    from expplatform.instance import (
        CODE_LOCATION,
        CODE_LOCATION_TAG,
        check_instance,
        prepare_dagster_home,
    )
    from expplatform.jobs import MATERIALIZE_ALL
    from expplatform.transform.project import prepare_manifest
    from expplatform.warehouse import WRITER_LOCK_WAIT

    settings = settings or get_settings()
    if start < settings.start_date:
        raise ConfigError(
            f"--start {start} is before the first partition {settings.start_date} "
            "(EXPPLATFORM_START_DATE)"
        )
    if end < start:
        raise ConfigError(f"--end {end} is before --start {start}")
    prepare_dagster_home()
    instance = DagsterInstance.get()
    check_instance(instance)
    prepare_manifest(settings, registry)
    job = build_definitions(settings, registry, step_pools=False).resolve_job_def(MATERIALIZE_ALL)
    wait_for_writers(instance, echo)
    run_id = str(uuid.uuid4())
    tags = {
        RANGE_START_TAG: start.isoformat(),
        RANGE_END_TAG: end.isoformat(),
        CODE_LOCATION_TAG: CODE_LOCATION,
        LAUNCHED_BY_TAG: "cli",
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
    }
    outcome: dict[str, object] = {}

    def execute() -> None:
        try:
            result = job.execute_in_process(
                # Dagster's console log would drown the progress printed below; warnings and
                # errors still show, and every event is in the UI.
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                instance=instance,
                run_id=run_id,
                tags=tags,
                raise_on_error=False,
            )
            outcome["success"] = result.success
        except BaseException as exc:  # reported below; the thread must not die silently
            outcome["error"] = exc

    steps = len(job.graph.nodes)
    echo(f"run {run_id[:8]}: materializing arrival dates {start} .. {end}")
    bar = ProgressBar(steps, "materialize") if show_progress else None
    started = time.monotonic()
    worker = threading.Thread(target=execute, daemon=True)
    worker.start()
    cursor: str | None = None
    done_steps = 0
    failures: list[str] = []
    materialized = checks_failed = checks_total = 0
    kinds = {
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_CHECK_EVALUATION,
    }

    def drain() -> None:
        # only the events since the last look (re-reading the whole run every 0.5 s cost seconds
        # of the run's own time: this thread competes with it for the interpreter)
        nonlocal cursor, materialized, checks_failed, checks_total, done_steps
        records = []
        has_more = True
        while has_more:  # a page at a time, until the newest event
            connection = instance.get_records_for_run(run_id, cursor=cursor)
            cursor, has_more = connection.cursor, connection.has_more
            records.extend(r.event_log_entry for r in connection.records)
        for record in records:
            event = record.dagster_event
            if event is None and record.user_message.startswith(WRITER_LOCK_WAIT):
                echo(record.user_message)  # the console shows warnings only: say why it waits
            if event is None or event.event_type not in kinds:
                continue
            step = event.step_key or ""
            if event.event_type == DagsterEventType.STEP_START and bar:
                bar.update(done_steps, step)
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                done_steps += 1
                if event.event_type == DagsterEventType.STEP_FAILURE:
                    error = event.step_failure_data.error if event.step_failure_data else None
                    message = error.message.strip().splitlines()[0] if error else "failed"
                    failures.append(f"{step}: {message}")
                if bar:
                    bar.update(done_steps, step)
            elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialized += 1
            elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                checks_total += 1
                if not event.event_specific_data.passed:
                    checks_failed += 1
                    key = event.event_specific_data.asset_key.to_user_string()
                    echo(f"  ! check {event.event_specific_data.check_name} on {key} failed")

    while worker.is_alive():
        worker.join(poll_seconds)
        drain()
    drain()
    if bar:
        bar.close()
    elapsed = time.monotonic() - started
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    ok = bool(outcome.get("success"))
    print(
        f"run {run_id[:8]} {'succeeded' if ok else 'FAILED'} in {elapsed:.1f}s: "
        f"{materialized} materializations, {checks_total - checks_failed}/{checks_total} checks "
        "passed",
        flush=True,
    )
    for failure in failures:
        print(f"  failure: {failure}", flush=True)
    return ok


def cmd_materialize(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.sample_range:
        start, end = sample_range(settings.landing_dir)
    else:
        if not (args.start and args.end):
            return err("give --start DATE and --end DATE (inclusive), or --sample-range")
        start, end = args.start, args.end
    return EXIT_OK if run_materialization(start, end, settings=settings) else EXIT_FAILED


def add_parser(sub: argparse._SubParsersAction) -> None:
    from expplatform.cli.common import date_arg

    p = sub.add_parser(
        "materialize",
        help="materialize every asset for a range of arrival dates (one Dagster run)",
    )
    p.add_argument("--start", type=date_arg("--start"), help="first arrival date")
    p.add_argument("--end", type=date_arg("--end"), help="last arrival date (inclusive)")
    p.add_argument(
        "--sample-range", action="store_true", help="every arrival date present in the landing zone"
    )
    p.set_defaults(func=cmd_materialize)
