"""The dbt docs are complete and build offline.

Every model, seed, source table, analysis and exposure, and every column of them, has a
description (checked on the manifest `expplatform prepare` builds), every column that really
exists in the warehouse is documented (checked on the catalog of `dbt docs generate` run on a
copy of a built warehouse), and `dbt docs generate` needs no network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from expplatform.config import DBT_PROJECT_DIR
from expplatform.transform.project import dbt_executable, manifest_path
from expplatform.warehouse import connect
from expplatform_tests.e2e import DBT_VARS

DOCUMENTED_TYPES = ("model", "seed", "analysis")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(manifest_path(DBT_PROJECT_DIR).read_text())


def _documented(manifest: dict) -> dict[str, dict]:
    """Every node that must carry docs: models, seeds, analyses, source tables, exposures."""
    nodes = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in DOCUMENTED_TYPES
    }
    return {**nodes, **manifest["sources"], **manifest["exposures"]}


def test_every_node_and_column_is_described(manifest):
    documented = _documented(manifest)
    assert {n["resource_type"] for n in documented.values()} == {
        "model", "seed", "analysis", "source", "exposure",
    }  # fmt: skip
    missing = [uid for uid, node in documented.items() if not node["description"].strip()]
    missing += [
        f"{uid}.{column}"
        for uid, node in documented.items()
        for column, props in node.get("columns", {}).items()
        if not (props.get("description") or "").strip()
    ]
    assert not missing, missing
    # and no node is documented without its columns (a YAML entry that lists none)
    without_columns = [
        uid
        for uid, node in documented.items()
        if node["resource_type"] != "exposure" and not node.get("columns")
    ]
    assert not without_columns, without_columns


def test_source_descriptions(manifest):
    """Each source (not only its tables) says what system it is."""
    sources = {
        node["source_name"]: node["source_description"] for node in manifest["sources"].values()
    }
    assert sources and all(d.strip() for d in sources.values()), sources


def test_one_yaml_per_folder(manifest):
    """Models are documented in their own folder's `_<folder>__models.yml` (STYLE.md)."""
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] != "model":
            continue
        sql = Path(node["original_file_path"])
        yml = Path(node["patch_path"].split("://", 1)[1])
        assert yml.parent == sql.parent, uid
        assert re.fullmatch(r"_[a-z]+__models\.yml", yml.name), uid
    folders = {Path(n["original_file_path"]).parent for n in manifest["nodes"].values()
               if n["resource_type"] == "model"}  # fmt: skip
    for folder in folders:
        assert len(list((DBT_PROJECT_DIR / folder).glob("_*__models.yml"))) == 1, folder


def test_the_dashboard_is_an_exposure_of_the_marts(manifest):
    (exposure,) = [
        e for e in manifest["exposures"].values() if e["name"] == "experiment_allocation_dashboard"
    ]
    assert exposure["type"] == "dashboard"
    assert exposure["owner"]["name"]
    parents = {manifest["nodes"][uid]["name"] for uid in exposure["depends_on"]["nodes"]}
    assert {"mart_experiment_allocation_daily", "mart_experiment_health_daily"} <= parents


@pytest.mark.slow
def test_dbt_docs_generate_offline_documents_every_warehouse_column(built, tmp_path: Path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built.duckdb_path, warehouse)
    dead_proxy = "http://127.0.0.1:9"  # any attempt to reach the network fails
    result = subprocess.run(
        [
            dbt_executable(), "docs", "generate", "--static",
            "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target", "duckdb", "--vars", DBT_VARS, "--target-path", str(tmp_path / "target"),
            "--log-path", str(tmp_path / "logs"),
        ],
        env={
            **os.environ,
            "EXPPLATFORM_DUCKDB_PATH": str(warehouse),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "HTTP_PROXY": dead_proxy,
            "HTTPS_PROXY": dead_proxy,
            "http_proxy": dead_proxy,
            "https_proxy": dead_proxy,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    target = tmp_path / "target"
    # the static page embeds manifest and catalog and loads nothing from the internet
    page = (target / "static_index.html").read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", page)
    # the analyses compile
    compiled = target / "compiled" / "expplatform" / "analyses"
    assert {p.stem for p in compiled.glob("*.sql")} >= {
        "allocation_dashboard_original",
        "allocation_dashboard_corrected",
    }

    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    assert not catalog.get("errors"), catalog["errors"]
    relations = {
        uid: node
        for uid, node in {**manifest["nodes"], **manifest["sources"]}.items()
        if node["resource_type"] in ("model", "seed", "source")
    }
    # every model, seed and source table exists in the built warehouse ...
    in_catalog = {**catalog["nodes"], **catalog["sources"]}
    assert set(relations) <= set(in_catalog), sorted(set(relations) - set(in_catalog))
    # ... and each of its real columns is documented
    undocumented = [
        f"{uid}.{column}"
        for uid in relations
        for column in in_catalog[uid]["columns"]
        if not (relations[uid]["columns"].get(column, {}).get("description") or "").strip()
    ]
    assert not undocumented, undocumented


@pytest.mark.slow
def test_data_model_example_queries_run(built):
    """docs/DATA_MODEL.md's example queries run as printed and answer something."""
    text = (DBT_PROJECT_DIR.parent / "docs" / "DATA_MODEL.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    assert len(queries) >= 4
    with connect(built.duckdb_path, read_only=True) as con:
        for sql in queries:
            assert con.execute(sql).fetchall(), sql
