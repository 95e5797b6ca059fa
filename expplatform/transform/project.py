"""The dbt project and the dbt CLI resource, prepared the same way for tests, CI and `dagster dev`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from expplatform.config import DBT_PROJECT_DIR, get_settings

#: `duckdb` (everything) or `dev` (a deterministic sample of users and days, for QA).
DBT_TARGET = os.environ.get("EXPPLATFORM_DBT_TARGET", "duckdb")


def dbt_executable() -> str:
    """The dbt of this environment (DbtCliResource would prefer a `dbtf` found on PATH)."""
    return str(Path(sys.executable).parent / "dbt")


dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=DBT_TARGET
)


def prepare_manifest(force: bool = False) -> Path:
    """Build target/manifest.json with `dbt parse` (needed before Definitions can load).

    `DbtProject.prepare_if_dev()` only acts under `dagster dev`; tests, CI and
    the CLI call this instead. The manifest is build output, never committed.
    """
    manifest = dbt_project.manifest_path
    if manifest.exists() and not force:
        return manifest
    env = {**os.environ, **get_settings().env_for_dbt(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    result = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target",
            DBT_TARGET,
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{result.stdout}\n{result.stderr}")
    return manifest


def build_dbt_resource() -> DbtCliResource:
    """The dbt CLI resource pointed at the project's profile and this environment's dbt."""
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(DBT_PROJECT_DIR),
        target=DBT_TARGET,
        dbt_executable=dbt_executable(),
    )
