"""dbt models as Dagster assets (groups staging, intermediate, marts, registry).

Three `@dbt_assets` with disjoint selections, in the order data flows:

- `app_dbt_models` (tag `app`, unpartitioned): users and subscription history;
- `daily_dbt_models` (tag `daily`, daily partitions, single-run backfills):
  exposures per user and day, recomputed for the run's window of event dates;
- `marts_dbt_models` (tag `marts` and the registry seeds, unpartitioned):
  assignments and marts, merged for the users and dates the daily runs touched.

Each writes its bookkeeping to `ops.*` before dbt and advances it only after
dbt succeeded (see expplatform.transform.window).
"""

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_duckdb import DuckDBResource

from expplatform.config import DUCKDB_POOL
from expplatform.partitions import daily_partitions, dates_in_window
from expplatform.resources import LandingZoneResource
from expplatform.transform import window
from expplatform.transform.project import dbt_project, prepare_manifest
from expplatform.warehouse import connect

#: dbt unit tests run in the test suite (`dbt test --select test_type:unit`), not in every run.
DBT_BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]
LAYERS = ("staging", "intermediate", "marts")
OWNERS = ["team:experimentation-data"]
FCT_DAILY_KEY = AssetKey(["marts", "fct_experiment_exposures_daily"])
MARTS_CONSUMER_KEYS = {
    AssetKey(["marts", "fct_experiment_assignments"]),
    AssetKey(["intermediate", "int_experiment_activity_daily"]),
}


def layer_of(dbt_resource_props: Mapping[str, Any]) -> str:
    """The layer of a dbt node: its first folder under models/ (seeds are the registry)."""
    if dbt_resource_props["resource_type"] == "seed":
        return "registry"
    fqn = dbt_resource_props.get("fqn", [])
    for part in fqn[1:]:
        if part in LAYERS:
            return part
    return "marts"


class ExpplatformDbtTranslator(DagsterDbtTranslator):
    """Asset keys `[layer, model]`, groups by layer; ops bookkeeping tables are not assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return AssetKey([layer_of(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return layer_of(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: Any
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        deps = [dep for dep in spec.deps if dep.asset_key.path[0] != "ops"]
        return spec.replace_attributes(deps=deps, kinds={"dbt", "duckdb"})


translator = ExpplatformDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
)

prepare_manifest()
MANIFEST = dbt_project.manifest_path


def _invoke(
    context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBResource
) -> Iterator:
    # dbt runs in a subprocess with the project folder as working directory:
    # hand it the warehouse as an absolute path.
    os.environ["EXPPLATFORM_DUCKDB_PATH"] = str(Path(warehouse.database).resolve())
    # A subset run must not drag in tests of models it does not build (dbt's default
    # "eager" indirect selection would test fct tables when only a dim is built).
    os.environ.setdefault("DBT_INDIRECT_SELECTION", "cautious")
    target = (
        Path(dbt_project.project_dir) / "target" / f"dagster-{context.op_execution_context.op.name}"
    )
    # A fixed target folder per op keeps dbt's partial parsing (no full re-parse
    # per run) and leaves no per-run folders behind; pool limit 1 serialises users.
    invocation = dbt.cli(DBT_BUILD_ARGS, context=context, target_path=target)
    yield from invocation.stream()


@dbt_assets(
    manifest=MANIFEST,
    select="tag:app resource_type:seed",
    name="app_dbt_models",
    dagster_dbt_translator=translator,
    project=dbt_project,
    pool=DUCKDB_POOL,
)
def app_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBResource):
    """The experiment registry (seeds), users and subscription history (tier at any time)."""
    yield from _invoke(context, dbt, warehouse)


@dbt_assets(
    manifest=MANIFEST,
    select="tag:daily",
    name="daily_dbt_models",
    dagster_dbt_translator=translator,
    project=dbt_project,
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
)
def daily_dbt_models(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: DuckDBResource,
    landing: LandingZoneResource,
):
    """Exposures per experiment, user and day for the run's recompute window."""
    load_dates = dates_in_window(context.partition_time_window)
    with connect(Path(warehouse.database), on_wait=context.log.info) as con:
        dates = window.prepare_daily_run(con, load_dates, landing.lookback_days)
    context.log.info(
        f"arrival dates {load_dates[0]} .. {load_dates[-1]}: recomputing {len(dates)} event "
        f"date(s) {dates[0]} .. {dates[-1]}"
    )
    yield from _invoke(context, dbt, warehouse)
    if FCT_DAILY_KEY in context.selected_asset_keys:
        with connect(Path(warehouse.database), on_wait=context.log.info) as con:
            window.finish_daily_run(con)


@dbt_assets(
    manifest=MANIFEST,
    select="tag:marts",
    name="marts_dbt_models",
    dagster_dbt_translator=translator,
    project=dbt_project,
    pool=DUCKDB_POOL,
)
def marts_dbt_models(
    context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBResource
):
    """Assignments, allocation and health marts, merged for what the daily runs changed."""
    # The queues are consumed (and emptied) only when every model that reads them runs.
    consumes_queues = MARTS_CONSUMER_KEYS <= set(context.selected_asset_keys)
    if consumes_queues:
        with connect(Path(warehouse.database), on_wait=context.log.info) as con:
            users, dates = window.prepare_marts_run(con)
        context.log.info(f"merging {users} pending user(s) and {dates} pending date(s)")
    yield from _invoke(context, dbt, warehouse)
    if consumes_queues:
        with connect(Path(warehouse.database), on_wait=context.log.info) as con:
            window.finish_marts_run(con)


dbt_model_assets = [app_dbt_models, daily_dbt_models, marts_dbt_models]
