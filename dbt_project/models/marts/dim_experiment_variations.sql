{{ config(tags=['marts']) }}

with

variations as (

    select * from {{ ref('experiment_variations') }}

),

final as (

    select
        experiment_key,
        -- contract rule 3: variations are compared trimmed and lower-cased everywhere
        lower(trim(variation_name)) as variation_name,
        is_treatment,
        expected_weight

    from variations

)

select * from final
