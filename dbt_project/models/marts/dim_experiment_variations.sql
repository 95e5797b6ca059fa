{{ config(tags=['marts']) }}

with

variations as (

    select * from {{ ref('experiment_variations') }}

),

final as (

    select
        experiment_key,
        -- contract rule 3: the registry's tests keep names trimmed and lower-cased
        variation_name,
        is_treatment,
        expected_weight

    from variations

)

select * from final
