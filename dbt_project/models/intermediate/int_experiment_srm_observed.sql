{{ config(tags=['marts']) }}

-- The observed side of the sample-ratio test (contract section 5; macros/sample_ratio.sql): for
-- every experiment, date and segment, the cumulative tested users of every registered
-- variation (users seen in several variations left out; a variation without users counts 0)
-- beside its expected share (registry weights normalised to sum 1). Segments: the whole
-- experiment (subscription_tier null), spanning the first assignment date to the last exposure
-- date like the marts; and each tier at assignment, from the tier's first assignment date on.
-- The overall and per-tier health marts, the Python check's findings and the health pages all
-- read their observed counts from here.
with

assignments as (

    select
        experiment_key,
        assignment_date,
        variation_name,
        subscription_tier,
        has_multiple_variations,
        last_exposure_date

    from {{ ref('fct_experiment_assignments') }}

),

variations as (

    select
        experiment_key,
        variation_name,
        expected_weight

    from {{ ref('dim_experiment_variations') }}

),

expected_shares as (

    select
        experiment_key,
        variation_name,
        -- the weights summed as decimals: exact, so the share does not depend on row order
        cast(
            cast(expected_weight as decimal(18, 9))
            / sum(cast(expected_weight as decimal(18, 9))) over (partition by experiment_key)
            as double
        ) as expected_share

    from variations

),

-- the experiment's dates and each tier's, as the marts show them (macros/experiment_spans.sql)
experiment_dates as (

    {{ assignment_group_dates('assignments') }}

),

tier_dates as (

    {{ assignment_group_dates('assignments', ['subscription_tier']) }}

),

segment_dates as (

    select
        experiment_key,
        cast(null as {{ dbt.type_string() }}) as subscription_tier,
        date

    from experiment_dates

    union all

    select
        experiment_key,
        subscription_tier,
        date

    from tier_dates

),

new_tested_by_tier as (

    select
        experiment_key,
        subscription_tier,
        assignment_date,
        variation_name,
        count(*) as new_users

    from assignments
    where not has_multiple_variations
    group by experiment_key, subscription_tier, assignment_date, variation_name

),

new_tested_users as (

    select
        experiment_key,
        cast(null as {{ dbt.type_string() }}) as subscription_tier,
        assignment_date,
        variation_name,
        sum(new_users) as new_users

    from new_tested_by_tier
    group by experiment_key, assignment_date, variation_name

    union all

    select
        experiment_key,
        subscription_tier,
        assignment_date,
        variation_name,
        new_users

    from new_tested_by_tier

),

observed as (

    select
        segment_dates.experiment_key,
        segment_dates.date,
        segment_dates.subscription_tier,
        expected_shares.variation_name,
        expected_shares.expected_share,
        cast(sum(coalesce(new_tested_users.new_users, 0)) over (
            partition by
                segment_dates.experiment_key,
                segment_dates.subscription_tier,
                expected_shares.variation_name
            order by segment_dates.date
            rows between unbounded preceding and current row
        ) as bigint) as observed_users

    from segment_dates
    inner join expected_shares
        on segment_dates.experiment_key = expected_shares.experiment_key
    left join new_tested_users
        on segment_dates.experiment_key = new_tested_users.experiment_key
        and segment_dates.subscription_tier is not distinct from new_tested_users.subscription_tier
        and segment_dates.date = new_tested_users.assignment_date
        and expected_shares.variation_name = new_tested_users.variation_name

),

final as (

    select
        experiment_key,
        date,
        subscription_tier,
        variation_name,
        expected_share,
        observed_users,
        cast(sum(observed_users) over (
            partition by experiment_key, date, subscription_tier
        ) as bigint) as tested_users

    from observed

)

select * from final
