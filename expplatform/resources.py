"""Dagster resources: the warehouse, the landing zone, dbt and the serving copy, from the settings.

Assets, checks, sensors and schedules get their configuration from these resources (built once
from :class:`~expplatform.config.Settings` by :func:`build_resources`), never from the
environment directly.
"""

from __future__ import annotations

import json
from pathlib import Path

from dagster import ConfigurableResource

from expplatform.config import Settings
from expplatform.sources import SourceRegistry
from expplatform.transform.project import DbtResource
from expplatform.warehouse import WarehouseResource


class LandingZoneResource(ConfigurableResource):
    """Where the source files land (contract §2) and how far back a daily run recomputes."""

    landing_dir: str
    lookback_days: int = 2

    @property
    def path(self) -> Path:
        return Path(self.landing_dir)


class ServingResource(ConfigurableResource):
    """The readers' side: the serving copy of the marts and the health pages built from it."""

    serving_path: str
    pages_dir: str
    pages_url: str = "http://127.0.0.1:3001"
    ui_url: str = "http://127.0.0.1:3000"

    @property
    def path(self) -> Path:
        return Path(self.serving_path)

    @property
    def pages(self) -> Path:
        return Path(self.pages_dir)


def build_resources(settings: Settings, registry: SourceRegistry) -> dict[str, object]:
    """The resources of the platform; tests pass their own settings (temporary paths)."""
    return {
        "warehouse": WarehouseResource(
            database=str(settings.duckdb_path),
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            dbt_project_dir=str(settings.dbt_project_dir),
        ),
        "landing": LandingZoneResource(
            landing_dir=str(settings.landing_dir), lookback_days=settings.lookback_days
        ),
        "dbt": DbtResource(
            project_dir=str(settings.dbt_project_dir),
            target=settings.dbt_target,
            vars_json=json.dumps(registry.dbt_vars(), sort_keys=True),
        ),
        "serving": ServingResource(
            serving_path=str(settings.serving),
            pages_dir=str(settings.pages),
            pages_url=settings.pages_url,
            ui_url=settings.ui_url,
        ),
    }
