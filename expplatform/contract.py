"""The output tables the data contract names (DATA_CONTRACT.md section 5), in schema `marts`.

One list for every part that compares or snapshots them (the benchmark's floor check, the
Spark comparison), each table with the columns that identify one of its rows.
"""

from __future__ import annotations

CONTRACT_TABLES: dict[str, tuple[str, ...]] = {
    "dim_experiments": ("experiment_key",),
    "dim_experiment_variations": ("experiment_key", "variation_name"),
    "dim_users": ("user_id",),
    "dim_subscription_history": ("subscription_change_id",),
    "fct_experiment_exposures_daily": ("experiment_key", "user_id", "exposure_date"),
    "fct_experiment_assignments": ("experiment_key", "user_id"),
    "mart_experiment_allocation_daily": (
        "experiment_key",
        "date",
        "variation_name",
        "subscription_tier",
    ),
    "mart_experiment_health_daily": ("experiment_key", "date"),
}
