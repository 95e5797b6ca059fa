{#- The slice an incremental run replaces; rendered at run time (see get_incremental_replace_where_sql). -#}
{%- set refreshed_slice =
    "({{ in_recompute_window('exposure_date') }} or {{ is_dim_changed_user('user_id') }})" -%}
{{
    config(
        on_schema_change='fail',
        tags=['daily'],
        post_hook=["{{ queue_pending_users() }}"],
        **incremental_config([refreshed_slice])
    )
}}
-- depends_on: {{ source('ops', 'recompute_dates') }}
-- depends_on: {{ source('ops', 'dim_changed_users') }}

-- An incremental run rebuilds the recomputed dates and every row of the users whose
-- dimensions changed (their test-account flag or tier history), from the aggregated
-- int_experiment_user_days: never from the raw events.
with

user_days as (

    select
        experiment_key,
        user_id,
        exposure_date,
        first_exposure_at,
        variation_name,
        variations_seen,
        exposures

    from {{ ref('int_experiment_user_days') }}
    {% if is_incremental() -%}
    where {{ render(refreshed_slice) }}
    {%- endif %}

),

test_accounts as (

    select user_id
    from {{ ref('stg_app__users') }}
    where is_test_account

),

subscription_history as (

    select
        user_id,
        subscription_tier,
        valid_from,
        valid_to

    from {{ ref('int_subscription_history') }}

),

variations as (

    -- written trimmed and lower-cased (the registry's tests), the form sources are compared in
    select
        experiment_key,
        variation_name,
        is_treatment

    from {{ ref('experiment_variations') }}

),

-- Contract rule 4: test accounts are left out; users missing from the snapshot are kept.
non_test_user_days as (

    select
        experiment_key,
        user_id,
        exposure_date,
        first_exposure_at,
        variation_name,
        variations_seen,
        exposures

    from user_days
    where user_id not in (select user_id from test_accounts)

),

final as (

    select
        user_days.experiment_key,
        user_days.user_id,
        user_days.exposure_date,
        user_days.first_exposure_at,
        user_days.variation_name,
        variations.is_treatment,
        user_days.variations_seen,
        user_days.exposures,
        -- Contract rule 5: the tier of the latest change at or before the first exposure.
        coalesce(subscription_history.subscription_tier, 'unknown') as subscription_tier

    from non_test_user_days as user_days
    left join subscription_history
        on user_days.user_id = subscription_history.user_id
        and subscription_history.valid_from <= user_days.first_exposure_at
        and (
            subscription_history.valid_to is null
            or subscription_history.valid_to > user_days.first_exposure_at
        )
    left join variations
        on user_days.experiment_key = variations.experiment_key
        and user_days.variation_name = variations.variation_name

)

select * from final
