"""dbt's own unit tests (given/expect rows in the models' YAML) run as part of `make test`.

They cover the rules that are easy to get wrong: first-exposure tie-breaks, tier at a point in
time, the multiple-variation flag, test-account exclusion, retraction and duplicates, and the
experiment date window.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from expplatform.catalog import ddl
from expplatform.config import DBT_PROJECT_DIR
from expplatform_tests.e2e import run_dbt


@pytest.mark.slow
def test_dbt_unit_tests_pass(tmp_path: Path):
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute(ddl())  # the raw and ops tables the models read
    con.close()
    result = run_dbt(["build", "--empty"], warehouse, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    # Unit tests need their parents to exist: `build --empty` creates every model with no rows
    # and runs each model's unit tests right before it. Check they really ran and passed.
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    unit = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    # every unit test written in the models' YAML ran (none silently deselected), and passed
    written = {
        test["name"]
        for path in (DBT_PROJECT_DIR / "models").rglob("*.yml")
        for test in (yaml.safe_load(path.read_text()) or {}).get("unit_tests", [])
    }
    # a unit test of a versioned model is named <test>_v<N> in its unique id
    ran = {re.sub(r"_v\d+$", "", unique_id.rsplit(".", 1)[-1]) for unique_id in unit}
    assert len(written) == 11 and ran == written, (sorted(ran), sorted(written))
    assert set(unit.values()) == {"pass"}, unit
