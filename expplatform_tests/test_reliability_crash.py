"""Crash mid-run, re-delivery and retraction, through the real `expplatform materialize` command.

Each scenario starts from a private copy of the session's clean build (`built`:
arrival dates 2025-12-01..04), adds one arrival folder and runs its partition
with `expplatform materialize` as a subprocess (Dagster run recorded in a
DAGSTER_HOME with the shipped dagster.yaml, dbt running inside the run's process):

1. SIGKILL during ingestion (inside the raw load's transaction, after one file
   was inserted), then the full run. The new folder re-delivers files already
   loaded, under other names: it must change no table but raw.
2. SIGKILL during the dbt build (after dbt committed fct_experiment_exposures_daily,
   before it built the assignments and the marts, so before the step recorded anything or
   advanced the bookkeeping), then the full run.
   The new folder retracts (is_active 'N') an event counted in the clean
   build: it must disappear from every table.

After a kill, every table must be either as before the run or as after the
next complete run (never a partial partition). The process group is killed
with SIGKILL at a controlled point: EXPPLATFORM_TEST_PAUSE_AT makes the code
write a marker file and wait (expplatform.warehouse.pause_point, inert
otherwise). The landing zone lives in a folder whose name holds quotes, a
semicolon and SQL, and the re-delivered file has such a name too.
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from expplatform.warehouse import connect, is_lock_error, recovery_message, wal_path
from expplatform_tests.conftest import write_text
from expplatform_tests.reliability_support import (
    cli_env,
    copy_clean_build,
    dagster_home,
    differences,
    duplicated_raw_lines,
    expplatform_cmd,
    files_containing,
    kill_group,
    queue_sizes,
    start,
    wait_for,
    warehouse_snapshot,
)
from expplatform_tests.test_models_e2e import (
    EXPECTED_ALLOCATION,
    EXPECTED_ASSIGNMENTS,
    EXPECTED_DAILY,
    chi_p,
    ld,
)

HOSTILE = """landing 'it''s' "zone"; drop table raw.users; --"""
SECRET = "T0CRASH/B0CRASH/crashTestWebhookS3cret"
WEBHOOK = f"http://127.0.0.1:9/services/{SECRET}"  # never called: no sensor runs in the CLI
RUN_TIMEOUT = 420


def run_cli(env: dict[str, str], tmp: Path, day: date, name: str) -> subprocess.CompletedProcess:
    """`expplatform materialize` of one arrival date, to completion."""
    log = tmp / f"{name}.log"
    proc = start(
        expplatform_cmd("materialize", "--start", day.isoformat(), "--end", day.isoformat()),
        env,
        log,
    )
    try:
        proc.wait(timeout=RUN_TIMEOUT)
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text(), "")


def run_and_kill(env: dict[str, str], tmp: Path, day: date, pause_at: str) -> str:
    """Start the run, wait until it pauses at `pause_at`, SIGKILL its process group."""
    marker = tmp / f"paused-{pause_at.replace(':', '-')}"
    log = tmp / f"killed-{marker.name}.log"
    proc = start(
        expplatform_cmd("materialize", "--start", day.isoformat(), "--end", day.isoformat()),
        {**env, "EXPPLATFORM_TEST_PAUSE_AT": pause_at, "EXPPLATFORM_TEST_PAUSE_FILE": str(marker)},
        log,
    )
    try:
        wait_for(marker.exists, RUN_TIMEOUT, f"the run to pause at {pause_at}", proc=proc)
        kill_group(proc, signal.SIGKILL)
    finally:
        kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    return marker.read_text()


def run_messages(home: Path) -> dict[str, list[str]]:
    """The log messages of every run of the instance, by run id (oldest run first)."""
    instance = DagsterInstance.from_config(str(home))
    try:
        runs = sorted(
            instance.get_runs(),
            key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp,
        )
        return {r.run_id: [e.user_message for e in instance.all_logs(r.run_id)] for r in runs}
    finally:
        instance.dispose()


def lock_errors(messages: list[str]) -> list[str]:
    """DuckDB lock errors or busy-warehouse waits in a run's log."""
    return [m for m in messages if is_lock_error(Exception(m)) or "warehouse busy" in m]


def assert_each_table_before_or_after(killed: dict, before: dict, after: dict) -> None:
    partial = [
        t for t in sorted(set(killed) | set(before) | set(after))
        if killed.get(t) not in (before.get(t), after.get(t))
    ]  # fmt: skip
    assert not partial, "tables neither as before nor as after the run: " + ", ".join(partial)


def assert_secret_never_written(home: Path, *texts: str) -> None:
    assert files_containing(home, SECRET) == []
    for text in texts:
        assert SECRET not in text


@pytest.fixture
def scenario(built, tmp_path):
    settings = copy_clean_build(built, tmp_path, landing_name=HOSTILE)
    home = dagster_home(tmp_path)
    env = cli_env(settings, home, EXPPLATFORM_ALERT_WEBHOOK_URL=WEBHOOK)
    return settings, home, env


@pytest.mark.slow
def test_kill_during_ingestion_then_a_redelivered_folder_changes_nothing(scenario, tmp_path):
    settings, home, env = scenario
    clean = warehouse_snapshot(settings.duckdb_path)
    day5 = date(2025, 12, 5)
    # The partner re-sends 12-02's export and the legacy system 12-01's, under other names.
    redelivered_ld = "re-sent 'part' \"000\"; drop table raw.users; --.jsonl"
    for source, original, new_name in (
        ("launchdarkly", "date=2025-12-02/part-000.jsonl", redelivered_ld),
        ("legacy", "date=2025-12-01/part-000.csv", "resent-export.csv"),
    ):
        target = settings.landing_dir / source / "date=2025-12-05" / new_name
        target.parent.mkdir(parents=True)
        shutil.copyfile(settings.landing_dir / source / original, target)

    marker = run_and_kill(env, tmp_path, day5, "ingestion")
    assert marker.startswith("ingestion ")  # paused after inserting one file, before commit
    wal_left = wal_path(settings.duckdb_path).exists()
    killed = warehouse_snapshot(settings.duckdb_path)
    assert not differences(killed, clean), "the killed load is visible"

    result = run_cli(env, tmp_path, day5, "after-ingestion-kill")
    assert result.returncode == 0, result.stdout
    assert "is gone; marked failed" in result.stdout  # the dead run no longer holds the queue
    after = warehouse_snapshot(settings.duckdb_path)
    raw = {t for t in after if t.startswith("raw.")}
    assert not differences(
        {t: r for t, r in after.items() if t not in raw},
        {t: r for t, r in clean.items() if t not in raw},
    ), "a re-delivered file changed a table"
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        assert con.execute(
            "select _source_file, count(*) from raw.partner_directpush_launchdarkly_events "
            "where _load_date = '2025-12-05' group by 1"
        ).fetchall() == [(f"launchdarkly/date=2025-12-05/{redelivered_ld}", 7)]
    finally:
        con.close()
    assert duplicated_raw_lines(settings.duckdb_path) == []
    assert set(queue_sizes(settings.duckdb_path).values()) == {0}

    runs = run_messages(home)
    killed_run, next_run = list(runs.values())
    recovery = [m for m in next_run if "recovering from warehouse.duckdb.wal" in m]
    assert bool(recovery) == wal_left, (wal_left, recovery)
    assert not lock_errors(next_run)
    assert_secret_never_written(home, result.stdout)


@pytest.mark.slow
def test_kill_during_dbt_then_a_retraction_removes_the_event_everywhere(scenario, tmp_path):
    settings, home, env = scenario
    clean = warehouse_snapshot(settings.duckdb_path)
    day6 = date(2025, 12, 6)
    # ld-12 is u-7's only exposure (12-02, treatment, premium): counted in the clean build.
    write_text(
        settings.landing_dir / "launchdarkly" / "date=2025-12-06" / "part-000.jsonl",
        ld("ld-12", "u-7", "2025-12-02T10:00:00", "treatment", active="N") + "\n",
    )

    marker = run_and_kill(env, tmp_path, day6, "dbt:fct_experiment_exposures_daily")
    assert marker.startswith("dbt fct_experiment_exposures_daily")
    wal_left = wal_path(settings.duckdb_path).exists()
    killed = warehouse_snapshot(settings.duckdb_path)

    result = run_cli(env, tmp_path, day6, "after-dbt-kill")
    assert result.returncode == 0, result.stdout
    assert "is gone; marked failed" in result.stdout  # the dead run no longer holds the queue
    after = warehouse_snapshot(settings.duckdb_path)
    assert_each_table_before_or_after(killed, clean, after)
    assert (
        killed["marts.fct_experiment_exposures_daily"]
        != clean["marts.fct_experiment_exposures_daily"]
    ), "the kill came before dbt committed the daily fact: the scenario tested nothing"

    # The retraction, worked out by hand from test_models_e2e's expected tables: u-7 disappears.
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        assert con.execute(
            "select experiment_key, user_id, exposure_date, first_exposure_at, variation_name, "
            "is_treatment, variations_seen, exposures, subscription_tier "
            "from marts.fct_experiment_exposures_daily order by user_id, exposure_date"
        ).fetchall() == [r for r in EXPECTED_DAILY if r[1] != "u-7"]
        assert con.execute(
            "select experiment_key, user_id, assigned_at, assignment_date, variation_name, "
            "is_treatment, subscription_tier, has_multiple_variations, exposure_days, "
            "last_exposure_date from marts.fct_experiment_assignments order by user_id"
        ).fetchall() == [r for r in EXPECTED_ASSIGNMENTS if r[1] != "u-7"]
        assert con.execute(
            "select date, variation_name, is_treatment, subscription_tier, new_users, "
            "cumulative_users, active_users, exposures from marts.mart_experiment_allocation_daily "
            "order by experiment_key, date, variation_name, subscription_tier"
        ).fetchall() == [r for r in EXPECTED_ALLOCATION if r[3] != "premium"]  # u-7 only
        # the fixture's events are all vault-launch's: the rows above are the whole table
        assert con.execute(
            "select distinct experiment_key from marts.mart_experiment_allocation_daily"
        ).fetchall() == [("vault-launch",)]
        health = con.execute(
            "select date, assigned_users, multiple_variation_users, srm_chi_square, srm_p_value, "
            "srm_status from marts.mart_experiment_health_daily order by date"
        ).fetchall()
        # 12-01 unchanged; from 12-02 on: one user fewer and control 2 vs treatment 2 (chi 0)
        expected = [(date(2025, 12, 1), 5, 2, 1 / 3), (date(2025, 12, 2), 6, 2, 0.0),
                    (date(2025, 12, 3), 7, 3, 0.0)]  # fmt: skip
        assert [r[:3] for r in health] == [e[:3] for e in expected]
        for row, (_, _, _, chi) in zip(health, expected, strict=True):
            assert row[3] == pytest.approx(chi) and row[4] == pytest.approx(chi_p(chi))
            assert row[5] == "not_enough_traffic"
        assert math.isclose(health[1][4], 1.0)
        for table in ("intermediate.int_experiment_user_days", "marts.fct_experiment_assignments"):
            assert con.execute(
                f"select count(*) from {table} where user_id = 'u-7'"
            ).fetchone() == (0,)
        # raw keeps both copies (lineage); only the models drop the retracted event
        assert con.execute(
            "select is_active, _load_date from raw.partner_directpush_launchdarkly_events "
            "where event_id = 'ld-12' order by 2"
        ).fetchall() == [("Y", date(2025, 12, 2)), ("N", day6)]
    finally:
        con.close()
    assert set(queue_sizes(settings.duckdb_path).values()) == {0}

    runs = run_messages(home)
    killed_run, next_run = list(runs.values())
    recovery = [m for m in next_run if "recovering from warehouse.duckdb.wal" in m]
    assert bool(recovery) == wal_left, (wal_left, recovery)
    assert not lock_errors(next_run)
    assert_secret_never_written(home, result.stdout)


def test_a_wal_left_by_a_killed_writer_is_replayed_with_a_clear_log_line(tmp_path, caplog):
    db = tmp_path / "w.duckdb"
    writer = (
        "import duckdb, os, signal, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute('create table t as select 1 as x'); con.execute('checkpoint')\n"
        "con.execute('insert into t values (2)')  # committed: only in the WAL\n"
        "con.execute('begin'); con.execute('insert into t values (3)')  # never committed\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(db)], check=False)
    wal = wal_path(db)
    assert wal.exists()
    size = wal.stat().st_size

    messages: list[str] = []
    with connect(db, read_only=True, on_wait=messages.append) as con:  # a reader replays it too
        assert con.execute("select x from t order by x").fetchall() == [(1,), (2,)]
    assert messages == [recovery_message(db, size)]
    assert "recovering from w.duckdb.wal" in messages[0] and "crash or kill" in messages[0]

    with caplog.at_level("WARNING", logger="expplatform.warehouse"):
        with connect(db) as con:  # the writer replays and checkpoints on close
            assert con.execute("select x from t order by x").fetchall() == [(1,), (2,)]
    assert "recovering from w.duckdb.wal" in caplog.text
    assert not wal.exists()
    messages.clear()
    with connect(db, on_wait=messages.append):
        pass
    assert messages == []  # a clean file says nothing
