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


def _sources_newer_than(manifest: Path) -> bool:
    """Whether a model, macro, seed, test or project file changed after the manifest was built."""
    built = manifest.stat().st_mtime
    root = Path(dbt_project.project_dir)
    candidates = [root / "dbt_project.yml", root / "profiles.yml"]
    for folder in ("models", "macros", "seeds", "tests", "analyses", "snapshots"):
        if (root / folder).is_dir():
            candidates.extend(p for p in (root / folder).rglob("*") if p.is_file())
    return any(p.exists() and p.stat().st_mtime > built for p in candidates)


def prepare_manifest(force: bool = False) -> Path:
    """Build target/manifest.json with `dbt parse` (needed before Definitions can load).

    `DbtProject.prepare_if_dev()` only acts under `dagster dev`; tests, CI and
    the CLI call this instead. It re-parses when a dbt file is newer than the
    manifest, so a stale manifest never hides a new model. The manifest is build
    output, never committed.
    """
    manifest = dbt_project.manifest_path
    if not force and manifest.exists() and not _sources_newer_than(manifest):
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
