-- The "bare" lower bound of the benchmark (section C of `expplatform bench`).
--
-- The contract's section-5 outputs computed straight from the landing files by one DuckDB
-- script: no Dagster, no dbt, no raw tables, no rejected-records bookkeeping, no
-- incremental state. It is what the same engine needs, at the least, to read every line
-- once and derive the marts; the pipeline is judged against its wall time.
--
-- Placeholders (replaced by expplatform/bench/sql.py before running; do the same with sed to
-- run it by hand): ${LANDING} the landing zone root, ${SEEDS} dbt_project/seeds,
-- ${USER_SAMPLE} and ${RECENT_DAYS} the dev target's sample of users and of recent days
-- (dbt_project/macros/dev_sample.sql), `true` when not sampling. The health mart
-- calls chi2_sf(chi_square, degrees_of_freedom), the project's Python UDF
-- (expplatform/transform/duckdb_udfs.py): run the script through the duckdb Python API with
-- register_udfs(con), as the benchmark does.
--
-- Simplifications, each exact on data that honours the contract:
-- * a line is kept or dropped by the same rules as the loaders (contract section 2.5), but
--   rejected lines are not recorded;
-- * copies of an event id (the partner's retries) carry the same payload apart from
--   is_active, so the earliest copy is not searched for: the copies are aggregated;
-- * repeated subscription change ids are identical copies, so one of them is kept;
-- * users/ holds one snapshot per file without repeated user ids in a file.
-- The benchmark's equivalence check compares every output with the pipeline's marts.

set TimeZone = 'UTC';

create schema if not exists bare;

-- --- registry (the dbt seeds) ---------------------------------------------------------------

create or replace table bare.dim_experiments as
select experiment_key, launchdarkly_flag_key, legacy_flag_key, description, start_date,
       end_date, owner
from read_csv('${SEEDS}/experiments.csv', header = true, auto_detect = false,
    columns = {'experiment_key': 'VARCHAR', 'launchdarkly_flag_key': 'VARCHAR',
               'legacy_flag_key': 'VARCHAR', 'description': 'VARCHAR', 'start_date': 'DATE',
               'end_date': 'DATE', 'owner': 'VARCHAR'});

create or replace table bare.dim_experiment_variations as
select experiment_key, lower(trim(variation_name)) as variation_name, is_treatment,
       expected_weight
from read_csv('${SEEDS}/experiment_variations.csv', header = true, auto_detect = false,
    columns = {'experiment_key': 'VARCHAR', 'variation_name': 'VARCHAR',
               'is_treatment': 'BOOLEAN', 'expected_weight': 'DOUBLE'});

-- --- users and subscriptions ------------------------------------------------------------------

create or replace temp macro bare_bool(x) as
    case
        when lower(trim(x)) in ('true', 't', '1', 'y', 'yes') then true
        when lower(trim(x)) in ('false', 'f', '0', 'n', 'no') then false
    end;
create or replace temp macro bare_user_sampled(u) as ${USER_SAMPLE};
create or replace temp macro bare_recent(d) as ${RECENT_DAYS};
create or replace temp macro bare_iso(x) as
    case when regexp_matches(trim(x), '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}')
         then try_cast(trim(x) as timestamptz) at time zone 'UTC' end;

-- The newest snapshot (by file name) is the truth.
create or replace table bare.dim_users as
with snapshots as (
    select * from read_csv('${LANDING}/users/*.csv', header = true, auto_detect = false,
        filename = true, delim = ',', quote = '"', escape = '"', ignore_errors = true,
        columns = {'user_id': 'VARCHAR', 'created_at': 'VARCHAR', 'country': 'VARCHAR',
                   'is_test_account': 'VARCHAR'})
)
select trim(user_id) as user_id, bare_iso(created_at) as created_at,
       nullif(trim(country), '') as country,
       coalesce(bare_bool(is_test_account), false) as is_test_account
from snapshots
where filename = (select max(filename) from snapshots)
  and nullif(trim(user_id), '') is not null
  and bare_user_sampled(trim(user_id))
  and (nullif(trim(created_at), '') is null or bare_iso(created_at) is not null);

create or replace table bare.dim_subscription_history as
with changes as (
    select trim(subscription_change_id) as subscription_change_id, trim(user_id) as user_id,
           lower(trim(tier)) as subscription_tier, bare_iso(effective_at) as effective_at
    from read_csv('${LANDING}/subscriptions/*.csv', header = true, auto_detect = false,
        delim = ',', quote = '"', escape = '"', ignore_errors = true,
        columns = {'subscription_change_id': 'VARCHAR', 'user_id': 'VARCHAR', 'tier': 'VARCHAR',
                   'effective_at': 'VARCHAR'})
),
valid as (
    select distinct on (subscription_change_id) *
    from changes
    where nullif(subscription_change_id, '') is not null and nullif(user_id, '') is not null
      and effective_at is not null and subscription_tier in ('standard', 'plus', 'premium')
      and bare_user_sampled(user_id)
),
intervals as (
    select subscription_change_id, user_id, subscription_tier, effective_at as valid_from,
           lead(effective_at) over (partition by user_id
                                    order by effective_at, subscription_change_id) as valid_to
    from valid
)
select subscription_change_id, user_id, subscription_tier, valid_from, valid_to,
       valid_to is null as is_current
from intervals;

-- --- exposure events ---------------------------------------------------------------------------

-- Valid lines of both sources that may be exposures (registered flag, feature kind, no
-- prerequisite, within the experiment's dates), one row per copy.
create or replace temp table candidate_events as
with launchdarkly_lines as (
    select event_id, is_active, event, date as load_date
    from read_json('${LANDING}/launchdarkly/*/*.jsonl*', format = 'newline_delimited',
        hive_partitioning = true, hive_types = {'date': 'DATE'}, ignore_errors = true,
        auto_detect = false,
        columns = {'event_id': 'VARCHAR', 'is_active': 'VARCHAR',
                   'event': 'STRUCT(kind VARCHAR, "creationDate" JSON, "key" VARCHAR,
                             "contextKeys" STRUCT("user" VARCHAR), "variationName" VARCHAR,
                             "prereqOf" VARCHAR)'})
),
launchdarkly_valid as (
    select trim(event_id) as event_id, trim(event.contextKeys.user) as user_id,
           try(epoch_ms(event.creationDate::varchar::double::bigint)) as event_at,
           event.key as flag_key, lower(trim(event.variationName)) as variation_name,
           upper(trim(is_active)) as active_flag, event.kind as event_kind,
           event.prereqOf as prerequisite_of, load_date
    from launchdarkly_lines
    where nullif(trim(event_id), '') is not null
      and nullif(trim(event.contextKeys.user), '') is not null
      and json_type(event.creationDate) in ('BIGINT', 'UBIGINT', 'DOUBLE')
      and event.creationDate::varchar::double >= 1e11
),
legacy_valid as (
    select trim(id) as event_id, trim("user") as user_id, bare_iso("timestamp") as event_at,
           key as flag_key, lower(trim(variation_name)) as variation_name, 'Y' as active_flag,
           'feature' as event_kind, null::varchar as prerequisite_of, date as load_date
    from read_csv('${LANDING}/legacy/*/*.csv', header = true, auto_detect = false,
        hive_partitioning = true, hive_types = {'date': 'DATE'}, delim = ',', quote = '"',
        escape = '"', ignore_errors = true,
        columns = {'id': 'VARCHAR', 'user': 'VARCHAR', 'timestamp': 'VARCHAR', 'key': 'VARCHAR',
                   'variation_name': 'VARCHAR', 'value': 'VARCHAR'})
    where nullif(trim(id), '') is not null and nullif(trim("user"), '') is not null
),
events as (
    select 1 as source_rank, * from launchdarkly_valid
    union all
    select 2 as source_rank, * from legacy_valid where event_at is not null
),
sampled as (
    select * from events
    where bare_user_sampled(user_id) and bare_recent(cast(event_at as date))
)
select experiments.experiment_key, events.source_rank, events.event_id, events.user_id,
       events.event_at, cast(events.event_at as date) as exposure_date, events.variation_name,
       events.active_flag
from sampled as events
inner join bare.dim_experiments as experiments
    on events.flag_key = case events.source_rank when 1 then experiments.launchdarkly_flag_key
                                                 else experiments.legacy_flag_key end
where events.event_at < events.load_date + interval 2 day
  and events.event_kind = 'feature'
  and coalesce(events.prerequisite_of, '') = ''
  and cast(events.event_at as date) >= experiments.start_date
  and (experiments.end_date is null or cast(events.event_at as date) <= experiments.end_date);

-- One event per source and id; an id with any retracted copy never counts.
create or replace temp table exposures as
select experiment_key, source_rank, event_id, any_value(user_id) as user_id,
       min(event_at) as event_at, any_value(exposure_date) as exposure_date,
       any_value(variation_name) as variation_name
from candidate_events
group by experiment_key, source_rank, event_id
having not bool_or(active_flag = 'N') and bool_and(active_flag = 'Y');

-- --- facts and marts ----------------------------------------------------------------------------

create or replace table bare.fct_experiment_exposures_daily as
with per_variation as (
    select experiment_key, user_id, exposure_date, variation_name,
           min({'event_at': event_at, 'source_rank': source_rank, 'event_id': event_id})
               as first_event,
           count(*) as exposures
    from exposures
    where user_id not in (select user_id from bare.dim_users where is_test_account)
    group by all
),
per_day as (
    select experiment_key, user_id, exposure_date,
           min({'event_at': first_event.event_at, 'source_rank': first_event.source_rank,
                'event_id': first_event.event_id, 'variation_name': variation_name}) as first_event,
           count(variation_name) as variations_seen,
           sum(exposures)::bigint as exposures
    from per_variation
    group by all
)
select per_day.experiment_key, per_day.user_id, per_day.exposure_date,
       per_day.first_event.event_at as first_exposure_at,
       per_day.first_event.variation_name as variation_name, variations.is_treatment,
       per_day.variations_seen, per_day.exposures,
       coalesce(history.subscription_tier, 'unknown') as subscription_tier
from per_day
left join bare.dim_subscription_history as history
    on per_day.user_id = history.user_id
    and history.valid_from <= per_day.first_event.event_at
    and (history.valid_to is null or history.valid_to > per_day.first_event.event_at)
left join bare.dim_experiment_variations as variations
    on per_day.experiment_key = variations.experiment_key
    and per_day.first_event.variation_name = variations.variation_name;

create or replace table bare.fct_experiment_assignments as
with per_user as (
    select experiment_key, user_id,
           arg_min({'assigned_at': first_exposure_at, 'variation_name': variation_name,
                    'subscription_tier': subscription_tier}, exposure_date) as assignment,
           min(exposure_date) as assignment_date,
           max(variations_seen) > 1 or count(distinct variation_name) > 1
               as has_multiple_variations,
           count(*) as exposure_days,
           max(exposure_date) as last_exposure_date
    from bare.fct_experiment_exposures_daily
    group by experiment_key, user_id
)
select per_user.experiment_key, per_user.user_id,
       per_user.assignment.assigned_at as assigned_at, per_user.assignment_date,
       per_user.assignment.variation_name as variation_name, variations.is_treatment,
       per_user.assignment.subscription_tier as subscription_tier,
       per_user.has_multiple_variations, per_user.exposure_days, per_user.last_exposure_date
from per_user
left join bare.dim_experiment_variations as variations
    on per_user.experiment_key = variations.experiment_key
    and per_user.assignment.variation_name = variations.variation_name;

create or replace table bare.mart_experiment_allocation_daily as
with activity as (
    select daily.experiment_key, daily.exposure_date as date, assigned.variation_name,
           assigned.subscription_tier, count(*) as active_users,
           sum(daily.exposures)::bigint as exposures
    from bare.fct_experiment_exposures_daily as daily
    inner join bare.fct_experiment_assignments as assigned
        on daily.experiment_key = assigned.experiment_key and daily.user_id = assigned.user_id
    group by all
),
new_users as (
    select experiment_key, assignment_date as date, variation_name, subscription_tier,
           count(*) as new_users
    from bare.fct_experiment_assignments
    group by all
),
groups as (
    select new_users.experiment_key, variation_name, subscription_tier,
           min(date) as first_date, any_value(spans.last_date) as last_date
    from new_users
    inner join (select experiment_key, max(last_exposure_date) as last_date
                from bare.fct_experiment_assignments group by all) as spans
        on new_users.experiment_key = spans.experiment_key
    group by all
),
grid as (
    select experiment_key, variation_name, subscription_tier,
           unnest(generate_series(first_date, last_date, interval 1 day))::date as date
    from groups
),
daily as (
    select grid.experiment_key, grid.date, grid.variation_name, grid.subscription_tier,
           coalesce(new_users.new_users, 0) as new_users,
           coalesce(activity.active_users, 0) as active_users,
           coalesce(activity.exposures, 0) as exposures
    from grid
    left join new_users
        on grid.experiment_key = new_users.experiment_key and grid.date = new_users.date
        and grid.variation_name is not distinct from new_users.variation_name
        and grid.subscription_tier = new_users.subscription_tier
    left join activity
        on grid.experiment_key = activity.experiment_key and grid.date = activity.date
        and grid.variation_name is not distinct from activity.variation_name
        and grid.subscription_tier = activity.subscription_tier
)
select daily.experiment_key, daily.date, daily.variation_name, variations.is_treatment,
       daily.subscription_tier, daily.new_users,
       sum(daily.new_users) over (
           partition by daily.experiment_key, daily.variation_name, daily.subscription_tier
           order by daily.date rows between unbounded preceding and current row
       )::bigint as cumulative_users,
       daily.active_users, daily.exposures
from daily
left join bare.dim_experiment_variations as variations
    on daily.experiment_key = variations.experiment_key
    and daily.variation_name = variations.variation_name;

create or replace table bare.mart_experiment_health_daily as
with dates as (
    select experiment_key,
           unnest(generate_series(min(assignment_date), max(last_exposure_date),
                                  interval 1 day))::date as date
    from bare.fct_experiment_assignments
    group by experiment_key
),
new_assignments as (
    select experiment_key, assignment_date as date, count(*) as new_users,
           count(*) filter (where has_multiple_variations) as new_multiple
    from bare.fct_experiment_assignments
    group by all
),
totals as (
    select dates.experiment_key, dates.date,
           sum(coalesce(new_users, 0)) over to_date as assigned_users,
           sum(coalesce(new_multiple, 0)) over to_date as multiple_variation_users
    from dates
    left join new_assignments using (experiment_key, date)
    window to_date as (partition by dates.experiment_key order by dates.date
                       rows between unbounded preceding and current row)
),
shares as (
    select experiment_key, variation_name,
           expected_weight / sum(expected_weight) over (partition by experiment_key)
               as expected_share
    from bare.dim_experiment_variations
),
tested_new as (
    select experiment_key, assignment_date as date, variation_name, count(*) as new_users
    from bare.fct_experiment_assignments
    where not has_multiple_variations
    group by all
),
observed as (
    select dates.experiment_key, dates.date, shares.variation_name, shares.expected_share,
           sum(coalesce(tested_new.new_users, 0)) over (
               partition by dates.experiment_key, shares.variation_name order by dates.date
               rows between unbounded preceding and current row) as observed_users
    from dates
    inner join shares on dates.experiment_key = shares.experiment_key
    left join tested_new
        on dates.experiment_key = tested_new.experiment_key and dates.date = tested_new.date
        and shares.variation_name = tested_new.variation_name
),
srm as (
    select experiment_key, date, count(*) as variation_count,
           min(observed_users) as smallest,
           case when max(tested) > 0
                then sum(power(observed_users - tested * expected_share, 2)
                         / (tested * expected_share)) end as chi_square,
           case when max(tested) > 0
                then max(abs(observed_users / tested - expected_share)) end as max_difference
    from (select *, sum(observed_users) over (partition by experiment_key, date) as tested
          from observed)
    group by all
),
tests as (
    select *, chi2_sf(chi_square, variation_count - 1) as p_value from srm
)
select totals.experiment_key, totals.date, totals.assigned_users::bigint as assigned_users,
       totals.multiple_variation_users::bigint as multiple_variation_users,
       tests.chi_square::double as srm_chi_square, tests.p_value as srm_p_value,
       case
           when tests.variation_count is null or tests.variation_count < 2
               or tests.smallest < 8 then 'not_enough_traffic'
           when tests.p_value < 0.001 and tests.max_difference >= 0.001 - 1e-12 then 'unhealthy'
           when tests.p_value < 0.01 then 'warning'
           else 'healthy'
       end as srm_status
from totals
left join tests on totals.experiment_key = tests.experiment_key and totals.date = tests.date;
