{{ config(tags=['app']) }}

with

subscription_history as (

    select * from {{ ref('int_subscription_history') }}

),

final as (

    select
        subscription_change_id,
        user_id,
        subscription_tier,
        valid_from,
        valid_to,
        is_current

    from subscription_history

)

select * from final
