"""The dbt models as Dagster assets: one step, one `dbt build`, run inside the run's process.

All models and the registry seeds are one multi-asset (`dbt_models`, groups staging,
intermediate, marts, registry). Models tagged `daily` in dbt (the exposures per user and day)
are partitioned by arrival date with single-run backfills; the others (dimensions,
assignments, marts) are not partitioned — they are rebuilt (incrementally) for whatever the run
changed. One invocation instead of one per partitioning costs one dbt start-up per run; the
bookkeeping between the daily models and the marts is done by two model hooks inside the build
(dbt_project/macros/incremental_windows.sql).

The step:
1. writes the recompute window of its arrival dates (`ops.*`, expplatform.transform.window);
2. runs `dbt build` of exactly the selected models and tests (expplatform.transform.dbt_runner);
3. reports each built model with its metadata (each partition of a range its own figures) and
   each test as an asset check, and records the check results;
4. evaluates the Python checks of the marts (expplatform.quality.checks);
5. advances the bookkeeping only if dbt succeeded.
"""

import time
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    multi_asset,
)
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from expplatform import catalog
from expplatform.config import DUCKDB_POOL, ConfigError, Settings
from expplatform.partitions import dates_in_window
from expplatform.quality import checks
from expplatform.resources import LandingZoneResource, ServingResource
from expplatform.sources import SourceRegistry
from expplatform.transform import window
from expplatform.transform.dbt_runner import Invocation, NodeResult, is_busy
from expplatform.transform.metadata import (
    allocation_preview,
    column_schema,
    daily_fact_metadata,
    health_metadata,
    per_partition_row_counts,
    row_count,
)
from expplatform.transform.project import DbtResource, load_manifest
from expplatform.warehouse import WarehouseResource, retry_while_locked

LAYERS = ("staging", "intermediate", "marts")
OWNERS = ["team:experimentation-data"]
UNIQUE_ID = "dagster_dbt/unique_id"
#: dbt opens the warehouse once, at start-up: when another process (an analyst's notebook on
#: the warehouse file) holds it then, dbt fails before building anything and is started again
#: (warehouse.retry_while_locked) for up to this long.
DBT_LOCK_WAIT_SECONDS = 60.0
#: The models whose build consumes the marts' queues (emptied only when both built).
QUEUE_CONSUMERS = {catalog.FCT_ASSIGNMENTS_KEY, catalog.INT_ACTIVITY_KEY}
#: Date column of each partitioned table, for its per-partition row counts.
PARTITIONED_DATE_COLUMNS = {
    catalog.asset_key(catalog.INT_EXPERIMENT_USER_DAYS): "exposure_date",
}


def layer_of(dbt_resource_props: Mapping[str, Any]) -> str:
    """The layer of a dbt node: its first folder under models/ (seeds are the registry)."""
    if dbt_resource_props["resource_type"] == "seed":
        return "registry"
    for part in dbt_resource_props.get("fqn", [])[1:]:
        if part in LAYERS:
            return part
    return "marts"


class ExpplatformDbtTranslator(DagsterDbtTranslator):
    """Asset keys `[layer, relation]`, groups by layer, `daily` models partitioned by arrival date.

    The ops bookkeeping tables are sources of the models but not assets.
    """

    def __init__(self, partitions_def: PartitionsDefinition) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.partitions_def = partitions_def

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        # The relation's name (dbt's alias), not the model's: all versions of a versioned mart
        # share one name, and the latest is materialized under it while an older one is
        # `<name>_v<N>` (macros/generate_alias_name.sql).
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
        spec = spec.replace_attributes(deps=deps, kinds={"dbt", "duckdb"})
        node = manifest["nodes"].get(unique_id) or {}
        if "daily" in node.get("tags", []):
            spec = spec.replace_attributes(partitions_def=self.partitions_def)
        return spec


def summary(invocation: Invocation, seconds: float) -> str:
    """One line for the run's log: what dbt built, how long it took, its slowest nodes."""
    counts: dict[str, int] = {}
    for r in invocation.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    slowest = sorted(invocation.results, key=lambda r: -r.execution_time)[:3]
    return (
        f"dbt build: {len(invocation.results)} node(s) in {seconds:.1f}s ("
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + "); slowest: "
        + ", ".join(f"{r.name} {r.execution_time:.2f}s" for r in slowest)
    )


def _relation(key: AssetKey) -> str | None:
    """The warehouse table of a dbt asset; None for views (counting them re-reads raw)."""
    layer, name = key.path[0], key.path[-1]
    if layer == "staging":
        return None
    return f"{'seeds' if layer == 'registry' else layer}.{name}"


def _check_result(result: NodeResult, check_key: AssetCheckKey) -> AssetCheckResult:
    passed = result.status in ("pass", "success")
    severity = AssetCheckSeverity.WARN if result.severity == "warn" else AssetCheckSeverity.ERROR
    metadata: dict[str, Any] = {
        "status": MetadataValue.text(result.status),
        "execution_duration_s": MetadataValue.float(round(result.execution_time, 3)),
    }
    if result.failures is not None:
        metadata["failing_rows"] = MetadataValue.int(int(result.failures))
    description = None
    if not passed:
        description = _failing(result)
    return AssetCheckResult(
        asset_key=check_key.asset_key,
        check_name=check_key.name,
        passed=passed,
        severity=severity,
        description=description,
        metadata=metadata,
    )


def _failing(result: NodeResult) -> str:
    """What a failed (or warning) dbt test found: its row count, else dbt's message."""
    if result.failures is not None and result.status in ("fail", "warn"):
        return f"{result.failures} failing row(s)"
    return (result.message or result.status).strip()


def build_dbt_assets(
    settings: Settings,
    registry: SourceRegistry,
    partitions_def: PartitionsDefinition,
    pool: str | None = DUCKDB_POOL,
) -> AssetsDefinition:
    """The dbt multi-asset of the project in `settings` (its manifest must have been built)."""
    manifest = load_manifest(settings.dbt_project_dir)
    translator = ExpplatformDbtTranslator(partitions_def)

    # dagster-dbt turns the manifest into asset and check specs; the step itself is ours.
    @dbt_assets(
        manifest=manifest, select="fqn:*", name="dbt_models", dagster_dbt_translator=translator
    )
    def _template(context: AssetExecutionContext):  # pragma: no cover - never executed
        return None

    specs = list(_template.specs)
    dbt_check_specs = list(_template.check_specs)
    nodes = {**manifest["nodes"], **manifest.get("sources", {})}
    selector_of_asset = {
        spec.key: ".".join(nodes[spec.metadata[UNIQUE_ID]]["fqn"]) for spec in specs
    }
    test_of_check = {spec.key: nodes[spec.metadata[UNIQUE_ID]] for spec in dbt_check_specs}
    check_of_test = {node["unique_id"]: key for key, node in test_of_check.items()}
    # The registry's validation (tests on the seeds): a failure stops the run with the rule.
    rule_of = {
        node["unique_id"]: (node.get("description") or node["name"]).rstrip(".")
        for key, node in test_of_check.items()
        if key.asset_key.path[0] == "registry"
    }
    asset_of_node = {spec.metadata[UNIQUE_ID]: spec.key for spec in specs}
    partitioned = {spec.key for spec in specs if spec.partitions_def is not None}
    fct_key = catalog.FCT_EXPOSURES_DAILY_KEY

    @multi_asset(
        name="dbt_models",
        specs=specs,
        check_specs=[*dbt_check_specs, *checks.MART_CHECK_SPECS],
        can_subset=True,
        backfill_policy=BackfillPolicy.single_run(),
        pool=pool,
        op_tags={"dagster/kind/dbt": "", "dagster/kind/duckdb": ""},
    )
    def dbt_models(
        context: AssetExecutionContext,
        warehouse: WarehouseResource,
        dbt: DbtResource,
        landing: LandingZoneResource,
        serving: ServingResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        selected = set(context.selected_asset_keys)
        selected_checks = set(context.selected_asset_check_keys)
        daily = bool(selected & partitioned) and (
            context.has_partition_key or context.has_partition_key_range
        )
        load_dates: list[date] = dates_in_window(context.partition_time_window) if daily else []
        dbt_env = settings.dbt_env()
        dev = settings.dbt_target == "dev"
        if daily or dev:  # else the warehouse is first opened by dbt (which retries a lock)
            with warehouse.connect(on_wait=context.log.info) as con:
                if daily:
                    recomputed = window.prepare_daily_run(
                        con, registry, load_dates, landing.lookback_days
                    )
                if dev:
                    dbt_env |= window.dev_window_env(con, registry, settings)
        if daily:
            context.log.info(
                f"arrival dates {load_dates[0]} .. {load_dates[-1]}: recomputing "
                f"{len(recomputed)} event date(s) {recomputed[0]} .. {recomputed[-1]}"
            )
        select = sorted(selector_of_asset[k] for k in selected) + sorted(
            ".".join(test_of_check[k]["fqn"]) for k in selected_checks if k in test_of_check
        )
        invocation = Invocation((), None)
        if select:
            started = time.monotonic()
            invocation = retry_while_locked(
                lambda: dbt.build(select, dbt_env, log=context.log.info),
                warehouse.database_path,
                locked=is_busy,
                wait_seconds=DBT_LOCK_WAIT_SECONDS,
                on_wait=context.log.warning,
                who="dbt",
            )
            context.log.info(summary(invocation, time.monotonic() - started))
        # in dbt's execution order: Dagster wants a multi-asset's outputs in topological order
        built_in_order = [
            asset_of_node[r.unique_id]
            for r in invocation.results
            if r.unique_id in asset_of_node and r.status == "success"
        ]
        built = set(built_in_order)
        failed = invocation.failed
        invalid = [  # the registry's rules it breaks
            r
            for r in invocation.results
            if r.status in ("fail", "error") and r.unique_id in rule_of
        ]
        results: list[AssetCheckResult] = []
        with warehouse.connect(on_wait=context.log.info) as con:
            for key in built_in_order:
                metadata = _asset_metadata(con, key, serving.pages_url)
                if key in partitioned and load_dates:
                    _add_partition_metadata(context, con, key, load_dates)
                yield MaterializeResult(asset_key=key, metadata=metadata)
            for r in invocation.results:
                check_key = check_of_test.get(r.unique_id)
                if check_key is not None and check_key in selected_checks and r.status != "skipped":
                    results.append(_check_result(r, check_key))
            if invocation.error is None and not failed and not invalid:
                results += checks.evaluate_mart_checks(con, selected_checks, registry)
                if fct_key in built:
                    window.finish_daily_run(con)
                if QUEUE_CONSUMERS <= built:
                    window.finish_marts(con)
            checks.record_results(con, results, context.run_id)
        yield from results
        if invocation.error is not None:
            raise invocation.error
        if invalid:
            raise ConfigError(
                "the experiment registry (dbt_project/seeds/experiments.csv and "
                "experiment_variations.csv) breaks "
                + "; ".join(f"{rule_of[r.unique_id]} ({r.name}: {_failing(r)})" for r in invalid)
                + ": no model that reads the registry was built; correct the CSV files and run again"
            )
        if failed:
            raise RuntimeError(
                "dbt build failed: "
                + "; ".join(f"{r.name}: {(r.message or r.status).strip()}" for r in failed)
            )

    return dbt_models


def _asset_metadata(con: Any, key: AssetKey, pages_url: str) -> dict[str, Any]:
    relation = _relation(key)
    metadata: dict[str, Any] = {}
    if relation is None:
        return metadata
    if key not in PARTITIONED_DATE_COLUMNS and key != catalog.FCT_EXPOSURES_DAILY_KEY:
        rows = row_count(con, relation)
        if rows is not None:
            metadata["dagster/row_count"] = MetadataValue.int(rows)
    schema = column_schema(con, relation)
    if schema is not None:
        metadata["dagster/column_schema"] = schema
    if key == catalog.MART_ALLOCATION_KEY:
        metadata.update(allocation_preview(con))
    elif key == catalog.MART_HEALTH_KEY:
        metadata.update(health_metadata(con, pages_url))
    return metadata


def _add_partition_metadata(
    context: AssetExecutionContext, con: Any, key: AssetKey, load_dates: list[date]
) -> None:
    if key == catalog.FCT_EXPOSURES_DAILY_KEY:
        per_date = daily_fact_metadata(con, load_dates)
    elif key in PARTITIONED_DATE_COLUMNS:
        per_date = per_partition_row_counts(
            con, _relation(key) or "", PARTITIONED_DATE_COLUMNS[key], load_dates
        )
    else:
        return
    for day, metadata in per_date.items():
        if metadata:
            context.add_asset_metadata(metadata, asset_key=key, partition_key=day.isoformat())
