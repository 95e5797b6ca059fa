-- The vault-launch dashboard query of the seed case (part 2), corrected: the numbers of
-- marts.mart_experiment_allocation_daily computed straight from the raw tables, in plain SQL.
--
-- What it answers: per experiment, date, ASSIGNED variation and tier AT ASSIGNMENT, how many
-- users entered the experiment that day (new_users), how many had entered by then
-- (cumulative_users), how many of them were exposed that day (active_users) and how often
-- (exposures). It follows DATA_CONTRACT.md section 4 rule by rule; expplatform_tests/
-- test_analyses.py runs it on a fixture's raw tables and checks it returns the mart's rows.
--
-- Fixes, relative to the original query (allocation_dashboard_original.sql lists its problems):
--   FIX 1  both feeds are mapped to the experiment through the registry: LaunchDarkly calls the
--          flag `vault-launch`, the legacy system `vault_launch`; filtering on one key alone
--          silently dropped the other feed.
--   FIX 2  one event per event id and feed (retries counted once), and an id with ANY copy
--          is_active = 'N' is retracted. `where is_active = 'Y'` kept the active copy of a
--          retracted event.
--   FIX 3  only real exposures: `feature` evaluations, not `debug` events nor prerequisite
--          evaluations, dated within the experiment's start and end dates.
--   FIX 4  the group is the variation (trimmed, lower-cased), not the served value: a flag can
--          serve `true` in several variations, and LaunchDarkly sends JSON `true`, never 't'.
--   FIX 5  test accounts (newest users snapshot) are left out.
--   FIX 6  first entry per user: each user is assigned, for good, to the variation of their
--          first exposure (ties: LaunchDarkly before legacy, then the smaller event id). Counting
--          distinct users per period put a user who flapped in both groups, and counted them
--          again every day.
--   FIX 7  dates, not timestamps: grouping by the event timestamp made one row per instant.
--   FIX 8  the tier is looked up at the assignment instant and kept (a user who upgrades
--          because of the vault must not move tiers: that would measure the treatment).
--   FIX 9  allocation over time: one row per user per day (user_days below) from the user's
--          assignment date to the experiment's last exposure date, so every day shows the
--          cumulative split, not only the users who happened to be exposed that day.
--
-- UNION vs UNION ALL: UNION removes duplicate rows from the combined result (a sort or hash
-- of every row: slow on billions of rows), UNION ALL appends the second result as it is. The
-- two feeds are disjoint (different systems, different event ids), so there is nothing for
-- UNION to remove, and worse, it would merge two genuine exposures that happen to look alike
-- once the event id is dropped. Duplicates are a per-feed question of event ids and
-- retractions (FIX 2), which UNION cannot answer. Hence UNION ALL.
--
-- Performance: this scans every raw event on each run and builds the user x day grid (users x
-- days rows): fine for an analysis, too slow for a dashboard over billions of events. The
-- platform computes the same numbers incrementally (int_experiment_user_days ->
-- fct_experiment_exposures_daily -> fct_experiment_assignments -> the mart), so the dashboard
-- reads a table of dates x variations x tiers rows instead.
--
-- To look at single users, select from user_days instead of final.
with

-- Import: the raw tables as loaded (duplicates and retraction copies included) and the
-- experiment registry (dbt seeds).
launchdarkly_events as (

    select
        event_id,
        event_contextkeys_user as user_id,
        event_creationdate as event_at,
        event_key as flag_key,
        lower(trim(event_variationname)) as variation_name,
        coalesce(upper(trim(is_active)) = 'Y', false) as is_active,
        coalesce(upper(trim(is_active)) = 'N', false) as is_retracted,
        event_kind,
        event_prereqof as prerequisite_of,
        _load_date,
        _source_file,
        _line_number

    from {{ source('launchdarkly', 'partner_directpush_launchdarkly_events') }}

),

legacy_events as (

    select
        id as event_id,
        -- quoted: in some warehouses (Postgres, Redshift) a bare `user` is CURRENT_USER
        "user" as user_id,
        "timestamp" as event_at,
        key as flag_key,
        lower(trim(variation_name)) as variation_name,
        _load_date,
        _source_file,
        _line_number

    from {{ source('legacy', 'legacy_feature_flag_events') }}

),

test_accounts as (

    select distinct user_id
    from {{ source('app', 'users') }}
    where is_test_account and user_id is not null

),

subscription_changes as (

    select
        subscription_change_id,
        user_id,
        lower(trim(tier)) as subscription_tier,
        effective_at,
        _source_file,
        _line_number

    from {{ source('app', 'subscription_changes') }}
    where subscription_change_id is not null

),

experiments as (

    select
        experiment_key,
        launchdarkly_flag_key,
        legacy_flag_key,
        start_date,
        end_date

    from {{ ref('experiments') }}

),

variations as (

    select
        experiment_key,
        lower(trim(variation_name)) as variation_name,
        is_treatment

    from {{ ref('experiment_variations') }}

),

-- FIX 2: one row per event id and feed, the earliest copy; ids with a retraction dropped.
launchdarkly_deduplicated as (

    select
        event_id,
        user_id,
        event_at,
        flag_key,
        variation_name,
        is_active,
        event_kind,
        prerequisite_of

    from launchdarkly_events
    qualify
        row_number() over (
            partition by event_id
            order by event_at, _load_date, _source_file, _line_number
        ) = 1
        and not bool_or(is_retracted) over (partition by event_id)

),

-- the legacy feed has no retractions, but re-deliveries repeat ids too
legacy_deduplicated as (

    select
        event_id,
        user_id,
        event_at,
        flag_key,
        variation_name

    from legacy_events
    qualify
        row_number() over (
            partition by event_id
            order by event_at, _load_date, _source_file, _line_number
        ) = 1

),

-- FIX 1, 3: exposures of registered flags, within the experiment's dates (end date inclusive).
-- UNION ALL: see the header.
exposures as (

    select
        experiments.experiment_key,
        events.user_id,
        events.event_at,
        cast(events.event_at as date) as exposure_date,
        events.variation_name,
        1 as source_rank,
        events.event_id

    from launchdarkly_deduplicated as events
    inner join experiments
        on events.flag_key = experiments.launchdarkly_flag_key
        and cast(events.event_at as date) >= experiments.start_date
        and (experiments.end_date is null or cast(events.event_at as date) < experiments.end_date + 1)
    where
        events.is_active
        and events.event_kind = 'feature'
        and coalesce(events.prerequisite_of, '') = ''

    union all

    select
        experiments.experiment_key,
        events.user_id,
        events.event_at,
        cast(events.event_at as date) as exposure_date,
        events.variation_name,
        2 as source_rank,
        events.event_id

    from legacy_deduplicated as events
    inner join experiments
        on events.flag_key = experiments.legacy_flag_key
        and cast(events.event_at as date) >= experiments.start_date
        and (experiments.end_date is null or cast(events.event_at as date) < experiments.end_date + 1)

),

-- FIX 5
real_user_exposures as (

    select
        experiment_key,
        user_id,
        event_at,
        exposure_date,
        variation_name,
        source_rank,
        event_id

    from exposures
    where user_id not in (select user_id from test_accounts)

),

-- FIX 6: the first exposure is the assignment, for good.
first_exposures as (

    select
        experiment_key,
        user_id,
        event_at as assigned_at,
        exposure_date as assignment_date,
        variation_name

    from real_user_exposures
    qualify row_number() over (
        partition by experiment_key, user_id
        order by event_at, source_rank, event_id
    ) = 1

),

-- a change repeated across files is one change (the first copy loaded)
subscription_changes_deduplicated as (

    select
        subscription_change_id,
        user_id,
        subscription_tier,
        effective_at

    from subscription_changes
    qualify row_number() over (
        partition by subscription_change_id
        order by _source_file, _line_number
    ) = 1

),

-- FIX 8: the tier of the latest change at or before the assignment (same instant: the larger
-- change id); 'unknown' without one.
assignments as (

    select
        first_exposures.experiment_key,
        first_exposures.user_id,
        first_exposures.assignment_date,
        first_exposures.variation_name,
        coalesce(changes.subscription_tier, 'unknown') as subscription_tier

    from first_exposures
    left join subscription_changes_deduplicated as changes
        on first_exposures.user_id = changes.user_id
        and changes.effective_at <= first_exposures.assigned_at
    qualify row_number() over (
        partition by first_exposures.experiment_key, first_exposures.user_id
        order by changes.effective_at desc nulls last, changes.subscription_change_id desc nulls last
    ) = 1

),

-- FIX 7: exposures per user and date (every exposure of the day, whatever its variation)
exposures_per_user_day as (

    select
        experiment_key,
        user_id,
        exposure_date,
        count(*) as exposures

    from real_user_exposures
    group by experiment_key, user_id, exposure_date

),

-- FIX 9: the experiment's days, from its first assignment to its last exposure
experiment_days as (

    select
        experiment_key,
        cast(unnest(generate_series(
            min(exposure_date), max(exposure_date), interval 1 day
        )) as date) as date

    from real_user_exposures
    group by experiment_key

),

-- one row per user per day: every assigned user on every day from their assignment on
user_days as (

    select
        assignments.experiment_key,
        experiment_days.date,
        assignments.user_id,
        assignments.variation_name,
        assignments.subscription_tier,
        assignments.assignment_date,
        coalesce(exposures_per_user_day.exposures, 0) as exposures

    from assignments
    inner join experiment_days
        on assignments.experiment_key = experiment_days.experiment_key
        and experiment_days.date >= assignments.assignment_date
    left join exposures_per_user_day
        on assignments.experiment_key = exposures_per_user_day.experiment_key
        and assignments.user_id = exposures_per_user_day.user_id
        and experiment_days.date = exposures_per_user_day.exposure_date

),

final as (

    select
        user_days.experiment_key,
        user_days.date,
        user_days.variation_name,
        variations.is_treatment,
        user_days.subscription_tier,
        count(*) filter (where user_days.assignment_date = user_days.date) as new_users,
        count(*) as cumulative_users,
        count(*) filter (where user_days.exposures > 0) as active_users,
        cast(sum(user_days.exposures) as bigint) as exposures

    from user_days
    left join variations
        on user_days.experiment_key = variations.experiment_key
        and user_days.variation_name = variations.variation_name
    group by
        user_days.experiment_key,
        user_days.date,
        user_days.variation_name,
        variations.is_treatment,
        user_days.subscription_tier

)

select
    experiment_key,
    date,
    variation_name,
    is_treatment,
    subscription_tier,
    new_users,
    cumulative_users,
    active_users,
    exposures

from final
order by experiment_key, date, variation_name, subscription_tier
