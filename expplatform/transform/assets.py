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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Output,
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
from expplatform.transform.metadata import (
    allocation_preview,
    column_lineage,
    daily_fact_metadata,
    health_metadata,
    row_count,
)
from expplatform.transform.project import dbt_project, prepare_manifest
from expplatform.warehouse import connect, is_lock_error, pause_point

#: dbt unit tests run in the test suite (`dbt test --select test_type:unit`), not in every run.
DBT_BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]
#: dbt opens the warehouse once, at start-up, with no retry of its own: when another process
#: (a `report`, an analyst's notebook) holds the file then, dbt fails before building anything
#: and is started again after 2, 4, 8, 16 s.
DBT_LOCK_ATTEMPTS = 5
LAYERS = ("staging", "intermediate", "marts")
OWNERS = ["team:experimentation-data"]
FCT_DAILY_KEY = AssetKey(["marts", "fct_experiment_exposures_daily"])
ALLOCATION_KEY = AssetKey(["marts", "mart_experiment_allocation_daily"])
HEALTH_KEY = AssetKey(["marts", "mart_experiment_health_daily"])
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
    """Asset keys `[layer, relation]`, groups by layer; ops bookkeeping tables are not assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        # The relation's name (dbt's alias), not the model's: all versions of a versioned mart
        # share one name, and the latest is materialized under it while an older one is
        # `<name>_v<N>` (macros/generate_alias_name.sql). So the latest keeps `[marts, <name>]`
        # and an old version kept for its consumers is `[marts, <name>_v<N>]`.
        name = dbt_resource_props.get("alias") or dbt_resource_props["name"]
        return AssetKey([layer_of(dbt_resource_props), name])

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


def _relation(key: AssetKey) -> str | None:
    """The warehouse table of a dbt asset; None for views (counting them re-reads raw)."""
    layer, name = key.path[0], key.path[-1]
    if layer == "staging":
        return None
    return f"{'seeds' if layer == 'registry' else layer}.{name}"


def _metadata(
    con: Any, key: AssetKey, fact_dates: Sequence[date], *, with_chart: bool
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    relation = _relation(key)
    if relation and (rows := row_count(con, relation)) is not None:
        extra["dagster/row_count"] = rows
    if key == FCT_DAILY_KEY:
        extra.update(daily_fact_metadata(con, fact_dates))
    elif key == ALLOCATION_KEY:
        extra.update(allocation_preview(con))
    elif key == HEALTH_KEY:
        extra.update(health_metadata(con, with_chart=with_chart))
    return extra


def _invoke(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: DuckDBResource,
    *,
    after: Callable[[Any], None] | None = None,
    fact_dates: Sequence[date] = (),
) -> Iterator:
    """Run `dbt build` for the selected models, then attach metadata and run `after`.

    dbt holds DuckDB's write lock until it exits, so its events are collected
    first; metadata is then read with one connection, on which `after` (the
    bookkeeping) also runs — only if dbt succeeded. Models that did build are
    still reported when a later one fails.
    """
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
    for attempt in range(1, DBT_LOCK_ATTEMPTS + 1):
        invocation = dbt.cli(DBT_BUILD_ARGS, context=context, target_path=target)
        events: list[Any] = []
        failure: BaseException | None = None
        try:
            for event in invocation.stream():
                events.append(event)
                pause_point("dbt", getattr(event, "output_name", None) or "")
        except Exception as exc:  # re-raised below, after the built models are reported
            failure = exc
        if failure is None or events or not is_lock_error(failure):
            break
        if attempt < DBT_LOCK_ATTEMPTS:
            delay = 2**attempt
            context.log.warning(
                f"warehouse busy: dbt could not lock {Path(warehouse.database).name} (another "
                f"process holds it), retrying in {delay}s ({attempt}/{DBT_LOCK_ATTEMPTS - 1})"
            )
            time.sleep(delay)
    with_chart = os.environ.get("EXPPLATFORM_CHART_METADATA", "1") != "0"
    with connect(Path(warehouse.database), on_wait=context.log.info) as con:
        for event in events:
            if isinstance(event, Output):
                key = context.asset_key_for_output(event.output_name)
                extra = _metadata(con, key, fact_dates, with_chart=with_chart)
                unique_id = event.metadata.get("unique_id")
                if unique_id is not None and _relation(key):
                    extra.update(
                        column_lineage(
                            con,
                            getattr(unique_id, "value", unique_id),
                            invocation.manifest,
                            translator,
                            invocation.target_path,
                            dbt_project,
                        )
                    )
                event = event.with_metadata({**event.metadata, **extra})
            yield event
        if failure is None and after is not None:
            after(con)
    if failure is not None:
        raise failure


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
    finish = window.finish_daily_run if FCT_DAILY_KEY in context.selected_asset_keys else None
    yield from _invoke(context, dbt, warehouse, after=finish, fact_dates=load_dates)


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
    finish = window.finish_marts_run if consumes_queues else None
    yield from _invoke(context, dbt, warehouse, after=finish)


dbt_model_assets = [app_dbt_models, daily_dbt_models, marts_dbt_models]
