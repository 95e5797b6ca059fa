"""The Definitions load and are wired as the platform promises (pools, partitions, groups), every
module imports on its own without side effects, and Dagster refuses an instance without limits."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, BackfillPolicy, DagsterInstance

import expplatform
from expplatform.config import DUCKDB_POOL, PROJECT_ROOT, SHIPPED_DAGSTER_YAML, ConfigError
from expplatform.definitions import build_definitions
from expplatform.instance import check_instance, settings_problems

DAILY = {
    AssetKey(["raw", "partner_directpush_launchdarkly_events"]),
    AssetKey(["raw", "legacy_feature_flag_events"]),
    AssetKey(["staging", "stg_launchdarkly__flag_events"]),
    AssetKey(["staging", "stg_legacy__flag_events"]),
    AssetKey(["intermediate", "int_experiment_user_days"]),
    AssetKey(["marts", "fct_experiment_exposures_daily"]),
}
CONTRACT_MARTS = {
    "dim_experiments",
    "dim_experiment_variations",
    "dim_users",
    "dim_subscription_history",
    "fct_experiment_exposures_daily",
    "fct_experiment_assignments",
    "mart_experiment_allocation_daily",
    "mart_experiment_health_daily",
}


@pytest.fixture(scope="module")
def defs():
    return build_definitions()


def test_every_contract_table_is_an_asset_in_group_marts(defs):
    graph = defs.resolve_asset_graph()
    marts = {k.path[-1] for k in graph.get_all_asset_keys() if graph.get(k).group_name == "marts"}
    assert CONTRACT_MARTS <= marts


def test_daily_assets_are_partitioned_with_single_run_backfills(defs):
    graph = defs.resolve_asset_graph()
    partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}
    assert partitioned == DAILY
    for key in DAILY:
        policy = graph.get(key).backfill_policy
        assert policy == BackfillPolicy.single_run()


#: The one step that does not open the warehouse: it reads the serving copy.
READS_SERVING_ONLY = "write_health_pages"


def test_every_warehouse_step_is_in_the_duckdb_pool_except_in_cli_runs(defs):
    ops = [a.op for a in defs.assets if a.op.name != READS_SERVING_ONLY]
    assert ops and all(op.pool == DUCKDB_POOL for op in ops), [op.name for op in ops]
    assert next(a.op for a in defs.assets if a.op.name == READS_SERVING_ONLY).pool is None
    # `expplatform materialize` queues at the run level itself (expplatform/cli/materialize.py)
    cli_ops = [assets_def.op for assets_def in build_definitions(step_pools=False).assets]
    assert cli_ops and all(op.pool is None for op in cli_ops)


def test_one_dbt_step_and_one_step_per_source(defs):
    job = defs.resolve_job_def("materialize_all")
    assert sorted(job.graph.node_dict) == [
        "dbt_models",
        "publish_serving_copy",
        "raw__legacy_feature_flag_events",
        "raw__partner_directpush_launchdarkly_events",
        "raw__subscription_changes",
        "raw__users",
        "write_health_pages",
    ]


def test_groups_are_the_layers(defs):
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"raw", "staging", "intermediate", "marts", "registry", "serving"}


def test_every_asset_has_a_description_owner_kinds_and_columns(defs):
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.description, name
        assert spec.owners, name
        assert spec.kinds & {"duckdb", "dbt", "python"}, name
        if spec.key.path[0] in ("raw", "marts"):
            schema = spec.metadata.get("dagster/column_schema")
            assert schema is not None and schema.columns, name
            assert all(c.description for c in schema.columns if c.name.startswith("_")), name


def _modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(expplatform.__path__, "expplatform.")
        if not m.name.endswith("__main__")
    )


#: Imported once by the import test's parent before it forks a child per module: third-party
#: packages only, so every child still imports its expplatform module first, on its own.
PRELOADED = ("dagster", "dagster_dbt", "dagster_duckdb", "duckdb", "pandas", "yaml")

#: Run in a fresh interpreter: preloads PRELOADED, then forks one child per expplatform module
#: (as many at once as there are cores), which imports that module and nothing else.
IMPORT_EACH = """
import importlib, os, sys
for package in sys.argv[1].split(","):
    importlib.import_module(package)
running, failed = {}, []

def reap():
    pid, status = os.wait()
    name, read_end = running.pop(pid)
    message = os.read(read_end, 8192).decode(errors="replace")
    os.close(read_end)
    if status:
        failed.append(f"{name}: {message or 'exit status ' + str(status)}")

for name in sys.argv[2:]:
    while len(running) >= (os.cpu_count() or 2):
        reap()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            importlib.import_module(name)
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:8000])
            code = 1
        os._exit(code)
    os.close(write_end)
    running[pid] = (name, read_end)
while running:
    reap()
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own_without_writing_anything(tmp_path):
    """No import cycles (each module first, in a process of its own) and no import-time writes.

    Each module is imported first in a child forked from an interpreter that has imported only
    third-party packages (PRELOADED): an import cycle inside expplatform still shows, and the
    children do not each pay Dagster's and dbt's ~3 s of imports (one interpreter per module
    took 41 s of the suite).
    """
    home = tmp_path / "dagster_home"
    manifest = PROJECT_ROOT / "dbt_project" / "target" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    modules = _modules()
    assert "expplatform.jobs" in modules and "expplatform.definitions" in modules
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, ",".join(PRELOADED), *modules],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not home.exists(), "an import created DAGSTER_HOME"
    assert manifest.stat().st_mtime_ns == before, "an import re-parsed the dbt project"


def test_the_shipped_instance_settings_are_complete():
    import yaml

    shipped = yaml.safe_load(SHIPPED_DAGSTER_YAML.read_text())
    assert settings_problems(shipped["concurrency"], shipped["run_retries"]) == []
    postgres = yaml.safe_load((SHIPPED_DAGSTER_YAML.parent / "dagster.postgres.yaml").read_text())
    assert postgres["concurrency"] == shipped["concurrency"]
    assert postgres["run_retries"] == shipped["run_retries"]
    assert postgres["run_coordinator"] == shipped["run_coordinator"]


def test_the_daemon_looks_at_the_queue_every_second_and_keeps_its_limits(tmp_path):
    """The `run_coordinator` block sets only the queue's interval: the limits the daemon applies
    are still those of `concurrency.runs` (Dagster refuses limits in both places)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(SHIPPED_DAGSTER_YAML.read_text())
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == [
            {
                "key": "dagster/code_location",
                "value": {"applyLimitPerUniqueValue": True},
                "limit": 1,
            }
        ]


def test_an_instance_without_the_limits_is_refused_with_the_fix(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(home)) as instance:
        with pytest.raises(ConfigError) as error:
            check_instance(instance)
    message = str(error.value)
    assert str(home) in message
    assert "dagster/code_location" in message and "make ui" in message
    (home / "dagster.yaml").write_text(SHIPPED_DAGSTER_YAML.read_text())
    with DagsterInstance.from_config(str(home)) as instance:
        check_instance(instance)  # the shipped settings pass


def test_dagster_refuses_to_load_the_code_location_on_an_unprotected_instance(tmp_path):
    """`dagster definitions validate` (what the webserver and daemon do) fails, saying why."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    refused = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert refused.returncode != 0
    assert "not configured for expplatform" in refused.stdout + refused.stderr
    (home / "dagster.yaml").write_text(SHIPPED_DAGSTER_YAML.read_text())
    loaded = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert loaded.returncode == 0, loaded.stdout[-2000:] + loaded.stderr[-2000:]


def test_the_serving_copy_and_pages_follow_the_warehouse_unless_set(tmp_path):
    """Two warehouses never share a serving copy: unset, it sits beside its warehouse."""
    from expplatform.config import get_settings

    warehouse = tmp_path / "elsewhere" / "wh.duckdb"
    settings = get_settings({"EXPPLATFORM_DUCKDB_PATH": str(warehouse)})
    assert settings.serving == tmp_path / "elsewhere" / "serving.duckdb"
    assert settings.pages == tmp_path / "elsewhere" / "pages"
    assert get_settings({}).serving == PROJECT_ROOT / "data" / "serving.duckdb"
    chosen = get_settings(
        {
            "EXPPLATFORM_DUCKDB_PATH": str(warehouse),
            "EXPPLATFORM_SERVING_PATH": str(tmp_path / "readers.duckdb"),
            "EXPPLATFORM_PAGES_DIR": "site",
        }
    )
    assert chosen.serving == tmp_path / "readers.duckdb"
    assert chosen.pages == PROJECT_ROOT / "site"


def test_the_dev_sample_is_a_setting_that_reaches_dbt():
    """The dev target's sample comes from the settings (the dbt step reads no environment)."""
    from expplatform.config import ConfigError, get_settings

    unset = get_settings({})
    assert (unset.dev_sample_pct, unset.dev_days, unset.dev_as_of) == (10.0, None, None)
    assert {k: v for k, v in unset.dbt_env().items() if "_DEV_" in k} == {
        "EXPPLATFORM_DEV_SAMPLE_PCT": "10",
        "EXPPLATFORM_DEV_DAYS": "",
        "EXPPLATFORM_DEV_AS_OF": "",
    }
    chosen = get_settings(
        {
            "EXPPLATFORM_DEV_SAMPLE_PCT": "2.5",
            "EXPPLATFORM_DEV_DAYS": "7",
            "EXPPLATFORM_DEV_AS_OF": "2025-12-20",
        }
    )
    assert {k: v for k, v in chosen.dbt_env().items() if "_DEV_" in k} == {
        "EXPPLATFORM_DEV_SAMPLE_PCT": "2.5",
        "EXPPLATFORM_DEV_DAYS": "7",
        "EXPPLATFORM_DEV_AS_OF": "2025-12-20",
    }
    for env, message in [
        ({"EXPPLATFORM_DEV_SAMPLE_PCT": "0"}, "above 0 and at most 100"),
        ({"EXPPLATFORM_DEV_SAMPLE_PCT": "ten"}, "must be a number of percent"),
        ({"EXPPLATFORM_DEV_DAYS": "0"}, "EXPPLATFORM_DEV_DAYS must be >= 1"),
        ({"EXPPLATFORM_DEV_AS_OF": "yesterday"}, "EXPPLATFORM_DEV_AS_OF must be a date"),
    ]:
        with pytest.raises(ConfigError, match=message):
            get_settings(env)
