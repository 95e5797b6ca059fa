"""Helpers for end-to-end tests: run the real Dagster job (raw → dbt → marts) on a temp warehouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from expplatform import catalog
from expplatform.catalog import name_of
from expplatform.config import DBT_PROJECT_DIR, Settings
from expplatform.definitions import materialize_range
from expplatform.sources import DEFAULT_REGISTRY, SourceRegistry
from expplatform.transform.project import dbt_executable

#: Every dbt invocation gets the source registry as a var (expplatform/sources.py).
DBT_VARS = json.dumps(DEFAULT_REGISTRY.dbt_vars(), sort_keys=True)

#: The contract tables (§5) compared whole by the idempotence tests, by name.
CONTRACT_TABLES = tuple(name_of(table) for table in catalog.CONTRACT_TABLES)


def make_settings(tmp_path: Path, landing: Path, lookback_days: int = 2) -> Settings:
    return Settings(
        landing_dir=landing,
        duckdb_path=tmp_path / "warehouse.duckdb",
        start_date=date(2025, 12, 1),
        lookback_days=lookback_days,
        ui_url="http://127.0.0.1:3000",
        alert_log=tmp_path / "alerts.log",
    )


@contextmanager
def data_instance() -> Iterator[DagsterInstance]:
    """An in-memory Dagster instance, for the tests of the tables and checks a run builds.

    A run writes ~370 events to its instance (step events, a planned and an evaluated event per
    check, each materialization): on SQLite, where the platform runs, each costs 15-25 ms on this
    machine, and three runs of the fixture each took 2.5-5 s longer there than on this instance.
    The tests of the instance itself (run queue, sensors, alerts, secrets, crashes, continuous
    operation) run on SQLite or PostgreSQL, as the platform does; the soak, like these, runs on
    an in-memory instance (expplatform/soak.py).
    """
    with DagsterInstance.ephemeral() as instance:
        yield instance


def run_range(
    settings: Settings,
    instance: DagsterInstance,
    start: date,
    end: date,
    registry: SourceRegistry = DEFAULT_REGISTRY,
) -> None:
    """Materialize every asset for arrival dates [start, end] as one single-run backfill."""
    materialize_range(settings, instance, start, end, registry)


def serving_copy(
    path: Path, schemas: Sequence[str] | None = None
) -> dict[str, tuple[list[tuple[str, str]], list[tuple]]]:
    """Every table of a serving copy (of `schemas`, or all): its columns with their types, and its
    rows, sorted; `meta.build_info` by its data date only (its time and run differ between runs)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for schema, table in con.execute(
            "select table_schema, table_name from information_schema.tables order by all"
        ).fetchall():
            if schemas is not None and schema not in schemas:
                continue
            relation = f"{schema}.{table}"
            if relation == "meta.build_info":
                out[relation] = ([], con.execute(f"select data_through from {relation}").fetchall())
                continue
            columns = [(c[0], c[1]) for c in con.execute(f"describe {relation}").fetchall()]
            rows = con.execute(f"select * from {relation} order by all").fetchall()
            out[relation] = (columns, rows)
        return out
    finally:
        con.close()


def snapshot(db_path: Path, tables: Sequence[str] = CONTRACT_TABLES) -> dict[str, list]:
    """Every row of the given marts tables, in a stable order."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {
            name: con.execute(f"select * from marts.{name} order by all").fetchall()
            for name in tables
        }
    finally:
        con.close()


def query(db_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run_dbt(args: Sequence[str], warehouse: Path, work: Path) -> subprocess.CompletedProcess[str]:
    """The dbt CLI on the shipped project against `warehouse` (its target and logs in `work`):
    for tests that build a few models on tables they wrote themselves."""
    return subprocess.run(
        [
            dbt_executable(), *args,
            "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target", "duckdb", "--vars", DBT_VARS, "--target-path", str(work / "target"),
            "--log-path", str(work / "logs"),
        ],
        env={**os.environ, "EXPPLATFORM_DUCKDB_PATH": str(warehouse)},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip


def copy_dbt_project(folder: Path) -> Path:
    """A copy of the shipped dbt project in `folder` (without its build output), to change."""
    project = folder / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    return project
