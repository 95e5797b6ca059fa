"""Experiment health end to end: the real dbt health marts and the checks that read them.

- The two health marts are built by the real dbt models (one `dbt build` of just
  those two models) over hand-made assignments, and compared with chi-square,
  p-values (erfc, independent of scipy) and Bonferroni corrections worked out by hand.
- The per-tier mart of the hand-made end-to-end fixture (conftest `built`).
- One Dagster run of a partition on a copy of that build: every Python check runs,
  with the results the fixture implies.
"""

from __future__ import annotations

import math
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster import AssetCheckSeverity

from expplatform.quality import checks as qc
from expplatform.warehouse import connect
from expplatform_tests.e2e import data_instance, make_settings, query, run_dbt

pytestmark = pytest.mark.slow

D1, D2, D3, D4 = (date(2025, 12, n) for n in range(1, 5))


def chi_p(chi: float) -> float:
    """p-value of a chi-square with one degree of freedom (erfc; independent of scipy)."""
    return math.erfc(math.sqrt(chi / 2))


# (experiment, assignment date, tier, variation, has_multiple_variations, users)
ASSIGNMENT_GROUPS = [
    ("exp-unhealthy", D1, "standard", "control", False, 600),
    ("exp-unhealthy", D1, "standard", "treatment", False, 400),
    ("exp-healthy", D1, "plus", "control", False, 505),
    ("exp-healthy", D1, "plus", "treatment", False, 495),
    # exp-tiers: two tiers on 12-01, four on 12-02
    ("exp-tiers", D1, "plus", "control", False, 20),
    ("exp-tiers", D1, "plus", "treatment", False, 40),
    ("exp-tiers", D1, "plus", "treatment", True, 1),
    ("exp-tiers", D1, "premium", "control", False, 8),
    ("exp-tiers", D1, "premium", "treatment", False, 40),
    ("exp-tiers", D2, "standard", "control", False, 200),
    ("exp-tiers", D2, "standard", "treatment", False, 275),
    ("exp-tiers", D2, "unknown", "control", False, 7),
    ("exp-tiers", D2, "unknown", "treatment", False, 9),
]
LAST_DATE = {"exp-unhealthy": D1, "exp-healthy": D1, "exp-tiers": D2}


def build_health_marts(tmp_path: Path) -> Path:
    """A warehouse with the hand-made assignments and both health marts built by dbt."""
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema marts")
    con.execute(
        """
        create table marts.fct_experiment_assignments (
            experiment_key varchar, user_id varchar, assigned_at timestamp, assignment_date date,
            variation_name varchar, is_treatment boolean, subscription_tier varchar,
            has_multiple_variations boolean, exposure_days bigint, last_exposure_date date)
        """
    )
    for experiment, day, tier, variation, multiple, users in ASSIGNMENT_GROUPS:
        con.execute(
            "insert into marts.fct_experiment_assignments select ?, ? || i, ?, ?, ?, ?, ?, ?, 1, ? "
            "from range(?) as t(i)",
            [
                experiment, f"{experiment}-{tier}-{variation}-{multiple}-", day, day, variation,
                variation == "treatment", tier, multiple, LAST_DATE[experiment], users,
            ],
        )  # fmt: skip
    con.execute(
        "create table marts.dim_experiment_variations as select * from (values "
        "('exp-unhealthy', 'control', false, 0.5), ('exp-unhealthy', 'treatment', true, 0.5), "
        # weights 1:1 are normalised to 0.5 each
        "('exp-healthy', 'control', false, 1.0), ('exp-healthy', 'treatment', true, 1.0), "
        "('exp-tiers', 'control', false, 0.5), ('exp-tiers', 'treatment', true, 0.5)"
        ") as v(experiment_key, variation_name, is_treatment, expected_weight)"
    )
    con.close()
    result = run_dbt(
        [
            "build", "--exclude-resource-type", "unit_test",
            "--select", "int_experiment_srm_observed", "mart_experiment_health_daily",
            "mart_experiment_health_by_tier_daily",
            # the marts' tie to the allocation mart, which this warehouse does not have
            "--exclude", "test_name:equals_sum_of",
        ],
        warehouse,
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    return warehouse


@pytest.fixture(scope="module")
def health_warehouse(tmp_path_factory) -> Path:
    return build_health_marts(tmp_path_factory.mktemp("health"))


def test_overall_health_by_hand(health_warehouse):
    rows = query(
        health_warehouse,
        "select experiment_key, date, assigned_users, srm_chi_square, srm_p_value, srm_status "
        "from marts.mart_experiment_health_daily order by 1, 2",
    )
    # 505 vs 495: 2 · 5² / 500 = 0.1; 600 vs 400: 2 · 100² / 500 = 40.
    # exp-tiers, all tiers together: 12-01 control 20 + 8 = 28 vs treatment 40 + 40 = 80 (the
    # multiple-variation user assigned, not tested: 109 assigned), E 54: 2 · 26² / 54; 12-02
    # + 200 + 7 = 235 vs + 275 + 9 = 364 (600 assigned), E 299.5: 2 · 64.5² / 299.5.
    tiers_1, tiers_2 = 2 * 26**2 / 54, 2 * 64.5**2 / 299.5
    assert rows == [
        ("exp-healthy", D1, 1000, pytest.approx(0.1), pytest.approx(chi_p(0.1)), "healthy"),
        ("exp-tiers", D1, 109, pytest.approx(tiers_1), pytest.approx(chi_p(tiers_1)), "unhealthy"),
        ("exp-tiers", D2, 600, pytest.approx(tiers_2), pytest.approx(chi_p(tiers_2)), "unhealthy"),
        ("exp-unhealthy", D1, 1000, pytest.approx(40), pytest.approx(chi_p(40)), "unhealthy"),
    ]


def test_health_by_tier_bonferroni_by_hand(health_warehouse):
    rows = query(
        health_warehouse,
        "select experiment_key, date, subscription_tier, assigned_users, test_users, "
        "srm_chi_square, srm_p_value, srm_p_value_bonferroni, srm_status "
        "from marts.mart_experiment_health_by_tier_daily order by 1, 2, 3",
    )
    # exp-tiers, 50/50, chi-square = 2 · (observed - expected)² / expected:
    plus = 2 * 10**2 / 30  # 20 vs 40 (the multi-variation user left out): 6.67
    premium = 2 * 16**2 / 24  # 8 vs 40: 21.33
    standard = 2 * 37.5**2 / 237.5  # 200 vs 275: 11.84
    unknown = 2 * 1**2 / 8  # 7 vs 9: 0.25
    expected = [
        ("exp-healthy", D1, "plus", 1000, 1000, 0.1, 1, "healthy"),
        ("exp-tiers", D1, "plus", 61, 60, plus, 2, "healthy"),  # p 0.0098 × 2 = 0.0196
        ("exp-tiers", D1, "premium", 48, 48, premium, 2, "unhealthy"),  # 3.9e-6 × 2
        ("exp-tiers", D2, "plus", 61, 60, plus, 4, "healthy"),  # × 4 = 0.039
        ("exp-tiers", D2, "premium", 48, 48, premium, 4, "unhealthy"),
        ("exp-tiers", D2, "standard", 475, 475, standard, 4, "warning"),  # 0.00058 × 4 = 0.0023
        ("exp-tiers", D2, "unknown", 16, 16, unknown, 4, "not_enough_traffic"),  # 7 < 8
        ("exp-unhealthy", D1, "standard", 1000, 1000, 40.0, 1, "unhealthy"),
    ]
    assert len(rows) == len(expected)
    for row, (exp, day, tier, assigned, tested, chi, tiers, status) in zip(
        rows, expected, strict=True
    ):
        assert row[:5] == (exp, day, tier, assigned, tested)
        assert row[5] == pytest.approx(chi)
        assert row[6] == pytest.approx(chi_p(chi))
        assert row[7] == pytest.approx(min(1.0, chi_p(chi) * tiers))
        assert row[8] == status, row
    # the Bonferroni correction is what changes these statuses
    assert 0.001 < chi_p(plus) < 0.01 and chi_p(standard) < 0.001


def test_srm_checks_on_the_dbt_marts(health_warehouse, tmp_path):
    with connect(health_warehouse, read_only=True) as con:
        overall = qc.evaluate_srm(con, [])
        by_tier = qc.evaluate_srm(con, [D1], by_tier=True)
    assert not overall.passed and overall.severity == AssetCheckSeverity.ERROR
    found = {(r["experiment_key"], r["date"]) for r in overall.metadata["findings_json"].value}
    assert ("exp-unhealthy", "2025-12-01") in found
    assert not any(e == "exp-healthy" for e, _ in found)
    assert not by_tier.passed and by_tier.severity == AssetCheckSeverity.ERROR
    tiers = {
        (r["experiment_key"], r["date"], r["subscription_tier"], r["srm_status"])
        for r in by_tier.metadata["findings_json"].value
    }
    # 12-01 is in the window: exp-tiers premium on both dates; its plus tier is healthy
    assert tiers == {
        ("exp-tiers", "2025-12-01", "premium", "unhealthy"),
        ("exp-tiers", "2025-12-02", "premium", "unhealthy"),
        ("exp-tiers", "2025-12-02", "standard", "warning"),
        ("exp-unhealthy", "2025-12-01", "standard", "unhealthy"),
    }

    healthy_only = tmp_path / "healthy.duckdb"
    shutil.copyfile(health_warehouse, healthy_only)
    with connect(healthy_only) as con:
        for table in ("mart_experiment_health_daily", "mart_experiment_health_by_tier_daily"):
            con.execute(f"delete from marts.{table} where experiment_key <> 'exp-healthy'")
        assert qc.evaluate_srm(con, [D1]).passed
        assert qc.evaluate_srm(con, [D1], by_tier=True).passed


def test_health_by_tier_of_the_e2e_fixture(built):
    """test_models_e2e's assignments per tier; tiers present: 3 on 12-01, 4 from 12-02."""
    rows = query(
        built.duckdb_path,
        "select date, subscription_tier, assigned_users, test_users, srm_chi_square, "
        "srm_p_value, srm_p_value_bonferroni, srm_status "
        "from marts.mart_experiment_health_by_tier_daily order by experiment_key, date, "
        "subscription_tier",
    )
    # the fixture's events are all vault-launch's (a whole-table comparison)
    assert query(
        built.duckdb_path,
        "select distinct experiment_key from marts.mart_experiment_health_by_tier_daily",
    ) == [("vault-launch",)]
    # standard: u-1, u-6 control → 2 vs 0, E 1: chi² 2. plus: u-2 only, in several variations:
    # nobody in the test. unknown: u-3 (T), u-4 (multi) on 12-01; + u-8 (T) on 12-02;
    # + u-9 (multi) on 12-03: 0 vs 1 (chi² 1), then 0 vs 2 (chi² 2). premium: u-7 (T) from 12-02.
    expected = [
        (D1, "plus", 1, 0, None, 3),
        (D1, "standard", 2, 2, 2.0, 3),
        (D1, "unknown", 2, 1, 1.0, 3),
        (D2, "plus", 1, 0, None, 4),
        (D2, "premium", 1, 1, 1.0, 4),
        (D2, "standard", 2, 2, 2.0, 4),
        (D2, "unknown", 3, 2, 2.0, 4),
        (D3, "plus", 1, 0, None, 4),
        (D3, "premium", 1, 1, 1.0, 4),
        (D3, "standard", 2, 2, 2.0, 4),
        (D3, "unknown", 4, 2, 2.0, 4),
    ]
    assert [r[:4] for r in rows] == [e[:4] for e in expected]
    for row, (*_, chi, tiers) in zip(rows, expected, strict=True):
        if chi is None:
            assert row[4:7] == (None, None, None)
        else:
            assert row[4] == pytest.approx(chi)
            assert row[5] == pytest.approx(chi_p(chi))
            assert row[6] == pytest.approx(min(1.0, chi_p(chi) * tiers))
        assert row[7] == "not_enough_traffic"


def test_checks_in_a_dagster_run(built, tmp_path):
    """Re-run arrival date 12-04 on a copy of the clean build: every Python check runs.

    The fixture's only finding: ld-18 (event 12-01) arrives in folder 12-04, 3 days late
    with a lookback of 2. Recomputed dates 12-01..12-04 reconcile with staging.
    """
    from expplatform.definitions import build_definitions
    from expplatform.jobs import MATERIALIZE_ALL

    settings = make_settings(tmp_path, built.landing_dir)
    shutil.copyfile(built.duckdb_path, settings.duckdb_path)
    job = build_definitions(settings).resolve_job_def(MATERIALIZE_ALL)
    with data_instance() as instance:
        result = job.execute_in_process(instance=instance, partition_key="2025-12-04")
    assert result.success
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    ours = {k: e for k, e in evaluations.items() if k[1] in NAMES}
    assert len(ours) == 10
    failed = {k for k, e in ours.items() if not e.passed}
    assert failed == {("raw/partner_directpush_launchdarkly_events", qc.LATE_EVENTS)}
    late = ours[("raw/partner_directpush_launchdarkly_events", qc.LATE_EVENTS)]
    assert late.severity == AssetCheckSeverity.WARN
    assert late.partition == "2025-12-04"
    assert late.metadata["affected_event_dates"].value == "2025-12-01"
    reconciliation = ours[("marts/fct_experiment_exposures_daily", qc.RECONCILIATION)]
    assert reconciliation.metadata["recomputed_dates"].value == "2025-12-01 .. 2025-12-04"


NAMES = {
    qc.SRM, qc.SRM_BY_TIER, qc.MULTIPLE_VARIATIONS, qc.UNREGISTERED_VARIATIONS,
    qc.RECONCILIATION, qc.VOLUME, qc.REJECTED_RATE, qc.LATE_EVENTS,
}  # fmt: skip
