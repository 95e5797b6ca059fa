"""Configuration from the environment (contract §1), resolved in one place.

Every setting the platform reads from the environment is a field of :class:`Settings`,
with its variable and default in :data:`SETTINGS_DOC` (the README's configuration table is
tested against it). Relative paths are relative to the project root, whatever the working
directory of the process that reads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DAGSTER_YAML = PROJECT_ROOT / "config" / "dagster.yaml"
#: The shipped dbt project (EXPPLATFORM_DBT_PROJECT_DIR may point elsewhere).
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

#: The one pool every warehouse-writing step declares (limit 1 in config/dagster.yaml).
DUCKDB_POOL = "duckdb_warehouse"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class SettingDoc:
    """One environment variable: its default (as written in the README) and what it means."""

    env: str
    default: str | None
    meaning: str


#: The default of the paths that follow the warehouse (a second warehouse gets its own copy).
BESIDE_WAREHOUSE = "{} beside the warehouse"

#: Every variable the platform reads, in the README's order. `None` default = unset.
SETTINGS_DOC: tuple[SettingDoc, ...] = (
    SettingDoc("EXPPLATFORM_LANDING_DIR", "data/landing", "root of the landing zone"),
    SettingDoc("EXPPLATFORM_DUCKDB_PATH", "data/warehouse.duckdb", "the embedded warehouse"),
    SettingDoc(
        "EXPPLATFORM_SERVING_PATH",
        BESIDE_WAREHOUSE.format("serving.duckdb"),
        "the readers' copy of the marts, published atomically after each successful run",
    ),
    SettingDoc("EXPPLATFORM_START_DATE", "2025-12-01", "the first daily partition"),
    SettingDoc(
        "EXPPLATFORM_LOOKBACK_DAYS",
        "2",
        "days before the run's arrival date that are recomputed",
    ),
    SettingDoc(
        "EXPPLATFORM_LANDING_SENSOR_INTERVAL",
        "60",
        "seconds between two looks of the landing sensor at the landing zone (at least 5)",
    ),
    SettingDoc(
        "EXPPLATFORM_ALERT_SENSOR_INTERVAL",
        "30",
        "seconds between two looks of the alert sensor at the finished runs (at least 5)",
    ),
    SettingDoc(
        "EXPPLATFORM_LANDING_MERGE_GAP_DAYS",
        "3",
        "the landing sensor joins two ranges of dates into one run when at most this many "
        "days lie between them (0: one run per contiguous range)",
    ),
    SettingDoc(
        "EXPPLATFORM_ALERT_WEBHOOK_URL", None, "team-channel webhook (a secret: never logged)"
    ),
    SettingDoc("EXPPLATFORM_ALERT_LOG", "data/alerts.log", "alerts as JSON lines (always)"),
    SettingDoc("EXPPLATFORM_UI_URL", "http://127.0.0.1:3000", "base of the run links in alerts"),
    SettingDoc(
        "EXPPLATFORM_PAGES_URL",
        "http://127.0.0.1:3001",
        "base of the experiment health pages (links in alerts and asset metadata)",
    ),
    SettingDoc(
        "EXPPLATFORM_PAGES_DIR",
        BESIDE_WAREHOUSE.format("pages"),
        "where the health pages are written",
    ),
    SettingDoc("EXPPLATFORM_PAGES_PORT", "3001", "port of the page server of `make run`"),
    SettingDoc(
        "EXPPLATFORM_DBT_TARGET",
        "duckdb",
        "`dev` builds a deterministic sample of users and recent days",
    ),
    SettingDoc(
        "EXPPLATFORM_DEV_SAMPLE_PCT", "10", "dev target: percent of users kept (100 keeps all)"
    ),
    SettingDoc(
        "EXPPLATFORM_DEV_DAYS",
        None,
        "dev target: days of history kept, up to EXPPLATFORM_DEV_AS_OF (unset: all)",
    ),
    SettingDoc(
        "EXPPLATFORM_DEV_AS_OF",
        None,
        "dev target: the last day kept (unset: the newest arrival date loaded)",
    ),
    SettingDoc(
        "EXPPLATFORM_DBT_PROJECT_DIR",
        "dbt_project",
        "the dbt project (the models, the registry seeds)",
    ),
    SettingDoc("EXPPLATFORM_DUCKDB_MEMORY_LIMIT", "3GB", "DuckDB memory limit of every run"),
    SettingDoc("EXPPLATFORM_DUCKDB_THREADS", "2", "DuckDB threads of every run"),
    SettingDoc(
        "DAGSTER_HOME", ".dagster_home", "Dagster instance (run history, schedules, sensors)"
    ),
)
_DEFAULTS = {doc.env: doc.default for doc in SETTINGS_DOC}


def default(name: str) -> str:
    """The default of a variable as SETTINGS_DOC (and the README) gives it: the one place it is
    written; `Settings` and the Dagster resources take theirs from here."""
    value = _DEFAULTS[name]
    if value is None:
        raise KeyError(f"{name} has no default: it is unset unless configured")
    return value


def resolve_path(path: str | Path) -> Path:
    """An absolute path: relative ones are taken from the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def parse_date(value: str, what: str) -> date:
    """Parse an ISO date (YYYY-MM-DD) or raise a ConfigError naming `what`."""
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ConfigError(f"{what} must be a date like 2025-12-01, got {value!r}") from None


def _whole_number(env: Mapping[str, str], name: str, minimum: int) -> int:
    raw = env.get(name, _DEFAULTS[name] or "")
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _percent(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name) or _DEFAULTS[name] or ""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of percent, got {raw!r}") from None
    if not 0 < value <= 100:
        raise ConfigError(f"{name} must be above 0 and at most 100, got {raw}")
    return value


@dataclass(frozen=True)
class Settings:
    """The platform's settings; build with :func:`get_settings` (tests build their own)."""

    landing_dir: Path
    duckdb_path: Path
    start_date: date
    lookback_days: int
    # Defaults: SETTINGS_DOC's (the README's), so a Settings built by a test is configured as an
    # installation that sets nothing but the fields above.
    ui_url: str = default("EXPPLATFORM_UI_URL")
    alert_log: Path = field(default_factory=lambda: resolve_path(default("EXPPLATFORM_ALERT_LOG")))
    serving_path: Path | None = None
    pages_dir: Path | None = None
    pages_url: str = default("EXPPLATFORM_PAGES_URL")
    pages_port: int = int(default("EXPPLATFORM_PAGES_PORT"))
    dbt_target: str = default("EXPPLATFORM_DBT_TARGET")
    dbt_project_dir: Path = field(
        default_factory=lambda: resolve_path(default("EXPPLATFORM_DBT_PROJECT_DIR"))
    )
    duckdb_memory_limit: str = default("EXPPLATFORM_DUCKDB_MEMORY_LIMIT")
    duckdb_threads: int = int(default("EXPPLATFORM_DUCKDB_THREADS"))
    landing_sensor_interval: int = int(default("EXPPLATFORM_LANDING_SENSOR_INTERVAL"))
    alert_sensor_interval: int = int(default("EXPPLATFORM_ALERT_SENSOR_INTERVAL"))
    #: days between two ranges the landing sensor still requests as one run (rebuilt, idempotent)
    landing_merge_gap_days: int = int(default("EXPPLATFORM_LANDING_MERGE_GAP_DAYS"))
    #: the dev target's sample (dbt_project/macros/dev_sample.sql); ignored by other targets
    dev_sample_pct: float = float(default("EXPPLATFORM_DEV_SAMPLE_PCT"))
    dev_days: int | None = None
    dev_as_of: date | None = None

    def __post_init__(self) -> None:
        # Tests build Settings with only the warehouse: its readers' copy and pages sit beside it.
        if self.serving_path is None:
            object.__setattr__(self, "serving_path", self.duckdb_path.with_name("serving.duckdb"))
        if self.pages_dir is None:
            object.__setattr__(self, "pages_dir", self.duckdb_path.with_name("pages"))

    @property
    def serving(self) -> Path:
        """The serving copy's path (never None after construction)."""
        assert self.serving_path is not None
        return self.serving_path

    @property
    def pages(self) -> Path:
        """The health pages' folder (never None after construction)."""
        assert self.pages_dir is not None
        return self.pages_dir

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some fields replaced (derived paths follow a new warehouse path)."""
        if "duckdb_path" in changes:
            changes.setdefault("serving_path", None)
            changes.setdefault("pages_dir", None)
        return replace(self, **changes)  # type: ignore[arg-type]

    def dbt_env(self) -> dict[str, str]:
        """The environment the dbt profile reads (dbt_project/profiles.yml), absolute paths."""
        return {
            "EXPPLATFORM_DUCKDB_PATH": str(self.duckdb_path),
            "EXPPLATFORM_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
            "EXPPLATFORM_DUCKDB_THREADS": str(self.duckdb_threads),
            "EXPPLATFORM_LOOKBACK_DAYS": str(self.lookback_days),
            "EXPPLATFORM_DEV_SAMPLE_PCT": f"{self.dev_sample_pct:g}",
            "EXPPLATFORM_DEV_DAYS": "" if self.dev_days is None else str(self.dev_days),
            "EXPPLATFORM_DEV_AS_OF": "" if self.dev_as_of is None else self.dev_as_of.isoformat(),
        }


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment (or `env`), applying the contract's defaults."""
    env = os.environ if env is None else env

    def path(name: str) -> Path:
        return resolve_path(env.get(name) or _DEFAULTS[name] or "")

    def optional_path(name: str) -> Path | None:
        return resolve_path(env[name]) if env.get(name) else None

    target = env.get("EXPPLATFORM_DBT_TARGET", _DEFAULTS["EXPPLATFORM_DBT_TARGET"] or "duckdb")
    if target not in ("duckdb", "dev", "spark"):
        raise ConfigError(f"EXPPLATFORM_DBT_TARGET must be duckdb, dev or spark, got {target!r}")
    return Settings(
        landing_dir=path("EXPPLATFORM_LANDING_DIR"),
        duckdb_path=path("EXPPLATFORM_DUCKDB_PATH"),
        # unset: beside the warehouse (Settings.__post_init__), so that two warehouses never
        # publish to (or a reader of one never reads) the same serving copy
        serving_path=optional_path("EXPPLATFORM_SERVING_PATH"),
        pages_dir=optional_path("EXPPLATFORM_PAGES_DIR"),
        start_date=parse_date(
            env.get("EXPPLATFORM_START_DATE", _DEFAULTS["EXPPLATFORM_START_DATE"] or ""),
            "EXPPLATFORM_START_DATE",
        ),
        lookback_days=_whole_number(env, "EXPPLATFORM_LOOKBACK_DAYS", 0),
        # The daemon's sensor loop wakes every 5 s: a shorter interval would not be kept.
        landing_sensor_interval=_whole_number(env, "EXPPLATFORM_LANDING_SENSOR_INTERVAL", 5),
        alert_sensor_interval=_whole_number(env, "EXPPLATFORM_ALERT_SENSOR_INTERVAL", 5),
        landing_merge_gap_days=_whole_number(env, "EXPPLATFORM_LANDING_MERGE_GAP_DAYS", 0),
        ui_url=(env.get("EXPPLATFORM_UI_URL") or _DEFAULTS["EXPPLATFORM_UI_URL"] or "").rstrip("/"),
        pages_url=(
            env.get("EXPPLATFORM_PAGES_URL") or _DEFAULTS["EXPPLATFORM_PAGES_URL"] or ""
        ).rstrip("/"),
        pages_port=_whole_number(env, "EXPPLATFORM_PAGES_PORT", 0),
        alert_log=path("EXPPLATFORM_ALERT_LOG"),
        dbt_target=target,
        dbt_project_dir=path("EXPPLATFORM_DBT_PROJECT_DIR"),
        duckdb_memory_limit=env.get(
            "EXPPLATFORM_DUCKDB_MEMORY_LIMIT", _DEFAULTS["EXPPLATFORM_DUCKDB_MEMORY_LIMIT"] or ""
        ),
        duckdb_threads=_whole_number(env, "EXPPLATFORM_DUCKDB_THREADS", 1),
        dev_sample_pct=_percent(env, "EXPPLATFORM_DEV_SAMPLE_PCT"),
        dev_days=_whole_number(env, "EXPPLATFORM_DEV_DAYS", 1)
        if env.get("EXPPLATFORM_DEV_DAYS")
        else None,
        dev_as_of=(
            parse_date(env["EXPPLATFORM_DEV_AS_OF"], "EXPPLATFORM_DEV_AS_OF")
            if env.get("EXPPLATFORM_DEV_AS_OF")
            else None
        ),
    )


def dagster_home(env: Mapping[str, str] | None = None) -> Path:
    """The Dagster instance folder: $DAGSTER_HOME, else the project's .dagster_home/."""
    env = os.environ if env is None else env
    return resolve_path(env.get("DAGSTER_HOME") or _DEFAULTS["DAGSTER_HOME"] or ".dagster_home")
