"""Jobs: the whole graph for a partition or a range of arrival dates."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from expplatform.automation.freshness import freshness_checks
from expplatform.partitions import daily_partitions

#: Every asset of the graph: raw loads, dbt models and their checks. Used by the
#: daily schedule (yesterday's partition) and by `expplatform materialize`.
#: Freshness checks are left to their own sensor: they judge the clock, not the
#: data a run just wrote, and would fail every backfill of old dates.
materialize_all_job = define_asset_job(
    "materialize_all",
    selection=AssetSelection.all() - AssetSelection.checks(*freshness_checks),
    partitions_def=daily_partitions,
    description="Load the landing zone for the selected arrival dates and rebuild every model "
    "that depends on them (raw → staging → intermediate → marts), with all checks.",
)
