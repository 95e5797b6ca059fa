"""The one Definitions object of the platform (loaded by workspace.yaml and the CLI)."""

from __future__ import annotations

from dagster import Definitions

from expplatform.config import Settings, ensure_dagster_home
from expplatform.ingestion.assets import ingestion_assets
from expplatform.jobs import materialize_all_job
from expplatform.resources import build_resources
from expplatform.transform.assets import dbt_model_assets


def build_definitions(settings: Settings | None = None) -> Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources; tests pass their settings."""
    return Definitions(
        assets=[*ingestion_assets, *dbt_model_assets],
        jobs=[materialize_all_job],
        resources=build_resources(settings),
    )


ensure_dagster_home()
defs = build_definitions()
