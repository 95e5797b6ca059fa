{{ config(tags=['marts']) }}

-- Intent-to-treat allocation (contract rule 8): users by assigned variation and tier at
-- assignment. Each (variation, tier) group has a row for every date from its first assignment
-- date to the experiment's last exposure date: cumulative_users > 0 on all of them, and no
-- other row can have a non-zero count (a user is only active from the assignment date on).
with

assignments as (

    select
        experiment_key,
        assignment_date,
        variation_name,
        subscription_tier,
        last_exposure_date

    from {{ ref('fct_experiment_assignments') }}

),

activity as (

    select
        experiment_key,
        activity_date,
        variation_name,
        subscription_tier,
        active_users,
        exposures

    from {{ ref('int_experiment_activity_daily') }}

),

variations as (

    select
        experiment_key,
        variation_name,
        is_treatment

    from {{ ref('dim_experiment_variations') }}

),

new_users as (

    select
        experiment_key,
        assignment_date,
        variation_name,
        subscription_tier,
        count(*) as new_users

    from assignments
    group by experiment_key, assignment_date, variation_name, subscription_tier

),

-- each (variation, tier) group from its first assignment date on (macros/experiment_spans.sql)
group_dates as (

    {{ assignment_group_dates('assignments', ['variation_name', 'subscription_tier']) }}

),

daily as (

    select
        group_dates.experiment_key,
        group_dates.date,
        group_dates.variation_name,
        group_dates.subscription_tier,
        coalesce(new_users.new_users, 0) as new_users,
        coalesce(activity.active_users, 0) as active_users,
        coalesce(activity.exposures, 0) as exposures

    from group_dates
    left join new_users
        on group_dates.experiment_key = new_users.experiment_key
        and group_dates.date = new_users.assignment_date
        and group_dates.variation_name is not distinct from new_users.variation_name
        and group_dates.subscription_tier = new_users.subscription_tier
    left join activity
        on group_dates.experiment_key = activity.experiment_key
        and group_dates.date = activity.activity_date
        and group_dates.variation_name is not distinct from activity.variation_name
        and group_dates.subscription_tier = activity.subscription_tier

),

final as (

    select
        daily.experiment_key,
        daily.date,
        daily.variation_name,
        variations.is_treatment,
        daily.subscription_tier,
        daily.new_users,
        cast(sum(daily.new_users) over (
            partition by daily.experiment_key, daily.variation_name, daily.subscription_tier
            order by daily.date
            rows between unbounded preceding and current row
        ) as bigint) as cumulative_users,
        daily.active_users,
        daily.exposures

    from daily
    left join variations
        on daily.experiment_key = variations.experiment_key
        and daily.variation_name = variations.variation_name

)

select * from final
