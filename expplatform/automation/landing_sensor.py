"""The landing sensor: new or changed landing files, and missed days, become as few runs as possible.

Each tick scans the landing zone of every registered source. A daily folder (`legacy/date=D`)
maps to arrival partition D; an unpartitioned source's folder (`users/`, `subscriptions/`) maps
to the latest partition (yesterday), whose run reloads it and rebuilds everything downstream.
Every partition that needs a run in this tick goes into one run per range of dates (single-run
backfill semantics: the range tags of a run), so a drop of eight days is one run; two ranges at
most EXPPLATFORM_LANDING_MERGE_GAP_DAYS days apart (3 by default) are one run too, the days
between rebuilt: a re-delivery into a folder a few days old and today's drop cost one run, not two.

What needs a run:
- **new or changed files**: a file counts by its name, size and modification time; the cursor
  keeps, per folder, a short fingerprint of every file the sensor has requested a run for, and
  advances only for what it requested. A re-delivery into an old folder requests that old
  partition again; deleted files request nothing (a retention job pruning old folders must not
  wipe their partitions);
- **catch-up**: every arrival date since the first partition whose files exist but whose
  `fct_experiment_exposures_daily` partition is missing, failed, or older than its files. A
  failure episode is caught up once (the cursor remembers the failed run it reacted to, and a
  catch-up run that fails is not caught up again), and only after Dagster's own retries: run
  retries (config/dagster.yaml) retry a failing run twice, the catch-up once more, then the
  freshness alert names the day and a person decides (docs/RUNBOOK.md, "A day is stuck").
Partitions covered by a queued or in-progress run are not requested by the catch-up. A changed
folder of a source that a re-execution (Dagster's automatic retry of a failed run, or a re-execution
from the UI) loads for that date, by a step not started yet or started after the files' last
change, is left to it: the retry reads the files when its load step starts, so the replaced file
of a failed day heals in the retry, not in one more run. Folders
outside the partitions (before EXPPLATFORM_START_DATE, or today and later, which are not complete
yet) are skipped and stay out of the cursor, so today's files are requested as soon as today
becomes a partition.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    PartitionsDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from expplatform.automation.schedules import last_complete_partition
from expplatform.catalog import FCT_EXPOSURES_DAILY_KEY
from expplatform.ingestion.landing import (
    DATE_FOLDER_RE,
    arrival_dates,
    list_files,
    partition_folder,
)
from expplatform.resources import LandingZoneResource
from expplatform.sources import SourceRegistry

CURSOR_VERSION = 2
#: Run tags hold at most this many changed file names (the rest is counted).
MAX_FILES_IN_TAG = 5
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
LAUNCHED_BY_TAG = "expplatform/launched_by"
CATCH_UP_TAG = "expplatform/catch_up"
#: Dagster's tags for automatic retries (dagster/_core/storage/tags.py; read, not imported).
WILL_RETRY_TAG = "dagster/will_retry"
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
#: Set on every re-execution of a run: Dagster's automatic retries and re-executions from the UI.
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
#: A failed run Dagster said it would retry, with no retry this long after: caught up anyway.
RETRY_GRACE_SECONDS = 300.0
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int

    def fingerprint(self, name: str) -> str:
        """A short, stable id of (name, size, mtime): changes when the file is rewritten."""
        raw = f"{name}\0{self.size}\0{self.mtime_ns}".encode()
        return hashlib.sha1(raw).hexdigest()[:12]


#: folder (relative to the landing zone, e.g. "legacy/date=2025-12-03") → file name → stat
LandingSnapshot = dict[str, dict[str, FileStat]]
#: folder → sorted fingerprints of its files (the cursor's state)
LandingState = dict[str, list[str]]


@dataclass
class LandingPlan:
    """What one evaluation requests: the ranges, why each date is in it, and the next cursor."""

    dates: dict[date, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    #: changed folders left to a re-execution that will load them (not requested, cursor advanced)
    left: list[str] = field(default_factory=list)
    state: LandingState = field(default_factory=dict)
    caught_up: dict[str, str] = field(default_factory=dict)

    def ranges(self, merge_gap_days: int = 0) -> list[tuple[date, date]]:
        """The requested dates as (first, last) ranges, in order.

        Two ranges with at most `merge_gap_days` days between them become one: the days between
        are rebuilt (a run is idempotent), which at the platform's sizes costs less than the fixed
        cost of one more run waiting behind the first (docs/ARCHITECTURE.md, "What launches runs").
        """
        out: list[tuple[date, date]] = []
        for day in sorted(self.dates):
            if out and day <= out[-1][1] + timedelta(days=merge_gap_days + 1):
                out[-1] = (out[-1][0], day)
            else:
                out.append((day, day))
        return out


#: A load step that started at least this long after a file's last modification read that file
#: whole (a margin for the clock's and the file system's granularity).
STEP_START_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class PendingReload:
    """A re-execution that loads these sources' folders for arrival dates [start, end].

    `folders` maps a source's landing folder (`launchdarkly`, `users`, ...) to when its load step
    started, or None when it has not started yet (it will read whatever is there then).
    """

    run_id: str
    start: date
    end: date
    folders: Mapping[str, float | None]

    def covers(self, folder: str, day: date, newest_mtime_ns: int) -> bool:
        """Whether its load of `folder` (`launchdarkly/date=...`, `users`) for partition `day`
        reads files last modified at `newest_mtime_ns`: not started yet, or started after them."""
        source_folder = folder.split("/", 1)[0]
        if not (self.start <= day <= self.end) or source_folder not in self.folders:
            return False
        started = self.folders[source_folder]
        return started is None or newest_mtime_ns < (started - STEP_START_MARGIN_SECONDS) * 1e9


def scan_landing_zone(landing_dir: Path, registry: SourceRegistry) -> LandingSnapshot:
    """Every data file of every source folder, with its size and modification time."""
    snapshot: LandingSnapshot = {}
    for source in registry:
        folders = (
            [partition_folder(landing_dir, source, d) for d in arrival_dates(landing_dir, source)]
            if source.daily
            else [landing_dir / source.folder]
        )
        for folder in folders:
            files = {}
            for path in list_files(folder, source):
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed between listing and stat
                    continue
                files[path.name] = FileStat(st.st_size, st.st_mtime_ns)
            if files:
                snapshot[folder.relative_to(landing_dir).as_posix()] = files
    return snapshot


def state_of(snapshot: Mapping[str, Mapping[str, FileStat]]) -> LandingState:
    return {
        folder: sorted(stat.fingerprint(name) for name, stat in files.items())
        for folder, files in snapshot.items()
    }


def folder_arrival_date(folder: str) -> date | None:
    """The arrival date of a daily folder (`legacy/date=2025-12-03`); None for snapshot folders."""
    match = DATE_FOLDER_RE.match(folder.rsplit("/", 1)[-1])
    return date.fromisoformat(match.group(1)) if match else None


def folder_targets(
    snapshot: LandingSnapshot, first: date, last: date | None
) -> tuple[dict[str, date], list[str]]:
    """The partition each folder feeds, and the folders skipped (with why)."""
    targets, skipped = {}, []
    for folder in sorted(snapshot):
        arrival = folder_arrival_date(folder)
        target = arrival if arrival is not None else last
        if target is None:
            skipped.append(f"{folder}: there is no complete daily partition yet")
        elif target < first:
            skipped.append(f"{folder}: arrival date {target} is before the first partition {first}")
        elif last is None or target > last:
            skipped.append(f"{folder}: arrival date {target} is not complete yet (last {last})")
        else:
            targets[folder] = target
    return targets, skipped


def plan_landing_runs(
    previous: Mapping[str, list[str]],
    snapshot: LandingSnapshot,
    first_partition: date,
    last_partition: date | None,
    *,
    catch_up: Mapping[date, str] | None = None,
    caught_up: Mapping[str, str] | None = None,
    pending: Sequence[PendingReload] = (),
) -> LandingPlan:
    """The dates to run for changed files and caught-up days, and the next cursor state (pure).

    `catch_up` maps a date needing a catch-up to its reason; `caught_up` (from the cursor) maps
    a date to the failed run already reacted to, carried into the next state. A changed folder
    that one of the `pending` re-executions will load is left to it: no date, cursor advanced.
    """
    plan = LandingPlan(caught_up=dict(caught_up or {}))
    current = state_of(snapshot)
    targets, plan.skipped = folder_targets(snapshot, first_partition, last_partition)
    for folder, fingerprints in previous.items():
        if folder not in targets and folder in current:
            plan.state[folder] = list(fingerprints)  # skipped for now: keep what was seen
    for folder, target in targets.items():
        seen = set(previous.get(folder, ()))
        changed = [
            f"{folder}/{name}"
            for name, stat in sorted(snapshot[folder].items())
            if stat.fingerprint(name) not in seen
        ]
        if changed:
            plan.state[folder] = current[folder]
            newest = max(snapshot[folder][name.rsplit("/", 1)[1]].mtime_ns for name in changed)
            reload = next((p for p in pending if p.covers(folder, target, newest)), None)
            if reload is not None:
                plan.left.append(
                    f"{folder}: {len(changed)} changed file(s) left to run {reload.run_id[:8]}, "
                    "a re-execution that has yet to load them"
                )
            else:
                plan.dates.setdefault(target, []).extend(changed)
        elif folder in previous:
            plan.state[folder] = list(previous[folder])
    for day, reason in sorted((catch_up or {}).items()):
        # a date already requested for its changed files needs no catch-up reason on top
        in_range = first_partition <= day and (last_partition is None or day <= last_partition)
        if in_range and day not in plan.dates:
            plan.dates[day] = [reason]
    return plan


def encode_cursor(state: LandingState, caught_up: Mapping[str, str] | None = None) -> str:
    return json.dumps(
        {"v": CURSOR_VERSION, "folders": state, "caught_up": dict(caught_up or {})},
        sort_keys=True,
        separators=(",", ":"),
    )


def decode_cursor(cursor: str | None) -> tuple[LandingState, dict[str, str]] | None:
    """The state in a cursor; None when there is none (first tick) or it is unreadable."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            return None
        folders = {str(k): [str(x) for x in v] for k, v in data["folders"].items()}
        caught_up = {str(k): str(v) for k, v in (data.get("caught_up") or {}).items()}
        return folders, caught_up
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


# --- what the instance knows ---------------------------------------------------------------------


def latest_materializations(
    instance: DagsterInstance, asset_key: AssetKey, partitions: Iterable[str]
) -> dict[str, float]:
    """The timestamp of each partition's latest materialization (absent: never materialized)."""
    wanted = sorted(set(partitions))
    latest: dict[str, float] = {}
    if not wanted:
        return latest
    cursor = None
    while len(latest) < len(wanted):
        result = instance.fetch_materializations(
            records_filter=AssetRecordsFilter(asset_key=asset_key, asset_partitions=wanted),
            limit=500,
            cursor=cursor,
        )
        for record in result.records:  # newest first
            if record.partition_key is not None:
                latest.setdefault(record.partition_key, record.timestamp)
        if not result.has_more:
            break
        cursor = result.cursor
    return latest


def run_span(tags: Mapping[str, str]) -> tuple[date, date] | None:
    """The arrival dates a run covers: its range tags, or its one partition (None: neither)."""
    start = tags.get(RANGE_START_TAG) or tags.get("dagster/partition")
    end = tags.get(RANGE_END_TAG) or start
    if not (start and end):
        return None
    return date.fromisoformat(start), date.fromisoformat(end)


def covered_dates(instance: DagsterInstance, job_name: str) -> set[date]:
    """Arrival dates of the job's queued and in-progress runs."""
    covered: set[date] = set()
    for run in instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=IN_FLIGHT)):
        span = run_span(run.tags)
        if span is not None:
            day, last = span
            while day <= last:
                covered.add(day)
                day += timedelta(days=1)
    return covered


def planned_load_steps(instance: DagsterInstance, run, registry: SourceRegistry) -> list[str]:
    """The load steps the run's execution plan executes (a retry or a selection runs a subset).

    Read from the plan the run stored; a run without one counts as loading nothing, so nothing is
    left to it (the sensor then requests its own run, as for any other run).
    """
    if run.execution_plan_snapshot_id is None:
        return []
    snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    planned = set(snapshot.step_keys_to_execute)
    return [source.step_key for source in registry if source.step_key in planned]


def pending_reloads(
    instance: DagsterInstance, job_name: str, registry: SourceRegistry, now: float
) -> list[PendingReload]:
    """The re-executions of the job that will still load some sources' files (they read them then).

    - A failed run that Dagster will retry (`retry_pending`): the retry re-executes from the
      failure, i.e. the steps of the failed run's plan that did not succeed (its step statistics);
      none has started.
    - A re-execution queued or in progress (tag `dagster/parent_run_id`): the load steps of its
      plan, with when each started (from its step statistics), None for those not started. The
      landing zone was scanned before this look, so a step not started yet reads the files the
      scan saw, or newer ones; a step that started after a file's last change read it whole.
    """
    folder_of = {source.step_key: source.folder for source in registry}
    out: list[PendingReload] = []
    failed = instance.get_run_records(
        filters=RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.FAILURE]), limit=20
    )
    for record in failed:
        run = record.dagster_run
        span = run_span(run.tags)
        has_origin = run.remote_job_origin is not None
        if span is None or not retry_pending(run.tags, has_origin, record.end_time, now):
            continue
        steps = planned_load_steps(instance, run, registry)
        done = {
            s.step_key
            for s in instance.get_run_step_stats(run.run_id, step_keys=steps)
            # StepEventStatus is not exported by dagster: its value is compared
            if getattr(s.status, "value", s.status) == "SUCCESS"
        }
        folders = {folder_of[step]: None for step in steps if step not in done}
        out.append(PendingReload(run.run_id, *span, folders))
    for run in instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=IN_FLIGHT)):
        span = run_span(run.tags)
        if span is None or PARENT_RUN_ID_TAG not in run.tags:
            continue
        steps = planned_load_steps(instance, run, registry)
        started = {
            s.step_key: s.start_time
            for s in instance.get_run_step_stats(run.run_id, step_keys=steps)
        }
        # a step with statistics but no start time: when it read the files is unknown, not left
        folders = {
            folder_of[step]: started.get(step)
            for step in steps
            if step not in started or started[step] is not None
        }
        out.append(PendingReload(run.run_id, *span, folders))
    return out


@dataclass(frozen=True)
class FailedRun:
    """The newest finished run of a day, which failed."""

    run_id: str
    catch_up: bool  # it was the landing sensor's catch-up
    retry_pending: bool  # Dagster's daemon will still launch an automatic retry of it


def retry_pending(
    tags: Mapping[str, str], has_job_origin: bool, ended_at: float | None, now: float
) -> bool:
    """Whether Dagster will still retry this failed run (then the retry, not a catch-up, comes).

    Dagster tags a failed run `dagster/will_retry=true` when run retries are on, and the failed
    run `dagster/auto_retry_run_id` once the daemon launched its retry. Only runs with a job
    origin (launched from the code location) can be retried: not `expplatform materialize`'s.
    A retry that has not appeared `RETRY_GRACE_SECONDS` after the failure is not waited for.
    """
    return (
        tags.get(WILL_RETRY_TAG) == "true"
        and has_job_origin
        and not tags.get(AUTO_RETRY_RUN_ID_TAG)
        and (ended_at is None or now - ended_at < RETRY_GRACE_SECONDS)
    )


def latest_failed_run(
    instance: DagsterInstance, job_name: str, day: date, now: float
) -> FailedRun | None:
    """The newest finished run covering `day`, if it failed."""
    records = instance.get_run_records(
        filters=RunsFilter(
            job_name=job_name,
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
        ),
        limit=50,
    )
    for record in records:  # newest first
        run = record.dagster_run
        span = run_span(run.tags)
        if span is None or not (span[0] <= day <= span[1]):
            continue
        if run.status == DagsterRunStatus.FAILURE:
            return FailedRun(
                run.run_id,
                run.tags.get(CATCH_UP_TAG) == "true",
                retry_pending(run.tags, run.remote_job_origin is not None, record.end_time, now),
            )
        return None
    return None


def find_catch_up(
    instance: DagsterInstance,
    job_name: str,
    snapshot: LandingSnapshot,
    partitions_def: PartitionsDefinition,
    first: date,
    last: date | None,
    caught_up: Mapping[str, str],
    now: float,
) -> tuple[dict[date, str], dict[str, str]]:
    """Dates whose files exist but whose daily fact is missing, failed or older than the files.

    A failed day whose run Dagster will still retry waits for that retry (`now`: epoch seconds).

    Returns the dates with their reason and the updated record of failures already caught up.
    """
    targets, _ = folder_targets(
        {f: s for f, s in snapshot.items() if folder_arrival_date(f) is not None}, first, last
    )
    newest_file: dict[date, int] = {}
    for folder, day in targets.items():
        newest_file[day] = max(
            newest_file.get(day, 0), *(s.mtime_ns for s in snapshot[folder].values())
        )
    if not newest_file:
        return {}, dict(caught_up)
    keys = [d.isoformat() for d in sorted(newest_file)]
    statuses = instance.get_status_by_partition(FCT_EXPOSURES_DAILY_KEY, keys, partitions_def) or {}
    materialized_at = latest_materializations(instance, FCT_EXPOSURES_DAILY_KEY, keys)
    covered = covered_dates(instance, job_name)
    reasons: dict[date, str] = {}
    remembered = dict(caught_up)
    for day, newest in sorted(newest_file.items()):
        key = day.isoformat()
        if day in covered:
            continue
        status = statuses.get(key)
        status_name = getattr(status, "value", status)
        if status_name == "FAILED":
            failed = latest_failed_run(instance, job_name, day, now)
            if failed is None or failed.retry_pending:
                continue  # Dagster's retry comes first
            if failed.catch_up or remembered.get(key) == failed.run_id:
                continue  # caught up once already, or the failed run was the catch-up
            remembered[key] = failed.run_id
            reasons[day] = f"catch-up: the last run of {key} failed ({failed.run_id[:8]})"
        elif key not in materialized_at:
            reasons[day] = f"catch-up: {key} has files but was never built"
        elif materialized_at[key] * 1e9 < newest:
            reasons[day] = f"catch-up: files of {key} are newer than its last build"
    return reasons, remembered


def _changes_tag(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_FILES_IN_TAG])
    more = len(items) - MAX_FILES_IN_TAG
    return shown + (f" (+{more} more)" if more > 0 else "")


def evaluate_landing(
    context: SensorEvaluationContext,
    landing: LandingZoneResource,
    registry: SourceRegistry,
    partitions_def: PartitionsDefinition,
    job_name: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SensorResult:
    """One tick: scan, compare with the cursor and the instance, request one run per range."""
    landing_dir = landing.path
    if not landing_dir.is_dir():
        return SensorResult(
            skip_reason=f"landing zone {landing_dir} does not exist (EXPPLATFORM_LANDING_DIR)",
            cursor=context.cursor,
        )
    snapshot = scan_landing_zone(landing_dir, registry)
    decoded = decode_cursor(context.cursor)
    first = partitions_def.get_first_partition_key()
    first_date = date.fromisoformat(first) if first else date.max
    last_key = last_complete_partition(partitions_def, now())
    last = date.fromisoformat(last_key) if last_key else None
    if decoded is None:
        if context.cursor:
            context.log.warning("unreadable cursor: comparing with the instance's builds")
        # First tick (or lost cursor): every folder counts as seen; the catch-up below finds
        # what the instance has not built from the current files.
        previous, caught_up = state_of(snapshot), {}
    else:
        previous, caught_up = decoded
    catch_up, caught_up = find_catch_up(
        context.instance,
        job_name,
        snapshot,
        partitions_def,
        first_date,
        last,
        caught_up,
        now().timestamp(),
    )
    pending = pending_reloads(context.instance, job_name, registry, now().timestamp())
    plan = plan_landing_runs(
        previous,
        snapshot,
        first_date,
        last,
        catch_up=catch_up,
        caught_up=caught_up,
        pending=pending,
    )
    for line in plan.skipped:
        context.log.info(f"skipped {line}")
    for line in plan.left:
        context.log.info(line)
    run_requests = []
    for start, end in plan.ranges(landing.merge_gap_days):
        reasons = [r for d in sorted(plan.dates) if start <= d <= end for r in plan.dates[d]]
        digest = hashlib.sha1(
            json.dumps(
                {f: plan.state.get(f, []) for f in sorted(plan.state)}
                | {"catch_up": sorted(r for r in reasons if r.startswith("catch-up"))},
                sort_keys=True,
            ).encode()
        ).hexdigest()[:16]
        context.log.info(f"arrival dates {start} .. {end}: {len(reasons)} reason(s)")
        tags = {
            RANGE_START_TAG: start.isoformat(),
            RANGE_END_TAG: end.isoformat(),
            LAUNCHED_BY_TAG: "landing_sensor",
            "expplatform/landing_changes": _changes_tag(reasons),
        }
        if any(r.startswith("catch-up") for r in reasons):
            tags[CATCH_UP_TAG] = "true"
        run_requests.append(RunRequest(run_key=f"landing-{start}-{end}-{digest}", tags=tags))
    cursor = encode_cursor(plan.state, plan.caught_up)
    if not run_requests:
        return SensorResult(
            skip_reason="no new or changed files, nothing to catch up", cursor=cursor
        )
    return SensorResult(run_requests=run_requests, cursor=cursor)


def build_landing_sensor(
    job_name: str,
    registry: SourceRegistry,
    partitions_def: PartitionsDefinition,
    interval_seconds: int = 60,
) -> SensorDefinition:
    """The landing sensor of `job_name` (the materialize_all job), every `interval_seconds`."""

    @sensor(
        name="landing_zone_sensor",
        job_name=job_name,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="One run per range of arrival dates with new or changed landing files, or "
        "with files the instance has not built (catch-up); ranges a few days apart "
        "(EXPPLATFORM_LANDING_MERGE_GAP_DAYS) are one run; users/ and subscriptions/ changes run "
        "the latest partition.",
    )
    def landing_zone_sensor(
        context: SensorEvaluationContext, landing: LandingZoneResource
    ) -> SensorResult:
        return evaluate_landing(context, landing, registry, partitions_def, job_name)

    return landing_zone_sensor
