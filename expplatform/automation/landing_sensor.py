"""The landing sensor: a new or changed file in the landing zone requests a run of its partition.

Each arrival folder (`launchdarkly/date=D`, `legacy/date=D`) maps to partition
D; `users/` and `subscriptions/` are unpartitioned and map to the latest
partition (yesterday), whose run reloads them and rebuilds everything
downstream. A file counts by its name, size and modification time; the cursor
keeps a short fingerprint of every file seen, per folder, so a file is
requested once, and a re-delivery into an old folder (new or rewritten file)
requests that old partition again.

Deleted files request nothing: a retention job pruning old folders must not
wipe their partitions (re-run the partition by hand to drop a withdrawn file).
Folders outside the partitions (before EXPPLATFORM_START_DATE, or today and
later, which are not complete yet) are skipped and stay out of the cursor, so
today's files are requested as soon as today becomes a partition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from expplatform.automation.schedules import last_complete_partition
from expplatform.config import get_settings
from expplatform.ingestion.landing import (
    DATE_FOLDER_RE,
    SOURCES,
    SourceSpec,
    arrival_dates,
    list_files,
    partition_folder,
)
from expplatform.jobs import materialize_all_job
from expplatform.partitions import daily_partitions

CURSOR_VERSION = 1
#: Run tags hold at most this many changed file names (the rest is counted).
MAX_FILES_IN_TAG = 5


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
    """What one evaluation requests: partition → changed files, plus the next cursor state."""

    requests: dict[str, list[str]] = field(default_factory=dict)
    run_keys: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    state: LandingState = field(default_factory=dict)


def scan_landing_zone(landing_dir: Path) -> LandingSnapshot:
    """Every data file of every source folder, with its size and modification time."""
    snapshot: LandingSnapshot = {}
    for spec in SOURCES:
        folders = (
            [partition_folder(landing_dir, spec, d) for d in arrival_dates(landing_dir, spec)]
            if spec.partitioned
            else [landing_dir / spec.folder]
        )
        for folder in folders:
            files = {}
            for path in list_files(folder, spec):
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


def plan_landing_runs(
    previous: Mapping[str, list[str]],
    snapshot: LandingSnapshot,
    first_partition: date,
    last_partition: date | None,
) -> LandingPlan:
    """Which partitions to run for the files that are new or changed since `previous` (pure)."""
    plan = LandingPlan()
    partition_folders: dict[str, list[str]] = {}
    current = state_of(snapshot)
    for folder in sorted(snapshot):
        arrival = folder_arrival_date(folder)
        target = arrival if arrival is not None else last_partition
        reason = None
        if target is None:
            reason = "there is no complete daily partition yet"
        elif target < first_partition:
            reason = f"arrival date {target} is before the first partition {first_partition}"
        elif last_partition is None or target > last_partition:
            reason = f"arrival date {target} is not complete yet (last partition {last_partition})"
        if reason is not None:
            plan.skipped.append(f"{folder}: {reason}")
            if folder in previous:  # keep what was seen; the rest is requested once valid
                plan.state[folder] = list(previous[folder])
            continue
        plan.state[folder] = current[folder]
        partition = target.isoformat()
        partition_folders.setdefault(partition, []).append(folder)
        seen = set(previous.get(folder, ()))
        changed = [
            f"{folder}/{name}"
            for name, stat in sorted(snapshot[folder].items())
            if stat.fingerprint(name) not in seen
        ]
        if changed:
            plan.requests.setdefault(partition, []).extend(changed)
    for partition in plan.requests:
        # The run key is the content of every folder feeding the partition: evaluating the
        # same landing zone twice (e.g. a lost cursor) can never launch the same run twice.
        digest = hashlib.sha1(
            json.dumps(
                {f: current[f] for f in partition_folders[partition]}, sort_keys=True
            ).encode()
        ).hexdigest()[:16]
        plan.run_keys[partition] = f"landing-{partition}-{digest}"
    return plan


def encode_cursor(state: LandingState) -> str:
    return json.dumps(
        {"v": CURSOR_VERSION, "folders": state}, sort_keys=True, separators=(",", ":")
    )


def decode_cursor(cursor: str | None) -> LandingState | None:
    """The state in a cursor; None when there is none (first tick) or it is unreadable."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            return None
        return {str(k): [str(x) for x in v] for k, v in data["folders"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _spec_of(folder: str) -> SourceSpec | None:
    top = folder.split("/", 1)[0]
    return next((spec for spec in SOURCES if spec.folder == top), None)


def baseline_from_instance(instance: DagsterInstance, snapshot: LandingSnapshot) -> LandingState:
    """The state to compare with on the first tick: files older than their raw partition's last load.

    Without it, turning the sensor on for the first time would re-run every
    partition already materialized (e.g. by `make run`); with it, only folders
    holding a file newer than their partition's latest materialization run.
    """
    baseline: LandingState = {}
    for folder, files in snapshot.items():
        spec = _spec_of(folder)
        if spec is None:
            continue
        arrival = folder_arrival_date(folder)
        records = instance.fetch_materializations(
            records_filter=AssetRecordsFilter(
                asset_key=AssetKey(spec.table.split(".")),
                asset_partitions=[arrival.isoformat()] if arrival else None,
            ),
            limit=1,
        ).records
        if not records:
            continue
        loaded_at_ns = int(records[0].timestamp * 1e9)
        baseline[folder] = sorted(
            stat.fingerprint(name) for name, stat in files.items() if stat.mtime_ns <= loaded_at_ns
        )
    return baseline


def _changes_tag(files: list[str]) -> str:
    shown = ", ".join(files[:MAX_FILES_IN_TAG])
    more = len(files) - MAX_FILES_IN_TAG
    return shown + (f" (+{more} more)" if more > 0 else "")


def evaluate_landing(
    context: SensorEvaluationContext, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> SensorResult:
    """One tick: scan, compare with the cursor, request one run per changed partition."""
    landing_dir = get_settings().landing_dir
    if not landing_dir.is_dir():
        return SensorResult(
            skip_reason=f"landing zone {landing_dir} does not exist (EXPPLATFORM_LANDING_DIR)",
            cursor=context.cursor,
        )
    snapshot = scan_landing_zone(landing_dir)
    previous = decode_cursor(context.cursor)
    if previous is None:
        if context.cursor:
            context.log.warning("unreadable cursor: comparing with the instance's last loads")
        previous = baseline_from_instance(context.instance, snapshot)
    last = last_complete_partition(now())
    plan = plan_landing_runs(
        previous,
        snapshot,
        first_partition=daily_partitions.start.date(),
        last_partition=date.fromisoformat(last) if last else None,
    )
    for line in plan.skipped:
        context.log.info(f"skipped {line}")
    run_requests = []
    for partition in sorted(plan.requests):
        files = plan.requests[partition]
        context.log.info(f"partition {partition}: {len(files)} new or changed file(s)")
        run_requests.append(
            RunRequest(
                run_key=plan.run_keys[partition],
                partition_key=partition,
                tags={
                    "expplatform/launched_by": "landing_sensor",
                    "expplatform/landing_changes": _changes_tag(files),
                },
            )
        )
    cursor = encode_cursor(plan.state)
    if not run_requests:
        return SensorResult(
            skip_reason="no new or changed files in the landing zone", cursor=cursor
        )
    return SensorResult(run_requests=run_requests, cursor=cursor)


@sensor(
    name="landing_zone_sensor",
    job=materialize_all_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests a run of materialize_all for every arrival partition with a new or "
    "changed landing file (users/ and subscriptions/ changes: the latest partition).",
)
def landing_zone_sensor(context: SensorEvaluationContext) -> SensorResult:
    return evaluate_landing(context)
