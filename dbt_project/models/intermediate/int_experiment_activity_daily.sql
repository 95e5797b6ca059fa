{#- The slice an incremental run replaces; rendered at run time (see get_incremental_replace_where_sql). -#}
{%- set refreshed_slice = "{{ in_activity_refresh_window('activity_date') }}" -%}
{{
    config(
        tags=['marts'],
        **incremental_config([refreshed_slice])
    )
}}
-- depends_on: {{ source('ops', 'pending_dates') }}
-- depends_on: {{ source('ops', 'pending_users') }}
-- depends_on: {{ source('ops', 'assignments_before') }}

-- Active users and exposures per experiment, date, ASSIGNED variation and tier at assignment
-- (contract rule 8: intent-to-treat). A date's numbers change when its daily rows change
-- (pending dates) or when the assignment of a user active that day changes, which can touch
-- any of that user's days: the refresh window covers both (macros/incremental_windows.sql).
with

exposures_daily as (

    select
        experiment_key,
        user_id,
        exposure_date,
        exposures

    from {{ ref('fct_experiment_exposures_daily') }}
    {% if is_incremental() -%}
    where {{ in_activity_refresh_window('exposure_date') }}
    {%- endif %}

),

assignments as (

    select
        experiment_key,
        user_id,
        variation_name,
        subscription_tier

    from {{ ref('fct_experiment_assignments') }}

),

activity as (

    select
        exposures_daily.experiment_key,
        exposures_daily.exposure_date as activity_date,
        assignments.variation_name,
        assignments.subscription_tier,
        count(*) as active_users,
        cast(sum(exposures_daily.exposures) as bigint) as exposures

    from exposures_daily
    inner join assignments
        on exposures_daily.experiment_key = assignments.experiment_key
        and exposures_daily.user_id = assignments.user_id
    group by
        exposures_daily.experiment_key,
        exposures_daily.exposure_date,
        assignments.variation_name,
        assignments.subscription_tier

)

select * from activity
