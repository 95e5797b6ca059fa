{{ config(tags=['marts']) }}

with

experiments as (

    select * from {{ ref('experiments') }}

),

final as (

    select
        experiment_key,
        launchdarkly_flag_key,
        legacy_flag_key,
        description,
        start_date,
        end_date,
        owner

    from experiments

)

select * from final
