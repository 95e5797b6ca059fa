"""The daily schedule: at 06:00 UTC, materialize yesterday's arrival partition for the whole graph.

Built with Dagster's `build_schedule_from_partitioned_job`: one run per day for the newest
complete partition, keyed by the partition so the daemon never launches it twice. The run also
recomputes the event dates of its lookback window (EXPPLATFORM_LOOKBACK_DAYS), so the marts
absorb late *events* of the last days. Files re-delivered into an older arrival folder, and days
a failed run left behind, are picked up by the landing sensor (its catch-up), not by this
schedule: a run loads only its own arrival folders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dagster import (
    DefaultScheduleStatus,
    PartitionsDefinition,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    partition_loading_context,
)

#: 06:00 UTC leaves the sources six hours to deliver the day before; freshness is due at 09:00.
SCHEDULE_HOUR_UTC = 6


def last_complete_partition(partitions_def: PartitionsDefinition, at: datetime) -> str | None:
    """The last partition at time `at` (yesterday); None before the start date."""
    with partition_loading_context(effective_dt=at):
        return partitions_def.get_last_partition_key()


def build_daily_schedule(job: Any) -> ScheduleDefinition:
    """06:00 UTC every day: the job for yesterday's arrival partition."""
    return build_schedule_from_partitioned_job(
        job,
        name="materialize_all_daily",
        hour_of_day=SCHEDULE_HOUR_UTC,
        default_status=DefaultScheduleStatus.RUNNING,
        tags={"expplatform/launched_by": "schedule"},
        description="Every day at 06:00 UTC: load yesterday's arrival folders and rebuild every "
        "model (the lookback window is recomputed with it).",
    )
