{{ config(tags=['daily']) }}

-- One row per loaded line, duplicates and retraction copies kept: deduplication needs every
-- copy of an event id (int_experiment_user_days). A plain view so that the daily model's
-- date filter reaches the raw scan.
with

source as (

    select * from {{ source('launchdarkly', 'partner_directpush_launchdarkly_events') }}
    -- the dev target samples users and days (macros/dev_sample.sql); elsewhere: true
    where {{ dev_user_sample('event_contextkeys_user') }}
        and {{ dev_recent_days('cast(event_creationdate as date)') }}

),

renamed as (

    select
        event_id,
        event_contextkeys_user as user_id,
        event_creationdate as event_at,
        cast(event_creationdate as date) as event_date,
        event_key as flag_key,
        lower(trim(event_variationname)) as variation_name,
        event_value as served_value,
        coalesce(upper(trim(is_active)) = 'Y', false) as is_active,
        coalesce(upper(trim(is_active)) = 'N', false) as is_retracted,
        event_kind,
        event_prereqof as prerequisite_of,
        event_in_experiment as is_in_experiment,
        _load_date,
        _source_file,
        _line_number

    from source

)

select * from renamed
