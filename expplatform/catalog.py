"""The warehouse's tables and the platform's asset keys, named in one place.

Python code refers to a table through the constants below, never through a string literal of
its own. The raw and ops tables are *declared* once, with their columns, types and
descriptions, in the dbt sources YAML (`dbt_project/models/**/_*__sources.yml`): the loaders'
DDL (:func:`ddl`), the raw assets' column schemas in the UI and the dbt docs all read that
declaration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from dagster import AssetKey

from expplatform.config import DBT_PROJECT_DIR

# --- schemas --------------------------------------------------------------------------------
RAW = "raw"
OPS = "ops"
STAGING = "staging"
INTERMEDIATE = "intermediate"
MARTS = "marts"
SEEDS = "seeds"
#: The serving copy's own schema (check results, build info) beside its `marts`; not `serving`:
#: DuckDB names a file's catalog after it, and `serving.duckdb` would make `serving.x` ambiguous.
SERVING = "meta"

# --- tables ----------------------------------------------------------------------------------
REJECTED_RECORDS = "raw.rejected_records"

STG_USERS = "staging.stg_app__users"
INT_SUBSCRIPTION_HISTORY = "intermediate.int_subscription_history"
INT_EXPERIMENT_USER_DAYS = "intermediate.int_experiment_user_days"
INT_EXPERIMENT_ACTIVITY_DAILY = "intermediate.int_experiment_activity_daily"
INT_SRM_OBSERVED = "intermediate.int_experiment_srm_observed"

SEED_EXPERIMENTS = "seeds.experiments"
SEED_EXPERIMENT_VARIATIONS = "seeds.experiment_variations"

DIM_EXPERIMENTS = "marts.dim_experiments"
DIM_EXPERIMENT_VARIATIONS = "marts.dim_experiment_variations"
DIM_USERS = "marts.dim_users"
DIM_SUBSCRIPTION_HISTORY = "marts.dim_subscription_history"
FCT_EXPOSURES_DAILY = "marts.fct_experiment_exposures_daily"
FCT_ASSIGNMENTS = "marts.fct_experiment_assignments"
MART_ALLOCATION = "marts.mart_experiment_allocation_daily"
MART_HEALTH = "marts.mart_experiment_health_daily"
MART_HEALTH_BY_TIER = "marts.mart_experiment_health_by_tier_daily"

OPS_RECOMPUTE_DATES = "ops.recompute_dates"
OPS_DIM_CHANGED_USERS = "ops.dim_changed_users"
OPS_USER_DIM_STATE = "ops.user_dim_state"
OPS_PENDING_USERS = "ops.pending_users"
OPS_PENDING_DATES = "ops.pending_dates"
OPS_ASSIGNMENTS_BEFORE = "ops.assignments_before"
OPS_CHECK_RESULTS = "ops.check_results"

SERVING_CHECK_RESULTS = "meta.check_results"
SERVING_BUILD_INFO = "meta.build_info"

#: The contract's output tables (DATA_CONTRACT.md §5), each with the columns naming one row.
CONTRACT_TABLES: dict[str, tuple[str, ...]] = {
    DIM_EXPERIMENTS: ("experiment_key",),
    DIM_EXPERIMENT_VARIATIONS: ("experiment_key", "variation_name"),
    DIM_USERS: ("user_id",),
    DIM_SUBSCRIPTION_HISTORY: ("subscription_change_id",),
    FCT_EXPOSURES_DAILY: ("experiment_key", "user_id", "exposure_date"),
    FCT_ASSIGNMENTS: ("experiment_key", "user_id"),
    MART_ALLOCATION: ("experiment_key", "date", "variation_name", "subscription_tier"),
    MART_HEALTH: ("experiment_key", "date"),
}
#: What readers get in the serving copy: the contract's tables and both health marts.
SERVED_TABLES: tuple[str, ...] = (*CONTRACT_TABLES, MART_HEALTH_BY_TIER)


def name_of(table: str) -> str:
    """`marts.x` → `x`."""
    return table.split(".", 1)[1]


def asset_key(table: str) -> AssetKey:
    """The asset key of a warehouse table: `[layer, name]` (seeds are the `registry` layer)."""
    schema, name = table.split(".", 1)
    return AssetKey(["registry" if schema == SEEDS else schema, name])


FCT_EXPOSURES_DAILY_KEY = asset_key(FCT_EXPOSURES_DAILY)
FCT_ASSIGNMENTS_KEY = asset_key(FCT_ASSIGNMENTS)
MART_ALLOCATION_KEY = asset_key(MART_ALLOCATION)
MART_HEALTH_KEY = asset_key(MART_HEALTH)
MART_HEALTH_BY_TIER_KEY = asset_key(MART_HEALTH_BY_TIER)
INT_ACTIVITY_KEY = asset_key(INT_EXPERIMENT_ACTIVITY_DAILY)
SERVING_KEY = AssetKey(["serving", "marts_serving_copy"])
HEALTH_PAGES_KEY = AssetKey(["serving", "experiment_health_pages"])


# --- declared columns (dbt sources YAML) ------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A declared column of a raw or ops table."""

    name: str
    data_type: str
    description: str
    not_null: bool = False


def _source_files(project_dir: Path) -> list[Path]:
    return sorted((project_dir / "models").rglob("_*__sources.yml"))


@lru_cache(maxsize=8)
def _declared_tables(project_dir: Path) -> dict[str, tuple[Column, ...]]:
    tables: dict[str, tuple[Column, ...]] = {}
    for path in _source_files(project_dir):
        for source in (yaml.safe_load(path.read_text()) or {}).get("sources", []):
            schema = source.get("schema", source["name"])
            for table in source.get("tables", []):
                columns = []
                for column in table.get("columns", []):
                    if "data_type" not in column:
                        raise ValueError(
                            f"{path}: column {column['name']} of {schema}.{table['name']} "
                            "has no data_type (the loaders create the table from it)"
                        )
                    columns.append(
                        Column(
                            column["name"],
                            column["data_type"],
                            " ".join(column.get("description", "").split()),
                            # not a dbt test: tests on sources would rescan raw tables every build
                            not_null=bool(column.get("meta", {}).get("not_null", False)),
                        )
                    )
                tables[f"{schema}.{table['name']}"] = tuple(columns)
    return tables


def declared_columns(table: str, project_dir: Path = DBT_PROJECT_DIR) -> tuple[Column, ...]:
    """The columns of a raw/ops table as declared in the dbt sources YAML."""
    tables = _declared_tables(project_dir.resolve())
    if table not in tables:
        raise KeyError(
            f"{table} is not declared in any _*__sources.yml of {project_dir / 'models'}: "
            "declare it (with every column's data_type) next to its staging model"
        )
    return tables[table]


def declared_tables(schemas: Iterable[str], project_dir: Path = DBT_PROJECT_DIR) -> list[str]:
    """Every declared table of the given schemas, sorted."""
    wanted = set(schemas)
    return sorted(t for t in _declared_tables(project_dir.resolve()) if t.split(".")[0] in wanted)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ddl(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """`create schema/table if not exists` for every declared raw and ops table."""
    statements = [f"create schema if not exists {schema};" for schema in (RAW, OPS)]
    for table in declared_tables((RAW, OPS), project_dir):
        columns = ",\n    ".join(
            f"{_quote(c.name)} {c.data_type}{' not null' if c.not_null else ''}"
            for c in declared_columns(table, project_dir)
        )
        statements.append(f"create table if not exists {table} (\n    {columns}\n);")
    return "\n".join(statements)
