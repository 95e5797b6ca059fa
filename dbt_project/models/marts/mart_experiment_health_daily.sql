{{ config(tags=['marts']) }}

-- Daily sample-ratio-mismatch (SRM) check per experiment, on cumulative assignments: Pearson's
-- chi-square of the users per registered variation against the registry's weights normalised
-- to sum 1 (contract section 5). Users seen in several variations are left out of the test;
-- users assigned to an unregistered variation are not in any registered variation, so not in
-- the test either. p-value: chi2_sf(), a Python UDF (expplatform/transform/duckdb_udfs.py).
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

variations as (

    select
        experiment_key,
        variation_name,
        expected_weight

    from {{ ref('dim_experiment_variations') }}

),

-- the same span as mart_experiment_allocation_daily
experiment_dates as (

    select
        experiment_key,
        {{ each_day_between('min(assignment_date)', 'max(last_exposure_date)') }} as date

    from assignments
    group by experiment_key

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

expected_shares as (

    select
        experiment_key,
        variation_name,
        expected_weight / sum(expected_weight) over (partition by experiment_key) as expected_share

    from variations

),

new_tested_users as (

    select
        experiment_key,
        assignment_date,
        variation_name,
        count(*) as new_users

    from assignments
    where not has_multiple_variations
    group by experiment_key, assignment_date, variation_name

),

-- every registered variation on every date, 0 users when it has none yet
observed as (

    select
        experiment_dates.experiment_key,
        experiment_dates.date,
        expected_shares.variation_name,
        expected_shares.expected_share,
        sum(coalesce(new_tested_users.new_users, 0)) over (
            partition by experiment_dates.experiment_key, expected_shares.variation_name
            order by experiment_dates.date
            rows between unbounded preceding and current row
        ) as observed_users

    from experiment_dates
    inner join expected_shares
        on experiment_dates.experiment_key = expected_shares.experiment_key
    left join new_tested_users
        on experiment_dates.experiment_key = new_tested_users.experiment_key
        and experiment_dates.date = new_tested_users.assignment_date
        and expected_shares.variation_name = new_tested_users.variation_name

),

observed_with_totals as (

    select
        experiment_key,
        date,
        variation_name,
        expected_share,
        observed_users,
        sum(observed_users) over (partition by experiment_key, date) as tested_users

    from observed

),

srm as (

    select
        experiment_key,
        date,
        count(*) as variation_count,
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
    group by experiment_key, date

),

srm_tests as (

    select
        experiment_key,
        date,
        variation_count,
        smallest_variation_users,
        max_share_difference,
        cast(chi_square as double) as srm_chi_square,
        chi2_sf(chi_square, variation_count - 1) as srm_p_value

    from srm

),

final as (

    select
        assigned_totals.experiment_key,
        assigned_totals.date,
        assigned_totals.assigned_users,
        assigned_totals.multiple_variation_users,
        srm_tests.srm_chi_square,
        srm_tests.srm_p_value,
        case
            when srm_tests.variation_count is null
                or srm_tests.variation_count < 2
                or srm_tests.smallest_variation_users < 8
                then 'not_enough_traffic'
            -- 0.1 percentage points; the epsilon keeps an exact 0.001 difference from being
            -- lost to floating-point rounding
            when srm_tests.srm_p_value < 0.001
                and srm_tests.max_share_difference >= 0.001 - 1e-12
                then 'unhealthy'
            when srm_tests.srm_p_value < 0.01 then 'warning'
            else 'healthy'
        end as srm_status

    from assigned_totals
    left join srm_tests
        on assigned_totals.experiment_key = srm_tests.experiment_key
        and assigned_totals.date = srm_tests.date

)

select * from final
