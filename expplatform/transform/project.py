"""The dbt project: its manifest (what the Dagster asset graph is built from) and the dbt resource.

The manifest is build output (`<project>/target/manifest.json`, never committed). It is built by
the explicit entry points — `make install`, `expplatform prepare`, `expplatform materialize`,
the test suite's session setup — never on import: loading the definitions only reads it, and
says how to build it when it is missing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from expplatform.config import ConfigError, Settings
from expplatform.sources import SourceRegistry
from expplatform.transform.dbt_runner import DbtProjectRunner, Invocation, project_fingerprint


def manifest_path(project_dir: Path) -> Path:
    """Where the project's manifest.json is (build output)."""
    return Path(project_dir) / "target" / "manifest.json"


def manifest_is_stale(project_dir: Path) -> bool:
    """Whether a model, macro, seed, test or project file changed after the manifest was built."""
    path = manifest_path(project_dir)
    return not path.exists() or project_fingerprint(Path(project_dir)) > path.stat().st_mtime


def prepare_manifest(settings: Settings, registry: SourceRegistry, *, force: bool = False) -> Path:
    """Build `<project>/target/manifest.json` with `dbt parse` when it is missing or stale."""
    project_dir = settings.dbt_project_dir
    path = manifest_path(project_dir)
    if force or manifest_is_stale(project_dir):
        runner = DbtProjectRunner(project_dir, settings.dbt_target, registry.dbt_vars())
        runner.write_manifest(settings.dbt_env())
    return path


def load_manifest(project_dir: Path) -> dict[str, Any]:
    """The manifest as a dict; a clear error when it was never built."""
    path = manifest_path(project_dir)
    if not path.exists():
        raise ConfigError(
            f"the dbt manifest {path} does not exist yet: run `expplatform prepare` "
            "(or `make install`) before loading the Dagster definitions"
        )
    return json.loads(path.read_text())


class DbtResource(ConfigurableResource):
    """dbt for the platform's project, run in the run's own process (transform/dbt_runner.py)."""

    project_dir: str
    target: str = "duckdb"
    vars_json: str = "{}"

    def runner(self) -> DbtProjectRunner:
        return DbtProjectRunner(Path(self.project_dir), self.target, json.loads(self.vars_json))

    def build(self, select: list[str], env: Mapping[str, str], log=None) -> Invocation:
        """`dbt build` of exactly the selected nodes (see DbtProjectRunner.build)."""
        return self.runner().build(select, env, log=log)


def dbt_executable() -> str:
    """The dbt of this environment (for the few places that run dbt as a command)."""
    return str(Path(sys.executable).parent / "dbt")


def dbt_command(settings: Settings, registry: SourceRegistry, *args: str) -> list[str]:
    """A `dbt ...` command line for the project, target and registry vars of `settings`.

    Every dbt invocation needs the registry's vars (`flag_sources`), so people and tests run dbt
    through this (or `expplatform dbt -- ...`), with `settings.dbt_env()` in the environment.
    """
    return [
        dbt_executable(),
        *args,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target",
        settings.dbt_target,
        "--vars",
        json.dumps(registry.dbt_vars(), sort_keys=True),
    ]
