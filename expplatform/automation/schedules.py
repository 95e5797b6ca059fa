"""The daily schedule: at 06:00 UTC, materialize yesterday's arrival partition for the whole graph.

A run for arrival date D also recomputes the event dates of its lookback window
(EXPPLATFORM_LOOKBACK_DAYS), so late files of the last days are absorbed by
the next scheduled run even when nobody re-runs their own folder.
"""

from __future__ import annotations

from datetime import datetime

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    partition_loading_context,
    schedule,
)

from expplatform.jobs import materialize_all_job
from expplatform.partitions import daily_partitions

#: 06:00 UTC leaves the sources six hours to deliver the day before; freshness is due at 09:00.
DAILY_CRON = "0 6 * * *"


def last_complete_partition(at: datetime) -> str | None:
    """The last partition of the daily partitions at time `at` (yesterday); None before the start."""
    with partition_loading_context(effective_dt=at):
        return daily_partitions.get_last_partition_key()


@schedule(
    name="materialize_all_daily",
    cron_schedule=DAILY_CRON,
    execution_timezone="UTC",
    job=materialize_all_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 UTC: load yesterday's arrival folders and rebuild every model "
    "(the lookback window is recomputed with it).",
)
def materialize_all_daily(context: ScheduleEvaluationContext):
    partition = last_complete_partition(context.scheduled_execution_time)
    if partition is None:
        return SkipReason(
            "no complete daily partition yet (EXPPLATFORM_START_DATE is in the future)"
        )
    return RunRequest(
        # One run per day even if the daemon evaluates the tick twice.
        run_key=f"daily-{partition}",
        partition_key=partition,
        tags={"expplatform/launched_by": "schedule"},
    )
