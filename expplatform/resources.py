"""Dagster resources: the DuckDB warehouse and the landing zone, configured from the environment."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from expplatform.config import Settings, get_settings


class LandingZoneResource(ConfigurableResource):
    """Where the source files land (contract §2) and how far back a daily run recomputes."""

    landing_dir: str
    lookback_days: int = 2

    @property
    def path(self) -> Path:
        return Path(self.landing_dir)


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources of the platform; tests pass their own settings (temporary paths)."""
    from expplatform.transform.project import build_dbt_resource

    settings = settings or get_settings()
    return {
        "warehouse": DuckDBResource(database=str(settings.duckdb_path)),
        "landing": LandingZoneResource(
            landing_dir=str(settings.landing_dir), lookback_days=settings.lookback_days
        ),
        "dbt": build_dbt_resource(),
    }
