"""The one Definitions object of the platform (loaded by workspace.yaml and the CLI)."""

from __future__ import annotations

from dagster import Definitions

from expplatform.automation import freshness_checks, schedules, sensors
from expplatform.config import Settings, ensure_dagster_home
from expplatform.ingestion.assets import ingestion_assets
from expplatform.jobs import materialize_all_job
from expplatform.quality import asset_checks
from expplatform.resources import build_resources
from expplatform.transform.assets import dbt_model_assets


def build_definitions(settings: Settings | None = None) -> Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources; tests pass their settings."""
    return Definitions(
        assets=[*ingestion_assets, *dbt_model_assets],
        asset_checks=[*asset_checks, *freshness_checks],
        schedules=schedules,
        sensors=sensors,
        jobs=[materialize_all_job],
        resources=build_resources(settings),
    )


ensure_dagster_home()
defs = build_definitions()
