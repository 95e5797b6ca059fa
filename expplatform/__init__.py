"""expplatform: experiment allocation marts from LaunchDarkly and legacy flag exposures.

Dagster software-defined assets load the landing zone into DuckDB, dbt models
turn it into the contract's marts, and checks, sensors and alerts watch it.
"""

__version__ = "0.1.0"
