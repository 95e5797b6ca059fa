-- The vault-launch dashboard query of the seed case (part 2), as the analysts wrote it, cleaned
-- up: readable, and fixed so that it runs. It is kept to show what the dashboard did and why
-- its numbers were wrong; allocation_dashboard_corrected.sql is the corrected version, and
-- marts.mart_experiment_allocation_daily serves the same numbers in milliseconds.
--
-- What it does: for the vault-launch flag, the number of distinct users per event timestamp
-- ("created_on"), split into those served `true` and those served `false`.
--
-- Fixed so that it runs (the original did not):
--   a. The union read `directpush_launchdarkly_events` (the CTE is
--      `directpushlaunchdarklyevents`) and `legacy_feature_flag_events` (the raw table, with
--      other columns, not the CTE).
--   b. `created_on` was not defined anywhere: it is the event timestamp, as the CTEs suggest.
--   c. The outer query grouped by a CASE over `num_users` while selecting two of them: an
--      error, and at best one row per group and date instead of both counts on one row. Both
--      counts are now conditional aggregates of one group by.
--   d. `user` is quoted: a bare `user` is CURRENT_USER in Postgres-like warehouses (it would
--      have counted one user: the dashboard's database login).
--   e. `select *` on both sides of a union pairs columns by position: the column lists are
--      now spelled out, in the same order, with the same names (`event_contextkeysuser` vs
--      `event_contextkeys_user` was a silent mismatch). The untyped NULL is cast.
--   f. The result is ordered by date, not by the counts: it is a time series.
--   g. The experiment filter is applied before the union and the aggregation instead of
--      after them (filter early: less data read, and no full-history aggregate thrown away).
--   h. The filter matched the LaunchDarkly key only: the legacy system calls the flag
--      `vault_launch`, so every legacy exposure was dropped. Each feed now uses its own key
--      and both are reported as `vault-launch`.
--   i. LaunchDarkly sends the served value as JSON text (`true`, `false`), never 't'/'f':
--      every LaunchDarkly user fell in neither column. Both spellings are now read.
--
-- Still wrong on purpose (each fixed in allocation_dashboard_corrected.sql, FIX n there):
--   1. The flag keys are hard-coded per feed instead of read from the experiment registry
--      (FIX 1).
--   2. `is_active = 'Y'` keeps the active copy of an event that was later retracted, and a
--      retried event is read once per copy (FIX 2).
--   3. `debug` events, prerequisite evaluations and events before the experiment's start
--      date are counted as exposures (FIX 3).
--   4. The group is the served value, not the variation: a flag may serve `true` in every
--      variation (it does in the test fixture), so control users land in the `true` column
--      (FIX 4).
--   5. Test accounts are counted (FIX 5).
--   6. A user is counted in every period they are exposed, and in both columns if they saw
--      both variations: no first entry (FIX 6).
--   7. One row per timestamp, not per date (FIX 7).
--   8. No subscription tier, and only the users exposed in a period, not the allocation over
--      time (FIX 8, 9).
--   9. Performance: count(distinct) over the whole raw history on every dashboard load (the
--      hour the dashboard took). The platform pre-aggregates incrementally instead.
--
-- UNION vs UNION ALL: UNION ALL appends one result to the other; UNION also removes duplicate
-- rows of the combined result, which costs a sort or hash of every row. UNION ALL is right
-- here (see allocation_dashboard_corrected.sql for why UNION would not deduplicate events).
with

launchdarkly_events as (

    select
        event_id,
        event_contextkeys_user as user_id,
        event_creationdate as created_on,
        event_key as experiment_name,
        event_variationname as experiment_variation_name,
        event_value as experiment_variation_description,
        case
            when lower(event_value) in ('t', 'true') then true
            when lower(event_value) in ('f', 'false') then false
        end as is_experiment_variation

    from {{ source('launchdarkly', 'partner_directpush_launchdarkly_events') }}
    where
        is_active = 'Y'
        and event_key = 'vault-launch'

),

legacy_events as (

    select
        id as event_id,
        "user" as user_id,
        "timestamp" as created_on,
        -- the same experiment under the legacy system's flag key (fix h)
        'vault-launch' as experiment_name,
        variation_name as experiment_variation_name,
        cast(null as varchar) as experiment_variation_description,
        -- the loader already parsed the served value to a boolean (raw.value_raw keeps the text)
        value as is_experiment_variation

    from {{ source('legacy', 'legacy_feature_flag_events') }}
    where key = 'vault_launch'

),

events as (

    select
        event_id,
        user_id,
        created_on,
        experiment_name,
        experiment_variation_name,
        experiment_variation_description,
        is_experiment_variation
    from launchdarkly_events

    union all

    select
        event_id,
        user_id,
        created_on,
        experiment_name,
        experiment_variation_name,
        experiment_variation_description,
        is_experiment_variation
    from legacy_events

),

final as (

    select
        experiment_name,
        created_on,
        count(distinct user_id) filter (where is_experiment_variation) as num_users_true,
        count(distinct user_id) filter (where not is_experiment_variation) as num_users_false

    from events
    group by experiment_name, created_on

)

select
    experiment_name,
    created_on,
    num_users_true,
    num_users_false

from final
order by created_on
