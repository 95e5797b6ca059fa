{{ config(tags=['marts']) }}

-- The sample-ratio test of mart_experiment_health_daily, once per subscription tier at assignment:
-- each tier's cumulative users per registered variation against the same registry weights. A
-- split can be fine overall and broken inside a tier (e.g. a targeting rule that only misfires
-- for premium users). Testing every tier multiplies the chances of a false alarm, so each p-value
-- is Bonferroni-corrected over the tiers present that date (tiers with at least one user assigned
-- by then) and srm_status applies the contract's rules to the corrected p-value.
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

-- a tier has a row from its first assignment date on: once present, it stays present, until
-- the experiment's last exposure date like the other marts (macros/experiment_spans.sql)
tier_dates as (

    {{ assignment_group_dates('assignments', ['subscription_tier']) }}

),

new_assignments as (

    select
        experiment_key,
        subscription_tier,
        assignment_date,
        count(*) as new_users

    from assignments
    group by experiment_key, subscription_tier, assignment_date

),

assigned_totals as (

    select
        tier_dates.experiment_key,
        tier_dates.date,
        tier_dates.subscription_tier,
        cast(sum(coalesce(new_assignments.new_users, 0)) over (
            partition by tier_dates.experiment_key, tier_dates.subscription_tier
            order by tier_dates.date
            rows between unbounded preceding and current row
        ) as bigint) as assigned_users,
        count(*) over (partition by tier_dates.experiment_key, tier_dates.date) as tiers_present

    from tier_dates
    left join new_assignments
        on tier_dates.experiment_key = new_assignments.experiment_key
        and tier_dates.subscription_tier = new_assignments.subscription_tier
        and tier_dates.date = new_assignments.assignment_date

),

-- the sample-ratio test in each tier (macros/sample_ratio.sql)
observed as (

    select
        experiment_key,
        date,
        subscription_tier,
        variation_name,
        expected_share,
        observed_users,
        tested_users

    from {{ ref('int_experiment_srm_observed') }}
    where subscription_tier is not null

),

srm_tests as (

    select
        *,
        {{ srm_p_value('srm_chi_square', 'variation_count') }} as srm_p_value

    from (
        {{ srm_test('observed', ['experiment_key', 'date', 'subscription_tier']) }}
    ) as tests

),

corrected as (

    select
        assigned_totals.experiment_key,
        assigned_totals.date,
        assigned_totals.subscription_tier,
        assigned_totals.assigned_users,
        cast(coalesce(srm_tests.tested_users, 0) as bigint) as test_users,
        srm_tests.variation_count,
        srm_tests.smallest_variation_users,
        srm_tests.max_share_difference,
        srm_tests.srm_chi_square,
        srm_tests.srm_p_value,
        -- least() skips nulls: without a p-value there is no corrected one either
        case
            when srm_tests.srm_p_value is not null
                then least(1.0, srm_tests.srm_p_value * assigned_totals.tiers_present)
        end as srm_p_value_bonferroni

    from assigned_totals
    left join srm_tests
        on assigned_totals.experiment_key = srm_tests.experiment_key
        and assigned_totals.date = srm_tests.date
        and assigned_totals.subscription_tier = srm_tests.subscription_tier

),

final as (

    select
        experiment_key,
        date,
        subscription_tier,
        assigned_users,
        test_users,
        srm_chi_square,
        srm_p_value,
        cast(srm_p_value_bonferroni as double) as srm_p_value_bonferroni,
        -- the same rules as the overall mart, on the corrected p-value
        {{ srm_status(
            'srm_p_value_bonferroni',
            'variation_count',
            'smallest_variation_users',
            'max_share_difference',
        ) }} as srm_status

    from corrected

)

select * from final
