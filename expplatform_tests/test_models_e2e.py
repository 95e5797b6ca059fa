"""End to end through Dagster and dbt on a hand-made landing zone covering every rule of §4.

The expected rows below were worked out by hand from the fixture (see the
comments next to each event); nothing is computed with the code under test.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from expplatform.config import get_settings
from expplatform_tests.conftest import write_text
from expplatform_tests.e2e import data_instance, make_settings, query, run_range, snapshot

pytestmark = pytest.mark.slow

D = {n: date(2025, 12, n) for n in range(1, 5)}


def ms(iso: str) -> int:
    """Epoch milliseconds of a UTC timestamp (for writing the fixture)."""
    return int(datetime.fromisoformat(iso + "+00:00").timestamp() * 1000)


def ld(
    event_id, user, at, variation, *, key="vault-launch", kind="feature", active="Y", prereq=None
):
    prereq_part = f', "prereqOf": "{prereq}"' if prereq else ""
    return (
        f'{{"event_id": "{event_id}", "is_active": "{active}", "project": "default", '
        f'"environment": "production", "event": {{"kind": "{kind}", "creationDate": {ms(at)}, '
        f'"key": "{key}", "version": 7, "contextKeys": {{"user": "{user}"}}, "variation": 0, '
        f'"variationName": "{variation}", "value": true, "default": false, '
        f'"reason": {{"kind": "RULE_MATCH", "inExperiment": true}}{prereq_part}}}}}'
    )


LEGACY_HEADER = "id,user,timestamp,key,variation_name,value"


def build_fixture(landing: Path) -> None:
    def ld_file(day: int, *lines: str) -> None:
        write_text(
            landing / "launchdarkly" / f"date=2025-12-0{day}" / "part-000.jsonl",
            "\n".join(lines) + "\n",
        )

    def legacy_file(day: int, *rows: str) -> None:
        write_text(
            landing / "legacy" / f"date=2025-12-0{day}" / "part-000.csv",
            "\n".join([LEGACY_HEADER, *rows]) + "\n",
        )

    ld_file(
        1,
        ld("ld-1", "u-1", "2025-12-01T10:15:00", "control"),  # u-1 first exposure (tier standard)
        ld("ld-2", "u-1", "2025-12-01T13:00:00", "control"),  # after u-1's mid-day change
        ld("ld-1", "u-1", "2025-12-01T10:15:00", "control"),  # retry in the same file
        ld("ld-3", "u-2", "2025-12-01T09:00:00", "treatment"),  # ties with lg-2: LaunchDarkly wins
        ld("ld-4", "u-3", "2025-12-01T11:00:00", " Treatment "),  # trimmed, lower-cased
        ld("ld-5", "t-1", "2025-12-01T10:00:00", "control"),  # test account: excluded
        ld("ld-6", "u-4", "2025-12-01T10:00:00", "treatment", kind="debug"),  # not an exposure
        ld("ld-7", "u-4", "2025-12-01T10:30:00", "treatment", prereq="other-flag"),  # not one
        ld("ld-8", "u-5", "2025-12-01T10:00:00", "control"),  # retracted on 12-02
        ld("ld-9", "u-6", "2025-12-01T08:00:00", "control", key="dark-mode"),  # unregistered flag
        ld("ld-19", "u-1", "2025-11-30T23:00:00", "treatment"),  # before the experiment start
    )
    legacy_file(
        1,
        "lg-1,u-4,2025-12-01T12:00:00Z,vault_launch,control,t",  # u-4 first exposure
        "lg-2,u-2,2025-12-01T09:00:00Z,vault_launch,control,f",  # same instant as ld-3
    )
    ld_file(
        2,
        ld("ld-10", "u-1", "2025-12-02T09:00:00", "control"),
        ld("ld-8", "u-5", "2025-12-01T10:00:00", "control", active="N"),  # retraction
        ld("ld-11", "u-3", "2025-12-02T09:00:00", "treatment"),  # tier plus since 08:00
        ld("ld-12", "u-7", "2025-12-02T10:00:00", "treatment"),  # u-7 not in the users snapshot
        ld("ld-13", "u-6", "2025-12-01T23:30:00", "control"),  # late: belongs to 12-01
        ld("ld-3", "u-2", "2025-12-01T09:00:00", "treatment"),  # retry across folders
        ld("ld-14", "u-8", "2025-12-02T07:00:00", "treatment"),  # ties with lg-4 (same variation)
    )
    legacy_file(
        2,
        "lg-3,u-4,2025-12-02T10:00:00+01:00,vault_launch,Treatment,1",  # 09:00 UTC, 2nd variation
        "lg-4,u-8,2025-12-02T07:00:00Z,vault_launch,treatment,0",
    )
    ld_file(
        3,
        ld("ld-99", "u-9", "2025-12-03T06:00:00", "control"),  # tie within LaunchDarkly:
        ld("ld-100", "u-9", "2025-12-03T06:00:00", "treatment"),  # 'ld-100' < 'ld-99' as strings
        ld("ld-17", "u-1", "2025-12-03T10:00:00", "control"),
    )
    legacy_file(3, "lg-5,u-2,2025-12-03T10:00:00Z,vault_launch,treatment,TRUE")
    ld_file(4, ld("ld-18", "u-3", "2025-12-01T15:00:00", "treatment"))  # 3 days late
    write_text(
        landing / "users" / "users_2025-12-01.csv",
        "user_id,created_at,country,is_test_account\nt-1,2025-01-01T00:00:00Z,DE,false\n",
    )
    write_text(
        landing / "users" / "users_2025-12-04.csv",
        "user_id,created_at,country,is_test_account\n"
        + "\n".join(
            f"{u},2025-01-0{i + 1}T00:00:00Z,DE,{'true' if u == 't-1' else 'false'}"
            for i, u in enumerate(["u-1", "u-2", "u-3", "u-4", "u-5", "u-6", "u-8", "u-9", "t-1"])
        )
        + "\n",
    )
    header = "subscription_change_id,user_id,tier,effective_at\n"
    write_text(
        landing / "subscriptions" / "changes_2025-12-01.csv",
        header
        + "sc-1,u-1,standard,2025-11-01T00:00:00Z\n"
        + "sc-2,u-1,premium,2025-12-01T12:00:00Z\n"  # mid-day change
        + "sc-3,u-2,plus,2025-11-15T00:00:00Z\n"
        + "sc-5,u-6,standard,2025-10-01T00:00:00Z\n"
        + "sc-6,u-7,premium,2025-11-20T00:00:00Z\n",
    )
    write_text(
        landing / "subscriptions" / "changes_2025-12-02.csv",
        header
        + "sc-3,u-2,plus,2025-11-15T00:00:00Z\n"  # repeated change id: one change
        + "sc-4,u-3,plus,2025-12-02T08:00:00Z\n",
    )


def t(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2025, 12, day, hh, mm)


C, T = "control", "treatment"
EXPECTED_DAILY = [
    # experiment, user, date, first_exposure_at, variation, is_treatment, variations_seen, exposures, tier
    ("vault-launch", "u-1", D[1], t(1, 10, 15), C, False, 1, 2, "standard"),
    ("vault-launch", "u-1", D[2], t(2, 9), C, False, 1, 1, "premium"),
    ("vault-launch", "u-1", D[3], t(3, 10), C, False, 1, 1, "premium"),
    ("vault-launch", "u-2", D[1], t(1, 9), T, True, 2, 2, "plus"),
    ("vault-launch", "u-2", D[3], t(3, 10), T, True, 1, 1, "plus"),
    ("vault-launch", "u-3", D[1], t(1, 11), T, True, 1, 2, "unknown"),
    ("vault-launch", "u-3", D[2], t(2, 9), T, True, 1, 1, "plus"),
    ("vault-launch", "u-4", D[1], t(1, 12), C, False, 1, 1, "unknown"),
    ("vault-launch", "u-4", D[2], t(2, 9), T, True, 1, 1, "unknown"),
    ("vault-launch", "u-6", D[1], t(1, 23, 30), C, False, 1, 1, "standard"),
    ("vault-launch", "u-7", D[2], t(2, 10), T, True, 1, 1, "premium"),
    ("vault-launch", "u-8", D[2], t(2, 7), T, True, 1, 2, "unknown"),
    ("vault-launch", "u-9", D[3], t(3, 6), T, True, 2, 2, "unknown"),
]
EXPECTED_ASSIGNMENTS = [
    # experiment, user, assigned_at, assignment_date, variation, is_treatment, tier,
    # has_multiple_variations, exposure_days, last_exposure_date
    ("vault-launch", "u-1", t(1, 10, 15), D[1], C, False, "standard", False, 3, D[3]),
    ("vault-launch", "u-2", t(1, 9), D[1], T, True, "plus", True, 2, D[3]),
    ("vault-launch", "u-3", t(1, 11), D[1], T, True, "unknown", False, 2, D[2]),
    ("vault-launch", "u-4", t(1, 12), D[1], C, False, "unknown", True, 2, D[2]),
    ("vault-launch", "u-6", t(1, 23, 30), D[1], C, False, "standard", False, 1, D[1]),
    ("vault-launch", "u-7", t(2, 10), D[2], T, True, "premium", False, 1, D[2]),
    ("vault-launch", "u-8", t(2, 7), D[2], T, True, "unknown", False, 1, D[2]),
    ("vault-launch", "u-9", t(3, 6), D[3], T, True, "unknown", True, 1, D[3]),
]
EXPECTED_ALLOCATION = [
    # date, variation, is_treatment, tier, new, cumulative, active, exposures
    (D[1], C, False, "standard", 2, 2, 2, 3),
    (D[1], C, False, "unknown", 1, 1, 1, 1),
    (D[1], T, True, "plus", 1, 1, 1, 2),
    (D[1], T, True, "unknown", 1, 1, 1, 2),
    (D[2], C, False, "standard", 0, 2, 1, 1),
    (D[2], C, False, "unknown", 0, 1, 1, 1),
    (D[2], T, True, "plus", 0, 1, 0, 0),
    (D[2], T, True, "premium", 1, 1, 1, 1),
    (D[2], T, True, "unknown", 1, 2, 2, 3),
    (D[3], C, False, "standard", 0, 2, 1, 1),
    (D[3], C, False, "unknown", 0, 1, 0, 0),
    (D[3], T, True, "plus", 0, 1, 1, 1),
    (D[3], T, True, "premium", 0, 1, 0, 0),
    (D[3], T, True, "unknown", 1, 3, 1, 2),
]


def chi_p(chi: float) -> float:
    """p-value of a chi-square with one degree of freedom, via erfc (independent of scipy)."""
    return math.erfc(math.sqrt(chi / 2))


# date, assigned_users, multiple_variation_users, chi-square (control vs treatment, 50/50)
# 12-01: test users control u-1,u-6 (2) vs treatment u-3 (1): E=1.5 → 2·0.25/1.5 = 1/3
# 12-02 and 12-03: control 2 vs treatment 3 (u-3, u-7, u-8): E=2.5 → 2·0.25/2.5 = 0.2
EXPECTED_HEALTH = [(D[1], 5, 2, 1 / 3), (D[2], 7, 2, 0.2), (D[3], 8, 3, 0.2)]


def test_fct_experiment_exposures_daily(built):
    rows = query(
        built.duckdb_path,
        "select experiment_key, user_id, exposure_date, first_exposure_at, variation_name, "
        "is_treatment, variations_seen, exposures, subscription_tier "
        "from marts.fct_experiment_exposures_daily order by user_id, exposure_date",
    )
    assert rows == EXPECTED_DAILY


def test_fct_experiment_assignments(built):
    rows = query(
        built.duckdb_path,
        "select experiment_key, user_id, assigned_at, assignment_date, variation_name, is_treatment, "
        "subscription_tier, has_multiple_variations, exposure_days, last_exposure_date "
        "from marts.fct_experiment_assignments order by user_id",
    )
    assert rows == EXPECTED_ASSIGNMENTS


def test_mart_experiment_allocation_daily(built):
    """The whole table: only vault-launch has exposures (no row for vault-onboarding-copy)."""
    rows = query(
        built.duckdb_path,
        "select * from marts.mart_experiment_allocation_daily "
        "order by experiment_key, date, variation_name, subscription_tier",
    )
    assert rows == [("vault-launch", *row) for row in EXPECTED_ALLOCATION]


def test_mart_experiment_health_daily(built):
    """The whole table: only vault-launch has assignments (no row for vault-onboarding-copy)."""
    rows = query(
        built.duckdb_path,
        "select * from marts.mart_experiment_health_daily order by experiment_key, date",
    )
    assert [r[0] for r in rows] == ["vault-launch"] * len(EXPECTED_HEALTH)
    rows = [r[1:] for r in rows]
    assert [r[:3] for r in rows] == [e[:3] for e in EXPECTED_HEALTH]
    for row, (_, _, _, chi) in zip(rows, EXPECTED_HEALTH, strict=True):
        assert row[3] == pytest.approx(chi)
        assert row[4] == pytest.approx(chi_p(chi))
        assert row[5] == "not_enough_traffic"  # no variation has 8 users yet


def test_dims(built):
    """Every dimension table whole: all rows (both experiments of the registry), all columns."""
    # the change log's distinct changes (sc-3 twice is one); u-1's standard ends at its
    # mid-day change; u-7 is in the log though not in the users snapshot
    assert query(built.duckdb_path, "select * from marts.dim_subscription_history order by 1") == [
        ("sc-1", "u-1", "standard", datetime(2025, 11, 1), t(1, 12), False),
        ("sc-2", "u-1", "premium", t(1, 12), None, True),
        ("sc-3", "u-2", "plus", datetime(2025, 11, 15), None, True),
        ("sc-4", "u-3", "plus", t(2, 8), None, True),
        ("sc-5", "u-6", "standard", datetime(2025, 10, 1), None, True),
        ("sc-6", "u-7", "premium", datetime(2025, 11, 20), None, True),
    ]
    # the newest snapshot (users_2025-12-04.csv) only: created_at 2025-01-01 + the user's
    # position in the file; t-1 is a test account there (false in the older snapshot)
    assert query(built.duckdb_path, "select * from marts.dim_users order by user_id") == [
        ("t-1", datetime(2025, 1, 9), "DE", True),
        ("u-1", datetime(2025, 1, 1), "DE", False),
        ("u-2", datetime(2025, 1, 2), "DE", False),
        ("u-3", datetime(2025, 1, 3), "DE", False),
        ("u-4", datetime(2025, 1, 4), "DE", False),
        ("u-5", datetime(2025, 1, 5), "DE", False),
        ("u-6", datetime(2025, 1, 6), "DE", False),
        ("u-8", datetime(2025, 1, 7), "DE", False),
        ("u-9", datetime(2025, 1, 8), "DE", False),
    ]
    # the shipped registry (dbt_project/seeds/experiments.csv, experiment_variations.csv)
    assert query(built.duckdb_path, "select * from marts.dim_experiments order by 1") == [
        ("vault-launch", "vault-launch", "vault_launch",
         "Launch of the Vault feature: does showing Vault to users change engagement?",
         D[1], None, "growth-team"),
        ("vault-onboarding-copy", "vault-onboarding-copy", "vault_onboarding_copy",
         "Three onboarding texts for Vault: which one gets users to open it?",
         D[1], date(2025, 12, 20), "growth-team"),
    ]  # fmt: skip
    assert query(
        built.duckdb_path, "select * from marts.dim_experiment_variations order by 1, 2"
    ) == [
        ("vault-launch", "control", False, 0.5),
        ("vault-launch", "treatment", True, 0.5),
        ("vault-onboarding-copy", "control", False, 0.34),
        ("vault-onboarding-copy", "treatment_a", True, 0.33),
        ("vault-onboarding-copy", "treatment_b", True, 0.33),
    ]


def test_reruns_in_any_order_equal_the_clean_build(built, tmp_path):
    """A middle partition, an overlapping range and reverse order all end at the clean build."""
    clean = snapshot(built.duckdb_path)
    landing = built.landing_dir
    settings = make_settings(tmp_path, landing)
    with data_instance() as instance:
        for day in (4, 3, 2, 1):  # reverse order, one partition at a time
            run_range(settings, instance, D[day], D[day])
        assert snapshot(settings.duckdb_path) == clean
        run_range(settings, instance, D[2], D[2])  # a middle partition again
        run_range(settings, instance, D[1], D[3])  # an overlapping range
        assert snapshot(settings.duckdb_path) == clean


def test_late_event_lands_on_its_own_date_when_its_folder_runs(built, tmp_path):
    """ld-13 (event 12-01) arrives in folder 12-02: absent after 12-01 ran, present after 12-02."""
    settings = make_settings(tmp_path, built.landing_dir)
    late_row = "select count(*) from marts.fct_experiment_exposures_daily where user_id = 'u-6'"
    with data_instance() as instance:
        run_range(settings, instance, D[1], D[1])
        assert query(settings.duckdb_path, late_row) == [(0,)]
        run_range(settings, instance, D[2], D[2])
        assert query(settings.duckdb_path, late_row) == [(1,)]
        assert query(
            settings.duckdb_path,
            "select exposure_date, first_exposure_at from marts.fct_experiment_exposures_daily "
            "where user_id = 'u-6'",
        ) == [(D[1], t(1, 23, 30))]


def test_a_daily_run_reads_only_its_window(built, tmp_path):
    """Day 3 with no lookback recomputes 12-03 only: older raw days are not read again.

    The older raw partitions are deleted from a copy of the clean build before the run;
    if the run re-read them, 12-01 and 12-02 would lose their rows.
    """
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built.duckdb_path, copy)
    con = duckdb.connect(str(copy))
    for table in ("partner_directpush_launchdarkly_events", "legacy_feature_flag_events"):
        con.execute(f"delete from raw.{table} where _load_date < '2025-12-03'")
    con.close()
    settings = dataclasses.replace(make_settings(tmp_path, built.landing_dir, 0), duckdb_path=copy)
    with data_instance() as instance:
        run_range(settings, instance, D[3], D[3])
    assert snapshot(copy) == snapshot(built.duckdb_path)


def test_dev_target_keeps_a_consistent_user_sample(built, tmp_path):
    """EXPPLATFORM_DBT_TARGET=dev keeps the users whose hash falls in the sample, everywhere."""
    settings = make_settings(tmp_path, built.landing_dir).with_changes(
        dbt_target="dev", dev_sample_pct=50.0
    )
    with data_instance() as instance:
        run_range(settings, instance, D[1], D[4])
    fixture_users = sorted({row[1] for row in EXPECTED_DAILY})
    con = duckdb.connect()
    kept = [
        u
        for u in fixture_users
        if con.execute("select hash(?::varchar) % 10000 < 5000", [u]).fetchone()[0]
    ]
    assert 0 < len(kept) < len(fixture_users)  # the fixture is big enough to sample
    sampled = query(
        settings.duckdb_path,
        "select distinct user_id from marts.fct_experiment_exposures_daily order by 1",
    )
    assert [r[0] for r in sampled] == kept
    # The kept users' rows are exactly those of the full build.
    full = [r for r in EXPECTED_DAILY if r[1] in kept]
    assert (
        query(
            settings.duckdb_path,
            "select experiment_key, user_id, exposure_date, first_exposure_at, variation_name, "
            "is_treatment, variations_seen, exposures, subscription_tier "
            "from marts.fct_experiment_exposures_daily order by user_id, exposure_date",
        )
        == full
    )


def test_dev_target_window_counts_back_from_the_newest_arrival_date(built, tmp_path):
    """The README's dev example: EXPPLATFORM_DEV_DAYS without EXPPLATFORM_DEV_AS_OF keeps the
    last N days of the newest data loaded, not of today (the fixture is a year old)."""
    env = {"EXPPLATFORM_DBT_TARGET": "dev", "EXPPLATFORM_DEV_SAMPLE_PCT": "100"}
    from_env = get_settings(env | {"EXPPLATFORM_DEV_DAYS": "2"})
    assert (from_env.dev_sample_pct, from_env.dev_days, from_env.dev_as_of) == (100.0, 2, None)
    settings = make_settings(tmp_path, built.landing_dir).with_changes(
        dbt_target="dev", dev_sample_pct=100.0, dev_days=2
    )
    with data_instance() as instance:
        run_range(settings, instance, D[1], D[4])
    # The newest arrival folder is 12-04: the window is event dates 12-03 and 12-04, and the
    # fixture has exposures on 12-03 only (u-1, u-2, u-9), each row as in the full build.
    assert query(
        settings.duckdb_path,
        "select experiment_key, user_id, exposure_date, first_exposure_at, variation_name, "
        "is_treatment, variations_seen, exposures, subscription_tier "
        "from marts.fct_experiment_exposures_daily order by user_id, exposure_date",
    ) == [
        ("vault-launch", "u-1", D[3], t(3, 10), C, False, 1, 1, "premium"),
        ("vault-launch", "u-2", D[3], t(3, 10), T, True, 1, 1, "plus"),
        ("vault-launch", "u-9", D[3], t(3, 6), T, True, 2, 2, "unknown"),
    ]
