"""The Dagster instance the platform runs on: preparing DAGSTER_HOME and checking its limits.

The platform depends on three instance settings (config/dagster.yaml): a run-queue limit of one
run at a time per code location (DuckDB has a single writer), the `duckdb_warehouse` pool
limited to one step (the second guard), and run retries. Dagster reads `$DAGSTER_HOME/dagster.yaml`
when a process starts, so the file must be in place *before* `dagster dev`, the daemon or a CLI
run start: the explicit entry points (`make install`/`run`/`ui`, `expplatform materialize`,
`expplatform instance init`) call :func:`prepare_dagster_home`; nothing writes on import. The
code location's loader calls :func:`check_instance` and refuses to load, with the fix, from an
instance that lacks the limits, so no run starts unprotected.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from expplatform.config import SHIPPED_DAGSTER_YAML, ConfigError, dagster_home

#: The run tag the run queue limits (Dagster sets it on every run launched from a code location).
CODE_LOCATION_TAG = "dagster/code_location"
#: The code location's name (workspace.yaml); `expplatform materialize` tags its runs with it.
CODE_LOCATION = "expplatform"

FIX = (
    "Use the shipped settings: `make ui` (or `expplatform instance init`) writes config/dagster.yaml "
    "into a DAGSTER_HOME that has none; for an existing dagster.yaml, merge the `concurrency` and "
    "`run_retries` sections of config/dagster.yaml (or config/dagster.postgres.yaml) into it and "
    "restart `dagster dev`."
)


def prepare_dagster_home(home: Path | None = None) -> Path:
    """Write the shipped dagster.yaml into DAGSTER_HOME when it has none; returns the folder.

    An existing dagster.yaml is never overwritten (it may be a production configuration):
    :func:`check_settings` says whether it has what the platform needs.
    """
    home = home or dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        tmp = target.with_name(".dagster.yaml.tmp")
        shutil.copyfile(SHIPPED_DAGSTER_YAML, tmp)
        tmp.replace(target)  # a Dagster process starting now sees the whole file or none
    return home


def _limits_code_location(limits: Any) -> bool:
    for limit in limits or ():
        if not isinstance(limit, Mapping) or limit.get("key") != CODE_LOCATION_TAG:
            continue
        if int(limit.get("limit", 0)) != 1:
            continue
        value = limit.get("value")
        if value in (None, CODE_LOCATION) or (
            isinstance(value, Mapping) and value.get("applyLimitPerUniqueValue")
        ):
            return True
    return False


def settings_problems(concurrency: Mapping[str, Any] | None, run_retries: Any) -> list[str]:
    """What the instance settings lack for the platform (pure; empty when all is in place)."""
    concurrency = concurrency or {}
    problems = []
    runs = concurrency.get("runs") or {}
    if not _limits_code_location(runs.get("tag_concurrency_limits")):
        problems.append(
            "no run-queue limit of 1 on the `dagster/code_location` tag "
            "(concurrency.runs.tag_concurrency_limits): runs would write DuckDB at the same time"
        )
    pools = concurrency.get("pools") or {}
    if pools.get("default_limit") != 1:
        problems.append(
            "the `duckdb_warehouse` pool is not limited to 1 (concurrency.pools.default_limit: 1)"
        )
    if pools.get("granularity", "op") != "op":
        problems.append("pools must be enforced per step (concurrency.pools.granularity: op)")
    if not (isinstance(run_retries, Mapping) and run_retries.get("enabled")):
        problems.append(
            "run retries are off (run_retries.enabled: true): a failed day stays failed"
        )
    return problems


def check_instance(instance: Any) -> None:
    """Raise ConfigError, naming the instance and the fix, when it lacks the platform's limits."""
    problems = settings_problems(
        instance.get_settings("concurrency"), instance.get_settings("run_retries")
    )
    if problems:
        where = getattr(instance, "root_directory", None) or "this Dagster instance"
        raise ConfigError(
            f"the Dagster instance at {where} is not configured for expplatform: "
            + "; ".join(problems)
            + f". {FIX}"
        )
