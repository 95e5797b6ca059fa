"""The SQL of every Python asset check, as pure functions of their parameters.

Each function returns a complete query with its parameters inlined as literals,
so the text a check ran is also the text an engineer pastes into
`duckdb data/warehouse.duckdb` to reproduce a finding. Every query returns
exactly the findings: no row means the check passes.

Thresholds are named constants here; the checks' descriptions quote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import yaml

from expplatform import catalog
from expplatform.config import DBT_PROJECT_DIR
from expplatform.sources import DEFAULT_REGISTRY, Source

# --- thresholds ------------------------------------------------------------------------------------


def srm_thresholds(project_dir: Path = DBT_PROJECT_DIR) -> dict[str, float]:
    """The sample-ratio test's thresholds: the dbt vars the health marts use (dbt_project.yml)."""
    project = yaml.safe_load((project_dir / "dbt_project.yml").read_text())
    return {k: v for k, v in (project.get("vars") or {}).items() if k.startswith("srm_")}


#: srm_status values that fail the sample-ratio checks (ERROR and WARN respectively).
SRM_UNHEALTHY = "unhealthy"
SRM_WARNING = "warning"

#: Users in several variations: WARN above this share of an experiment's assigned users...
MULTIPLE_VARIATION_MAX_SHARE = 0.01
#: ...once the experiment has at least this many assigned users (a few users make noisy shares).
MULTIPLE_VARIATION_MIN_USERS = 10

#: Rejected lines / lines of a source's arrival partition: WARN above, ERROR above.
REJECTED_RATE_WARN = 0.001
REJECTED_RATE_ERROR = 0.05

#: A day's exposures outside median × (1 ± this) of the trailing days is an anomaly (WARN)...
VOLUME_MAX_RELATIVE_CHANGE = 0.5
#: ...the trailing window, in days; a date with fewer prior days of the experiment is skipped.
VOLUME_TRAILING_DAYS = 7

# --- tables ------------------------------------------------------------------------------------------

HEALTH = catalog.MART_HEALTH
HEALTH_BY_TIER = catalog.MART_HEALTH_BY_TIER
ASSIGNMENTS = catalog.FCT_ASSIGNMENTS
EXPOSURES_DAILY = catalog.FCT_EXPOSURES_DAILY
VARIATIONS = catalog.DIM_EXPERIMENT_VARIATIONS
SRM_OBSERVED = catalog.INT_SRM_OBSERVED
REGISTRY = catalog.SEED_EXPERIMENTS
STG_USERS = catalog.STG_USERS
REJECTED = catalog.REJECTED_RECORDS
RECOMPUTE_DATES = catalog.OPS_RECOMPUTE_DATES


def date_list(dates: Sequence[date]) -> str:
    """A DuckDB list literal of dates (typed even when empty)."""
    if not dates:
        return "cast([] as date[])"
    return "[" + ", ".join(f"date '{d.isoformat()}'" for d in sorted(set(dates))) + "]"


def quote_identifier(name: str) -> str:
    """A quoted SQL identifier (raw columns such as `timestamp` are keywords)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def recompute_dates_sql() -> str:
    """The event dates the last daily run recomputed (written by the daily op before dbt)."""
    return f"select recompute_date from {RECOMPUTE_DATES} order by recompute_date"


# --- sample-ratio mismatch -----------------------------------------------------------------------------


def srm_findings_sql(dates: Sequence[date], *, by_tier: bool = False) -> str:
    """Unhealthy or warning sample-ratio rows on each experiment's latest date or on `dates`.

    With `by_tier`, rows of mart_experiment_health_by_tier_daily (status on the
    Bonferroni-corrected p-value). `users_by_variation` shows the tested users per registered
    variation and the expected shares, as the test counted them (int_experiment_srm_observed,
    the same relation the marts' test is computed from).
    """
    if by_tier:
        table = HEALTH_BY_TIER
        columns = (
            "subscription_tier, assigned_users, test_users, srm_chi_square, srm_p_value, "
            "srm_p_value_bonferroni"
        )
        group = ["experiment_key", "date", "subscription_tier"]
        segment = "observed.subscription_tier = flagged.subscription_tier"
    else:
        table = HEALTH
        columns = "assigned_users, multiple_variation_users, srm_chi_square, srm_p_value"
        group = ["experiment_key", "date"]
        segment = "observed.subscription_tier is null"
    flagged_keys = ", ".join(f"flagged.{c}" for c in group)
    return f"""
with

evaluated as (
    select experiment_key, date, {columns}, srm_status
    from {table}
    qualify date = max(date) over (partition by experiment_key)
        or date in (select unnest({date_list(dates)}))
),

flagged as (
    select * from evaluated where srm_status in ('{SRM_UNHEALTHY}', '{SRM_WARNING}')
),

users_by_variation as (
    select
        {flagged_keys},
        string_agg(
            observed.variation_name || ' ' || observed.observed_users || ' ('
                || coalesce(round(100 * observed.observed_users / nullif(observed.tested_users, 0), 1), 0)
                || '%, expected ' || round(100 * observed.expected_share, 1) || '%)',
            ', ' order by observed.variation_name
        ) as users_by_variation
    from flagged
    inner join {SRM_OBSERVED} as observed
        on observed.experiment_key = flagged.experiment_key
        and observed.date = flagged.date
        and {segment}
    group by {flagged_keys}
)

select flagged.*, users_by_variation.users_by_variation
from flagged
left join users_by_variation using ({", ".join(group)})
order by {flagged_keys}
""".strip()


# --- users in several variations -------------------------------------------------------------------------


def multiple_variation_findings_sql() -> str:
    """Experiments (of at least the minimum size) whose multiple-variation share is above the limit."""
    return f"""
select
    experiment_key,
    count(*) as assigned_users,
    count(*) filter (where has_multiple_variations) as multiple_variation_users,
    count(*) filter (where has_multiple_variations) / count(*) as multiple_variation_share
from {ASSIGNMENTS}
group by experiment_key
having count(*) >= {MULTIPLE_VARIATION_MIN_USERS}
    and count(*) filter (where has_multiple_variations) / count(*) > {MULTIPLE_VARIATION_MAX_SHARE}
order by experiment_key
""".strip()


# --- exposures to unregistered variations ----------------------------------------------------------------


def unregistered_variation_findings_sql() -> str:
    """Daily exposure rows whose variation is not in the registry (is_treatment is null)."""
    return f"""
select
    experiment_key,
    variation_name,
    count(distinct user_id) as users,
    sum(exposures) as exposures,
    min(exposure_date) as first_date,
    max(exposure_date) as last_date
from {EXPOSURES_DAILY}
where is_treatment is null
group by experiment_key, variation_name
order by experiment_key, variation_name nulls first
""".strip()


# --- rejected records ---------------------------------------------------------------------------------------


def rejected_rate_findings_sql(source: str, raw_table: str, load_dates: Sequence[date]) -> str:
    """Arrival partitions of a source whose rejected share of lines is above the WARN threshold.

    lines = rows loaded into the raw table + rows rejected (the loaders guarantee
    loaded + rejected = lines for every file).
    """
    dates = date_list(load_dates)
    return f"""
with

loaded as (
    select _load_date as load_date, count(*) as loaded
    from {raw_table}
    where _load_date in (select unnest({dates}))
    group by _load_date
),

rejected_by_reason as (
    select _load_date as load_date, reason, count(*) as rejected
    from {REJECTED}
    where source = {quote_literal(source)} and _load_date in (select unnest({dates}))
    group by _load_date, reason
),

rejected as (
    select
        load_date,
        sum(rejected) as rejected,
        string_agg(reason || ' ' || rejected, ', ' order by rejected desc, reason) as reasons
    from rejected_by_reason
    group by load_date
),

rates as (
    select
        coalesce(loaded.load_date, rejected.load_date) as load_date,
        coalesce(loaded.loaded, 0) + coalesce(rejected.rejected, 0) as lines,
        coalesce(rejected.rejected, 0) as rejected,
        coalesce(rejected.rejected, 0) / (coalesce(loaded.loaded, 0) + coalesce(rejected.rejected, 0))
            as rejected_rate,
        rejected.reasons
    from loaded
    full join rejected on loaded.load_date = rejected.load_date
)

select load_date, lines, rejected, rejected_rate, reasons
from rates
where rejected_rate > {REJECTED_RATE_WARN}
order by load_date
""".strip()


# --- late events ----------------------------------------------------------------------------------------------


def late_events_findings_sql(
    raw_table: str, event_time_column: str, load_dates: Sequence[date], lookback_days: int
) -> str:
    """Raw events of the arrival partitions dated before arrival date - lookback, per event date."""
    event_time = quote_identifier(event_time_column)
    return f"""
select
    _load_date as arrival_date,
    cast({event_time} as date) as event_date,
    _load_date - cast({event_time} as date) as days_late,
    count(*) as events
from {raw_table}
where _load_date in (select unnest({date_list(load_dates)}))
    and cast({event_time} as date) < _load_date - {int(lookback_days)}
group by all
order by arrival_date, event_date
""".strip()


# --- reconciliation of exposed users -----------------------------------------------------------------------------


def reconciliation_findings_sql(
    dates: Sequence[date], flag_sources: Sequence[Source] = DEFAULT_REGISTRY.flag_sources
) -> str:
    """Experiment-dates whose exposed users in staging differ from fct_experiment_exposures_daily.

    An independent re-derivation of the contract's rules in plain SQL over the staging
    views (not the int_/fct models): active `feature` evaluations that are not
    prerequisites, of a registered flag, dated within the experiment, test accounts of the
    newest users snapshot left out, one event per source and event id (the earliest copy;
    none if any copy is retracted). Only the event dates of `dates` are compared (the dates
    the run recomputed).

    It costs one pass over the raw events of those dates with hash joins and one hash
    aggregate, no sort or window over the events: every copy of an event that would expose
    its user, once the event ids with a retracted copy are dropped (a narrow scan of
    `is_retracted`), gives a candidate (experiment, date, user); the distinct candidates
    are compared with the fact's rows. Deduplication by earliest copy runs only on the
    events of users the fact lacks (normally none), to confirm each of them before it is
    reported. (The former query sorted every event of the window by event id to keep its
    earliest copy: on 18M events, over 4 times the CPU time, and it spilled to disk.)

    What a passing check proves, per experiment and compared date:

    - every user the contract's rules expose is in the fact (`missing_from_fct` = 0): exact,
      duplicates and retractions included;
    - every user of the fact has at least one event that the rules would count, that is an
      active, non-retracted, non-prerequisite `feature` evaluation of a registered flag on
      that date and within the experiment, by a user who is not a test account
      (`not_in_staging` = 0).

    What it no longer proves (the former query built both user sets in full): that a user
    of the fact is backed by the *earliest* copy of their event. When the copies of one
    event id disagree (user, time, flag, kind, prerequisite or `is_active` other than Y/N),
    a fact user backed only by a later copy passes. Retries are copies of the same event
    (contract §2.1), so this needs a partner sending different events under one id. It
    compares users, not exposure counts, as before.

    Findings: `fct_users` counts the fact's users that date, `staging_users` the users of
    the re-derivation (`fct_users - not_in_staging + missing_from_fct`), and up to ten
    differing users.
    """
    dates_literal = date_list(dates)
    if dates:
        first = min(dates).isoformat()
        end = (max(dates) + timedelta(days=1)).isoformat()
        # the range filter lets DuckDB skip the raw row groups of other dates
        window = (
            f"event_at >= timestamp '{first}' and event_at < timestamp '{end}' "
            f"and event_date in (select unnest({dates_literal}))"
        )
    else:
        window = "false"
    views = [(s.name, f"{catalog.STAGING}.{s.staging_model}") for s in flag_sources]

    def events(columns: str, condition: str) -> str:
        return "\n    union all\n".join(
            f"    select '{source}' as source, {columns}\n    from {view}\n"
            f"    where {window}\n        and {condition}"
            for source, view in views
        )

    exposure_rules = "is_active and event_kind = 'feature' and coalesce(prerequisite_of, '') = ''"
    registry_flags = "\n    union all\n".join(
        f"    select experiment_key, {quote_literal(s.name)} as source, "
        f"{quote_identifier(s.flag_key_column or '')} as flag_key, start_date, end_date\n"
        f"    from {REGISTRY}"
        for s in flag_sources
    )
    return f"""
with

registry_flags as (
{registry_flags}
),

test_accounts as (
    select user_id from {STG_USERS} where is_test_account
),

retracted_events as (
{events("event_id", "is_retracted")}
),

exposure_users as (
    select distinct
        registry_flags.experiment_key,
        events.event_date as exposure_date,
        events.user_id
    from (
{events("event_id, user_id, event_date, flag_key", exposure_rules)}
    ) as events
    inner join registry_flags
        on events.source = registry_flags.source and events.flag_key = registry_flags.flag_key
    anti join test_accounts on events.user_id = test_accounts.user_id
    anti join retracted_events
        on events.source = retracted_events.source and events.event_id = retracted_events.event_id
    where events.event_date >= registry_flags.start_date
        and (registry_flags.end_date is null or events.event_date <= registry_flags.end_date)
),

fct_users as (
    select experiment_key, exposure_date, user_id
    from {EXPOSURES_DAILY}
    where exposure_date in (select unnest({dates_literal}))
),

unmatched as materialized (
    select
        coalesce(exposure_users.experiment_key, fct_users.experiment_key) as experiment_key,
        coalesce(exposure_users.exposure_date, fct_users.exposure_date) as exposure_date,
        coalesce(exposure_users.user_id, fct_users.user_id) as user_id,
        fct_users.user_id is null as is_missing_from_fct
    from exposure_users
    full join fct_users
        on exposure_users.experiment_key = fct_users.experiment_key
        and exposure_users.exposure_date = fct_users.exposure_date
        and exposure_users.user_id = fct_users.user_id
    where exposure_users.user_id is null or fct_users.user_id is null
),

suspect_events as (
{events("event_id", "user_id in (select user_id from unmatched where is_missing_from_fct)")}
),

suspect_copies as (
{
        events(
            "event_id, user_id, event_at, event_date, flag_key, is_active, is_retracted, event_kind, "
            "prerequisite_of, _load_date, _source_file, _line_number",
            "event_id in (select event_id from suspect_events)",
        )
    }
),

earliest_copies as (
    select suspect_copies.*
    from suspect_copies
    semi join suspect_events
        on suspect_copies.source = suspect_events.source
        and suspect_copies.event_id = suspect_events.event_id
    qualify row_number() over (
            partition by suspect_copies.source, suspect_copies.event_id
            order by event_at, _load_date, _source_file, _line_number
        ) = 1
        and not bool_or(is_retracted) over (
            partition by suspect_copies.source, suspect_copies.event_id
        )
),

confirmed_missing as (
    select registry_flags.experiment_key, earliest_copies.event_date as exposure_date,
        earliest_copies.user_id
    from earliest_copies
    inner join registry_flags
        on earliest_copies.source = registry_flags.source
        and earliest_copies.flag_key = registry_flags.flag_key
    anti join test_accounts on earliest_copies.user_id = test_accounts.user_id
    where earliest_copies.is_active
        and earliest_copies.event_kind = 'feature'
        and coalesce(earliest_copies.prerequisite_of, '') = ''
        and earliest_copies.event_date >= registry_flags.start_date
        and (registry_flags.end_date is null or earliest_copies.event_date <= registry_flags.end_date)
),

differences as (
    select distinct experiment_key, exposure_date, user_id, true as is_missing_from_fct
    from unmatched
    semi join confirmed_missing using (experiment_key, exposure_date, user_id)
    where is_missing_from_fct
    union all
    select experiment_key, exposure_date, user_id, false as is_missing_from_fct
    from unmatched
    where not is_missing_from_fct
),

fct_counts as (
    select experiment_key, exposure_date, count(*) as fct_users
    from {EXPOSURES_DAILY}
    semi join differences using (experiment_key, exposure_date)
    group by experiment_key, exposure_date
),

compared as (
    select
        differences.experiment_key,
        differences.exposure_date,
        coalesce(any_value(fct_counts.fct_users), 0) as fct_users,
        count(*) filter (where differences.is_missing_from_fct) as missing_from_fct,
        count(*) filter (where not differences.is_missing_from_fct) as not_in_staging,
        list(differences.user_id order by differences.user_id) as differing_users
    from differences
    left join fct_counts
        on differences.experiment_key = fct_counts.experiment_key
        and differences.exposure_date = fct_counts.exposure_date
    group by differences.experiment_key, differences.exposure_date
)

select
    experiment_key,
    exposure_date,
    fct_users - not_in_staging + missing_from_fct as staging_users,
    fct_users,
    missing_from_fct,
    not_in_staging,
    differing_users[1:10] as sample_differing_users
from compared
order by experiment_key, exposure_date
""".strip()


# --- exposure volume ----------------------------------------------------------------------------------------------


def volume_anomaly_findings_sql(dates: Sequence[date]) -> str:
    """Experiment-dates of `dates` whose exposures are outside ±50% of the trailing 7-day median.

    Days of the trailing window without any exposure count 0 (an outage is what
    this catches). A date is evaluated once the experiment has 7 days before it
    (from its first exposure date) and while it runs (registry start/end dates).
    """
    dates_literal = date_list(dates)
    days = VOLUME_TRAILING_DAYS
    low, high = 1 - VOLUME_MAX_RELATIVE_CHANGE, 1 + VOLUME_MAX_RELATIVE_CHANGE
    if dates:
        span_start = (min(dates) - timedelta(days=days)).isoformat()
        span_end = max(dates).isoformat()
    else:
        span_start = span_end = date.min.isoformat()
    return f"""
with

first_dates as (
    select experiment_key, min(exposure_date) as first_date
    from {EXPOSURES_DAILY}
    group by experiment_key
),

spine as (
    select
        first_dates.experiment_key,
        first_dates.first_date,
        cast(unnest(generate_series(
            greatest(first_dates.first_date, date '{span_start}'),
            date '{span_end}',
            interval 1 day
        )) as date) as date
    from first_dates
),

daily as (
    select experiment_key, exposure_date, cast(sum(exposures) as bigint) as exposures
    from {EXPOSURES_DAILY}
    where exposure_date >= date '{span_start}' and exposure_date <= date '{span_end}'
    group by experiment_key, exposure_date
),

series as (
    select
        spine.experiment_key,
        spine.first_date,
        spine.date,
        coalesce(daily.exposures, 0) as exposures
    from spine
    left join daily
        on spine.experiment_key = daily.experiment_key
        and spine.date = daily.exposure_date
),

with_trailing as (
    select
        experiment_key,
        first_date,
        date,
        exposures,
        median(exposures) over previous_days as trailing_median,
        count(*) over previous_days as trailing_days
    from series
    window previous_days as (
        partition by experiment_key
        order by date
        rows between {days} preceding and 1 preceding
    )
)

select
    with_trailing.experiment_key,
    with_trailing.date,
    with_trailing.exposures,
    with_trailing.trailing_median,
    with_trailing.exposures / nullif(with_trailing.trailing_median, 0) - 1 as relative_change
from with_trailing
inner join {REGISTRY} as registry
    on with_trailing.experiment_key = registry.experiment_key
where with_trailing.date in (select unnest({dates_literal}))
    and with_trailing.date - {days} >= with_trailing.first_date
    and with_trailing.trailing_days = {days}
    and with_trailing.date >= registry.start_date
    and (registry.end_date is null or with_trailing.date <= registry.end_date)
    and (
        with_trailing.exposures < {low} * with_trailing.trailing_median
        or with_trailing.exposures > {high} * with_trailing.trailing_median
    )
order by with_trailing.experiment_key, with_trailing.date
""".strip()
