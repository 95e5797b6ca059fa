"""Freshness: yesterday's data is expected by 09:00 UTC (three hours after the daily schedule).

Two kinds of checks, both asset checks (the UI shows them, the alert sensor
reports them like any other) that judge the clock rather than the data a run
wrote, so `materialize_all` leaves them out (expplatform/jobs.py):

- **Dagster's freshness checks.** The daily assets get partition-aware checks:
  after 09:00 on day T the check passes only when partition T-1 has been
  materialized (before 09:00 it still expects T-2). The unpartitioned marts
  have no partition to look for; their check passes when they were rebuilt
  after the day T-1 closed (00:00 UTC on T), i.e. by a run that could have
  included it. `freshness_checks_sensor` runs them: it re-evaluates a passed
  check once it can be overdue again, and a failed one after the asset is
  updated. The alert of a miss names the missing partitions
  (:func:`freshness_missing_partitions`).
- **Landing delivery** (`landing_delivery` on each daily source's raw asset):
  after 09:00 on day T a file of the source must have arrived in its folder
  `date=T-1`; the alert names the source and the last arrival date seen. It
  reads only the landing zone (never the warehouse). A source that ended on
  purpose (the legacy export, retired in favour of LaunchDarkly) must not
  alert for ever: only a source that delivered within ACTIVE_WITHIN_DAYS days
  before the expected date is watched; one silent for longer is treated as
  retired and passes (so a stopped delivery alerts once, when it stops, and
  the check turns green by itself after ACTIVE_WITHIN_DAYS days). A source
  that never delivered is not watched either. `landing_delivery_sensor`
  runs the check once a day after 09:00 and again whenever its outcome would
  change (a late file arrives).
"""

# No `from __future__ import annotations`: Dagster reads the check's context annotation at runtime.

import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SupersessionWarning,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
    multi_asset_check,
    sensor,
)

from expplatform.ingestion.landing import (
    SOURCES,
    LandingZoneError,
    SourceSpec,
    arrival_dates,
    check_landing_dir,
    list_files,
    partition_folder,
)
from expplatform.resources import LandingZoneResource

#: The freshness deadline: yesterday's data is in the marts by 09:00 UTC.
DEADLINE_CRON = "0 9 * * *"
DEADLINE_HOUR_UTC = 9
#: A freshness alert lists the missing partitions among the expected one and the days before it.
MISSING_LOOKBACK_DAYS = 7
#: Landing delivery: a source silent for more days than this before the expected date is retired.
ACTIVE_WITHIN_DAYS = 7
FRESHNESS_CHECK = "freshness_check"
LANDING_CHECK = "landing_delivery"

DAILY_FRESHNESS_ASSETS = [
    AssetKey(["raw", "partner_directpush_launchdarkly_events"]),
    AssetKey(["raw", "legacy_feature_flag_events"]),
    AssetKey(["marts", "fct_experiment_exposures_daily"]),
]
UNPARTITIONED_FRESHNESS_ASSETS = [
    AssetKey(["marts", "mart_experiment_allocation_daily"]),
    AssetKey(["marts", "mart_experiment_health_daily"]),
]

# Dagster marks these builders as superseded by FreshnessPolicy, which is asset-level and not
# partition-aware (it cannot say "partition T-1 by 09:00"): keep them, without the warning.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SupersessionWarning)
    daily_freshness_checks = build_time_partition_freshness_checks(
        assets=DAILY_FRESHNESS_ASSETS,
        deadline_cron=DEADLINE_CRON,
        timezone="UTC",
        severity=AssetCheckSeverity.ERROR,
    )
    mart_freshness_checks = build_last_update_freshness_checks(
        assets=UNPARTITIONED_FRESHNESS_ASSETS,
        deadline_cron=DEADLINE_CRON,
        # deadline 09:00 minus 9 hours = midnight: rebuilt after yesterday closed.
        lower_bound_delta=timedelta(hours=9),
        timezone="UTC",
        severity=AssetCheckSeverity.ERROR,
    )
    dagster_freshness_checks = [*daily_freshness_checks, *mart_freshness_checks]

    freshness_checks_sensor = build_sensor_for_freshness_checks(
        freshness_checks=dagster_freshness_checks,
        name="freshness_checks_sensor",
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        tags={"expplatform/launched_by": "freshness_checks_sensor"},
    )


# --- the deadline -------------------------------------------------------------------------------


def last_deadline(now: datetime) -> datetime:
    """The last 09:00 UTC at or before `now`."""
    now = now.astimezone(UTC)
    deadline = now.replace(hour=DEADLINE_HOUR_UTC, minute=0, second=0, microsecond=0)
    return deadline if deadline <= now else deadline - timedelta(days=1)


def expected_date(now: datetime) -> date:
    """The day whose data is due: yesterday from 09:00 UTC on, the day before yesterday before."""
    return last_deadline(now).date() - timedelta(days=1)


# --- missing partitions of a freshness miss -----------------------------------------------------


def missing_partitions(
    instance: DagsterInstance,
    asset_key: AssetKey,
    expected: date,
    first: date,
    days: int = MISSING_LOOKBACK_DAYS,
) -> list[str]:
    """The partitions among `expected` and the `days - 1` before it that were never materialized
    (none before `first`, the first daily partition)."""
    keys = [expected - timedelta(days=i) for i in range(days)]
    missing = []
    for day in sorted(d for d in keys if d >= first):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, asset_partitions=[day.isoformat()]), limit=1
        ).records
        if not records:
            missing.append(day.isoformat())
    return missing


def freshness_missing_partitions(
    instance: DagsterInstance,
    asset_key: AssetKey,
    check_name: str,
    metadata: Mapping[str, object],
    first: date,
) -> list[str] | None:
    """For a failed freshness check of a daily asset, the missing partitions; else None.

    The expected partition is the day before the deadline the check judged
    (its `dagster/latest_cron_tick_timestamp`), so an alert sent later still
    names the partitions of that evaluation's deadline.
    """
    if check_name != FRESHNESS_CHECK or asset_key not in DAILY_FRESHNESS_ASSETS:
        return None
    tick = metadata.get("dagster/latest_cron_tick_timestamp")
    seconds = getattr(tick, "value", tick)
    deadline = (
        datetime.fromtimestamp(seconds, UTC)
        if isinstance(seconds, (int, float))
        else last_deadline(datetime.now(UTC))
    )
    return missing_partitions(instance, asset_key, deadline.date() - timedelta(days=1), first)


# --- landing delivery ---------------------------------------------------------------------------


def daily_sources() -> list[SourceSpec]:
    """The landing sources that deliver one `date=` folder a day (the registry's partitioned ones)."""
    return [spec for spec in SOURCES if spec.partitioned]


def raw_asset_key(spec: SourceSpec) -> AssetKey:
    """The raw asset a source loads into (as expplatform/ingestion/assets.py names it)."""
    return AssetKey(["raw", spec.table.split(".", 1)[1]])


@dataclass(frozen=True)
class DeliveryStatus:
    """Whether a daily source delivered the expected day, and what it last delivered."""

    source: str
    folder: str
    expected: date
    last_arrival: date | None
    #: "delivered" | "missing" (alert) | "retired" (silent too long) | "never" (no delivery yet)
    state: str
    missing: tuple[date, ...] = ()
    active_within_days: int = ACTIVE_WITHIN_DAYS

    @property
    def passed(self) -> bool:
        return self.state != "missing"

    @property
    def description(self) -> str:
        last = self.last_arrival.isoformat() if self.last_arrival else "never"
        if self.state == "delivered":
            return f"{self.source}: files for {self.expected} arrived"
        if self.state == "never":
            return f"{self.source}: no delivery seen yet; watched from its first file on"
        if self.state == "retired":
            return (
                f"{self.source}: no delivery since {last}, more than {self.active_within_days} "
                "days before the expected date: treated as retired, not alerted"
            )
        dates = ", ".join(d.isoformat() for d in self.missing)
        return (
            f"{self.source}: no file has arrived for {self.expected} by 09:00 UTC "
            f"(last arrival {last}; missing arrival dates: {dates})"
        )

    def metadata(self) -> dict[str, object]:
        days = (self.expected - self.last_arrival).days if self.last_arrival else None
        return {
            "source": MetadataValue.text(self.source),
            "expected_arrival_date": MetadataValue.text(self.expected.isoformat()),
            "last_arrival_date": MetadataValue.text(
                self.last_arrival.isoformat() if self.last_arrival else "never"
            ),
            "days_since_last_arrival": MetadataValue.int(days if days is not None else -1),
            "missing_arrival_dates": MetadataValue.text(
                ", ".join(d.isoformat() for d in self.missing) or "none"
            ),
            "landing_folder": MetadataValue.text(f"{self.folder}/date={self.expected}/"),
            "active_within_days": MetadataValue.int(self.active_within_days),
        }


def delivery_status(
    landing_dir: Path,
    spec: SourceSpec,
    now: datetime,
    active_within_days: int = ACTIVE_WITHIN_DAYS,
) -> DeliveryStatus:
    """The landing-delivery verdict for one daily source at time `now` (reads only the folders)."""
    expected = expected_date(now)
    arrived = arrival_dates(landing_dir, spec)
    has_files = {}

    def delivered(day: date) -> bool:
        if day not in has_files:
            has_files[day] = bool(list_files(partition_folder(landing_dir, spec, day), spec))
        return has_files[day]

    last = next((d for d in reversed(arrived) if delivered(d)), None)
    args = dict(source=spec.name, folder=spec.folder, expected=expected, last_arrival=last)
    args["active_within_days"] = active_within_days
    if expected in arrived and delivered(expected):
        return DeliveryStatus(**args, state="delivered")
    if last is None:
        return DeliveryStatus(**args, state="never")
    if last > expected:  # delivering again (today's folder) but the expected day is missing
        return DeliveryStatus(**args, state="missing", missing=(expected,))
    days_silent = (expected - last).days
    if days_silent > active_within_days:
        return DeliveryStatus(**args, state="retired")
    missing = tuple(last + timedelta(days=i) for i in range(1, days_silent + 1))
    return DeliveryStatus(**args, state="missing", missing=missing)


LANDING_SPECS = [
    AssetCheckSpec(
        LANDING_CHECK,
        asset=raw_asset_key(spec),
        description=(
            f"ERROR when, after 09:00 UTC, no {spec.name} file has arrived in "
            f"{spec.folder}/date=<yesterday>/ while the source delivered within the "
            f"{ACTIVE_WITHIN_DAYS} days before (older silence: treated as retired). Reads only "
            "the landing zone. Metadata: the expected and last arrival dates, the missing ones."
        ),
    )
    for spec in daily_sources()
]


@multi_asset_check(
    name="landing_delivery_checks",
    specs=LANDING_SPECS,
    can_subset=True,
    description="Did each daily source deliver yesterday's folder by 09:00 UTC? (landing zone only)",
)
def landing_delivery_checks(
    context: AssetCheckExecutionContext, landing: LandingZoneResource
) -> Iterator[AssetCheckResult]:
    check_landing_dir(landing.path)
    now = datetime.now(UTC)
    for spec in daily_sources():
        key = raw_asset_key(spec)
        if AssetCheckKey(key, LANDING_CHECK) not in context.selected_asset_check_keys:
            continue
        status = delivery_status(landing.path, spec, now)
        yield AssetCheckResult(
            asset_key=key,
            check_name=LANDING_CHECK,
            passed=status.passed,
            severity=AssetCheckSeverity.ERROR,
            description=status.description,
            metadata=status.metadata(),
        )


def plan_landing_check(
    statuses: list[DeliveryStatus], cursor: str | None
) -> tuple[str | None, str]:
    """(run key to request or None, next cursor) for the landing delivery sensor.

    One evaluation per expected date (the first tick after 09:00), and one more
    whenever a source's verdict changes (a late file arrived, a source stopped).
    """
    expected = statuses[0].expected.isoformat() if statuses else ""
    verdicts = {s.source: s.passed for s in statuses}
    try:
        previous = json.loads(cursor) if cursor else {}
    except ValueError:
        previous = {}
    seq = int(previous.get("seq", 0))
    if previous.get("expected") != expected:
        run_key = f"landing-delivery-{expected}"
    elif previous.get("verdicts") != verdicts:
        seq += 1
        run_key = f"landing-delivery-{expected}-{seq}"
    else:
        run_key = None
    next_cursor = json.dumps(
        {"expected": expected, "verdicts": verdicts, "seq": seq}, sort_keys=True
    )
    return run_key, next_cursor


@sensor(
    name="landing_delivery_sensor",
    minimum_interval_seconds=300,
    asset_selection=AssetSelection.checks(landing_delivery_checks),
    default_status=DefaultSensorStatus.RUNNING,
    description="Runs the landing_delivery checks once a day after 09:00 UTC and whenever a "
    "source's verdict changes (reads only the landing zone).",
)
def landing_delivery_sensor(
    context: SensorEvaluationContext, landing: LandingZoneResource
) -> SensorResult:
    landing_dir = landing.path
    try:
        check_landing_dir(landing_dir)
    except LandingZoneError as exc:
        return SensorResult(skip_reason=str(exc), cursor=context.cursor)
    now = datetime.now(UTC)
    statuses = [delivery_status(landing_dir, spec, now) for spec in daily_sources()]
    run_key, cursor = plan_landing_check(statuses, context.cursor)
    if run_key is None:
        return SensorResult(skip_reason="no change since the last landing check", cursor=cursor)
    request = RunRequest(
        run_key=run_key,
        asset_check_keys=[spec.key for spec in LANDING_SPECS],
        tags={"expplatform/launched_by": "landing_delivery_sensor"},
    )
    return SensorResult(run_requests=[request], cursor=cursor)


#: Every check that judges the clock (left out of materialize_all, see expplatform/jobs.py).
freshness_checks = [*dagster_freshness_checks, landing_delivery_checks]
freshness_sensors = [freshness_checks_sensor, landing_delivery_sensor]
