-- The queries the allocation dashboard needs, on the marts (section D of `expplatform bench`).
-- Each starts with `-- name: <id>`; the benchmark times each against the seed's ad-hoc query
-- (adhoc_dashboard.sql) over the raw tables.

-- name: allocation_by_variation_tier
-- Allocation over time for one experiment, by assigned variation and tier at assignment
-- (what `expplatform report --by tier` shows).
select
    date,
    variation_name,
    subscription_tier,
    new_users,
    cumulative_users,
    active_users,
    exposures
from marts.mart_experiment_allocation_daily
where experiment_key = 'vault-launch'
order by date, variation_name, subscription_tier;

-- name: daily_true_false_counts
-- The seed dashboard's per-day true/false user counts, answered correctly: users active that
-- day by assigned variation (treatment = true), deduplicated, test accounts excluded.
select
    date,
    sum(active_users) filter (where is_treatment) as num_user_true,
    sum(active_users) filter (where not is_treatment) as num_user_false
from marts.mart_experiment_allocation_daily
where experiment_key = 'vault-launch'
group by date
order by date;

-- name: experiment_health
-- The sample-ratio test over time, shown beside the allocation.
select
    date,
    assigned_users,
    multiple_variation_users,
    srm_chi_square,
    srm_p_value,
    srm_status
from marts.mart_experiment_health_daily
where experiment_key = 'vault-launch'
order by date;
