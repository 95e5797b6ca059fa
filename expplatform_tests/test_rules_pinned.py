"""Issue #15: every rule pinned by an independent test.

One hand-made landing zone, built once through the real Dagster job and dbt (arrival dates
2025-12-18..21), with the shipped registry: `vault-launch` (control/treatment 0.5/0.5, no end
date) and `vault-onboarding-copy` (control 0.34, treatment_a 0.33, treatment_b 0.33, ends
2025-12-20). Every contract table that holds the fixture's events, and the rejected records,
is compared whole (both experiments, every column) with rows written out by hand; the comment
next to each event says what it is there for, the comments next to the expected rows how each
number was worked out. Nothing expected is computed with the code under test.

The rules pinned here (the issue's bullets):

- sample-ratio test with three arms, uneven weights and a registered arm without users
  (`vault-onboarding-copy`); the "0.1 percentage points" condition needs millions of users:
  it is a dbt unit test (dbt_project/models/marts/_marts__unit_tests_rules.yml);
- an unregistered variation: null `is_treatment`, in `assigned_users`, not in the test;
- a date inside the span with no exposure at all (12-20), a last exposure (12-21) after the
  last assignment date (12-19);
- one event id in both sources (two events), a LaunchDarkly event carrying the legacy key and
  a legacy event carrying the LaunchDarkly key (not exposures), copies of one event id with
  different timestamps (the copy with the earliest timestamp is the event: what the models do,
  not yet written in the contract or docs/DATA_MODEL.md);
- sub-second ordering across sources, a tie between two legacy events, legacy offsets that
  cross midnight UTC both ways;
- rejection reasons (also unit-level, on an in-memory warehouse, at the end of this file);
- the experiment's end date (inclusive; an exposure after it is not counted).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from expplatform.ingestion.landing import LAUNCHDARKLY, LEGACY, SUBSCRIPTIONS, USERS
from expplatform.ingestion.loaders import load_daily_partitions, load_snapshot
from expplatform_tests.conftest import write_text
from expplatform_tests.e2e import data_instance, make_settings, query, run_range, snapshot

D18, D19, D20, D21 = (date(2025, 12, n) for n in (18, 19, 20, 21))
LAUNCH, ONBOARDING = "vault-launch", "vault-onboarding-copy"
C, T, TA = "control", "treatment", "treatment_a"
UNREG = "legacy-default"  # not registered for vault-launch
UNKNOWN = "unknown"


def at(day: int, hh: int, mm: int = 0, ss: int = 0, ms: int = 0) -> datetime:
    """A naive UTC instant of December 2025, as DuckDB returns TIMESTAMP values."""
    return datetime(2025, 12, day, hh, mm, ss, ms * 1000)


def epoch_ms(instant: datetime) -> int:
    """Exact epoch milliseconds of a naive UTC instant (integer arithmetic, no float rounding)."""
    return (instant.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )


def ld(event_id, user, instant, variation, *, key=LAUNCH, active="Y") -> str:
    """One LaunchDarkly data-export line (contract §2.1)."""
    return json.dumps(
        {
            "event_id": event_id,
            "is_active": active,
            "project": "default",
            "environment": "production",
            "event": {
                "kind": "feature",
                "creationDate": epoch_ms(instant),
                "key": key,
                "version": 7,
                "contextKeys": {"user": user},
                "variation": 0,
                "variationName": variation,
                "value": True,
                "default": False,
                "reason": {"kind": "RULE_MATCH", "inExperiment": True},
            },
        }
    )


LEGACY_HEADER = "id,user,timestamp,key,variation_name,value"
# JSON null ids (§2.5: missing, empty or null): rejected, never loaded as the text 'null'
LD_NULL_EVENT_ID = ld(None, "v-x", at(18, 17), T)
LD_NULL_USER = ld("ld-null-user", None, at(18, 17), T)
# legacy rows with a blank timestamp (empty, and spaces only)
LG_EMPTY_TIMESTAMP = "lg-blank,v-x,,vault_launch,control,1"
LG_SPACES_TIMESTAMP = "lg-space,v-x,   ,vault_launch,control,1"
BULK_CONTROL = [f"b-c{i}" for i in range(1, 7)]  # 6 users, control, 12-19 08:0i
BULK_TREATMENT = [f"b-t{i}" for i in range(1, 6)]  # 5 users, treatment, 12-19 09:0i


def build_landing(landing: Path) -> None:
    def ld_file(day: int, *lines: str) -> None:
        write_text(
            landing / "launchdarkly" / f"date=2025-12-{day}" / "part-000.jsonl",
            "\n".join(lines) + "\n",
        )

    def legacy_file(day: int, *rows: str) -> None:
        write_text(
            landing / "legacy" / f"date=2025-12-{day}" / "part-000.csv",
            "\n".join([LEGACY_HEADER, *rows]) + "\n",
        )

    ld_file(
        18,
        # cp-1 arrives first with the LATER timestamp; its re-delivery on 12-19 has 09:00 and
        # another variation: the earliest timestamp is the event (control at 09:00)
        ld("cp-1", "v-cp", at(18, 9, 30), "treatment"),
        ld("dup-1", "v-dup", at(18, 10), "control"),  # dup-1 is also a legacy id: two events
        ld("ld-sub", "v-sub", at(18, 10, 0, 0, 700), "treatment"),  # 400 ms after lg-sub
        ld("ld-key", "v-key", at(18, 12), "treatment", key="vault_launch"),  # legacy key: no
        ld("cp-3", "v-cp3", at(18, 14), "control"),  # retracted on 12-19 by a copy dated 12-19
        ld("ld-unreg", "v-unreg", at(18, 15), " Legacy-Default "),  # unregistered variation
        ld("ld-ret1", "v-ret", at(18, 16), "treatment"),  # v-ret comes back on 12-21
        ld("cp-2", "v-cp2", at(18, 23), "treatment"),  # a copy dated 12-19 01:00 comes later
        LD_NULL_EVENT_ID,  # line 9: rejected, missing_event_id
        LD_NULL_USER,  # line 10: rejected, missing_user_id
    )
    legacy_file(
        18,
        "dup-1,v-dup,2025-12-18T11:00:00Z,vault_launch,control,true",  # same id as LaunchDarkly's
        "lg-sub,v-sub,2025-12-18T10:00:00.300Z,vault_launch,control,t",  # first by 400 ms
        "lg-9,v-tie,2025-12-18T13:00:00Z,vault_launch,control,1",  # tie with lg-10, first in
        "lg-10,v-tie,2025-12-18T13:00:00Z,vault_launch,treatment,1",  # file; 'lg-10' < 'lg-9'
        "lg-m1,v-mid1,2025-12-19T00:30:00+01:00,vault_launch,treatment,1",  # 12-18 23:30 UTC
        "lg-m2,v-mid2,2025-12-18T20:00:00-05:00,vault_launch,control,0",  # 12-19 01:00 UTC
        "lg-key,v-key,2025-12-18T12:30:00Z,vault-launch,control,1",  # LaunchDarkly key: no
        LG_EMPTY_TIMESTAMP,  # line 9: rejected, missing_timestamp
        LG_SPACES_TIMESTAMP,  # line 10: rejected, missing_timestamp
    )
    ld_file(
        19,
        ld("cp-1", "v-cp", at(18, 9), "control"),  # re-delivery, earlier timestamp: wins
        ld("cp-2", "v-cp2", at(19, 1), "control"),  # copy on the next date: not an event
        ld("cp-3", "v-cp3", at(19, 8), "control", active="N"),  # retraction: v-cp3 never counts
        *(ld(f"ld-{u}", u, at(19, 8, i), "control") for i, u in enumerate(BULK_CONTROL, 1)),
        *(ld(f"ld-{u}", u, at(19, 9, i), "treatment") for i, u in enumerate(BULK_TREATMENT, 1)),
        ld("ld-o1", "o-1", at(19, 9), "control", key=ONBOARDING),
        ld("ld-o4", "o-4", at(19, 11), "control", key=ONBOARDING),
    )
    legacy_file(19, "lg-o2,o-2,2025-12-19T10:00:00Z,vault_onboarding_copy,Treatment_A,true")
    # 12-20: the onboarding experiment's last day (end_date inclusive), nothing for vault-launch
    ld_file(20, ld("ld-o1-end", "o-1", at(20, 23, 59, 59, 999), "control", key=ONBOARDING))
    ld_file(
        21,
        ld("ld-o3", "o-3", at(21, 0), "treatment_b", key=ONBOARDING),  # after the end date
        ld("ld-ret2", "v-ret", at(21, 10), "treatment"),  # after vault-launch's last assignment
    )
    legacy_file(21, "lg-o2-late,o-2,2025-12-21T08:00:00Z,vault_onboarding_copy,treatment_a,1")
    write_text(
        landing / "users" / "users_2025-12-21.csv",
        "user_id,created_at,country,is_test_account\n"
        "v-dup,2025-01-01T00:00:00Z,DE,false\n"
        "o-1,2025-03-01T12:00:00+02:00,NL,false\n"
        "t-9,2025-04-01T00:00:00Z,FR,true\n"
        "x-1,not a date,FR,false\n"  # line 5: rejected, invalid_timestamp
        "x-2,2025-02-30T00:00:00Z,FR,false\n",  # line 6: no 30 February, invalid_timestamp
    )
    write_text(
        landing / "subscriptions" / "changes.csv",
        "subscription_change_id,user_id,tier,effective_at\n"
        "sc-1,v-dup,plus,2025-11-01T00:00:00Z\n"
        "sc-2,o-1,premium,2025-12-25T00:00:00Z\n"  # after every exposure: o-1 is 'unknown'
        ",v-x,plus,2025-11-01T00:00:00Z\n"  # line 4: missing_event_id
        "sc-3,,plus,2025-11-01T00:00:00Z\n"  # line 5: missing_user_id
        "sc-4,v-x,plus,\n"  # line 6: missing_timestamp
        "sc-5,v-x,,2025-11-01T00:00:00Z\n"  # line 7: invalid_tier (no tier)
        "sc-6,v-x\n",  # line 8: malformed_row (too few fields)
    )


@pytest.fixture(scope="module")
def rules_built(tmp_path_factory):
    """One clean build of the landing zone above: arrival dates 12-18..21 in one run."""

    tmp = tmp_path_factory.mktemp("rules")
    landing = tmp / "landing"
    build_landing(landing)
    settings = make_settings(tmp, landing)
    with data_instance() as instance:
        run_range(settings, instance, D18, D21)
    return settings


# --- expected rows, by hand ---------------------------------------------------------------------
#
# Who is exposed, and why (vault-launch; every user's tier is 'unknown' but v-dup's, 'plus'
# since 11-01 by sc-1):
#   v-cp    cp-1 at 12-18 09:00 control (the copy with the earliest timestamp; the copy that
#           arrived first said 09:30 treatment): 1 exposure.
#   v-dup   dup-1 in LaunchDarkly (10:00) and dup-1 in legacy (11:00): ids are per source, so
#           2 exposures; first 10:00 control.
#   v-sub   legacy 10:00:00.300 control, LaunchDarkly 10:00:00.700 treatment: legacy is first
#           by 400 ms (LaunchDarkly would win a tie): control, 2 variations, 2 exposures.
#   v-tie   lg-9 control and lg-10 treatment at 13:00: same instant, same source, 'lg-10' <
#           'lg-9' as strings: treatment, 2 variations, 2 exposures.
#   v-mid1  00:30+01:00 on 12-19 is 12-18 23:30 UTC: date 12-18, treatment.
#   v-mid2  20:00-05:00 on 12-18 is 12-19 01:00 UTC: date 12-19, control.
#   v-unreg variation ' Legacy-Default ' -> 'legacy-default', not registered: is_treatment null.
#   v-ret   12-18 16:00 treatment and 12-21 10:00 treatment: 2 exposure days.
#   v-cp2   cp-2 at 12-18 23:00 treatment; its copy dated 12-19 01:00 is the same event.
#   b-c1..6 control at 12-19 08:01..08:06; b-t1..5 treatment at 12-19 09:01..09:05.
#   not exposed: v-key (each source's event carries the other source's key), v-cp3 (cp-3 has a
#   retracted copy), v-x (every line rejected).
# vault-onboarding-copy (ends 12-20): o-1 control 12-19 09:00 and 12-20 23:59:59.999 (the last
# millisecond of the end date counts); o-2 treatment_a 12-19 10:00 ('Treatment_A'); o-4 control
# 12-19 11:00. Not counted: o-3 (treatment_b, 12-21 00:00, the first instant after the end date)
# and o-2's legacy event of 12-21. Nobody is in treatment_b.

EXPECTED_DAILY = [
    # experiment, user, exposure_date, first_exposure_at, variation, is_treatment,
    # variations_seen, exposures, subscription_tier
    *[(LAUNCH, u, D19, at(19, 8, i), C, False, 1, 1, UNKNOWN) for i, u in enumerate(BULK_CONTROL, 1)],
    *[(LAUNCH, u, D19, at(19, 9, i), T, True, 1, 1, UNKNOWN) for i, u in enumerate(BULK_TREATMENT, 1)],
    (LAUNCH, "v-cp", D18, at(18, 9), C, False, 1, 1, UNKNOWN),
    (LAUNCH, "v-cp2", D18, at(18, 23), T, True, 1, 1, UNKNOWN),
    (LAUNCH, "v-dup", D18, at(18, 10), C, False, 1, 2, "plus"),
    (LAUNCH, "v-mid1", D18, at(18, 23, 30), T, True, 1, 1, UNKNOWN),
    (LAUNCH, "v-mid2", D19, at(19, 1), C, False, 1, 1, UNKNOWN),
    (LAUNCH, "v-ret", D18, at(18, 16), T, True, 1, 1, UNKNOWN),
    (LAUNCH, "v-ret", D21, at(21, 10), T, True, 1, 1, UNKNOWN),
    (LAUNCH, "v-sub", D18, at(18, 10, 0, 0, 300), C, False, 2, 2, UNKNOWN),
    (LAUNCH, "v-tie", D18, at(18, 13), T, True, 2, 2, UNKNOWN),
    (LAUNCH, "v-unreg", D18, at(18, 15), UNREG, None, 1, 1, UNKNOWN),
    (ONBOARDING, "o-1", D19, at(19, 9), C, False, 1, 1, UNKNOWN),
    (ONBOARDING, "o-1", D20, at(20, 23, 59, 59, 999), C, False, 1, 1, UNKNOWN),
    (ONBOARDING, "o-2", D19, at(19, 10), TA, True, 1, 1, UNKNOWN),
    (ONBOARDING, "o-4", D19, at(19, 11), C, False, 1, 1, UNKNOWN),
]  # fmt: skip

EXPECTED_ASSIGNMENTS = [
    # experiment, user, assigned_at, assignment_date, variation, is_treatment, tier,
    # has_multiple_variations, exposure_days, last_exposure_date
    *[(LAUNCH, u, at(19, 8, i), D19, C, False, UNKNOWN, False, 1, D19) for i, u in enumerate(BULK_CONTROL, 1)],
    *[(LAUNCH, u, at(19, 9, i), D19, T, True, UNKNOWN, False, 1, D19) for i, u in enumerate(BULK_TREATMENT, 1)],
    (LAUNCH, "v-cp", at(18, 9), D18, C, False, UNKNOWN, False, 1, D18),
    (LAUNCH, "v-cp2", at(18, 23), D18, T, True, UNKNOWN, False, 1, D18),
    (LAUNCH, "v-dup", at(18, 10), D18, C, False, "plus", False, 1, D18),
    (LAUNCH, "v-mid1", at(18, 23, 30), D18, T, True, UNKNOWN, False, 1, D18),
    (LAUNCH, "v-mid2", at(19, 1), D19, C, False, UNKNOWN, False, 1, D19),
    (LAUNCH, "v-ret", at(18, 16), D18, T, True, UNKNOWN, False, 2, D21),  # last exposure 12-21
    (LAUNCH, "v-sub", at(18, 10, 0, 0, 300), D18, C, False, UNKNOWN, True, 1, D18),
    (LAUNCH, "v-tie", at(18, 13), D18, T, True, UNKNOWN, True, 1, D18),
    (LAUNCH, "v-unreg", at(18, 15), D18, UNREG, None, UNKNOWN, False, 1, D18),
    (ONBOARDING, "o-1", at(19, 9), D19, C, False, UNKNOWN, False, 2, D20),
    (ONBOARDING, "o-2", at(19, 10), D19, TA, True, UNKNOWN, False, 1, D19),
    (ONBOARDING, "o-4", at(19, 11), D19, C, False, UNKNOWN, False, 1, D19),
]  # fmt: skip

# Both marts span the first assignment date to the last exposure date: vault-launch 12-18..21
# (12-20 has no exposure at all; 12-21 only v-ret, assigned on 12-18, after the last assignment
# date 12-19), vault-onboarding-copy 12-19..20. A (variation, tier) group has a row every day
# from its first assignment date on.
EXPECTED_ALLOCATION = [
    # experiment, date, variation, is_treatment, tier, new, cumulative, active, exposures
    # 12-18: control/plus v-dup (2 exposures); control/unknown v-cp (1) and v-sub (2);
    # legacy-default v-unreg (1); treatment v-cp2, v-tie (2), v-mid1, v-ret: 4 users, 5 exposures
    (LAUNCH, D18, C, False, "plus", 1, 1, 1, 2),
    (LAUNCH, D18, C, False, UNKNOWN, 2, 2, 2, 3),
    (LAUNCH, D18, UNREG, None, UNKNOWN, 1, 1, 1, 1),
    (LAUNCH, D18, T, True, UNKNOWN, 4, 4, 4, 5),
    # 12-19: control/unknown + v-mid2 and b-c1..6 (7 new, 2 + 7 = 9, each 1 exposure);
    # treatment + b-t1..5 (5 new, 4 + 5 = 9); nobody assigned on 12-18 comes back on 12-19
    (LAUNCH, D19, C, False, "plus", 0, 1, 0, 0),
    (LAUNCH, D19, C, False, UNKNOWN, 7, 9, 7, 7),
    (LAUNCH, D19, UNREG, None, UNKNOWN, 0, 1, 0, 0),
    (LAUNCH, D19, T, True, UNKNOWN, 5, 9, 5, 5),
    # 12-20: no exposure at all, the groups' cumulative users still shown
    (LAUNCH, D20, C, False, "plus", 0, 1, 0, 0),
    (LAUNCH, D20, C, False, UNKNOWN, 0, 9, 0, 0),
    (LAUNCH, D20, UNREG, None, UNKNOWN, 0, 1, 0, 0),
    (LAUNCH, D20, T, True, UNKNOWN, 0, 9, 0, 0),
    # 12-21: only v-ret (treatment, assigned 12-18) is active
    (LAUNCH, D21, C, False, "plus", 0, 1, 0, 0),
    (LAUNCH, D21, C, False, UNKNOWN, 0, 9, 0, 0),
    (LAUNCH, D21, UNREG, None, UNKNOWN, 0, 1, 0, 0),
    (LAUNCH, D21, T, True, UNKNOWN, 0, 9, 1, 1),
    # onboarding 12-19: control o-1, o-4; treatment_a o-2; treatment_b has no row (all zero)
    (ONBOARDING, D19, C, False, UNKNOWN, 2, 2, 2, 2),
    (ONBOARDING, D19, TA, True, UNKNOWN, 1, 1, 1, 1),
    # 12-20: o-1 at 23:59:59.999 (active); o-3 and o-2 on 12-21 are after the end date
    (ONBOARDING, D20, C, False, UNKNOWN, 0, 2, 1, 1),
    (ONBOARDING, D20, TA, True, UNKNOWN, 0, 1, 0, 0),
]


def chi_p_1df(chi: float) -> float:
    """p-value of a chi-square with 1 degree of freedom (erfc: independent of scipy)."""
    return math.erfc(math.sqrt(chi / 2))


def chi_p_2df(chi: float) -> float:
    """p-value of a chi-square with 2 degrees of freedom: exactly exp(-chi / 2)."""
    return math.exp(-chi / 2)


# vault-launch's test: registered control and treatment only, multiple-variation users (v-sub,
# v-tie) and the unregistered variation (v-unreg) left out.
# 12-18: control v-dup, v-cp (2) vs treatment v-cp2, v-mid1, v-ret (3); expected 2.5 each:
#        chi² = 2 · 0.5² / 2.5 = 0.2, 1 df; control has fewer than 8: not_enough_traffic.
# 12-19 on: control 2 + v-mid2 + 6 = 9 vs treatment 3 + 5 = 8; expected 8.5 each:
#        chi² = 2 · 0.5² / 8.5 = 1/17, p = 0.81: healthy.
# assigned_users counts everyone assigned: 12-18 v-dup v-cp v-sub v-cp2 v-tie v-mid1 v-ret
# v-unreg = 8; from 12-19 + v-mid2 + 11 = 20. Users in several variations: v-sub, v-tie.
LAUNCH_CHI_18 = 2 * 0.5**2 / 2.5
LAUNCH_CHI_19 = 2 * 0.5**2 / 8.5
# vault-onboarding-copy's test: 3 users, weights 0.34/0.33/0.33 -> expected 1.02, 0.99, 0.99;
# observed control 2, treatment_a 1, treatment_b 0 (a registered arm without users counts 0):
# chi² = 0.98²/1.02 + 0.01²/0.99 + 0.99²/0.99 = 1.93167, 2 df (three arms): p = e^(-chi²/2)
# = 0.3807; treatment_b has 0 < 8 users: not_enough_traffic.
ONBOARDING_CHI = (2 - 1.02) ** 2 / 1.02 + (1 - 0.99) ** 2 / 0.99 + (0 - 0.99) ** 2 / 0.99
EXPECTED_HEALTH = [
    # experiment, date, assigned_users, multiple_variation_users, chi², p, status
    (LAUNCH, D18, 8, 2, LAUNCH_CHI_18, chi_p_1df(LAUNCH_CHI_18), "not_enough_traffic"),
    (LAUNCH, D19, 20, 2, LAUNCH_CHI_19, chi_p_1df(LAUNCH_CHI_19), "healthy"),
    (LAUNCH, D20, 20, 2, LAUNCH_CHI_19, chi_p_1df(LAUNCH_CHI_19), "healthy"),
    (LAUNCH, D21, 20, 2, LAUNCH_CHI_19, chi_p_1df(LAUNCH_CHI_19), "healthy"),
    (ONBOARDING, D19, 3, 0, ONBOARDING_CHI, chi_p_2df(ONBOARDING_CHI), "not_enough_traffic"),
    (ONBOARDING, D20, 3, 0, ONBOARDING_CHI, chi_p_2df(ONBOARDING_CHI), "not_enough_traffic"),
]


def test_hand_computed_figures():
    """The hand arithmetic above, checked against the decimal values written in the comments."""
    assert ONBOARDING_CHI == pytest.approx(1.931669637)
    assert chi_p_2df(ONBOARDING_CHI) == pytest.approx(0.38066, abs=1e-5)
    assert LAUNCH_CHI_19 == pytest.approx(1 / 17)
    assert chi_p_1df(LAUNCH_CHI_19) == pytest.approx(0.8084, abs=1e-4)


@pytest.mark.slow
def test_fct_experiment_exposures_daily_whole(rules_built):
    assert (
        query(
            rules_built.duckdb_path,
            "select * from marts.fct_experiment_exposures_daily "
            "order by experiment_key, user_id, exposure_date",
        )
        == EXPECTED_DAILY
    )


@pytest.mark.slow
def test_fct_experiment_assignments_whole(rules_built):
    assert (
        query(
            rules_built.duckdb_path,
            "select * from marts.fct_experiment_assignments order by experiment_key, user_id",
        )
        == EXPECTED_ASSIGNMENTS
    )


@pytest.mark.slow
def test_mart_experiment_allocation_daily_whole(rules_built):
    assert (
        query(
            rules_built.duckdb_path,
            "select * from marts.mart_experiment_allocation_daily "
            "order by experiment_key, date, variation_name, subscription_tier",
        )
        == EXPECTED_ALLOCATION
    )


@pytest.mark.slow
def test_mart_experiment_health_daily_whole(rules_built):
    rows = query(
        rules_built.duckdb_path,
        "select * from marts.mart_experiment_health_daily order by experiment_key, date",
    )
    assert [r[:4] for r in rows] == [e[:4] for e in EXPECTED_HEALTH]
    for row, expected in zip(rows, EXPECTED_HEALTH, strict=True):
        assert row[4] == pytest.approx(expected[4], rel=1e-9), row
        assert row[5] == pytest.approx(expected[5], rel=1e-9), row
        assert row[6] == expected[6], row


@pytest.mark.slow
def test_dims_and_rejected_records_whole(rules_built):
    db = rules_built.duckdb_path
    # the users snapshot's readable rows; x-1 and x-2 are rejected (unreadable created_at);
    # o-1's +02:00 offset is 10:00 UTC
    assert query(db, "select * from marts.dim_users order by user_id") == [
        ("o-1", datetime(2025, 3, 1, 10), "NL", False),
        ("t-9", datetime(2025, 4, 1), "FR", True),
        ("v-dup", datetime(2025, 1, 1), "DE", False),
    ]
    # one change per user: each is its user's current tier
    assert query(db, "select * from marts.dim_subscription_history order by 1") == [
        ("sc-1", "v-dup", "plus", datetime(2025, 11, 1), None, True),
        ("sc-2", "o-1", "premium", datetime(2025, 12, 25), None, True),
    ]
    ld_file = "launchdarkly/date=2025-12-18/part-000.jsonl"
    lg_file = "legacy/date=2025-12-18/part-000.csv"
    subs_file = "subscriptions/changes.csv"
    users_file = "users/users_2025-12-21.csv"
    assert query(
        db,
        "select source, _load_date, _source_file, line_number, raw_record, reason "
        "from raw.rejected_records order by all",
    ) == [
        ("launchdarkly", D18, ld_file, 9, LD_NULL_EVENT_ID, "missing_event_id"),
        ("launchdarkly", D18, ld_file, 10, LD_NULL_USER, "missing_user_id"),
        ("legacy", D18, lg_file, 9, LG_EMPTY_TIMESTAMP, "missing_timestamp"),
        ("legacy", D18, lg_file, 10, LG_SPACES_TIMESTAMP, "missing_timestamp"),
        ("subscriptions", None, subs_file, 4, ",v-x,plus,2025-11-01T00:00:00Z", "missing_event_id"),
        ("subscriptions", None, subs_file, 5, "sc-3,,plus,2025-11-01T00:00:00Z", "missing_user_id"),
        ("subscriptions", None, subs_file, 6, "sc-4,v-x,plus,", "missing_timestamp"),
        ("subscriptions", None, subs_file, 7, "sc-5,v-x,,2025-11-01T00:00:00Z", "invalid_tier"),
        ("subscriptions", None, subs_file, 8, "sc-6,v-x", "malformed_row"),
        ("users", None, users_file, 5, "x-1,not a date,FR,false", "invalid_timestamp"),
        ("users", None, users_file, 6, "x-2,2025-02-30T00:00:00Z,FR,false", "invalid_timestamp"),
    ]  # fmt: skip


# --- rejection reasons, unit level (contract §2.5) ----------------------------------------------


def _rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _rejects(con, source: str) -> list[tuple]:
    return _rows(
        con,
        "select line_number, raw_record, reason from raw.rejected_records "
        f"where source = '{source}' order by line_number",
    )


def test_subscription_rows_missing_fields_are_rejected(con, landing):
    write_text(
        landing / "subscriptions" / "changes.csv",
        "subscription_change_id,user_id,tier,effective_at\n"
        "sc-1,u-1,Plus,2025-12-01T12:00:00Z\n"  # 2 loaded ('plus')
        ",u-1,plus,2025-12-01T12:00:00Z\n"  # 3 no id
        "  ,u-1,plus,2025-12-01T12:00:00Z\n"  # 4 id of spaces
        "sc-2,,plus,2025-12-01T12:00:00Z\n"  # 5 no user
        "sc-3,u-1,plus,\n"  # 6 no effective_at
        "sc-4,u-1,,2025-12-01T12:00:00Z\n"  # 7 no tier
        "sc-5,u-1,plus,2025-12-01\n"  # 8 a date alone is not a date-time
        "sc-6,u-1,plus\n"  # 9 a field short
        ",,,\n",  # 10 every field empty: the first rule broken is the id
    )
    report = load_snapshot(con, SUBSCRIPTIONS, landing)
    assert (report.lines, report.loaded, report.rejected) == (9, 1, 8)
    assert _rows(con, "select subscription_change_id, user_id, tier, effective_at from raw.subscription_changes") == [
        ("sc-1", "u-1", "plus", datetime(2025, 12, 1, 12))
    ]  # fmt: skip
    assert _rejects(con, "subscriptions") == [
        (3, ",u-1,plus,2025-12-01T12:00:00Z", "missing_event_id"),
        (4, "  ,u-1,plus,2025-12-01T12:00:00Z", "missing_event_id"),
        (5, "sc-2,,plus,2025-12-01T12:00:00Z", "missing_user_id"),
        (6, "sc-3,u-1,plus,", "missing_timestamp"),
        (7, "sc-4,u-1,,2025-12-01T12:00:00Z", "invalid_tier"),
        (8, "sc-5,u-1,plus,2025-12-01", "invalid_timestamp"),
        (9, "sc-6,u-1,plus", "malformed_row"),
        (10, ",,,", "missing_event_id"),
    ]


def test_users_with_an_unreadable_created_at_are_rejected(con, landing):
    write_text(
        landing / "users" / "users_2025-12-02.csv",
        "user_id,created_at,country,is_test_account\n"
        "u-1,2025-01-01T00:00:00Z,DE,false\n"  # 2 loaded
        "u-2,yesterday,DE,false\n"  # 3 not a date
        "u-3,2025-02-30T00:00:00Z,DE,true\n"  # 4 no such day
        "u-4,2025-01-01,DE,false\n"  # 5 a date alone
        "u-5,,DE,false\n"  # 6 no created_at: loaded, null (the contract requires only the id)
        "u-6,2025-01-01T25:00:00Z,DE,false\n",  # 7 no such hour
    )
    report = load_snapshot(con, USERS, landing)
    assert (report.lines, report.loaded, report.rejected) == (6, 2, 4)
    assert _rows(con, "select user_id, created_at, country, is_test_account from raw.users order by 1") == [
        ("u-1", datetime(2025, 1, 1), "DE", False),
        ("u-5", None, "DE", False),
    ]  # fmt: skip
    assert _rejects(con, "users") == [
        (3, "u-2,yesterday,DE,false", "invalid_timestamp"),
        (4, "u-3,2025-02-30T00:00:00Z,DE,true", "invalid_timestamp"),
        (5, "u-4,2025-01-01,DE,false", "invalid_timestamp"),
        (7, "u-6,2025-01-01T25:00:00Z,DE,false", "invalid_timestamp"),
    ]


def test_a_blank_legacy_timestamp_is_missing(con, landing):
    write_text(
        landing / "legacy" / "date=2025-12-02" / "part-000.csv",
        LEGACY_HEADER + "\n"
        "lg-1,u-1,2025-12-01T10:00:00Z,vault_launch,control,1\n"  # 2 loaded
        "lg-2,u-1,,vault_launch,control,1\n"  # 3 empty
        "lg-3,u-1,   ,vault_launch,control,1\n"  # 4 spaces
        'lg-4,u-1,"",vault_launch,control,1\n',  # 5 quoted empty string
    )
    report = load_daily_partitions(con, LEGACY, landing, [date(2025, 12, 2)])
    assert (report.lines, report.loaded, report.rejected) == (4, 1, 3)
    assert _rows(con, "select id from raw.legacy_feature_flag_events") == [("lg-1",)]
    assert [(n, reason) for n, _, reason in _rejects(con, "legacy")] == [
        (3, "missing_timestamp"),
        (4, "missing_timestamp"),
        (5, "missing_timestamp"),
    ]


def test_json_null_event_and_user_ids_are_missing(con, landing):
    def line(event_id, context_keys) -> str:
        return json.dumps(
            {
                "event_id": event_id,
                "is_active": "Y",
                "event": {
                    "kind": "feature",
                    "creationDate": 1764584100000,  # 2025-12-01 10:15 UTC
                    "key": LAUNCH,
                    "contextKeys": context_keys,
                    "variationName": "control",
                },
            }
        )

    lines = [
        line("ld-1", {"user": "u-1"}),  # 1 loaded
        line(None, {"user": "u-1"}),  # 2 event_id null
        line("ld-3", {"user": None}),  # 3 user null
        line(None, {"user": None}),  # 4 both null: the id is checked first
        line("ld-5", None),  # 5 contextKeys null
        line("null", {"user": "null"}),  # 6 the STRING "null" is an id like any other: loaded
    ]
    write_text(
        landing / "launchdarkly" / "date=2025-12-02" / "part-000.jsonl", "\n".join(lines) + "\n"
    )
    report = load_daily_partitions(con, LAUNCHDARKLY, landing, [date(2025, 12, 2)])
    assert (report.lines, report.loaded, report.rejected) == (6, 2, 4)
    assert _rows(
        con,
        "select event_id, event_contextkeys_user from raw.partner_directpush_launchdarkly_events "
        "order by _line_number",
    ) == [("ld-1", "u-1"), ("null", "null")]
    assert _rejects(con, "launchdarkly") == [
        (2, lines[1], "missing_event_id"),
        (3, lines[2], "missing_user_id"),
        (4, lines[3], "missing_event_id"),
        (5, lines[4], "missing_user_id"),
    ]


# --- copies of one event id dated on different days, in any run order -------------------------


def _copies_landing(landing: Path) -> None:
    """Five arrival folders whose events have copies on other dates (all `control`)."""

    def ld_file(day: int, *lines: str) -> None:
        write_text(
            landing / "launchdarkly" / f"date=2025-12-0{day}" / "part-000.jsonl",
            "\n".join(lines) + "\n",
        )

    ld_file(
        1,
        ld("cp-x", "u-a", at(1, 10), C),  # re-delivered on 12-05 with a later time: stays here
        ld("cp-r", "u-b", at(1, 11), C),  # retracted by a copy dated 12-05
        ld("cp-s", "u-d", at(1, 9), C),  # retracted by a copy dated 12-02
    )
    ld_file(
        2,
        ld("cp-e", "u-c", at(2, 8), C),  # an earlier copy dated 12-01 arrives on 12-05
        ld("cp-s", "u-d", at(2, 9), C, active="N"),
    )
    ld_file(3, ld("ld-3", "u-f", at(3, 10), C))
    ld_file(4, ld("ld-4", "u-f", at(4, 10), C))
    ld_file(
        5,
        ld("cp-x", "u-a", at(5, 10), C),
        ld("cp-r", "u-b", at(5, 9), C, active="N"),
        ld("cp-e", "u-c", at(1, 8), C),
        # a late event of 12-01: its run rebuilds 12-01, where cp-s's copy must stay retracted
        # by its copy of 12-02, a date that run does not rebuild
        ld("ld-late", "u-e", at(1, 14), C),
    )


def test_copies_on_different_dates_give_the_clean_build_in_any_run_order(tmp_path):
    """The event is its earliest copy, and any copy retracts it, whatever the copies' dates and
    whichever run loads them (lookback 2: a run of 12-05 rebuilds 12-03..12-05 by itself)."""
    landing = tmp_path / "landing"
    _copies_landing(landing)
    days = [date(2025, 12, d) for d in range(1, 6)]
    orders = {
        "clean": [(days[0], days[-1])],
        "ascending": [(d, d) for d in days],
        "shuffled": [(days[i], days[i]) for i in (4, 0, 2, 1, 3)],
    }
    warehouses = {}
    with data_instance() as instance:
        for name, runs in orders.items():
            (tmp_path / name).mkdir()
            settings = make_settings(tmp_path / name, landing)
            for start, end in runs:
                run_range(settings, instance, start, end)
            warehouses[name] = settings.duckdb_path
    # By hand: cp-x counts once, on 12-01 (its earliest copy); cp-r and cp-s are retracted;
    # cp-e moves to 12-01 (its copy dated 12-01 08:00 is earlier than 12-02's); u-e's late
    # event is on 12-01; u-f on 12-03 and 12-04.
    expected = [
        (LAUNCH, "u-a", date(2025, 12, 1), at(1, 10), C, False, 1, 1, UNKNOWN),
        (LAUNCH, "u-c", date(2025, 12, 1), at(1, 8), C, False, 1, 1, UNKNOWN),
        (LAUNCH, "u-e", date(2025, 12, 1), at(1, 14), C, False, 1, 1, UNKNOWN),
        (LAUNCH, "u-f", date(2025, 12, 3), at(3, 10), C, False, 1, 1, UNKNOWN),
        (LAUNCH, "u-f", date(2025, 12, 4), at(4, 10), C, False, 1, 1, UNKNOWN),
    ]
    for name, path in warehouses.items():
        assert (
            query(
                path,
                "select experiment_key, user_id, exposure_date, first_exposure_at, "
                "variation_name, is_treatment, variations_seen, exposures, subscription_tier "
                "from marts.fct_experiment_exposures_daily order by user_id, exposure_date",
            )
            == expected
        ), name
    clean = snapshot(warehouses["clean"])
    assert snapshot(warehouses["ascending"]) == clean
    assert snapshot(warehouses["shuffled"]) == clean
