{#-
    The slices the incremental models rebuild, written once. Each macro is used twice by a
    model: quoted in `incremental_predicates` (the rows `replace_where` deletes; rendered at
    run time by get_incremental_replace_where_sql) and in the model's SQL (the rows it rebuilds).
    The bookkeeping tables are written by the Dagster ops before dbt runs (docs/ARCHITECTURE.md).

    Models that call these only inside `{% if is_incremental() %}` must declare the sources in a
    `-- depends_on:` comment: is_incremental() is false at parse time, so dbt would not see them.
-#}

{#- Event dates being recomputed by this run. -#}
{% macro in_recompute_window(column) -%}
    {{ column }} in (select recompute_date from {{ source('ops', 'recompute_dates') }})
{%- endmacro %}

{#- Users whose dimensions (test-account flag, subscription history) changed since the last daily run. -#}
{% macro is_dim_changed_user(column) -%}
    {{ column }} in (select user_id from {{ source('ops', 'dim_changed_users') }})
{%- endmacro %}

{#- Users queued by the daily runs whose assignments must be re-derived. -#}
{% macro is_pending_user(column) -%}
    {{ column }} in (select user_id from {{ source('ops', 'pending_users') }})
{%- endmacro %}

{#-
    Activity dates to recompute after fct_experiment_assignments was refreshed:
    - the dates recomputed by the daily runs (ops.pending_dates);
    - every exposure date of a user whose assignment is new or changed (variation, tier or date
      differ from the snapshot taken in ops.assignments_before before the refresh): their activity
      moves to another (variation, tier) group on all their days, not only on recomputed ones;
    - for an assignment that disappeared (all its rows retracted, the user became a test account)
      the old exposure rows are gone: every date of its old span [assignment_date,
      last_exposure_date] (open-ended, up to today, if the snapshot has no last date).
-#}
{% macro in_activity_refresh_window(column) -%}
    {{ column }} in (
        select pending_date from {{ source('ops', 'pending_dates') }}

        union

        select refreshed_exposures.exposure_date
        from {{ ref('fct_experiment_exposures_daily') }} as refreshed_exposures
        inner join {{ ref('fct_experiment_assignments') }} as refreshed_assignments
            on refreshed_exposures.experiment_key = refreshed_assignments.experiment_key
            and refreshed_exposures.user_id = refreshed_assignments.user_id
        left join {{ source('ops', 'assignments_before') }} as previous_assignments
            on refreshed_assignments.experiment_key = previous_assignments.experiment_key
            and refreshed_assignments.user_id = previous_assignments.user_id
        where
            {{ is_pending_user('refreshed_assignments.user_id') }}
            and (
                previous_assignments.user_id is null
                or previous_assignments.assignment_date is distinct from refreshed_assignments.assignment_date
                or previous_assignments.variation_name is distinct from refreshed_assignments.variation_name
                or previous_assignments.subscription_tier is distinct from refreshed_assignments.subscription_tier
            )

        union

        select {{ each_day_between(
            'vanished_assignments.assignment_date',
            'coalesce(vanished_assignments.last_exposure_date, current_date)'
        ) }}
        from {{ source('ops', 'assignments_before') }} as vanished_assignments
        where not exists (
            select 1
            from {{ ref('fct_experiment_assignments') }} as current_assignments
            where current_assignments.experiment_key = vanished_assignments.experiment_key
                and current_assignments.user_id = vanished_assignments.user_id
        )
    )
{%- endmacro %}

{#-
    The bookkeeping between the daily models and the marts, run by dbt inside the same build
    (one dbt invocation per run; docs/ARCHITECTURE.md):
    - after fct_experiment_exposures_daily: queue the users whose assignments must be
      re-derived: those with a row on a recomputed date (after the refresh; the ones before it
      were queued by the run's preparation) and those whose dimensions changed;
    - before fct_experiment_assignments: snapshot the assignments of the pending users not
      snapshotted yet (a snapshot left by a failed attempt is kept: it still holds the state
      before that attempt merged anything).
    Hooks run inside the model's transaction, so a failed model leaves the queues untouched.
    The insert targets are rendered as plain table names (`.render()`): `dbt build --empty`
    (the unit tests' run) turns every source() into a `where false` subquery, which cannot be
    inserted into.
-#}
{% macro queue_pending_users() -%}
    insert into {{ source('ops', 'pending_users').render() }}
    select distinct user_id from {{ this }}
    where {{ in_recompute_window('exposure_date') }}
    union all
    select user_id from {{ source('ops', 'dim_changed_users') }}
{%- endmacro %}

{% macro snapshot_assignments_before() -%}
    {%- if is_incremental() %}
    insert into {{ source('ops', 'assignments_before').render() }}
    select experiment_key, user_id, assignment_date, variation_name, subscription_tier,
           last_exposure_date
    from {{ this }}
    where {{ is_pending_user('user_id') }}
      and user_id not in (select user_id from {{ source('ops', 'assignments_before') }})
    {%- else %}
    select 1
    {%- endif %}
{%- endmacro %}
