"""The marts are versioned dbt models with enforced contracts, and a rename breaks no one.

- Every model of models/marts/ is versioned, public and contract-enforced; its latest version
  is materialized under the contract's table name and keeps the Dagster key `[marts, <name>]`.
- The rename exercise of docs/CHANGING_MARTS.md, on a copy of the project and of a built
  warehouse: v2 of the allocation mart renames a column, v1 is kept as a view under the old
  name; v1 still answers with the old column and the same numbers, v2 with the new column.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey
from dagster_dbt import build_dbt_asset_specs

from expplatform.config import DBT_PROJECT_DIR
from expplatform.partitions import build_daily_partitions
from expplatform.transform.assets import ExpplatformDbtTranslator
from expplatform.transform.project import dbt_executable, manifest_path
from expplatform_tests.e2e import CONTRACT_TABLES, DBT_VARS, copy_dbt_project

MART = "mart_experiment_allocation_daily"
OLD, NEW = "new_users", "newly_assigned_users"


def marts_models(manifest: dict) -> list[dict]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1] == "marts"
    ]


def assert_versioned_marts(manifest: dict) -> None:
    """Every mart versioned, public, contracted; the latest under the contract's name."""
    models = marts_models(manifest)
    assert {m["name"] for m in models} >= set(CONTRACT_TABLES)
    for model in models:
        name = model["name"]
        assert model["version"] is not None and model["latest_version"] is not None, name
        assert model["contract"]["enforced"], name
        assert model["access"] == "public", name
        if model["version"] == model["latest_version"]:
            # the latest version is the contract table itself, not `<name>_v<N>`
            assert (model["schema"], model["alias"]) == ("marts", name)
            assert model["relation_name"].endswith(f'."marts"."{name}"'), model["relation_name"]
        elif float(model["version"]) < float(model["latest_version"]):
            # an old version kept for its readers says until when (dbt warns whoever refs it)
            assert model["deprecation_date"], name
            assert model["alias"] == f"{name}_v{model['version']}", name


def test_every_mart_is_versioned_public_and_contracted():
    assert_versioned_marts(json.loads(manifest_path(DBT_PROJECT_DIR).read_text()))


def test_asset_keys_follow_the_relations():
    """The latest version keeps `[marts, <name>]` (checks, sensors and tests use it); an older
    version served alongside is its own asset, `[marts, <name>_v<N>]`."""
    from expplatform.definitions import build_definitions

    keys = build_definitions().resolve_asset_graph().get_all_asset_keys()
    models = marts_models(json.loads(manifest_path(DBT_PROJECT_DIR).read_text()))
    expected = {AssetKey(["marts", model["alias"]]) for model in models}
    assert len(expected) == len(models)  # no two versions share a key
    assert expected <= keys
    latest = {AssetKey(["marts", m["name"]]) for m in models if m["version"] == m["latest_version"]}
    assert latest <= expected


def rename_exercise(project: Path, deprecation_date: date) -> None:
    """docs/CHANGING_MARTS.md, steps 1-3: rename MART's OLD column to NEW in a v2, keep v1."""

    def replace_once(path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert text.count(old) == 1, (path, old)
        path.write_text(text.replace(old, new))

    marts = project / "models" / "marts"
    # 1. the latest version (the unsuffixed file) gets the new name
    replace_once(marts / f"{MART}.sql", f"daily.{OLD},\n", f"daily.{OLD} as {NEW},\n")
    # 2. v1 becomes a view on v2 with the old name, in its own file
    (marts / f"{MART}_v1.sql").write_text(
        f"""{{{{ config(materialized='view', tags=['marts']) }}}}

-- v1 of {MART}, kept until its deprecation_date: v2 under the old column names.
select
    experiment_key,
    date,
    variation_name,
    is_treatment,
    subscription_tier,
    {NEW} as {OLD},
    cumulative_users,
    active_users,
    exposures

from {{{{ ref('{MART}', v=2) }}}}
"""
    )
    # 3. the YAML: v2 is the latest and documents the new column; v1 swaps it back
    yml = marts / "_marts__models.yml"
    replace_once(
        yml,
        f"  - name: {MART}\n    latest_version: 1\n    versions:\n      - v: 1\n",
        f"""  - name: {MART}
    latest_version: 2
    versions:
      - v: 2
      - v: 1
        deprecation_date: {deprecation_date.isoformat()}
        columns:
          - include: all
            exclude: [{NEW}]
          - name: {OLD}
            data_type: bigint
            description: Users whose assignment_date is the date (v2 calls it {NEW}).
""",
    )
    replace_once(
        yml,
        f"      - name: {OLD}\n        data_type: bigint\n",
        f"      - name: {NEW}\n        data_type: bigint\n",
    )


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        name
        for (name,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = ? order by ordinal_position",
            [table],
        ).fetchall()
    ]


@pytest.mark.slow
def test_old_version_still_answers_after_a_column_rename(built, tmp_path: Path):
    project = copy_dbt_project(tmp_path)
    rename_exercise(project, date.today() + timedelta(days=90))
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built.duckdb_path, warehouse)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        before_columns = columns(con, MART)
        before = con.execute(f"select * from marts.{MART} order by all").fetchall()
    finally:
        con.close()
    assert OLD in before_columns and before

    # building the mart selects both of its versions (and their tests)
    result = subprocess.run(
        [
            dbt_executable(), "build", "--select", MART, "--exclude-resource-type", "unit_test",
            "--project-dir", str(project), "--profiles-dir", str(project),
            "--target", "duckdb", "--vars", DBT_VARS, "--target-path", str(tmp_path / "target"),
            "--log-path", str(tmp_path / "logs"),
        ],
        env={
            **os.environ,
            "EXPPLATFORM_DUCKDB_PATH": str(warehouse),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        # v1, the view kept for old consumers: the old columns, in the old order, same numbers
        assert columns(con, f"{MART}_v1") == before_columns
        assert con.execute(f"select * from marts.{MART}_v1 order by all").fetchall() == before
        assert con.execute(
            "select table_type from information_schema.tables "
            "where table_schema = 'marts' and table_name = ?",
            [f"{MART}_v1"],
        ).fetchone() == ("VIEW",)
        # v2, the contract table's name: the new column name, same numbers
        after_columns = columns(con, MART)
        assert after_columns == [NEW if c == OLD else c for c in before_columns]
        assert con.execute(f"select * from marts.{MART} order by all").fetchall() == before
    finally:
        con.close()

    # Dagster: v2 keeps the key everything uses, v1 is its own asset downstream of it
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert_versioned_marts(manifest)
    v1 = manifest["nodes"][f"model.expplatform.{MART}.v1"]
    assert v1["deprecation_date"] and v1["config"]["materialized"] == "view"
    specs = {
        spec.key: spec
        for spec in build_dbt_asset_specs(
            manifest=manifest,
            dagster_dbt_translator=ExpplatformDbtTranslator(
                build_daily_partitions(date(2025, 12, 1))
            ),
            select="tag:marts",
        )
    }
    v2_key, v1_key = AssetKey(["marts", MART]), AssetKey(["marts", f"{MART}_v1"])
    assert {key for key in specs if MART in key.path[-1]} == {v2_key, v1_key}
    assert v2_key in {dep.asset_key for dep in specs[v1_key].deps}
