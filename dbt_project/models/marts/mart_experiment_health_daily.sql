{{ config(tags=['marts']) }}

-- Daily sample-ratio-mismatch (SRM) check per experiment, on cumulative assignments: Pearson's
-- chi-square of the users per registered variation against the registry's weights normalised
-- to sum 1 (contract section 5), computed by macros/sample_ratio.sql from
-- int_experiment_srm_observed (users seen in several variations left out; users assigned to an
-- unregistered variation are in no registered variation, so not in the test either).
with

assignments as (

    select
        experiment_key,
        assignment_date,
        variation_name,
        has_multiple_variations,
        last_exposure_date

    from {{ ref('fct_experiment_assignments') }}

),

-- the same span as mart_experiment_allocation_daily (macros/experiment_spans.sql)
experiment_dates as (

    {{ assignment_group_dates('assignments') }}

),

new_assignments as (

    select
        experiment_key,
        assignment_date,
        count(*) as new_users,
        count(*) filter (where has_multiple_variations) as new_multiple_variation_users

    from assignments
    group by experiment_key, assignment_date

),

assigned_totals as (

    select
        experiment_dates.experiment_key,
        experiment_dates.date,
        cast(sum(coalesce(new_assignments.new_users, 0)) over experiment_to_date as bigint)
            as assigned_users,
        cast(sum(coalesce(new_assignments.new_multiple_variation_users, 0)) over experiment_to_date as bigint)
            as multiple_variation_users

    from experiment_dates
    left join new_assignments
        on experiment_dates.experiment_key = new_assignments.experiment_key
        and experiment_dates.date = new_assignments.assignment_date
    window experiment_to_date as (
        partition by experiment_dates.experiment_key
        order by experiment_dates.date
        rows between unbounded preceding and current row
    )

),

-- the sample-ratio test on the whole experiment (macros/sample_ratio.sql)
observed as (

    select
        experiment_key,
        date,
        variation_name,
        expected_share,
        observed_users,
        tested_users

    from {{ ref('int_experiment_srm_observed') }}
    where subscription_tier is null

),

srm_tests as (

    {{ srm_test('observed', ['experiment_key', 'date']) }}

),

final as (

    select
        assigned_totals.experiment_key,
        assigned_totals.date,
        assigned_totals.assigned_users,
        assigned_totals.multiple_variation_users,
        srm_tests.srm_chi_square,
        {{ srm_p_value('srm_tests.srm_chi_square', 'srm_tests.variation_count') }} as srm_p_value,
        {{ srm_status(
            srm_p_value('srm_tests.srm_chi_square', 'srm_tests.variation_count'),
            'srm_tests.variation_count',
            'srm_tests.smallest_variation_users',
            'srm_tests.max_share_difference',
        ) }} as srm_status

    from assigned_totals
    left join srm_tests
        on assigned_totals.experiment_key = srm_tests.experiment_key
        and assigned_totals.date = srm_tests.date

)

select * from final
