"""The Python asset checks (expplatform.quality) on small hand-made warehouses.

Every check gets a fixture built to fail it and one built to pass it. The tables
are created directly (only the columns the checks read) in a temporary DuckDB
file; expected numbers are worked out by hand in the comments, independently of
scipy and of the code under test.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetSelection,
    Definitions,
    define_asset_job,
)

from expplatform.config import DBT_PROJECT_DIR
from expplatform.partitions import build_daily_partitions
from expplatform.quality import checks as qc
from expplatform.quality import queries as q
from expplatform.sources import LAUNCHDARKLY, LEGACY
from expplatform.warehouse import connect
from expplatform_tests.e2e import data_instance

PARTITIONS = build_daily_partitions(date(2025, 12, 1))

D = {n: date(2025, 12, n) for n in range(1, 31)}
LD_KEY = LAUNCHDARKLY.asset_key
LEGACY_KEY = LEGACY.asset_key

#: The tables the checks read, with the columns they read (the real ones have more).
FIXTURE_DDL = """
create schema if not exists marts;
create schema if not exists staging;
create schema if not exists seeds;
create schema if not exists intermediate;
create table intermediate.int_experiment_srm_observed (
    experiment_key varchar, date date, subscription_tier varchar, variation_name varchar,
    expected_share double, observed_users bigint, tested_users bigint);
create table marts.mart_experiment_health_daily (
    experiment_key varchar, date date, assigned_users bigint, multiple_variation_users bigint,
    srm_chi_square double, srm_p_value double, srm_status varchar);
create table marts.mart_experiment_health_by_tier_daily (
    experiment_key varchar, date date, subscription_tier varchar, assigned_users bigint,
    test_users bigint, srm_chi_square double, srm_p_value double, srm_p_value_bonferroni double,
    srm_status varchar);
create table marts.fct_experiment_assignments (
    experiment_key varchar, user_id varchar, assignment_date date, variation_name varchar,
    subscription_tier varchar, has_multiple_variations boolean);
create table marts.dim_experiment_variations (
    experiment_key varchar, variation_name varchar, is_treatment boolean, expected_weight double);
create table marts.fct_experiment_exposures_daily (
    experiment_key varchar, user_id varchar, exposure_date date, variation_name varchar,
    is_treatment boolean, exposures bigint);
create table seeds.experiments (
    experiment_key varchar, launchdarkly_flag_key varchar, legacy_flag_key varchar,
    start_date date, end_date date);
create table staging.stg_app__users (user_id varchar, is_test_account boolean);
create table staging.stg_launchdarkly__flag_events (
    event_id varchar, user_id varchar, event_at timestamp, event_date date, flag_key varchar,
    is_active boolean, is_retracted boolean, event_kind varchar, prerequisite_of varchar,
    _load_date date, _source_file varchar, _line_number bigint);
create table staging.stg_legacy__flag_events as
    select * from staging.stg_launchdarkly__flag_events where false;
insert into seeds.experiments values ('exp', 'exp-flag', 'exp_flag', date '2025-12-01', null);
insert into marts.dim_experiment_variations values
    ('exp', 'control', false, 0.5), ('exp', 'treatment', true, 0.5);
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with connect(path) as con:  # creates the raw and ops schemas as the platform does
        con.execute(FIXTURE_DDL)
    return path


@pytest.fixture
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(warehouse) as connection:
        yield connection


def chi_p(chi: float) -> float:
    """p-value of a chi-square with one degree of freedom (erfc; independent of scipy)."""
    return math.erfc(math.sqrt(chi / 2))


def chi_square_50_50(control: int, treatment: int) -> float:
    expected = (control + treatment) / 2
    return ((control - expected) ** 2 + (treatment - expected) ** 2) / expected


def reproduce(con: duckdb.DuckDBPyConnection, result) -> list[tuple]:
    """Run the SQL a result carries in its metadata (what an engineer would paste)."""
    text = result.metadata["reproduce_sql"].value
    sql = re.fullmatch(r"```sql\n(.*)\n```", text, re.DOTALL).group(1)
    return con.execute(sql).fetchall()


def add_assignments(
    con: duckdb.DuckDBPyConnection,
    n: int,
    variation: str,
    *,
    day: date = D[1],
    tier: str = "standard",
    multiple: bool = False,
    experiment: str = "exp",
) -> None:
    prefix = f"{experiment}-{variation}-{day}-{tier}-{multiple}"
    con.execute(
        "insert into marts.fct_experiment_assignments "
        "select ?, ? || '-' || i, ?, ?, ?, ? from range(?) as t(i)",
        [experiment, prefix, day, variation, tier, multiple, n],
    )


def add_health(
    con: duckdb.DuckDBPyConnection, day: date, users: int, chi: float, status: str
) -> None:
    con.execute(
        "insert into marts.mart_experiment_health_daily values ('exp', ?, ?, 0, ?, ?, ?)",
        [day, users, chi, chi_p(chi), status],
    )


def add_observed(
    con: duckdb.DuckDBPyConnection, day: date, users: dict[str, int], tier: str | None = None
) -> None:
    """The test's observed users per variation (50/50 registry) on `day`, as the model has them."""
    tested = sum(users.values())
    for variation, n in users.items():
        con.execute(
            "insert into intermediate.int_experiment_srm_observed values "
            "('exp', ?, ?, ?, 0.5, ?, ?)",
            [day, tier, variation, n, tested],
        )


def contract_status(control: int, treatment: int, p: float) -> str:
    """The contract's srm_status rules (§5) for a 50/50 experiment, by hand."""
    share_off = abs(control / (control + treatment) - 0.5)
    if min(control, treatment) < 8:
        return "not_enough_traffic"
    if p < 0.001 and share_off >= 0.001:
        return "unhealthy"
    return "warning" if p < 0.01 else "healthy"


# --- sample-ratio mismatch ------------------------------------------------------------------


def test_srm_60_40_of_1000_users_is_an_error(con):
    # (600 - 500)² / 500 + (400 - 500)² / 500 = 20 + 20 = 40; p = erfc(√20) ≈ 2.5e-10
    chi = (600 - 500) ** 2 / 500 * 2
    assert chi == chi_square_50_50(600, 400) == 40
    assert contract_status(600, 400, chi_p(chi)) == "unhealthy"
    add_assignments(con, 600, "control")
    add_assignments(con, 400, "treatment")
    add_observed(con, D[1], {"control": 600, "treatment": 400})
    add_health(con, D[1], 1000, chi, "unhealthy")

    result = qc.evaluate_srm(con, [])
    assert not result.passed
    assert result.severity == AssetCheckSeverity.ERROR
    md = result.metadata
    assert md["experiment_key"].value == "exp"
    assert md["date"].value == "2025-12-01"
    assert md["srm_chi_square"].value == 40
    assert md["srm_p_value"].value == pytest.approx(chi_p(40))
    assert md["users_by_variation"].value == (
        "control 600 (60.0%, expected 50.0%), treatment 400 (40.0%, expected 50.0%)"
    )
    assert "exp on 2025-12-01: unhealthy" in result.description
    assert [r[:2] for r in reproduce(con, result)] == [("exp", D[1])]


def test_srm_505_495_is_healthy(con):
    # (505 - 500)² / 500 · 2 = 0.1; p = erfc(√0.05) ≈ 0.75
    chi = (505 - 500) ** 2 / 500 * 2
    assert chi == pytest.approx(0.1)
    assert chi_p(chi) == pytest.approx(0.7518, abs=1e-4)
    assert contract_status(505, 495, chi_p(chi)) == "healthy"
    add_assignments(con, 505, "control")
    add_assignments(con, 495, "treatment")
    add_health(con, D[1], 1000, chi, "healthy")

    result = qc.evaluate_srm(con, [D[1]])
    assert result.passed
    assert result.metadata["finding_count"].value == 0
    assert reproduce(con, result) == []


def test_srm_warning_is_a_warn(con):
    # 20 vs 40: E = 30, (10² + 10²) / 30 = 6.67, p ≈ 0.0098: warning (0.001 <= p < 0.01)
    chi = chi_square_50_50(20, 40)
    assert 0.001 < chi_p(chi) < 0.01
    assert contract_status(20, 40, chi_p(chi)) == "warning"
    add_assignments(con, 20, "control")
    add_assignments(con, 40, "treatment")
    add_health(con, D[1], 60, chi, "warning")

    result = qc.evaluate_srm(con, [])
    assert not result.passed
    assert result.severity == AssetCheckSeverity.WARN


def test_srm_looks_at_the_latest_date_and_the_recomputed_dates(con):
    # An unhealthy early day (cumulative 60 vs 40 on 12-01), healthy from 12-02 on (latest 12-03).
    add_health(con, D[1], 100, chi_square_50_50(60, 40), "unhealthy")
    add_health(con, D[2], 1000, 0.1, "healthy")
    add_health(con, D[3], 1000, 0.1, "healthy")
    assert qc.evaluate_srm(con, [D[2], D[3]]).passed  # 12-01 is neither latest nor recomputed
    result = qc.evaluate_srm(con, [D[1], D[2]])
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert result.metadata["date"].value == "2025-12-01"


def test_srm_by_tier_uses_the_bonferroni_status(con):
    # 4 tiers present; standard 200 vs 275: E = 237.5, chi² = 2 · 37.5² / 237.5 = 11.84,
    # p = 0.00058 (< 0.001: unhealthy uncorrected), × 4 = 0.0023: warning → WARN, not ERROR.
    chi = chi_square_50_50(200, 275)
    assert chi == pytest.approx(11.842, abs=1e-3)
    p = chi_p(chi)
    bonferroni = min(1.0, 4 * p)
    assert p < 0.001 <= bonferroni < 0.01
    add_assignments(con, 200, "control", tier="standard")
    add_assignments(con, 275, "treatment", tier="standard")
    add_assignments(con, 30, "control", tier="plus")
    add_observed(con, D[2], {"control": 200, "treatment": 275}, tier="standard")
    add_observed(con, D[2], {"control": 30, "treatment": 0}, tier="plus")
    add_observed(con, D[2], {"control": 230, "treatment": 275})  # the whole experiment
    con.execute(
        "insert into marts.mart_experiment_health_by_tier_daily values "
        "('exp', ?, 'standard', 475, 475, ?, ?, ?, 'warning'), "
        "('exp', ?, 'plus', 30, 30, 30.0, 4e-8, 1.6e-7, 'not_enough_traffic')",
        [D[2], chi, p, bonferroni, D[2]],
    )
    result = qc.evaluate_srm(con, [], by_tier=True)
    assert not result.passed
    assert result.severity == AssetCheckSeverity.WARN
    md = result.metadata
    assert md["subscription_tier"].value == "standard"
    assert md["srm_p_value_bonferroni"].value == pytest.approx(bonferroni)
    # only the standard tier's users are counted
    assert md["users_by_variation"].value.startswith("control 200 (42.1%")
    assert result.asset_key == qc.HEALTH_BY_TIER_KEY


# --- users in several variations ----------------------------------------------------------


@pytest.mark.parametrize(
    ("users", "multiple", "passed"),
    [
        (1000, 10, True),  # exactly 1%: not above the limit
        (1000, 11, False),  # 1.1%
        (9, 9, True),  # all of them, but fewer than 10 users: not judged yet
        (10, 1, False),  # 10 users, 10%
    ],
)
def test_multiple_variation_share(con, users, multiple, passed):
    add_assignments(con, users - multiple, "control")
    add_assignments(con, multiple, "treatment", multiple=True)
    result = qc.evaluate_multiple_variations(con)
    assert result.passed is passed
    assert result.severity == AssetCheckSeverity.WARN
    if not passed:
        (row,) = reproduce(con, result)
        assert row == ("exp", users, multiple, pytest.approx(multiple / users))


# --- unregistered variations --------------------------------------------------------------


def test_exposures_to_unregistered_variations_warn(con):
    con.execute(
        "insert into marts.fct_experiment_exposures_daily values "
        "('exp', 'u1', ?, 'control', false, 3), ('exp', 'u2', ?, 'treatment', true, 1)",
        [D[1], D[1]],
    )
    assert qc.evaluate_unregistered_variations(con).passed
    con.execute(
        "insert into marts.fct_experiment_exposures_daily values "
        "('exp', 'u3', ?, 'treatment_c', null, 2), ('exp', 'u3', ?, 'treatment_c', null, 5)",
        [D[1], D[2]],
    )
    result = qc.evaluate_unregistered_variations(con)
    assert not result.passed and result.severity == AssetCheckSeverity.WARN
    assert reproduce(con, result) == [("exp", "treatment_c", 1, 7, D[1], D[2])]


# --- rejected-record rate -----------------------------------------------------------------


def load_lines(
    con: duckdb.DuckDBPyConnection, load_date: date, loaded: int, rejected: int, source="legacy"
) -> None:
    """`loaded` legacy raw rows and `rejected` rejected records for one arrival date."""
    con.execute(
        "insert into raw.legacy_feature_flag_events (id, _load_date, _source_file, _line_number, "
        "_loaded_at) select 'lg-' || i, ?, 'f.csv', i, now() from range(?) as t(i)",
        [load_date, loaded],
    )
    con.execute(
        "insert into raw.rejected_records select ?, ?, 'f.csv', i, 'x', "
        "case when i % 2 = 0 then 'malformed_row' else 'missing_user_id' end, now() "
        "from range(?) as t(i)",
        [source, load_date, rejected],
    )


@pytest.mark.parametrize(
    ("loaded", "rejected", "passed", "severity"),
    [
        (999, 1, True, None),  # 1 / 1000 = 0.1%: not above
        (998, 2, False, AssetCheckSeverity.WARN),  # 0.2%
        (950, 50, False, AssetCheckSeverity.WARN),  # 5%: not above the ERROR limit
        (949, 51, False, AssetCheckSeverity.ERROR),  # 5.1%
    ],
)
def test_rejected_rate_boundaries(con, loaded, rejected, passed, severity):
    load_lines(con, D[2], loaded, rejected)
    load_lines(con, D[1], 10, 90)  # another partition, not in the run
    load_lines(con, D[2], 0, 500, source="launchdarkly")  # another source
    result = qc.evaluate_rejected_rate(con, LEGACY, [D[2]])
    assert result.passed is passed
    if not passed:
        assert result.severity == severity
        (row,) = reproduce(con, result)
        assert row[:4] == (D[2], 1000, rejected, pytest.approx(rejected / 1000))
        assert "malformed_row" in row[4]


def test_rejected_rate_of_an_empty_partition_passes(con):
    assert qc.evaluate_rejected_rate(con, LAUNCHDARKLY, [D[3]]).passed


# --- late events ----------------------------------------------------------------------------


def test_late_events_beyond_the_lookback(con):
    # arrival 12-05, lookback 2: events of 12-03 are within it, 12-02 and 12-01 are late
    for event_day, n in ((5, 4), (3, 2), (2, 3), (1, 1)):
        con.execute(
            "insert into raw.partner_directpush_launchdarkly_events (event_id, "
            "event_creationdate, _load_date, _source_file, _line_number, _loaded_at) "
            "select 'ld-' || i, ?, ?, 'f.jsonl', i, now() from range(?) as t(i)",
            [datetime(2025, 12, event_day, 23, 59), D[5], n],
        )
    result = qc.evaluate_late_events(con, LAUNCHDARKLY, [D[5]], lookback_days=2)
    assert not result.passed and result.severity == AssetCheckSeverity.WARN
    assert reproduce(con, result) == [(D[5], D[1], 4, 1), (D[5], D[2], 3, 3)]
    md = result.metadata
    assert md["affected_event_dates"].value == "2025-12-01, 2025-12-02"
    assert "expplatform materialize --start 2025-12-05 --end 2025-12-05" in md["note"].value
    assert "recomputed automatically" in md["note"].value
    assert qc.evaluate_late_events(con, LAUNCHDARKLY, [D[5]], lookback_days=4).passed
    assert qc.evaluate_late_events(
        con, LAUNCHDARKLY, [D[4]], lookback_days=2
    ).passed  # other arrival


# --- reconciliation -------------------------------------------------------------------------


def add_events(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[tuple]) -> None:
    """rows: (event_id, user, 'YYYY-MM-DD HH:MM', flag, is_active, kind, prereq)."""
    for line, (event_id, user, at, flag, active, kind, prereq) in enumerate(rows):
        event_at = datetime.fromisoformat(at)
        con.execute(
            f"insert into staging.{table} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'f', ?)",
            [
                event_id, user, event_at, event_at.date(), flag, active == "Y", active == "N",
                kind, prereq, event_at.date(), line,
            ],
        )  # fmt: skip


@pytest.fixture
def reconciliation_fixture(con) -> duckdb.DuckDBPyConnection:
    """Staging events of 12-02 whose exposed users, by hand, are u1, u2, u3, u7."""
    con.execute("insert into staging.stg_app__users values ('t1', true), ('u1', false)")
    add_events(
        con,
        "stg_launchdarkly__flag_events",
        [
            ("e1", "u1", "2025-12-02 10:00", "exp-flag", "Y", "feature", None),  # u1
            ("e1", "u1", "2025-12-02 10:00", "exp-flag", "Y", "feature", None),  # retry
            ("e2", "u4", "2025-12-02 10:00", "exp-flag", "Y", "feature", None),  # retracted:
            ("e2", "u4", "2025-12-02 10:00", "exp-flag", "N", "feature", None),  # not u4
            ("e3", "u5", "2025-12-02 10:00", "exp-flag", "Y", "debug", None),  # not an exposure
            ("e4", "u6", "2025-12-02 10:00", "exp-flag", "Y", "feature", "other"),  # prerequisite
            ("e5", "t1", "2025-12-02 10:00", "exp-flag", "Y", "feature", None),  # test account
            ("e6", "u8", "2025-12-02 10:00", "other-flag", "Y", "feature", None),  # unregistered
            ("e7", "u2", "2025-12-02 23:59", "exp-flag", "Y", "feature", ""),  # u2 (empty prereq)
            ("e8", "u9", "2025-12-03 00:00", "exp-flag", "Y", "feature", None),  # other date
            ("e9", "u7", "2025-12-02 08:00", "exp_flag", "Y", "feature", None),  # legacy key: no
        ],
    )
    add_events(
        con,
        "stg_legacy__flag_events",
        [
            ("e1", "u3", "2025-12-02 09:00", "exp_flag", "Y", "feature", None),  # u3 (same id,
            ("e9", "u7", "2025-12-02 09:00", "exp_flag", "Y", "feature", None),  # other source)
        ],
    )
    con.execute(
        "insert into marts.fct_experiment_exposures_daily "
        "select 'exp', u, date '2025-12-02', 'control', false, 1 from unnest(?) as t(u)",
        [["u1", "u2", "u3", "u7"]],
    )
    return con


def test_reconciliation_passes_when_staging_and_fct_agree(reconciliation_fixture):
    result = qc.evaluate_reconciliation(reconciliation_fixture, [D[1], D[2]])
    assert result.passed, result.description


def test_reconciliation_fails_on_a_missing_or_extra_user(reconciliation_fixture):
    con = reconciliation_fixture
    con.execute("delete from marts.fct_experiment_exposures_daily where user_id = 'u2'")
    con.execute(
        "insert into marts.fct_experiment_exposures_daily values "
        "('exp', 'u4', date '2025-12-02', 'control', false, 1)"
    )
    result = qc.evaluate_reconciliation(con, [D[2]])
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    # staging u1 u2 u3 u7 = 4; fct u1 u3 u4 u7 = 4; u2 missing from fct, u4 not in staging
    assert reproduce(con, result) == [("exp", D[2], 4, 4, 1, 1, ["u2", "u4"])]
    assert "exp on 2025-12-02" in result.description
    # only the given dates are compared: u9 (12-03) is found when 12-03 is in the window
    assert [r[:2] for r in reproduce(con, qc.evaluate_reconciliation(con, [D[3]]))] == [
        ("exp", D[3])
    ]
    assert qc.evaluate_reconciliation(con, [D[4]]).passed


def test_reconciliation_takes_the_earliest_copy_of_an_event_that_the_fct_lacks(
    reconciliation_fixture,
):
    con = reconciliation_fixture
    add_events(
        con,
        "stg_launchdarkly__flag_events",
        [
            # e20's earliest copy is of an unregistered flag: not an exposure, whatever the
            # later copy says; the fct rightly lacks u20
            ("e20", "u20", "2025-12-02 07:00", "other-flag", "Y", "feature", None),
            ("e20", "u20", "2025-12-02 11:00", "exp-flag", "Y", "feature", None),
            # e21's earliest copy is an exposure (the later one a debug event): u21 is exposed
            ("e21", "u21", "2025-12-02 08:00", "exp-flag", "Y", "feature", None),
            ("e21", "u21", "2025-12-02 09:00", "exp-flag", "Y", "debug", None),
        ],
    )
    result = qc.evaluate_reconciliation(con, [D[2]])
    assert not result.passed
    # fct u1 u2 u3 u7 = 4 users; the rules add u21: 5, u21 missing from the fct
    assert reproduce(con, result) == [("exp", D[2], 5, 4, 1, 0, ["u21"])]

    con.execute(
        "insert into marts.fct_experiment_exposures_daily "
        "values ('exp', 'u21', date '2025-12-02', 'control', false, 1)"
    )
    assert qc.evaluate_reconciliation(con, [D[2]]).passed


def test_reconciliation_does_not_check_which_copy_backs_a_fct_user(reconciliation_fixture):
    """The documented limit: a fct user backed only by a later, disagreeing copy passes."""
    con = reconciliation_fixture
    add_events(
        con,
        "stg_launchdarkly__flag_events",
        [
            ("e22", "u22", "2025-12-02 07:00", "other-flag", "Y", "feature", None),
            ("e22", "u22", "2025-12-02 11:00", "exp-flag", "Y", "feature", None),
        ],
    )
    con.execute(
        "insert into marts.fct_experiment_exposures_daily "
        "values ('exp', 'u22', date '2025-12-02', 'control', false, 1)"
    )
    assert qc.evaluate_reconciliation(con, [D[2]]).passed


# --- volume anomaly -------------------------------------------------------------------------


def daily_exposures(con: duckdb.DuckDBPyConnection, per_day: dict[date, int]) -> None:
    for day, exposures in per_day.items():
        # two users a day, exposures split between them: the check sums per date
        con.execute(
            "insert into marts.fct_experiment_exposures_daily values "
            "('exp', 'a', ?, 'control', false, ?), ('exp', 'b', ?, 'treatment', true, ?)",
            [day, exposures // 2, day, exposures - exposures // 2],
        )


@pytest.mark.parametrize(
    ("today", "passed"),
    [
        (100, True),
        (50, True),  # -50%: on the boundary, not outside
        (150, True),  # +50%
        (49, False),
        (151, False),
        (0, False),  # no exposure at all (an outage): the day has no row
    ],
)
def test_volume_against_the_trailing_7_day_median(con, today, passed):
    # 12-01..12-07 = 90, 100, 100, 100, 110, 120, 80: median 100
    trailing = [90, 100, 100, 100, 110, 120, 80]
    daily_exposures(con, {D[i + 1]: n for i, n in enumerate(trailing)})
    if today:
        daily_exposures(con, {D[8]: today})
    result = qc.evaluate_volume_anomaly(con, [D[8]])
    assert result.passed is passed
    if not passed:
        assert result.severity == AssetCheckSeverity.WARN
        assert reproduce(con, result) == [
            ("exp", D[8], today, 100.0, pytest.approx(today / 100 - 1))
        ]


def test_volume_skips_dates_with_fewer_than_7_prior_days(con):
    daily_exposures(con, {D[i]: 100 for i in range(1, 7)})  # 6 days
    daily_exposures(con, {D[7]: 10})
    assert qc.evaluate_volume_anomaly(con, [D[7]]).passed
    daily_exposures(con, {D[8]: 10})  # 12-08 has 7 prior days: median 100
    assert not qc.evaluate_volume_anomaly(con, [D[7], D[8]]).passed


def test_volume_counts_a_missing_trailing_day_as_zero(con):
    # 12-01..12-07 with 12-04..12-07 missing: 100, 100, 100, 0, 0, 0, 0 → median 0: 100 is an anomaly
    daily_exposures(con, {D[1]: 100, D[2]: 100, D[3]: 100, D[8]: 100})
    result = qc.evaluate_volume_anomaly(con, [D[8]])
    assert not result.passed
    assert reproduce(con, result) == [("exp", D[8], 100, 0.0, None)]


def test_volume_ignores_dates_after_the_experiment_end(con):
    con.execute("update seeds.experiments set end_date = date '2025-12-07'")
    daily_exposures(con, {D[i]: 100 for i in range(1, 8)})
    assert qc.evaluate_volume_anomaly(con, [D[8]]).passed  # 0 exposures, but it has ended


# --- wiring -------------------------------------------------------------------------------------


def test_queries_of_empty_windows_run(con):
    for sql in (
        q.srm_findings_sql([]),
        q.srm_findings_sql([], by_tier=True),
        q.reconciliation_findings_sql([]),
        q.volume_anomaly_findings_sql([]),
        q.rejected_rate_findings_sql("legacy", "raw.legacy_feature_flag_events", []),
        q.late_events_findings_sql("raw.legacy_feature_flag_events", "timestamp", [], 2),
    ):
        assert con.execute(sql).fetchall() == []


def test_every_check_has_a_description_and_its_place():
    """Mart checks go to the dbt step, the raw checks to each flag source's raw asset."""
    raw_specs = [
        spec for source in (LAUNCHDARKLY, LEGACY) for spec in qc.raw_check_specs(source, PARTITIONS)
    ]
    for spec in [*qc.MART_CHECK_SPECS, *raw_specs]:
        assert spec.description and len(spec.description) > 60, spec.key
    assert {spec.key.name for spec in qc.MART_CHECK_SPECS} == {
        qc.SRM, qc.SRM_BY_TIER, qc.MULTIPLE_VARIATIONS, qc.UNREGISTERED_VARIATIONS,
        qc.RECONCILIATION, qc.VOLUME,
    }  # fmt: skip
    assert {(spec.key.asset_key, spec.key.name) for spec in raw_specs} == {
        (key, name) for key in (LD_KEY, LEGACY_KEY) for name in (qc.REJECTED_RATE, qc.LATE_EVENTS)
    }
    assert all(spec.partitions_def is PARTITIONS for spec in raw_specs)


def test_health_checks_evaluated_on_the_marts(warehouse):
    with connect(warehouse) as con:
        add_assignments(con, 600, "control")
        add_assignments(con, 400, "treatment")
        add_health(con, D[1], 1000, 40.0, "unhealthy")
        selected = {
            AssetCheckKey(qc.HEALTH_KEY, qc.SRM),
            AssetCheckKey(qc.HEALTH_BY_TIER_KEY, qc.SRM_BY_TIER),
            AssetCheckKey(qc.ASSIGNMENTS_KEY, qc.MULTIPLE_VARIATIONS),
        }
        results = {r.check_name: r for r in qc.evaluate_mart_checks(con, selected)}
    assert set(results) == {qc.SRM, qc.SRM_BY_TIER, qc.MULTIPLE_VARIATIONS}
    assert not results[qc.SRM].passed
    assert results[qc.SRM_BY_TIER].passed  # the by-tier table is empty
    assert results[qc.MULTIPLE_VARIATIONS].passed


def test_exposure_checks_read_the_recompute_window(warehouse):
    with connect(warehouse) as con:
        con.execute("insert into ops.recompute_dates values (date '2025-12-02')")
        con.execute(
            "insert into staging.stg_launchdarkly__flag_events values ('e1', 'u1', "
            "timestamp '2025-12-02 10:00', date '2025-12-02', 'exp-flag', true, false, "
            "'feature', null, date '2025-12-02', 'f', 1)"
        )
        selected = {
            AssetCheckKey(qc.EXPOSURES_KEY, name)
            for name in (qc.RECONCILIATION, qc.UNREGISTERED_VARIATIONS, qc.VOLUME)
        }
        results = {r.check_name: r for r in qc.evaluate_mart_checks(con, selected)}
    assert not results[qc.RECONCILIATION].passed  # u1 is exposed on 12-02 but not in fct
    assert results[qc.RECONCILIATION].metadata["recomputed_dates"].value == "2025-12-02"
    assert results[qc.UNREGISTERED_VARIATIONS].passed
    assert results[qc.VOLUME].passed


def legacy_file(path: Path, good: int, bad: int) -> None:
    """A legacy export of `good` valid rows and `bad` rows without a user (rejected)."""
    rows = ["id,user,timestamp,key,variation_name,value"]
    rows += [f"g{i},u{i},2025-12-01T10:00:00Z,vault_launch,control,true" for i in range(good)]
    rows += [f"b{i},,2025-12-01T10:00:00Z,vault_launch,control,true" for i in range(bad)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_raw_checks_are_evaluated_in_the_load_step_per_partition(tmp_path):
    """A partition's run of the raw asset checks that arrival date only, and records it."""
    from expplatform.ingestion.assets import build_ingestion_assets
    from expplatform.resources import LandingZoneResource
    from expplatform.sources import SourceRegistry
    from expplatform.warehouse import WarehouseResource

    landing = tmp_path / "landing"
    legacy_file(landing / "legacy" / "date=2025-12-02" / "a.csv", 949, 51)  # 5.1%: ERROR
    legacy_file(landing / "legacy" / "date=2025-12-03" / "a.csv", 1000, 0)
    assets = build_ingestion_assets(SourceRegistry((LEGACY,)), PARTITIONS, DBT_PROJECT_DIR)
    job = define_asset_job("raw", AssetSelection.all(), partitions_def=PARTITIONS)
    warehouse = tmp_path / "warehouse.duckdb"
    defs = Definitions(
        assets=assets,
        jobs=[job],
        resources={
            "warehouse": WarehouseResource(database=str(warehouse)),
            "landing": LandingZoneResource(landing_dir=str(landing), lookback_days=2),
        },
    )
    with data_instance() as instance:
        evaluations = {}
        for day in (D[2], D[3]):
            result = defs.resolve_job_def("raw").execute_in_process(
                instance=instance, partition_key=day.isoformat()
            )
            for e in result.get_asset_check_evaluations():
                evaluations[(e.check_name, e.partition)] = e
    d2 = evaluations[(qc.REJECTED_RATE, "2025-12-02")]
    assert not d2.passed and d2.severity == AssetCheckSeverity.ERROR
    assert d2.metadata["finding_count"].value == 1
    assert evaluations[(qc.REJECTED_RATE, "2025-12-03")].passed
    assert len(evaluations) == 4  # 2 checks × 2 partitions
    with connect(warehouse, read_only=True) as con:
        recorded = con.execute(
            "select check_name, partition, passed from ops.check_results order by all"
        ).fetchall()
    assert recorded == [
        (qc.LATE_EVENTS, "2025-12-02", True),
        (qc.LATE_EVENTS, "2025-12-03", True),
        (qc.REJECTED_RATE, "2025-12-02", False),
        (qc.REJECTED_RATE, "2025-12-03", True),
    ]


def test_dates_text():
    assert qc._dates_text([D[3], D[1], D[2]]) == "2025-12-01 .. 2025-12-03"
    assert qc._dates_text([D[1], D[3]]) == "2025-12-01, 2025-12-03"
    assert qc._dates_text([]) == "none"
    assert q.date_list([D[2], D[1], D[2]]) == "[date '2025-12-01', date '2025-12-02']"
    assert q.date_list([]) == "cast([] as date[])"
