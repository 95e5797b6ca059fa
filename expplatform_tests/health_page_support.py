"""A hand-made serving copy for the health page tests (unit and browser).

Three experiments, every number chosen by hand (cumulative users in the test, per day):

- `vault-launch`, control/treatment weights 0.5/0.5, tiers standard and premium, 12-01..12-04:
  control 40, 80, 100, 110 and treatment 40, 120, 180, 200 → healthy (χ² 0), warning
  (χ² 8.0), unhealthy (χ² 22.86), unhealthy (χ² 26.13, p 3.19e-7) on the latest day.
  Also 2 users seen in several variations (treatment, 12-02) and 3 users assigned to the
  unregistered variation `legacy-default` (12-03): counted in the allocation, not in the test.
- `vault-pricing`, three arms weighted 0.34/0.33/0.33, tiers plus and unknown, 12-03..12-04:
  5/9/6 (not enough traffic, statistics null) then 350/320/330 (χ² 0.597, p 0.742, healthy).
  Per tier on 12-04: unknown 45/21/24 has p 0.00546, Bonferroni ×2 = 0.0109: healthy.
- `vault-referral`, registered, no traffic yet.

The marts' χ² and p-values are computed here by scipy from the counts (an independent
calculator); the statuses are written by hand from the contract's rules and checked
against those p-values in test_health_page.py.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
from scipy.stats import chisquare

D1, D2, D3, D4 = (date(2025, 12, n) for n in range(1, 5))
BUILT_AT = datetime(2025, 12, 5, 6, 12, 34)
RUN_ID = "run-0001"

EXPERIMENTS = [
    # key, launchdarkly key, legacy key, description, start, end, owner
    (
        "vault-launch",
        "vault-launch",
        "vault_launch",
        "Money vaults for everyone",
        D1,
        None,
        "growth",
    ),
    ("vault-pricing", "vault-pricing", None, "Vault fee levels", D3, None, "monetisation"),
    ("vault-referral", "vault-referral", None, "Referral bonus on vaults", D4, None, "growth"),
]
VARIATIONS = [
    ("vault-launch", "control", False, 0.5),
    ("vault-launch", "treatment", True, 0.5),
    ("vault-pricing", "control", False, 0.34),
    ("vault-pricing", "low-fee", True, 0.33),
    ("vault-pricing", "no-fee", True, 0.33),
    ("vault-referral", "control", False, 0.5),
    ("vault-referral", "treatment", True, 0.5),
]

# (experiment, assignment date, tier, variation, has_multiple_variations, users)
ASSIGNMENT_GROUPS = [
    ("vault-launch", D1, "standard", "control", False, 30),
    ("vault-launch", D1, "standard", "treatment", False, 30),
    ("vault-launch", D1, "premium", "control", False, 10),
    ("vault-launch", D1, "premium", "treatment", False, 10),
    ("vault-launch", D2, "standard", "control", False, 30),
    ("vault-launch", D2, "standard", "treatment", False, 70),
    ("vault-launch", D2, "standard", "treatment", True, 2),
    ("vault-launch", D2, "premium", "control", False, 10),
    ("vault-launch", D2, "premium", "treatment", False, 10),
    ("vault-launch", D3, "standard", "control", False, 20),
    ("vault-launch", D3, "standard", "treatment", False, 60),
    ("vault-launch", D3, "standard", "legacy-default", False, 3),
    ("vault-launch", D4, "standard", "control", False, 5),
    ("vault-launch", D4, "standard", "treatment", False, 15),
    ("vault-launch", D4, "premium", "control", False, 5),
    ("vault-launch", D4, "premium", "treatment", False, 5),
    ("vault-pricing", D3, "plus", "control", False, 5),
    ("vault-pricing", D3, "plus", "low-fee", False, 9),
    ("vault-pricing", D3, "plus", "no-fee", False, 6),
    ("vault-pricing", D4, "plus", "control", False, 300),
    ("vault-pricing", D4, "plus", "low-fee", False, 290),
    ("vault-pricing", D4, "plus", "no-fee", False, 300),
    ("vault-pricing", D4, "unknown", "control", False, 45),
    ("vault-pricing", D4, "unknown", "low-fee", False, 21),
    ("vault-pricing", D4, "unknown", "no-fee", False, 24),
]
LAST_EXPOSURE = {"vault-launch": D4, "vault-pricing": D4}

# Overall health, by hand: (experiment, date, assigned_users, multiple_variation_users,
# users in the test per registered arm (registry order), status). χ² and p come from scipy.
HEALTH_DAYS = [
    ("vault-launch", D1, 80, 0, (40, 40), "healthy"),
    ("vault-launch", D2, 202, 2, (80, 120), "warning"),
    ("vault-launch", D3, 285, 2, (100, 180), "unhealthy"),
    ("vault-launch", D4, 315, 2, (110, 200), "unhealthy"),
    ("vault-pricing", D3, 20, 0, (5, 9, 6), "not_enough_traffic"),
    ("vault-pricing", D4, 1000, 0, (350, 320, 330), "healthy"),
]
# Per tier, by hand: (experiment, date, tier, assigned, test users per arm, tiers present, status)
TIER_DAYS = [
    ("vault-launch", D1, "standard", 60, (30, 30), 2, "healthy"),
    ("vault-launch", D1, "premium", 20, (10, 10), 2, "healthy"),
    ("vault-launch", D2, "standard", 162, (60, 100), 2, "warning"),
    ("vault-launch", D2, "premium", 40, (20, 20), 2, "healthy"),
    ("vault-launch", D3, "standard", 245, (80, 160), 2, "unhealthy"),
    ("vault-launch", D3, "premium", 40, (20, 20), 2, "healthy"),
    ("vault-launch", D4, "standard", 265, (85, 175), 2, "unhealthy"),
    ("vault-launch", D4, "premium", 50, (25, 25), 2, "healthy"),
    ("vault-pricing", D3, "plus", 20, (5, 9, 6), 1, "not_enough_traffic"),
    ("vault-pricing", D4, "plus", 910, (305, 299, 306), 2, "healthy"),
    ("vault-pricing", D4, "unknown", 90, (45, 21, 24), 2, "healthy"),
]
CHECK_RESULTS = [
    (
        "marts/mart_experiment_health_daily", "srm_overall", "2025-12-04", False, "ERROR",
        "vault-launch: sample-ratio mismatch on 2025-12-04", datetime(2025, 12, 5, 6, 11, 0),
        RUN_ID,
    ),
    (
        "marts/fct_experiment_assignments", "multiple_variation_users_share", "2025-12-04", True,
        "WARN", "users in several variations below 1%", datetime(2025, 12, 5, 6, 11, 1), RUN_ID,
    ),
    (
        "raw/partner_directpush_launchdarkly_events", "rejected_record_rate", "2025-12-04", True,
        "WARN", "rejected-record rate below 0.1%", datetime(2025, 12, 5, 6, 10, 0), RUN_ID,
    ),
]  # fmt: skip

DDL = """
create schema marts;
create schema meta;
create table marts.dim_experiments (
    experiment_key varchar, launchdarkly_flag_key varchar, legacy_flag_key varchar,
    description varchar, start_date date, end_date date, owner varchar);
create table marts.dim_experiment_variations (
    experiment_key varchar, variation_name varchar, is_treatment boolean, expected_weight double);
create table marts.fct_experiment_assignments (
    experiment_key varchar, user_id varchar, assigned_at timestamp, assignment_date date,
    variation_name varchar, is_treatment boolean, subscription_tier varchar,
    has_multiple_variations boolean, exposure_days bigint, last_exposure_date date);
create table marts.fct_experiment_exposures_daily (
    experiment_key varchar, user_id varchar, exposure_date date, first_exposure_at timestamp,
    variation_name varchar, is_treatment boolean, variations_seen bigint, exposures bigint,
    subscription_tier varchar);
create table marts.mart_experiment_allocation_daily (
    experiment_key varchar, date date, variation_name varchar, is_treatment boolean,
    subscription_tier varchar, new_users bigint, cumulative_users bigint, active_users bigint,
    exposures bigint);
create table marts.mart_experiment_health_daily (
    experiment_key varchar, date date, assigned_users bigint, multiple_variation_users bigint,
    srm_chi_square double, srm_p_value double, srm_status varchar);
create table marts.mart_experiment_health_by_tier_daily (
    experiment_key varchar, date date, subscription_tier varchar, assigned_users bigint,
    test_users bigint, srm_chi_square double, srm_p_value double,
    srm_p_value_bonferroni double, srm_status varchar);
create table meta.check_results (
    asset_key varchar, check_name varchar, partition varchar, passed boolean, severity varchar,
    description varchar, evaluated_at timestamp, run_id varchar);
create table meta.build_info (built_at timestamp, data_through date, run_id varchar);
"""


def weights(experiment: str) -> list[float]:
    return [w for e, _, _, w in VARIATIONS if e == experiment]


def srm(experiment: str, users: tuple[int, ...]) -> tuple[float, float]:
    """(χ², p) of Pearson's test of `users` against the normalised weights, by scipy."""
    shares = [w / sum(weights(experiment)) for w in weights(experiment)]
    total = sum(users)
    result = chisquare(users, [total * s for s in shares])
    return float(result.statistic), float(result.pvalue)


def build_serving_db(path: Path) -> Path:
    """Write the fixture serving copy to `path` (a new DuckDB file) and close it."""
    # Attached under another name: in a file called serving.duckdb, `serving.x` would be
    # ambiguous (the catalog `serving` or the schema `serving`?).
    con = duckdb.connect()
    try:
        con.execute("attach ? as fixture", [str(path)])
        con.execute("use fixture")
        con.execute(DDL)
        con.executemany(
            "insert into marts.dim_experiments values (?, ?, ?, ?, ?, ?, ?)", EXPERIMENTS
        )
        con.executemany(
            "insert into marts.dim_experiment_variations values (?, ?, ?, ?)", VARIATIONS
        )
        registered = {(e, v): t for e, v, t, _ in VARIATIONS}
        for experiment, day, tier, variation, multiple, users in ASSIGNMENT_GROUPS:
            con.execute(
                "insert into marts.fct_experiment_assignments "
                "select ?, ? || i, ?::timestamp, ?, ?, ?, ?, ?, 1, ? from range(?) as t(i)",
                [
                    experiment, f"{experiment}-{day}-{tier}-{variation}-{multiple}-", day, day,
                    variation, registered.get((experiment, variation)), tier, multiple,
                    LAST_EXPOSURE[experiment], users,
                ],
            )  # fmt: skip
        # The allocation mart, every (date, variation, tier) with a non-zero cumulative count.
        con.execute(
            """
            insert into marts.mart_experiment_allocation_daily
            with spans as (
                select experiment_key, min(assignment_date) as first_date,
                       max(last_exposure_date) as last_date
                from marts.fct_experiment_assignments group by all
            ), days as (
                select experiment_key, unnest(range(first_date, last_date + 1, interval 1 day))::date as date
                from spans
            ), groups as (
                select distinct experiment_key, variation_name, is_treatment, subscription_tier
                from marts.fct_experiment_assignments
            )
            select days.experiment_key, days.date, g.variation_name, g.is_treatment,
                   g.subscription_tier,
                   count(*) filter (where f.assignment_date = days.date),
                   count(*) filter (where f.assignment_date <= days.date),
                   count(*) filter (where f.assignment_date = days.date),
                   2 * count(*) filter (where f.assignment_date = days.date)
            from days
            join groups g using (experiment_key)
            join marts.fct_experiment_assignments f
                on f.experiment_key = g.experiment_key and f.variation_name = g.variation_name
                and f.subscription_tier = g.subscription_tier
            group by all
            having count(*) filter (where f.assignment_date <= days.date) > 0
            """
        )
        for experiment, day, assigned, multiple, users, status in HEALTH_DAYS:
            chi, p = (None, None) if status == "not_enough_traffic" else srm(experiment, users)
            con.execute(
                "insert into marts.mart_experiment_health_daily values (?, ?, ?, ?, ?, ?, ?)",
                [experiment, day, assigned, multiple, chi, p, status],
            )
        for experiment, day, tier, assigned, users, present, status in TIER_DAYS:
            chi, p = (None, None) if status == "not_enough_traffic" else srm(experiment, users)
            con.execute(
                "insert into marts.mart_experiment_health_by_tier_daily "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    experiment, day, tier, assigned, sum(users), chi, p,
                    None if p is None else min(1.0, p * present), status,
                ],
            )  # fmt: skip
        con.executemany(
            "insert into meta.check_results values (?, ?, ?, ?, ?, ?, ?, ?)", CHECK_RESULTS
        )
        con.execute("insert into meta.build_info values (?, ?, ?)", [BUILT_AT, D4, RUN_ID])
    finally:
        con.close()
    return path
