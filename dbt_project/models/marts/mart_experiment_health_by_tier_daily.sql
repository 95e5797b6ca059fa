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

variations as (

    select
        experiment_key,
        variation_name,
        expected_weight

    from {{ ref('dim_experiment_variations') }}

),

-- the experiments' span ends on the same date as in the other marts
experiment_spans as (

    select
        experiment_key,
        max(last_exposure_date) as last_date

    from assignments
    group by experiment_key

),

tier_spans as (

    select
        experiment_key,
        subscription_tier,
        min(assignment_date) as first_date

    from assignments
    group by experiment_key, subscription_tier

),

-- a tier has a row from its first assignment date on: once present, it stays present
tier_dates as (

    select
        tier_spans.experiment_key,
        tier_spans.subscription_tier,
        {{ each_day_between('tier_spans.first_date', 'experiment_spans.last_date') }} as date

    from tier_spans
    inner join experiment_spans
        on tier_spans.experiment_key = experiment_spans.experiment_key

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

expected_shares as (

    select
        experiment_key,
        variation_name,
        expected_weight / sum(expected_weight) over (partition by experiment_key) as expected_share

    from variations

),

-- users in several variations are left out of the test, as in the overall mart
new_tested_users as (

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

-- every registered variation in every tier on every date, 0 users when it has none yet
observed as (

    select
        tier_dates.experiment_key,
        tier_dates.date,
        tier_dates.subscription_tier,
        expected_shares.variation_name,
        expected_shares.expected_share,
        sum(coalesce(new_tested_users.new_users, 0)) over (
            partition by
                tier_dates.experiment_key,
                tier_dates.subscription_tier,
                expected_shares.variation_name
            order by tier_dates.date
            rows between unbounded preceding and current row
        ) as observed_users

    from tier_dates
    inner join expected_shares
        on tier_dates.experiment_key = expected_shares.experiment_key
    left join new_tested_users
        on tier_dates.experiment_key = new_tested_users.experiment_key
        and tier_dates.subscription_tier = new_tested_users.subscription_tier
        and tier_dates.date = new_tested_users.assignment_date
        and expected_shares.variation_name = new_tested_users.variation_name

),

observed_with_totals as (

    select
        experiment_key,
        date,
        subscription_tier,
        variation_name,
        expected_share,
        observed_users,
        sum(observed_users) over (partition by experiment_key, date, subscription_tier)
            as tested_users

    from observed

),

srm as (

    select
        experiment_key,
        date,
        subscription_tier,
        count(*) as variation_count,
        max(tested_users) as tested_users,
        min(observed_users) as smallest_variation_users,
        case
            when max(tested_users) > 0
                then sum(
                    power(observed_users - tested_users * expected_share, 2)
                    / (tested_users * expected_share)
                )
        end as chi_square,
        case
            when max(tested_users) > 0
                then max(abs(observed_users / tested_users - expected_share))
        end as max_share_difference

    from observed_with_totals
    group by experiment_key, date, subscription_tier

),

srm_tests as (

    select
        srm.experiment_key,
        srm.date,
        srm.subscription_tier,
        srm.variation_count,
        srm.tested_users,
        srm.smallest_variation_users,
        srm.max_share_difference,
        cast(srm.chi_square as double) as srm_chi_square,
        chi2_sf(srm.chi_square, srm.variation_count - 1) as srm_p_value

    from srm

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
        case
            when variation_count is null
                or variation_count < 2
                or smallest_variation_users < 8
                then 'not_enough_traffic'
            -- the same thresholds and epsilon as mart_experiment_health_daily, on the corrected p
            when srm_p_value_bonferroni < 0.001
                and max_share_difference >= 0.001 - 1e-12
                then 'unhealthy'
            when srm_p_value_bonferroni < 0.01 then 'warning'
            else 'healthy'
        end as srm_status

    from corrected

)

select * from final
