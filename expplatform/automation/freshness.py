"""Freshness checks: yesterday's partition is expected by 09:00 UTC (three hours after the schedule).

The daily assets get partition-aware checks: after 09:00 on day T the check
passes only when partition T-1 has been materialized (before 09:00 it still
expects T-2). The unpartitioned marts have no partition to look for; their
check passes when they were rebuilt after the day T-1 closed (00:00 UTC on T),
i.e. by a run that could have included it.

The checks are run by their sensor (it re-evaluates a passed check once it can
be overdue again, and a failed one after the asset is updated); a failed check
is an asset check like any other, so the alert sensors report it.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DefaultSensorStatus,
    SupersessionWarning,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

#: The freshness deadline: yesterday's data is in the marts by 09:00 UTC.
DEADLINE_CRON = "0 9 * * *"

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
    freshness_checks = [*daily_freshness_checks, *mart_freshness_checks]

    freshness_checks_sensor = build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks,
        name="freshness_checks_sensor",
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        tags={"expplatform/launched_by": "freshness_checks_sensor"},
    )
