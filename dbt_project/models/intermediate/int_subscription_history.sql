{{ config(materialized='table', tags=['app']) }}

-- Validity intervals [valid_from, valid_to) of each subscription change. Changes of one user
-- with the same effective_at are ordered by id: the earlier one gets an empty interval, so the
-- tier at that instant is the later change's (DATA_CONTRACT.md rule 5, ties by id).
with

subscription_changes as (

    select * from {{ ref('stg_app__subscription_changes') }}

),

intervals as (

    select
        subscription_change_id,
        user_id,
        subscription_tier,
        effective_at as valid_from,
        lead(effective_at) over (
            partition by user_id
            order by effective_at, subscription_change_id
        ) as valid_to

    from subscription_changes

),

final as (

    select
        subscription_change_id,
        user_id,
        subscription_tier,
        valid_from,
        valid_to,
        valid_to is null as is_current

    from intervals

)

select * from final
