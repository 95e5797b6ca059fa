"""Dagster resources: the warehouse, the landing zone, dbt and the serving copy, from the settings.

Assets, checks, sensors and schedules get their configuration from these resources (built once
from :class:`~expplatform.config.Settings` by :func:`build_resources`), never from the
environment directly.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from dagster import ConfigurableResource

from expplatform.config import Settings, default
from expplatform.sources import SourceRegistry
from expplatform.transform.project import DbtResource
from expplatform.warehouse import WarehouseResource


class LandingZoneResource(ConfigurableResource):
    """Where the source files land (contract §2), how far back a daily run recomputes, and how
    far apart two ranges of arrival dates may be for the landing sensor to join them in one run."""

    landing_dir: str
    lookback_days: int = int(default("EXPPLATFORM_LOOKBACK_DAYS"))
    merge_gap_days: int = int(default("EXPPLATFORM_LANDING_MERGE_GAP_DAYS"))

    @property
    def path(self) -> Path:
        return Path(self.landing_dir)


class ServingResource(ConfigurableResource):
    """The readers' side: the serving copy of the marts and the health pages built from it."""

    serving_path: str
    pages_dir: str
    #: where the pages are served: linked from asset metadata and from alerts
    pages_url: str = "http://127.0.0.1:3001"

    @property
    def path(self) -> Path:
        return Path(self.serving_path)

    @property
    def pages(self) -> Path:
        return Path(self.pages_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServingResource:
        return cls(
            serving_path=str(settings.serving),
            pages_dir=str(settings.pages),
            pages_url=settings.pages_url,
        )


class AlertsResource(ConfigurableResource):
    """Where alerts go besides the webhook, the UI their run links point to, and the first date
    their missing-day lists start from (the pages' address is the serving resource's).

    The webhook URL is a secret: it is read from EXPPLATFORM_ALERT_WEBHOOK_URL when an alert is
    sent (expplatform/automation/alerts/), never held by a resource, whose config Dagster stores.
    """

    alert_log: str
    ui_url: str = "http://127.0.0.1:3000"
    start_date: str = "2025-12-01"

    @property
    def log_path(self) -> Path:
        return Path(self.alert_log)

    @property
    def first_date(self) -> date:
        return date.fromisoformat(self.start_date)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertsResource:
        return cls(
            alert_log=str(settings.alert_log),
            ui_url=settings.ui_url,
            start_date=settings.start_date.isoformat(),
        )


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
            landing_dir=str(settings.landing_dir),
            lookback_days=settings.lookback_days,
            merge_gap_days=settings.landing_merge_gap_days,
        ),
        "dbt": DbtResource(
            project_dir=str(settings.dbt_project_dir),
            target=settings.dbt_target,
            vars_json=json.dumps(registry.dbt_vars(), sort_keys=True),
        ),
        **alert_resources(settings),
    }


def alert_resources(settings: Settings) -> dict[str, ConfigurableResource]:
    """What the alert sensor uses: where alerts go, and the serving side its links point to."""
    return {
        "serving": ServingResource.from_settings(settings),
        "alerts": AlertsResource.from_settings(settings),
    }
