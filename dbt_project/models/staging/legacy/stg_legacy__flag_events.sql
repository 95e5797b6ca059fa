{{ config(tags=['daily']) }}

-- Same columns as stg_launchdarkly__flag_events so the two feeds are handled alike. The legacy
-- export has no retractions, event kinds nor prerequisites: every row is an active
-- 'feature' evaluation.
with

source as (

    select * from {{ source('legacy', 'legacy_feature_flag_events') }}
    -- the dev target samples users and days (macros/dev_sample.sql); elsewhere: true
    where {{ dev_user_sample(adapter.quote('user')) }}
        and {{ dev_recent_days('cast(' ~ adapter.quote('timestamp') ~ ' as date)') }}

),

renamed as (

    select
        id as event_id,
        {{ adapter.quote('user') }} as user_id,
        {{ adapter.quote('timestamp') }} as event_at,
        cast({{ adapter.quote('timestamp') }} as date) as event_date,
        key as flag_key,
        lower(trim(variation_name)) as variation_name,
        cast(value as {{ dbt.type_string() }}) as served_value,
        true as is_active,
        false as is_retracted,
        'feature' as event_kind,
        cast(null as {{ dbt.type_string() }}) as prerequisite_of,
        cast(null as {{ dbt.type_boolean() }}) as is_in_experiment,
        _load_date,
        _source_file,
        _line_number

    from source

)

select * from renamed
