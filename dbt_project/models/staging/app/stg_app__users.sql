{{ config(tags=['app']) }}

-- raw.users holds the newest snapshot only. A user listed twice in it is a test account if
-- any of its lines says so (excluding too much beats leaking a test account into the marts);
-- the other attributes come from the last line.
with

source as (

    select * from {{ source('app', 'users') }}
    -- the dev target samples users and days (macros/dev_sample.sql); elsewhere: true
    where {{ dev_user_sample('user_id') }}

),

deduplicated as (

    select
        user_id,
        {{ last_value_by('created_at', ['_source_file', '_line_number']) }} as created_at,
        {{ last_value_by('country', ['_source_file', '_line_number']) }} as country,
        coalesce(bool_or(is_test_account), false) as is_test_account

    from source
    where user_id is not null
    group by user_id

)

select * from deduplicated
