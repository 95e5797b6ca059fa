"""The marts' invariants are dbt tests that fail when a mart breaks them (issue 15, item 3).

The session's clean build passes them (every end-to-end build runs them). Here a copy of it is
corrupted, one invariant per change, and `dbt test` over the three marts must fail exactly the
invariant each change breaks, with the number of offending rows worked out from the change.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from expplatform_tests.e2e import run_dbt

pytestmark = pytest.mark.slow

ALLOCATION = "marts.mart_experiment_allocation_daily"
HEALTH = "marts.mart_experiment_health_daily"
BY_TIER = "marts.mart_experiment_health_by_tier_daily"


def corrupt(con: duckdb.DuckDBPyConnection) -> None:
    """Four changes; the comments say which invariant each breaks and on how many rows."""
    # A group (experiment, variation, tier) with rows on two dates or more; its first row's
    # cumulative users grow by 1000, so its second row is smaller: 1 row decreases. The
    # experiment's (and the tier's) total on that date no longer matches the health marts':
    # 1 row in each.
    group = con.execute(
        f"""
        select experiment_key, variation_name, subscription_tier, min(date)
        from {ALLOCATION}
        group by all
        having count(*) >= 2
        order by all
        limit 1
        """
    ).fetchone()
    assert group is not None, "the fixture has a group on two dates"
    con.execute(
        f"update {ALLOCATION} set cumulative_users = cumulative_users + 1000 "
        "where experiment_key = ? and variation_name is not distinct from ? "
        "and subscription_tier = ? and date = ?",
        list(group),
    )
    # A row of another group: more active users than assigned ones (1 row inconsistent).
    con.execute(
        f"""
        update {ALLOCATION} set active_users = cumulative_users + 1
        where (experiment_key, variation_name, subscription_tier, date) = (
            select (experiment_key, variation_name, subscription_tier, date)
            from {ALLOCATION}
            where (experiment_key, variation_name, subscription_tier)
                is distinct from (?, ?, ?)
            order by all
            limit 1
        )
        """,
        list(group[:3]),
    )
    # A p-value above 1 in the overall mart (1 row), and a corrected p-value below the raw one
    # in the per-tier mart (1 row).
    con.execute(
        f"update {HEALTH} set srm_p_value = 1.5 where (experiment_key, date) = "
        f"(select (experiment_key, date) from {HEALTH} order by all limit 1)"
    )
    con.execute(
        f"update {BY_TIER} set srm_p_value_bonferroni = srm_p_value / 2 "
        "where (experiment_key, date, subscription_tier) = ("
        f"select (experiment_key, date, subscription_tier) from {BY_TIER} "
        "where srm_p_value > 0 order by all limit 1)"
    )


def dbt_test_marts(warehouse: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """`dbt test` over the three marts: the process and each test's (status, failing rows)."""
    result = run_dbt(
        [
            "test", "--exclude-resource-type", "unit_test", "--select",
            "mart_experiment_allocation_daily", "mart_experiment_health_daily",
            "mart_experiment_health_by_tier_daily",
        ],
        warehouse,
        tmp_path,
    )  # fmt: skip
    outcomes = {
        r["unique_id"].split(".")[2]: (r["status"], r["failures"])
        for r in json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    }
    return result, outcomes


def test_each_corrupted_invariant_fails_its_test(built, tmp_path: Path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built.duckdb_path, warehouse)
    # the clean build keeps every invariant
    result, outcomes = dbt_test_marts(warehouse, tmp_path / "clean")
    assert result.returncode == 0, result.stdout[-3000:]
    invariants = {name for name in outcomes if name.startswith("mart_")}
    assert len(invariants) == 6 and all(outcomes[n][0] == "pass" for n in invariants)

    con = duckdb.connect(str(warehouse))
    try:
        corrupt(con)
    finally:
        con.close()
    result, outcomes = dbt_test_marts(warehouse, tmp_path / "corrupted")
    assert result.returncode != 0, result.stdout[-3000:]
    failed = {name: failures for name, (status, failures) in outcomes.items() if status != "pass"}
    assert failed == {
        "mart_allocation_cumulative_users_never_decrease": 1,
        "mart_allocation_counts_consistent": 1,
        "mart_health_assigned_users_are_the_allocation_cumulative_users": 1,
        "mart_health_by_tier_assigned_users_are_the_allocation_cumulative_users": 1,
        "mart_health_figures_in_range": 1,
        "mart_health_by_tier_figures_in_range": 1,
    }, result.stdout[-3000:]
