"""The Definitions load and are wired as the platform promises (pools, partitions, groups)."""

from __future__ import annotations

from dagster import AssetKey, BackfillPolicy

from expplatform.config import DUCKDB_POOL
from expplatform.definitions import defs

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


def test_every_contract_table_is_an_asset_in_group_marts():
    graph = defs.resolve_asset_graph()
    marts = {k.path[-1] for k in graph.get_all_asset_keys() if graph.get(k).group_name == "marts"}
    assert CONTRACT_MARTS <= marts


def test_daily_assets_are_partitioned_with_single_run_backfills():
    graph = defs.resolve_asset_graph()
    partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}
    assert partitioned == DAILY
    for key in DAILY:
        policy = graph.get(key).backfill_policy
        assert policy == BackfillPolicy.single_run()


def test_every_warehouse_step_is_in_the_duckdb_pool():
    ops = [assets_def.op for assets_def in defs.assets]
    assert ops and all(op.pool == DUCKDB_POOL for op in ops), [op.name for op in ops]


def test_groups_are_the_layers():
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"raw", "staging", "intermediate", "marts", "registry"}


def test_every_asset_has_a_description_owner_kinds_and_columns():
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.description, name
        assert spec.owners, name
        assert spec.kinds & {"duckdb", "dbt", "python"}, name
        if spec.key.path[0] in ("raw", "marts"):
            schema = spec.metadata.get("dagster/column_schema")
            assert schema is not None and schema.columns, name
            assert all(c.description for c in schema.columns if c.name.startswith("_")), name
