"""Freshness: yesterday's data is expected by 09:00 UTC (three hours after the daily schedule).

The freshness checks are asset checks (the UI shows them, the alert sensor
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
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    SupersessionWarning,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

from expplatform.partitions import daily_partitions

#: The freshness deadline: yesterday's data is in the marts by 09:00 UTC.
DEADLINE_CRON = "0 9 * * *"
DEADLINE_HOUR_UTC = 9
#: A freshness alert lists the missing partitions among the expected one and the days before it.
MISSING_LOOKBACK_DAYS = 7
FRESHNESS_CHECK = "freshness_check"

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
    days: int = MISSING_LOOKBACK_DAYS,
) -> list[str]:
    """The partitions among `expected` and the `days - 1` before it that were never materialized."""
    first = daily_partitions.start.date()
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
    return missing_partitions(instance, asset_key, deadline.date() - timedelta(days=1))


#: Every check that judges the clock (left out of materialize_all, see expplatform/jobs.py).
freshness_checks = [*dagster_freshness_checks]
freshness_sensors = [freshness_checks_sensor]
