{{ config(tags=['app']) }}

-- Every user of the newest snapshot, test accounts included: this is where the flag lives.
-- Facts and the other marts leave test accounts out.
with

users as (

    select * from {{ ref('stg_app__users') }}

),

final as (

    select
        user_id,
        created_at,
        country,
        is_test_account

    from users

)

select * from final
