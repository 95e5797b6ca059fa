"""What the UI shows: materialization metadata and the allocation chart (on the e2e fixture)."""

from __future__ import annotations

import base64
import math
import subprocess
import sys
from datetime import date

import duckdb
import pytest

from expplatform.transform.metadata import (
    allocation_preview,
    daily_fact_metadata,
    health_metadata,
    row_count,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def con(built):
    connection = duckdb.connect(str(built.duckdb_path), read_only=True)
    yield connection
    connection.close()


def test_daily_fact_metadata_for_one_day(con):
    # 2025-12-02 in test_models_e2e.EXPECTED_DAILY: u-1 1, u-3 1, u-4 1, u-7 1, u-8 2 exposures;
    # first seen that day: u-7 and u-8, both treatment.
    metadata = daily_fact_metadata(con, [date(2025, 12, 2)])
    assert metadata["exposures"].value == 6
    assert metadata["active_users"].value == 5
    assert metadata["new_users__vault_launch__treatment"].value == 2
    assert "new_users__vault_launch__control" not in metadata


def test_row_counts_and_previews(con):
    assert row_count(con, "marts.fct_experiment_assignments") == 8
    assert row_count(con, "marts.no_such_table") is None
    preview = allocation_preview(con)["latest_allocation"].value
    assert "| vault-launch | 2025-12-03 | treatment | unknown | 1 | 3 | 1 |" in preview
    health = health_metadata(con)
    assert health["assigned_users__vault_launch"].value == 8
    assert health["srm_p_value__vault_launch"].value == pytest.approx(math.erfc(math.sqrt(0.1)))
    chart = health["allocation_chart"].value
    assert chart.startswith("![allocation of vault-launch](data:image/png;base64,")
    png = base64.b64decode(chart.split("base64,", 1)[1].rstrip(")"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_chart_writes_a_png(built, tmp_path):
    out = tmp_path / "chart.png"
    result = subprocess.run(
        [sys.executable, "-m", "expplatform.cli", "report", "--experiment", "vault-launch",
         "--by", "tier", "--chart", str(out)],
        capture_output=True, text=True, timeout=120,
        env={"EXPPLATFORM_DUCKDB_PATH": str(built.duckdb_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000  # a real figure, not an empty canvas


def test_dbt_materializations_carry_row_counts_and_column_lineage(tmp_path):
    """One real run: the assignments' materialization shows its rows and where columns come from."""
    from dagster import AssetKey, instance_for_test

    from expplatform_tests.e2e import make_settings, run_range
    from expplatform_tests.test_models_e2e import D, build_fixture

    landing = tmp_path / "landing"
    build_fixture(landing)
    with instance_for_test() as instance:
        run_range(make_settings(tmp_path, landing), instance, D[1], D[4])
        event = instance.get_latest_materialization_event(
            AssetKey(["marts", "fct_experiment_assignments"])
        )
        metadata = event.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == 8  # the eight assigned users
        lineage = metadata["dagster/column_lineage"].value.deps_by_column
        assert {(d.asset_key.path[-1], d.column_name) for d in lineage["user_id"]} == {
            ("fct_experiment_exposures_daily", "user_id")
        }
        assert ("experiment_variations", "is_treatment") in {
            (d.asset_key.path[-1], d.column_name) for d in lineage["is_treatment"]
        }
