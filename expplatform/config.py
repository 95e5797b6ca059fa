"""Configuration from the environment (contract §1), resolved in one place.

Relative paths are relative to the project root, whatever the working
directory of the process that reads them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
SHIPPED_DAGSTER_YAML = PROJECT_ROOT / "config" / "dagster.yaml"

DEFAULT_LANDING_DIR = "data/landing"
DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
DEFAULT_START_DATE = "2025-12-01"
DEFAULT_LOOKBACK_DAYS = 2
DEFAULT_UI_URL = "http://127.0.0.1:3000"
DEFAULT_ALERT_LOG = "data/alerts.log"
DEFAULT_PAGES_URL = "http://127.0.0.1:3001"

#: The one pool every DuckDB-touching step declares (limit 1 in dagster.yaml).
DUCKDB_POOL = "duckdb_warehouse"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says which and how to fix it."""


def _resolve(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def parse_date(value: str, what: str) -> date:
    """Parse an ISO date (YYYY-MM-DD) or raise a ConfigError naming `what`."""
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ConfigError(f"{what} must be a date like 2025-12-01, got {value!r}") from None


@dataclass(frozen=True)
class Settings:
    """The platform's settings; build with :func:`get_settings`."""

    landing_dir: Path
    duckdb_path: Path
    start_date: date
    lookback_days: int
    ui_url: str
    alert_log: Path
    #: Base URL of the published health pages (`/<experiment_key>.html`, `/index.html`).
    pages_url: str = DEFAULT_PAGES_URL

    def env_for_dbt(self) -> dict[str, str]:
        """Environment variables the dbt subprocess needs (absolute paths)."""
        return {
            "EXPPLATFORM_DUCKDB_PATH": str(self.duckdb_path),
            "EXPPLATFORM_LOOKBACK_DAYS": str(self.lookback_days),
        }


def get_settings() -> Settings:
    """Read the settings from the environment, applying the contract's defaults."""
    lookback_raw = os.environ.get("EXPPLATFORM_LOOKBACK_DAYS", str(DEFAULT_LOOKBACK_DAYS))
    try:
        lookback = int(lookback_raw)
    except ValueError:
        raise ConfigError(
            f"EXPPLATFORM_LOOKBACK_DAYS must be a whole number of days, got {lookback_raw!r}"
        ) from None
    if lookback < 0:
        raise ConfigError(f"EXPPLATFORM_LOOKBACK_DAYS must be >= 0, got {lookback}")
    return Settings(
        landing_dir=_resolve(os.environ.get("EXPPLATFORM_LANDING_DIR", DEFAULT_LANDING_DIR)),
        duckdb_path=_resolve(os.environ.get("EXPPLATFORM_DUCKDB_PATH", DEFAULT_DUCKDB_PATH)),
        start_date=parse_date(
            os.environ.get("EXPPLATFORM_START_DATE", DEFAULT_START_DATE), "EXPPLATFORM_START_DATE"
        ),
        lookback_days=lookback,
        ui_url=os.environ.get("EXPPLATFORM_UI_URL", DEFAULT_UI_URL).rstrip("/"),
        alert_log=_resolve(os.environ.get("EXPPLATFORM_ALERT_LOG", DEFAULT_ALERT_LOG)),
        pages_url=os.environ.get("EXPPLATFORM_PAGES_URL", DEFAULT_PAGES_URL).rstrip("/"),
    )


def ensure_dagster_home() -> Path:
    """Default DAGSTER_HOME to the project's .dagster_home/ holding the shipped dagster.yaml.

    Run history then persists between `make run`s and the pool limit of the
    single DuckDB writer is in force. An existing DAGSTER_HOME is respected;
    a dagster.yaml already there is never overwritten.
    """
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(SHIPPED_DAGSTER_YAML, target)
    return home
