{#- The slice an incremental run replaces; rendered at run time (see get_incremental_replace_where_sql). -#}
{%- set refreshed_slice = "{{ is_pending_user('user_id') }}" -%}
{{
    config(
        on_schema_change='fail',
        tags=['marts'],
        pre_hook=["{{ snapshot_assignments_before() }}"],
        **incremental_config([refreshed_slice])
    )
}}
-- depends_on: {{ source('ops', 'pending_users') }}
-- depends_on: {{ source('ops', 'assignments_before') }}

-- An incremental run re-derives the assignments of the users queued in ops.pending_users
-- from all their daily rows (a user's assignment depends on every day they were seen).
with

exposures_daily as (

    select
        experiment_key,
        user_id,
        exposure_date,
        first_exposure_at,
        variation_name,
        variations_seen,
        subscription_tier

    from {{ ref('fct_experiment_exposures_daily') }}
    {% if is_incremental() -%}
    where {{ render(refreshed_slice) }}
    {%- endif %}

),

variations as (

    -- written trimmed and lower-cased (the registry's tests), the form sources are compared in
    select
        experiment_key,
        variation_name,
        is_treatment

    from {{ ref('experiment_variations') }}

),

-- Contract rule 6: the first exposure of the earliest day is the user's first exposure
-- overall, and its variation and tier (at that instant) are the assignment's.
--
-- has_multiple_variations (rule 7: more than one distinct variation over all days) from daily
-- rows: if some day saw two variations, variations_seen > 1 that day; otherwise every day saw
-- exactly one variation, which is that day's variation_name, so the distinct variations over
-- all days are the distinct daily variation_names.
per_user as (

    select
        experiment_key,
        user_id,
        min_by(
            {{ struct_of([
                ('assigned_at', 'first_exposure_at'),
                ('variation_name', 'variation_name'),
                ('subscription_tier', 'subscription_tier'),
            ]) }},
            exposure_date
        ) as assignment,
        min(exposure_date) as assignment_date,
        max(variations_seen) > 1 or count(distinct variation_name) > 1 as has_multiple_variations,
        count(*) as exposure_days,
        max(exposure_date) as last_exposure_date

    from exposures_daily
    group by experiment_key, user_id

),

final as (

    select
        per_user.experiment_key,
        per_user.user_id,
        per_user.assignment.assigned_at as assigned_at,
        per_user.assignment_date,
        per_user.assignment.variation_name as variation_name,
        variations.is_treatment,
        per_user.assignment.subscription_tier as subscription_tier,
        per_user.has_multiple_variations,
        per_user.exposure_days,
        per_user.last_exposure_date

    from per_user
    left join variations
        on per_user.experiment_key = variations.experiment_key
        and per_user.assignment.variation_name = variations.variation_name

)

select * from final
