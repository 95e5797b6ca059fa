"""The daily partitions: one per arrival date, from EXPPLATFORM_START_DATE up to yesterday (UTC)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from dagster import DailyPartitionsDefinition, TimeWindow


def build_daily_partitions(start_date: date) -> DailyPartitionsDefinition:
    """Daily partitions keyed by arrival date; the last one is yesterday (a day is complete)."""
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC")


def dates_in_window(window: TimeWindow) -> list[date]:
    """The arrival dates of a partition time window (end exclusive), e.g. a single-run backfill."""
    start: datetime = window.start
    end: datetime = window.end
    days = (end.date() - start.date()).days
    return [start.date() + timedelta(days=i) for i in range(days)]
