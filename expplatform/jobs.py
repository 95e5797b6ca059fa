"""Jobs: the whole graph for a partition or a range of arrival dates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetSelection,
    PartitionsDefinition,
    define_asset_job,
    in_process_executor,
)

MATERIALIZE_ALL = "materialize_all"


def build_materialize_all_job(
    partitions_def: PartitionsDefinition, exclude_checks: Sequence[AssetChecksDefinition] = ()
) -> Any:  # dagster's UnresolvedAssetJobDefinition (not exported)
    """Every asset: raw loads, dbt models with their checks, the serving copy and the pages.

    Used by the daily schedule, the landing sensor and `expplatform materialize`. Freshness
    checks are left to their own sensor (`exclude_checks`): they judge the clock, not the data a
    run just wrote, and would fail every backfill of old dates. Steps run one after another in
    the run's process (the warehouse has one writer anyway, and a process per step cost ~3 s
    of start-up each).
    """
    selection = AssetSelection.all()
    if exclude_checks:
        selection = selection - AssetSelection.checks(*exclude_checks)
    return define_asset_job(
        MATERIALIZE_ALL,
        selection=selection,
        partitions_def=partitions_def,
        executor_def=in_process_executor,
        description="Load the landing zone for the selected arrival dates and rebuild every "
        "model that depends on them (raw → staging → intermediate → marts), with all checks, "
        "then publish the serving copy and the experiment health pages.",
    )
