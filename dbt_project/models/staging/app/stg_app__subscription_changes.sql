{{ config(tags=['app']) }}

-- The change log may repeat a change in several files: a repeated id is one change, and the
-- first copy loaded (by file, then line) is the one kept.
with

source as (

    select * from {{ source('app', 'subscription_changes') }}
    -- the dev target samples users and days (macros/dev_sample.sql); elsewhere: true
    where {{ dev_user_sample('user_id') }}

),

numbered as (

    select
        subscription_change_id,
        user_id,
        lower(trim(tier)) as subscription_tier,
        effective_at,
        row_number() over (
            partition by subscription_change_id
            order by _source_file, _line_number
        ) as copy_number

    from source
    where subscription_change_id is not null

),

deduplicated as (

    select
        subscription_change_id,
        user_id,
        subscription_tier,
        effective_at

    from numbered
    where copy_number = 1

)

select * from deduplicated
