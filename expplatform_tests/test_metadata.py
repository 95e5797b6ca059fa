"""What the UI shows: each partition's own figures after a single-run backfill, numbers for people.

The fixture is test_models_e2e's hand-made landing zone, built 2025-12-01..04 in one run (the
`built` fixture). Before issue 16, every partition of a range run carried the whole run's totals.
"""

from __future__ import annotations

import math
from datetime import date

import duckdb
import pytest
from dagster import AssetKey, AssetRecordsFilter

from expplatform.transform.metadata import (
    allocation_preview,
    daily_fact_metadata,
    health_metadata,
    row_count,
    significant,
)
from expplatform_tests.e2e import data_instance, make_settings, run_range
from expplatform_tests.test_models_e2e import D, build_fixture

pytestmark = pytest.mark.slow

FCT = AssetKey(["marts", "fct_experiment_exposures_daily"])
LD_RAW = AssetKey(["raw", "partner_directpush_launchdarkly_events"])
PAGES = "http://pages.example:3001"

#: Worked out from test_models_e2e.EXPECTED_DAILY / EXPECTED_ASSIGNMENTS, day by day.
EXPECTED_PER_PARTITION = {
    # rows (users with a daily row), exposures, new users per (experiment, variation)
    "2025-12-01": (5, 8, {"vault_launch__control": 3, "vault_launch__treatment": 2}),
    "2025-12-02": (5, 6, {"vault_launch__treatment": 2}),
    "2025-12-03": (3, 4, {"vault_launch__treatment": 1}),
    "2025-12-04": (0, 0, {}),
}
#: Lines of each LaunchDarkly arrival folder of build_fixture (every line is loaded).
LD_LINES = {"2025-12-01": 11, "2025-12-02": 7, "2025-12-03": 3, "2025-12-04": 1}


@pytest.fixture(scope="module")
def materializations(tmp_path_factory):
    """The latest materialization of each partition of the fact and the raw table, from one run."""
    tmp = tmp_path_factory.mktemp("metadata")
    landing = tmp / "landing"
    build_fixture(landing)
    with data_instance() as instance:
        run_range(make_settings(tmp, landing), instance, D[1], D[4])
        found = {}
        for key in (FCT, LD_RAW):
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key), limit=50
            ).records
            for record in records:
                found.setdefault((key, record.partition_key), record.asset_materialization.metadata)
    return found


@pytest.mark.parametrize("partition", sorted(EXPECTED_PER_PARTITION))
def test_each_partition_of_a_range_run_carries_its_own_figures(materializations, partition):
    rows, exposures, new_users = EXPECTED_PER_PARTITION[partition]
    metadata = materializations[(FCT, partition)]
    assert metadata["dagster/row_count"].value == rows
    assert metadata["exposures"].value == exposures
    assert metadata["active_users"].value == rows  # one row per active user and day
    got = {
        k.removeprefix("new_users__"): v.value
        for k, v in metadata.items()
        if k.startswith("new_users__")
    }
    assert got == new_users


def test_raw_partitions_carry_their_own_lines(materializations):
    for partition, lines in LD_LINES.items():
        metadata = materializations[(LD_RAW, partition)]
        assert metadata["lines"].value == lines
        assert metadata["rows_loaded"].value == lines
        assert metadata["files"].value == 1
        assert metadata["arrival_dates"].value == partition


@pytest.fixture
def con(built):
    connection = duckdb.connect(str(built.duckdb_path), read_only=True)
    yield connection
    connection.close()


def test_daily_fact_metadata_for_one_day(con):
    # 2025-12-02 in test_models_e2e.EXPECTED_DAILY: u-1 1, u-3 1, u-4 1, u-7 1, u-8 2 exposures;
    # assigned that day: u-7 and u-8, both treatment.
    metadata = daily_fact_metadata(con, [date(2025, 12, 2)])[date(2025, 12, 2)]
    assert metadata["exposures"].value == 6
    assert metadata["active_users"].value == 5
    assert metadata["new_users__vault_launch__treatment"].value == 2
    assert "new_users__vault_launch__control" not in metadata


def test_numbers_for_people():
    assert significant(0.7518296340458492) == "0.752"
    assert significant(2.539e-10) == "2.54e-10"
    assert significant(None) == "n/a"


def test_row_counts_previews_and_links(con):
    assert row_count(con, "marts.fct_experiment_assignments") == 8
    assert row_count(con, "marts.no_such_table") is None
    preview = allocation_preview(con)["latest_allocation"].value
    assert "| vault-launch | 2025-12-03 | treatment | unknown | 1 | 3 | 1 |" in preview
    health = health_metadata(con, PAGES)
    assert health["assigned_users__vault_launch"].value == 8
    # chi-square 0.2 with one degree of freedom (EXPECTED_HEALTH): p = erfc(sqrt(0.1)), shown
    # rounded to three significant digits
    p = math.erfc(math.sqrt(0.1))
    assert health["srm_p_value__vault_launch"].value == float(f"{p:.3g}")
    assert health["health_page__vault_launch"].value == f"{PAGES}/experiments/vault-launch.html"
    assert f"[vault-launch]({PAGES}/experiments/vault-launch.html)" in health["latest_health"].value
    assert f"| {p:.3g} |" in health["latest_health"].value
