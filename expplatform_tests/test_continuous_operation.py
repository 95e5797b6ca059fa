"""Continuous operation: the platform as it runs for real, under `dagster dev` and its daemon.

The scenario of issue #12, against the embedded instance (SQLite, config/dagster.yaml) and the
production one (PostgreSQL, config/dagster.postgres.yaml):

1. `dagster dev` (webserver, daemon, the real code location of workspace.yaml) starts on
   127.0.0.1 over a landing zone holding 4 arrival days nobody has built: the landing sensor's
   catch-up builds them.
2. **The drop**: 4 more days of folders, a new users snapshot and subscription log, and a
   re-delivery into an old folder land at once, while `expplatform materialize` of an overlapping
   range runs and `expplatform report` reads in a loop.
3. **A truncated gzip** lands in a daily folder: the run fails, one alert; the readers' copy and
   the warehouse keep their contents. The partner then sends the complete file: the platform
   heals the day with nobody at the keyboard.

Alerts go to a webhook receiver on 127.0.0.1. The landing and alert sensors look every 5 s
(EXPPLATFORM_LANDING_SENSOR_INTERVAL, EXPPLATFORM_ALERT_SENSOR_INTERVAL) instead of 60 s and 30 s
so the test waits for work, not for the clock; every other setting is the shipped one. Checked:
the sensor launched at most 2 runs for the drop, no log holds a lock error, each alert was
posted once, every report answered, nothing was half-written by the failed run, the final
warehouse and serving copy equal a clean build of the final landing zone (built right after,
under the same load), and the drop took at most 2 times that clean build plus 30 s of
hand-overs between its two runs (see check_figures). The figures are printed, each run with the
seconds from the drop to its creation, start and end.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    serialize_value,
)

from expplatform.catalog import FCT_EXPOSURES_DAILY_KEY
from expplatform.config import PROJECT_ROOT, Settings
from expplatform.sample_data import generate_landing_zone
from expplatform.warehouse import LOCK_MARKERS, WRITER_LOCK_WAIT
from expplatform_tests.e2e import serving_copy, snapshot
from expplatform_tests.reliability_support import (
    RecordingWebhook,
    cli_env,
    differences,
    duplicated_raw_lines,
    expplatform_cmd,
    free_port,
    kill_group,
    location_loaded,
    queue_sizes,
    start,
    wait_for,
    warehouse_snapshot,
)

pytestmark = pytest.mark.slow

USERS, DAYS, EVENTS_PER_DAY, SEED = 300, 8, 600, 11
SENSOR_INTERVAL_SECONDS = 5
PHASE_TIMEOUT = 900
#: The drop's waits around its two runs (sensor and queue intervals, a run process's start-up).
HAND_OVERS_SECONDS = 30
#: What the tests look for in every log: DuckDB's lock errors, and the platform's own waits for a
#: lock (a writer or reader that met another writer: the queue should make that impossible).
LOCK_TEXTS = (*LOCK_MARKERS, "warehouse busy")
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


# --- the landing zone and its clean build -------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    """A generated sample landing zone (`source`) and what lands when."""

    source: Path
    days: tuple[date, ...]  # the 8 arrival days, all complete (before today)
    initial: tuple[str, ...]  # landed before `dagster dev` starts (4 days)
    drop: tuple[str, ...]  # land at once (4 more days, new snapshots)
    redelivery: tuple[str, str]  # (a file of an old folder, the name it is delivered again as)
    broken: str  # the file that first lands truncated, then complete
    broken_content: bytes  # its complete content (gzip)

    def final_files(self) -> dict[str, bytes]:
        """Every file of the final landing zone: relative path → bytes."""
        files = {rel: (self.source / rel).read_bytes() for rel in (*self.initial, *self.drop)}
        files[self.redelivery[1]] = (self.source / self.redelivery[0]).read_bytes()
        files[self.broken] = self.broken_content
        return files


def relative_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def make_zone(root: Path) -> Zone:
    """8 past days of sample data (legacy on days 1-5, LaunchDarkly on days 3-8), split in phases."""
    today = datetime.now(UTC).date()
    days = tuple(today - timedelta(days=DAYS - i) for i in range(DAYS))
    source = root / "source"
    generate_landing_zone(
        source, start=days[0], days=DAYS, users=USERS, seed=SEED,
        events_per_day=EVENTS_PER_DAY, compress=True,
    )  # fmt: skip
    files = relative_files(source)
    first_four = {f"date={d}" for d in days[:4]}
    initial = tuple(
        f
        for f in files
        if f.split("/")[1] in first_four
        or f == f"users/users_{days[0] - timedelta(days=1)}.csv"
        or f == f"subscriptions/subscription_changes_{days[0]}.csv"
    )
    drop = tuple(f for f in files if f not in initial)
    old = f"legacy/date={days[0]}/part-000.csv"
    assert old in initial and any(f"date={days[7]}" in f for f in drop), files
    # The partner's second file of the last day: 120 events of their own (new ids), sent twice —
    # first cut in the middle of its gzip stream, then complete.
    last_ld = source / f"launchdarkly/date={days[7]}/part-000.jsonl.gz"
    lines = gzip.decompress(last_ld.read_bytes()).decode().splitlines()
    resent = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event_id"):
            record["event_id"] = f"{record['event_id']}-part1"
            resent.append(json.dumps(record))
        if len(resent) == 120:
            break
    return Zone(
        source=source,
        days=days,
        initial=initial,
        drop=drop,
        redelivery=(old, f"legacy/date={days[0]}/part-000-redelivered.csv"),
        broken=f"launchdarkly/date={days[7]}/part-001.jsonl.gz",
        broken_content=gzip.compress(("\n".join(resent) + "\n").encode(), mtime=0),
    )


def land(landing: Path, files: dict[str, bytes]) -> float:
    """Write files the way a delivery should: a hidden temporary name, then renamed into place.

    All files are written first and renamed one after the other, so they appear within
    milliseconds of each other. Returns the time the first one appeared.
    """
    staged = []
    for rel, data in files.items():
        target = landing / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_bytes(data)
        staged.append((tmp, target))
    landed = time.time()
    for tmp, target in staged:
        tmp.replace(target)
    return landed


def settings_for(root: Path, landing: Path, start_date: date) -> Settings:
    return Settings(
        landing_dir=landing,
        duckdb_path=root / "wh" / "warehouse.duckdb",
        start_date=start_date,
        lookback_days=2,
        alert_log=root / "alerts.log",
    )


def scenario_env(settings: Settings, home: Path, **extra: str) -> dict[str, str]:
    """The environment of every process of a scenario (dagster dev, the CLI, the reports)."""
    return cli_env(
        settings,
        home,
        EXPPLATFORM_SERVING_PATH=str(settings.serving),
        EXPPLATFORM_PAGES_DIR=str(settings.pages),
        EXPPLATFORM_LANDING_SENSOR_INTERVAL=str(SENSOR_INTERVAL_SECONDS),
        EXPPLATFORM_ALERT_SENSOR_INTERVAL=str(SENSOR_INTERVAL_SECONDS),
        **extra,
    )


def fresh_home(root: Path, yaml: Path) -> Path:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(yaml, home / "dagster.yaml")
    return home


@dataclass(frozen=True)
class CleanBuild:
    """One `expplatform materialize` of the whole final landing zone on a fresh warehouse."""

    seconds: float
    warehouse: dict[str, list]
    contract: dict[str, list]
    serving: dict[str, tuple[list[tuple[str, str]], list[tuple]]]


@pytest.fixture(scope="module")
def zone(tmp_path_factory) -> Zone:
    return make_zone(tmp_path_factory.mktemp("zone"))


def clean_build(zone: Zone, root: Path, yaml: Path, extra_env: dict[str, str]) -> CleanBuild:
    """The reference: every arrival date of the final landing zone in one clean backfill.

    Built by each scenario right after it, so that both are timed under the same load (the
    machine is shared): `expplatform materialize` on a fresh warehouse, on the scenario's kind
    of instance (`yaml`; on PostgreSQL its database, whose runs have all ended by then), since
    every event a run writes costs what that storage costs.
    """
    landing = root / "landing"
    land(landing, zone.final_files())
    settings = settings_for(root, landing, zone.days[0])
    home = fresh_home(root, yaml)
    env = scenario_env(settings, home, **extra_env)
    started = time.monotonic()
    done = subprocess.run(
        expplatform_cmd("materialize", "--start", str(zone.days[0]), "--end", str(zone.days[-1])),
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=PHASE_TIMEOUT,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    return CleanBuild(
        seconds=seconds,
        warehouse=warehouse_snapshot(settings.duckdb_path),
        contract=snapshot(settings.duckdb_path),
        serving=serving_copy(settings.serving, ["marts"]),
    )


def serving_run_id(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select run_id from meta.build_info").fetchone()[0]
    finally:
        con.close()


# --- instance flavours --------------------------------------------------------------------------


PG_HOST, PG_PORT = "127.0.0.1", 5432


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database of its own on the PostgreSQL server on 127.0.0.1:5432, dropped afterwards."""
    import psycopg2

    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    try:
        con = psycopg2.connect(admin, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"no PostgreSQL server reachable at {PG_HOST}:{PG_PORT} as user postgres ({exc}); "
            "the production-instance scenario needs one (trust auth): start PostgreSQL, or run "
            "the embedded-instance scenario alone with -k embedded",
            pytrace=False,
        )
    con.autocommit = True
    name = f"expplatform_scenario_{uuid.uuid4().hex[:10]}"
    with con.cursor() as cur:
        cur.execute(f'create database "{name}"')
    try:
        # the form config/dagster.postgres.yaml documents (the driver named: psycopg2)
        yield f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with con.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
        con.close()


# --- observing the instance ---------------------------------------------------------------------


def in_flight(instance: DagsterInstance) -> list:
    return instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT))


def built_at(instance: DagsterInstance, days: tuple[date, ...]) -> dict[date, float]:
    """When each day's daily fact partition was last materialized (absent: never)."""
    keys = [d.isoformat() for d in days]
    result = instance.fetch_materializations(
        records_filter=AssetRecordsFilter(asset_key=FCT_EXPOSURES_DAILY_KEY, asset_partitions=keys),
        limit=1000,
    )
    out: dict[date, float] = {}
    for record in result.records:  # newest first
        out.setdefault(date.fromisoformat(record.partition_key), record.timestamp)
    return out


def newest_file(landing: Path, day: date, last: date) -> float:
    """The newest mtime among the files that feed arrival day `day` (snapshots feed the last)."""
    folders = [landing / s / f"date={day}" for s in ("launchdarkly", "legacy")]
    if day == last:
        folders += [landing / "users", landing / "subscriptions"]
    mtimes = [p.stat().st_mtime for f in folders if f.is_dir() for p in f.iterdir() if p.is_file()]
    return max(mtimes, default=0.0)


def up_to_date(instance: DagsterInstance, landing: Path, days: tuple[date, ...]) -> bool:
    """Every day built after its newest file, and no run queued or in progress."""
    if in_flight(instance):
        return False
    built = built_at(instance, days)
    return all(built.get(d, 0.0) > newest_file(landing, d, days[-1]) for d in days)


def materialized_assets(instance: DagsterInstance, run_id: str) -> set[str]:
    """The assets a run materialized (any partition)."""
    return {
        entry.dagster_event.asset_key.to_user_string()
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        if entry.dagster_event and entry.dagster_event.asset_key
    }


TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+0000")


def tick_after(dev_log: Path, sensor: str, after: float) -> str | None:
    """The end of an evaluation of `sensor` that began after `after` (from the daemon's log)."""
    began = False
    for line in dev_log.read_text(errors="replace").splitlines():
        match = TIMESTAMP.search(line)
        if match is None:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        # whole seconds in the log: one second later is surely after
        if line.endswith(f"Checking for new runs for sensor: {sensor}"):
            began = began or at.timestamp() >= after + 1
        elif began and f"Sensor {sensor} skipped:" in line:
            return line
    return None


def run_records(instance: DagsterInstance) -> list:
    return sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)


def lock_lines(text: str) -> list[str]:
    """The first lines of `text` that tell of a lock error or a wait for a locked file."""
    hits = [line for line in text.splitlines() if any(m in line.lower() for m in LOCK_TEXTS)]
    return hits[:5]


def event_log_text(instance: DagsterInstance) -> dict[str, str]:
    """Every run's whole event log, serialised (messages, errors, metadata)."""
    return {
        record.dagster_run.run_id: "\n".join(
            serialize_value(entry) for entry in instance.all_logs(record.dagster_run.run_id)
        )
        for record in instance.get_run_records()
    }


# --- the reader ---------------------------------------------------------------------------------


@dataclass
class Reader:
    """`expplatform report` in a loop, in a thread: every answer, with its latency."""

    env: dict[str, str]
    results: list[dict] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self) -> None:
        while not self.stop.is_set():
            started = time.time()
            done = subprocess.run(
                expplatform_cmd("report", "--experiment", "vault-launch", "--format", "json"),
                cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            ended = time.time()
            ms = None
            for line in done.stderr.splitlines():
                if " rows in " in line and " ms from " in line:
                    ms = float(line.split(" rows in ")[1].split(" ms")[0])
            self.results.append(
                {
                    "start": started,
                    "end": ended,
                    "rc": done.returncode,
                    "ms": ms,
                    "rows": json.loads(done.stdout) if done.returncode == 0 else None,
                    "stderr": done.stderr,
                }
            )
            self.stop.wait(1.0)

    def __enter__(self) -> Reader:
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=150)


def report_rows(env: dict[str, str]) -> list[dict]:
    done = subprocess.run(
        expplatform_cmd("report", "--experiment", "vault-launch", "--format", "json"),
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- alerts -------------------------------------------------------------------------------------


def alert_subject(header: str) -> tuple[str, str, bool]:
    """(kind of subject, subject, is a failure) of an alert's header line."""
    text = header.split(" ", 1)[1]  # the icon first
    what, _, subject = text.partition(": ")
    failing = not what.startswith(
        ("Recovered", "Check passes", "Freshness back", "Landing check passes")
    )
    kind = "run" if what in ("Run failed", "Recovered") else "check"
    return kind, subject, failing


def repeated_alerts(headers: list[str]) -> list[str]:
    """Alerts that repeat a failure already posted, or a recovery with no failure since."""
    state: dict[tuple[str, str], bool] = {}
    repeated = []
    for header in headers:
        kind, subject, failing = alert_subject(header)
        if state.get((kind, subject)) == failing:
            repeated.append(header)
        state[(kind, subject)] = failing
    return repeated


# --- the scenario -------------------------------------------------------------------------------


@dataclass
class Figures:
    flavour: str
    clean_build_seconds: float = 0.0
    drop_seconds: float = 0.0
    drop_sensor_runs: int = 0
    drop_runs: list[str] = field(default_factory=list)
    phase_a_seconds: float = 0.0
    heal_seconds: float = 0.0
    heal_runs: list[str] = field(default_factory=list)
    failed_runs: int = 0
    lock_waits: list[str] = field(default_factory=list)
    reports: int = 0
    report_ms_during_runs: list[float] = field(default_factory=list)
    report_wall_during_runs: list[float] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    total_seconds: float = 0.0

    def lines(self) -> list[str]:
        ms, wall = self.report_ms_during_runs, self.report_wall_during_runs
        return [
            f"continuous operation on {self.flavour}:",
            f"  clean backfill of the final landing zone : {self.clean_build_seconds:.0f} s",
            f"  start-up and the first 4 days (catch-up) : {self.phase_a_seconds:.0f} s",
            f"  the drop: sensor runs launched          : {self.drop_sensor_runs} "
            f"({', '.join(self.drop_runs)})",
            f"  the drop: wall time to all built         : {self.drop_seconds:.0f} s "
            f"({self.drop_seconds / (self.clean_build_seconds or 1):.2f} x the clean backfill)",
            f"  truncated gzip to healed                 : {self.heal_seconds:.0f} s, "
            f"{self.failed_runs} failed run(s) ({', '.join(self.heal_runs)})",
            f"  reports answered                         : {self.reports}, "
            f"{len(ms)} during runs: query max {max(ms, default=0):.0f} ms / median "
            f"{statistics.median(ms) if ms else 0:.0f} ms; process max "
            f"{max(wall, default=0):.1f} s / median {statistics.median(wall) if wall else 0:.1f} s",
            f"  runs that waited for the writer lock     : {len(self.lock_waits)} "
            f"({', '.join(self.lock_waits)})",
            f"  alerts posted ({len(self.alerts)})" + "".join(f"\n    {a}" for a in self.alerts),
            f"  the whole test (with the clean backfill) : {self.total_seconds:.0f} s",
        ]


def describe_run(record, origin: float) -> str:
    """A run as `who[span] status took (created/started/ended)`, the three in seconds after
    `origin` (epoch s): they show the hand-overs between runs."""
    run = record.dagster_run
    tags = run.tags
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    span = f"{start[5:]}..{end[5:]}" if start and end else "-"
    who = tags.get("expplatform/launched_by") or ""
    if "dagster/retry_number" in tags:  # a retry keeps the tags of the run it re-executes
        who = f"retry of {who or run.job_name}"
    took = (record.end_time or 0) - (record.start_time or record.end_time or 0)
    times = "/".join(
        f"{t - origin:+.0f}"
        for t in (record.create_timestamp.timestamp(), record.start_time, record.end_time)
        if t
    )
    return f"{who or run.job_name}[{span}] {run.status.value.lower()} {took:.0f}s ({times})"


def run_scenario(
    zone: Zone, root: Path, yaml: Path, figures: Figures, extra_env: dict[str, str]
) -> None:
    """The whole scenario on the instance of `yaml`; fills `figures` as it goes."""
    began = time.monotonic()
    root, clean_root = root / "scenario", root / "clean"
    landing = root / "landing"
    settings = settings_for(root, landing, zone.days[0])
    home = fresh_home(root, yaml)
    port = free_port()
    webhook = RecordingWebhook()
    env = scenario_env(
        settings,
        home,
        EXPPLATFORM_ALERT_WEBHOOK_URL=webhook.url,
        EXPPLATFORM_UI_URL=f"http://127.0.0.1:{port}",
        **extra_env,
    )
    land(landing, {rel: (zone.source / rel).read_bytes() for rel in zone.initial})
    dagster = str(Path(sys.executable).with_name("dagster"))
    dev_log, cli_log = root / "dagster-dev.log", root / "materialize.log"
    # The instance's storage is created here, before dagster dev starts: two processes creating
    # a fresh SQLite storage at once can both stamp its schema version, and dagster dev's code
    # server then refuses it ("alembic_version has more than one head").
    instance = DagsterInstance.from_config(str(home))
    instance.get_runs(limit=1)
    dev = start(
        [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], env, dev_log
    )
    cli = None
    try:
        wait_for(lambda: location_loaded(port), 240, "the code location", poll=1, proc=dev)

        # 1. The first 4 days, which nobody built: the landing sensor's catch-up builds them.
        first_four = zone.days[:4]
        wait_for(
            lambda: up_to_date(instance, landing, first_four),
            PHASE_TIMEOUT, "the first 4 days to be built", poll=1, proc=dev,
        )  # fmt: skip
        before_drop = {r.dagster_run.run_id for r in instance.get_run_records()}

        # 2. The drop, a CLI backfill of an overlapping range, and a reader.
        figures.phase_a_seconds = time.monotonic() - began
        with Reader(env) as reader:
            drop = {rel: (zone.source / rel).read_bytes() for rel in zone.drop}
            drop[zone.redelivery[1]] = (zone.source / zone.redelivery[0]).read_bytes()
            dropped_at = land(landing, drop)
            cli = start(
                expplatform_cmd(
                    "materialize", "--start", str(zone.days[2]), "--end", str(zone.days[5])
                ),
                env,
                cli_log,
            )
            wait_for(
                lambda: cli.poll() is not None and up_to_date(instance, landing, zone.days),
                PHASE_TIMEOUT, "the drop to be built", poll=1, proc=dev,
            )  # fmt: skip
            settled = time.time()
            figures.drop_seconds = settled - dropped_at
            assert cli.returncode == 0, cli_log.read_text()
            # The sensor looks once more after everything was built: nothing to launch.
            wait_for(
                lambda: tick_after(dev_log, "landing_zone_sensor", settled),
                120, "a landing sensor tick after the drop was built", poll=1, proc=dev,
            )  # fmt: skip
            assert not in_flight(instance), "a run was launched after everything was built"
            drop_records = [
                r for r in run_records(instance) if r.dagster_run.run_id not in before_drop
            ]
            figures.drop_runs = [describe_run(r, dropped_at) for r in drop_records]
            figures.drop_sensor_runs = sum(
                r.dagster_run.tags.get("expplatform/launched_by") == "landing_sensor"
                for r in drop_records
            )
            before_break = {r.dagster_run.run_id for r in instance.get_run_records()}
            served_before = serving_run_id(settings.serving)
            report_before = report_rows(env)

            # 3. A truncated gzip: the run fails, nothing half-written; the partner then sends
            # the complete file (as it would after the alert) and the day heals by itself.
            cut = zone.broken_content[: len(zone.broken_content) // 2]
            broke_at = land(landing, {zone.broken: cut})
            (failed,) = wait_for(
                lambda: [
                    r.dagster_run.run_id
                    for r in instance.get_run_records(
                        filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE])
                    )
                    if r.dagster_run.run_id not in before_break
                ][:1],
                PHASE_TIMEOUT, "the run of the truncated file to fail", poll=1, proc=dev,
            )  # fmt: skip
            assert serving_run_id(settings.serving) == served_before
            assert report_rows(env) == report_before
            land(landing, {zone.broken: zone.broken_content})
            wait_for(
                lambda: up_to_date(instance, landing, zone.days),
                PHASE_TIMEOUT, "the broken day to heal", poll=1, proc=dev,
            )  # fmt: skip
            figures.heal_seconds = time.time() - broke_at
            heal_records = [
                r for r in run_records(instance) if r.dagster_run.run_id not in before_break
            ]
            figures.heal_runs = [describe_run(r, broke_at) for r in heal_records]
            # the alert sensor handles every finished run (it looks every 5 s here)
            last_end = max(r.end_time or 0 for r in heal_records)
            wait_for(
                lambda: tick_after(dev_log, "alert_on_failures", last_end),
                120, "an alert sensor tick after the last run", poll=1, proc=dev,
            )  # fmt: skip
            assert not in_flight(instance)
        figures.alerts = webhook.headers()
        records = run_records(instance)
        events = event_log_text(instance)
        half_written = {
            r.dagster_run.run_id[:8]: materialized_assets(instance, r.dagster_run.run_id)
            for r in heal_records
            if r.dagster_run.status == DagsterRunStatus.FAILURE
        }
        figures.failed_runs = len(half_written)
        assert failed[:8] in half_written
    finally:
        if cli is not None:
            kill_group(cli, signal.SIGTERM)
        kill_group(dev, signal.SIGTERM)
        instance.dispose()
        webhook.close()

    # Nothing half-written: a failed run of the truncated file wrote neither that source's
    # partition nor anything downstream of it (the readers' copy was unchanged, checked above).
    downstream = {
        a for assets in half_written.values() for a in assets
        if a == "raw/partner_directpush_launchdarkly_events" or not a.startswith("raw/")
    }  # fmt: skip
    assert not downstream, half_written

    # Reports: every one answered, from the serving copy, without waiting for a writer.
    figures.reports = len(reader.results)
    unanswered = [r for r in reader.results if r["rc"] != 0 or not r["rows"]]
    assert not unanswered, unanswered[:3]
    spans = [(r.start_time, r.end_time or time.time()) for r in records if r.start_time]
    during = [r for r in reader.results if any(s < r["end"] and r["start"] < e for s, e in spans)]
    figures.report_ms_during_runs = [r["ms"] for r in during if r["ms"] is not None]
    figures.report_wall_during_runs = [r["end"] - r["start"] for r in during]

    # No lock error anywhere: dagster dev, the CLI, the reports, every run's event log, every
    # file of the instance (compute logs, SQLite storage).
    found = {
        "dagster dev": lock_lines(dev_log.read_text(errors="replace")),
        "materialize": lock_lines(cli_log.read_text(errors="replace")),
        "reports": [line for r in reader.results for line in lock_lines(r["stderr"])],
        **{f"run {run_id[:8]}": lock_lines(text) for run_id, text in events.items()},
        **{
            str(p.relative_to(home)): lock_lines(p.read_bytes().decode(errors="replace"))
            for p in home.rglob("*")
            if p.is_file()
        },
    }
    assert not {k: v for k, v in found.items() if v}, found
    figures.lock_waits = [run_id[:8] for run_id, text in events.items() if WRITER_LOCK_WAIT in text]

    # The final warehouse and readers' copy equal a clean build of the same landing zone.
    clean = clean_build(zone, clean_root, yaml, extra_env)
    figures.clean_build_seconds = clean.seconds
    assert duplicated_raw_lines(settings.duckdb_path) == []
    assert set(queue_sizes(settings.duckdb_path).values()) == {0}
    assert snapshot(settings.duckdb_path) == clean.contract
    assert not differences(warehouse_snapshot(settings.duckdb_path), clean.warehouse)
    assert serving_copy(settings.serving, ["marts"]) == clean.serving
    figures.total_seconds = time.monotonic() - began


def scenario(zone: Zone, root: Path, yaml: Path, flavour: str, capsys, **env: str) -> Figures:
    """Run the scenario and print its figures (also when it fails half-way)."""
    figures = Figures(flavour=flavour)
    try:
        run_scenario(zone, root, yaml, figures, env)
    finally:
        with capsys.disabled():
            print("\n" + "\n".join(figures.lines()))
    return figures


def check_figures(figures: Figures, zone: Zone) -> None:
    assert figures.drop_sensor_runs <= 2, figures.drop_runs
    # The drop is two runs, one after the other: the CLI's (an explicit request that must run)
    # and the sensor's one (three days lie between the old folder's day and the new days, at most
    # EXPPLATFORM_LANDING_MERGE_GAP_DAYS: one range). The sensor's run covers all 8 days, as the
    # clean backfill does, and the CLI's half of them; at this size each costs nearly a clean
    # backfill (its fixed part dominates), so the drop is about 2 x the clean backfill plus the
    # hand-overs between the runs: the CLI's start-up, the queue's look (1 s) and the next run
    # process's start-up, which do not shrink with the runs (docs/RELIABILITY.md, "Where the
    # drop's time goes").
    bound = 2 * figures.clean_build_seconds + HAND_OVERS_SECONDS
    assert figures.drop_seconds <= bound, figures.lines()
    # The heal is the failed run and Dagster's retry of it: the retry re-executes the failed load
    # after the complete file landed, so the sensor leaves the replaced file to it (no third run).
    assert len(figures.heal_runs) == 2, figures.heal_runs
    # Each alert once. The rejected-record rate fails on the sample's bad lines, which stay in
    # the landing zone: posted once, and never "passes" (runs of other days pass it elsewhere).
    assert len(set(figures.alerts)) == len(figures.alerts), figures.alerts
    assert not repeated_alerts(figures.alerts), figures.alerts
    rejected = [h for h in figures.alerts if "rejected_record_rate" in h]
    assert rejected and all("Check failed (WARN)" in h for h in rejected), figures.alerts
    # The truncated file: one failure (its retries and any catch-up are the same episode), one
    # recovery when the complete file was built.
    last_day = f"[{zone.days[-1]}]"
    assert [h for h in figures.alerts if "Run failed" in h or "Recovered" in h] == [
        f":red_circle: Run failed: materialize_all {last_day}",
        f":white_check_mark: Recovered: materialize_all {last_day}",
    ], figures.alerts


def test_continuous_operation_on_the_embedded_instance(zone, tmp_path, capsys):
    yaml = PROJECT_ROOT / "config" / "dagster.yaml"
    check_figures(scenario(zone, tmp_path, yaml, "SQLite", capsys), zone)


def test_continuous_operation_on_the_production_instance(
    zone, tmp_path, postgres_url, monkeypatch, capsys
):
    # the instance this process opens reads the same variable as dagster dev and the CLI
    monkeypatch.setenv("EXPPLATFORM_DAGSTER_PG_URL", postgres_url)
    yaml = PROJECT_ROOT / "config" / "dagster.postgres.yaml"
    figures = scenario(
        zone, tmp_path, yaml, "PostgreSQL", capsys, EXPPLATFORM_DAGSTER_PG_URL=postgres_url
    )
    check_figures(figures, zone)
