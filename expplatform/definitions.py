"""The one Definitions object of the platform (loaded by workspace.yaml, the CLI and the tests).

Importing this module has no side effect: nothing is written, nothing is parsed. Dagster loads
the definitions through :func:`defs` (a lazy `@definitions` entry point), which first checks that
the Dagster instance has the limits the platform needs (expplatform/instance.py) and refuses to
load, with the fix, otherwise. Tests and the CLI call :func:`build_definitions` with their
settings.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any

from dagster import DagsterInstance, Definitions, definitions, in_process_executor

from expplatform.automation import build_alert_sensor, freshness_checks, freshness_sensors
from expplatform.automation.landing_sensor import build_landing_sensor
from expplatform.automation.run_reaper import build_run_reaper
from expplatform.automation.schedules import build_daily_schedule
from expplatform.config import DUCKDB_POOL, Settings, get_settings
from expplatform.health.asset import build_health_pages_asset
from expplatform.ingestion.assets import build_ingestion_assets
from expplatform.instance import check_instance
from expplatform.jobs import MATERIALIZE_ALL, build_materialize_all_job
from expplatform.partitions import build_daily_partitions
from expplatform.resources import build_resources
from expplatform.serving import build_serving_asset
from expplatform.sources import DEFAULT_REGISTRY, SourceRegistry
from expplatform.transform.assets import build_dbt_assets


def build_definitions(
    settings: Settings | None = None,
    registry: SourceRegistry = DEFAULT_REGISTRY,
    *,
    step_pools: bool = True,
) -> Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources for `settings`.

    `step_pools=False` is for `expplatform materialize`, which executes its run in its own process
    after waiting for the run queue to be idle (expplatform/cli/materialize.py).
    """
    settings = settings or get_settings()
    pool = DUCKDB_POOL if step_pools else None
    partitions_def = build_daily_partitions(settings.start_date)
    job = build_materialize_all_job(partitions_def, exclude_checks=freshness_checks)
    return Definitions(
        assets=[
            *build_ingestion_assets(registry, partitions_def, settings.dbt_project_dir, pool),
            build_dbt_assets(settings, registry, partitions_def, pool),
            build_serving_asset(pool),
            build_health_pages_asset(),
        ],
        asset_checks=[*freshness_checks],
        jobs=[job],
        schedules=[build_daily_schedule(job)],
        sensors=[
            build_landing_sensor(
                job.name, registry, partitions_def, settings.landing_sensor_interval
            ),
            *freshness_sensors,
            build_run_reaper(),
            build_alert_sensor(settings.alert_sensor_interval),
        ],
        resources=build_resources(settings, registry),
        executor=in_process_executor,
    )


def materialize_range(
    settings: Settings,
    instance: DagsterInstance,
    start: date,
    end: date,
    registry: SourceRegistry = DEFAULT_REGISTRY,
    *,
    quiet: bool = False,
) -> None:
    """Every asset for arrival dates [start, end] as one single-run backfill, in this process.

    For the soak and the tests (`expplatform materialize` adds the queue, progress and the
    run's tags on top). `quiet` keeps Dagster's console log to warnings and errors. Raises
    RuntimeError naming the failed steps' errors.
    """
    job = build_definitions(settings, registry, step_pools=False).resolve_job_def(MATERIALIZE_ALL)
    level = "WARNING" if quiet else "DEBUG"
    result = job.execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": level}}}},
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
        },
        raise_on_error=False,
    )
    if not result.success:
        failures = [
            _root_message(e.step_failure_data.error)
            for e in result.all_events
            if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
        ]
        raise RuntimeError(f"run {start}..{end} failed: {failures}")


def _root_message(error: Any) -> str:
    """The user code's own error: Dagster wraps it ("Error occurred while executing op")."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


@definitions
def defs() -> Definitions:
    """What `dagster dev -w workspace.yaml` loads: the platform, on a correctly set-up instance."""
    if os.environ.get("DAGSTER_HOME"):
        check_instance(DagsterInstance.get())
    return build_definitions()
