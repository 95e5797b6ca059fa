"""Concurrency: two backfills launched at once through the instance's run queue, and a reader.

As an engineer clicking "Launch" twice in the UI would: `dagster dev` (webserver,
daemon, one code server) runs on 127.0.0.1 with a fresh DAGSTER_HOME holding
the shipped dagster.yaml (QueuedRunCoordinator, one run per code location at a
time, pool `duckdb_warehouse` limited to one step), and two single-run backfills
over overlapping arrival ranges (12-01..03 and 12-02..04) are submitted back to
back through the GraphQL API the UI uses. The queue must hold the second run back
until the first ended, both must succeed, no warehouse step may overlap another,
and nothing may be duplicated.

Meanwhile `expplatform report` reads in a loop. It reads the serving copy, which
every run replaces whole after the warehouse is built (expplatform/serving.py), so
it never waits for a writer. The runs start from a copy of the clean build and
re-run the same landing zone, so every published state equals the clean build:
each report must print exactly the clean report.

The code location is the platform without the schedule and the sensors that
launch runs of their own (see reliability_support; the alert sensors stay, with
a webhook that always fails, and its secret URL must be written nowhere). The
runs execute their steps in the run's process (the job's in-process executor).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, instance_for_test
from dagster_graphql import DagsterGraphQLClient

from expplatform.config import PROJECT_ROOT
from expplatform.definitions import build_definitions
from expplatform.jobs import MATERIALIZE_ALL
from expplatform.warehouse import WriterLock, is_lock_error
from expplatform_tests.reliability_support import (
    FailingWebhook,
    cli_env,
    copy_clean_build,
    dagster_home,
    differences,
    duplicated_raw_lines,
    expplatform_cmd,
    files_containing,
    free_port,
    kill_group,
    location_loaded,
    queue_sizes,
    start,
    wait_for,
    warehouse_snapshot,
)

pytestmark = pytest.mark.slow

RANGES = (("2025-12-01", "2025-12-03"), ("2025-12-02", "2025-12-04"))
SECRET = "T0QUEUE/B0QUEUE/queueTestWebhookS3cret"
DEADLINE_SECONDS = 900


def makefile_ui_command() -> list[str]:
    """The command `make ui` runs, with the Makefile's defaults (no HOST/PORT in the env)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    out = subprocess.run(
        ["make", "-n", "ui"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    (line,) = [line for line in out.splitlines() if "bin/dagster dev " in line]
    return line.split()


def test_the_ui_binds_to_localhost_by_default():
    for target in ("ui", "run"):
        env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
        out = subprocess.run(
            ["make", "-n", target], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
        ).stdout
        lines = [line for line in out.splitlines() if "dagster dev" in line]
        assert lines and all(" -h 127.0.0.1 " in f"{line} " for line in lines), out


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def report(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        expplatform_cmd(
            "report", "--experiment", "vault-launch", "--by", "tier", "--format", "json",
            "--wait", "300",
        ),
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=360,
    )  # fmt: skip


def step_intervals(instance: DagsterInstance, run_ids: list[str]) -> list[tuple[float, float, str]]:
    """(start, end, run:step) of every step of the runs."""
    intervals = []
    for run_id in run_ids:
        started = {}
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                started[event.step_key] = entry.timestamp
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                key = f"{run_id[:8]}:{event.step_key}"
                intervals.append((started[event.step_key], entry.timestamp, key))
    return sorted(intervals)


def run_spans(instance: DagsterInstance, run_ids: list[str]) -> list[tuple[float, float, float]]:
    """(enqueued, started, ended) of each run, from its events."""
    spans = []
    for run_id in run_ids:
        times = {}
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is not None:
                times.setdefault(event.event_type, entry.timestamp)
        ended = times.get(DagsterEventType.RUN_SUCCESS) or times[DagsterEventType.RUN_FAILURE]
        spans.append(
            (times[DagsterEventType.RUN_ENQUEUED], times[DagsterEventType.RUN_START], ended)
        )
    return spans


def test_two_overlapping_backfills_through_the_run_queue_while_a_reader_reads(built, tmp_path):
    settings = copy_clean_build(built, tmp_path)
    home = dagster_home(tmp_path)
    webhook = FailingWebhook(SECRET)
    env = cli_env(settings, home, EXPPLATFORM_ALERT_WEBHOOK_URL=webhook.url)
    clean = warehouse_snapshot(settings.duckdb_path)
    clean_report = report(env)
    assert clean_report.returncode == 0, clean_report.stderr
    expected_rows = json.loads(clean_report.stdout)
    assert expected_rows

    command = makefile_ui_command()  # dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000
    host = command[command.index("-h") + 1]
    port = free_port()
    dev_log = tmp_path / "dagster-dev.log"
    dev = start(
        [
            command[0],
            "dev",
            "-m", "expplatform_tests.reliability_support",
            "-a", "location_without_run_launchers",
            "-h", host,
            "-p", str(port),
        ],
        env,
        dev_log,
    )  # fmt: skip
    reports: list[subprocess.CompletedProcess] = []
    try:
        wait_for(lambda: location_loaded(port), 180, "the code location", poll=1, proc=dev)
        assert listening_addresses(port) and listening_addresses(port) <= LOOPBACK

        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_ids = [
            client.submit_job_execution(
                "materialize_all",
                tags={
                    "dagster/asset_partition_range_start": start_date,
                    "dagster/asset_partition_range_end": end_date,
                    "expplatform/launched_by": "reliability-test",
                },
            )
            for start_date, end_date in RANGES
        ]

        def finished() -> list[str] | None:
            statuses = [client.get_run_status(run_id).value for run_id in run_ids]
            done = all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses)
            return statuses if done else None

        deadline = time.monotonic() + DEADLINE_SECONDS
        while (statuses := finished()) is None:
            assert time.monotonic() < deadline, "the two runs did not finish in time"
            assert dev.poll() is None, "dagster dev exited"
            reports.append(report(env))
            time.sleep(0.5)
        reports.append(report(env))  # after both runs

        instance = DagsterInstance.from_config(str(home))
        try:
            messages = {
                run_id: [entry.user_message for entry in instance.all_logs(run_id)]
                for run_id in run_ids
            }
            failures = {
                run_id: [
                    entry.user_message
                    for entry in instance.all_logs(
                        run_id,
                        of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE},
                    )
                ]
                for run_id in run_ids
            }
            assert statuses == ["SUCCESS", "SUCCESS"], failures
            enqueued = [
                run_id
                for run_id in run_ids
                if instance.all_logs(run_id, of_type=DagsterEventType.RUN_ENQUEUED)
            ]
            assert enqueued == run_ids, "a run bypassed the run queue"
            intervals = step_intervals(instance, run_ids)
            spans = run_spans(instance, run_ids)
        finally:
            instance.dispose()
    finally:
        kill_group(dev, signal.SIGTERM)
        webhook.close()

    # Serialised by the pool: no two warehouse steps of the two runs ever overlapped.
    assert len({key.split(":")[0] for _, _, key in intervals}) == 2
    overlaps = [
        (a, b)
        for (s1, e1, a), (s2, e2, b) in zip(intervals, intervals[1:], strict=False)
        if s2 < e1
    ]
    assert not overlaps, overlaps
    # ... because of the limits: the run queue (one run per code location) held the second run
    # back while the first ran; it was enqueued before the first ended and started after it.
    (first_enqueued, first_start, first_end), (second_enqueued, second_start, _) = sorted(
        spans, key=lambda span: span[1]
    )
    assert second_enqueued < first_end, "the runs did not meet in the queue: nothing was tested"
    assert second_start >= first_end, spans
    all_messages = [m for run_messages in messages.values() for m in run_messages]
    assert not [m for m in all_messages if is_lock_error(Exception(m))]

    # Duplicate nothing: every table equals the clean build.
    assert duplicated_raw_lines(settings.duckdb_path) == []
    assert set(queue_sizes(settings.duckdb_path).values()) == {0}
    assert not differences(warehouse_snapshot(settings.duckdb_path), clean)

    # The reader reads the serving copy, which runs replace whole (expplatform/serving.py): it
    # never waits for a writer and always sees one published (here: the clean) state.
    assert len(reports) >= 4, "the reader loop ran too few times to mean anything"
    for r in reports:
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert "busy" not in r.stderr, r.stderr
        assert json.loads(r.stdout) == expected_rows

    # The webhook URL (a secret) is nowhere in the instance, the logs or the reports.
    assert files_containing(home, SECRET) == []
    assert SECRET not in dev_log.read_text(errors="replace")
    assert all(SECRET not in r.stdout + r.stderr for r in reports)


LOCKER = """
import pathlib, sys, time
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # a reader: DuckDB then refuses any writer
pathlib.Path(sys.argv[2]).touch()
deadline = time.monotonic() + 300
while not pathlib.Path(sys.argv[3]).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
"""


def test_a_dbt_step_waits_for_a_reader_instead_of_failing(built, tmp_path):
    """dbt cannot wait for DuckDB's lock itself: the step starts it again until the reader left."""
    settings = copy_clean_build(built, tmp_path)
    held, release = tmp_path / "held", tmp_path / "release"
    locker = start(
        [sys.executable, "-c", LOCKER, str(settings.duckdb_path), str(held), str(release)],
        dict(os.environ),
        tmp_path / "locker.log",
    )
    run_id = str(uuid.uuid4())
    seen: list[str] = []
    try:
        wait_for(held.exists, 60, "the reader to open the warehouse", proc=locker)
        with instance_for_test() as instance:

            def release_after_first_retry() -> None:
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline and not release.exists():
                    messages = [e.user_message for e in instance.all_logs(run_id)]
                    if any("dbt could not lock" in m for m in messages):
                        seen.extend(m for m in messages if "dbt could not lock" in m)
                        break
                    time.sleep(0.5)
                release.touch()

            watcher = threading.Thread(target=release_after_first_retry, daemon=True)
            watcher.start()
            job = build_definitions(settings).resolve_job_def(MATERIALIZE_ALL)
            result = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                asset_selection=[
                    AssetKey(["registry", "experiments"]),
                    AssetKey(["marts", "dim_experiments"]),
                ],
                raise_on_error=False,
            )
            watcher.join(timeout=10)
    finally:
        release.touch()
        kill_group(locker)
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    assert seen and seen[0].startswith(
        "warehouse busy: dbt could not lock warehouse.duckdb (another process holds it), "
        "retrying in 0.2s"
    ), seen


HOLDER = """
import pathlib, sys, time
from expplatform.warehouse import WriterLock
WriterLock(pathlib.Path(sys.argv[1])).acquire("run r-1, pid 1 on host-a")
pathlib.Path(sys.argv[2]).touch()
time.sleep(300)
"""


def test_a_second_writer_waits_for_the_writer_lock_until_the_holder_is_gone(tmp_path):
    """Two writer processes never overlap; a killed holder leaves no lock behind."""
    database, held = tmp_path / "warehouse.duckdb", tmp_path / "held"
    holder = start(
        [sys.executable, "-c", HOLDER, str(database), str(held)],
        dict(os.environ),
        tmp_path / "holder.log",
    )
    messages: list[str] = []
    acquired = threading.Event()
    lock = WriterLock(database)

    def second_writer() -> None:
        lock.acquire("run r-2", on_wait=messages.append, poll_seconds=0.05, report_every=3600)
        acquired.set()

    try:
        wait_for(held.exists, 60, "the first writer to take the lock", proc=holder)
        threading.Thread(target=second_writer, daemon=True).start()
        time.sleep(1.0)
        assert not acquired.is_set()
        assert messages == [
            "waiting for the warehouse writer lock: another run is writing warehouse.duckdb "
            "(run r-1, pid 1 on host-a); waited 0s"
        ]
        kill_group(holder)  # SIGKILL: the kernel releases its lock
        assert acquired.wait(10), "the lock of a killed process was not released"
        assert lock.holder() == "run r-2"
    finally:
        lock.release()
        kill_group(holder)
    again = WriterLock(database)
    again.acquire("run r-3")  # released: taken at once
    again.release()
