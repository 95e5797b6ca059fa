"""expplatform: experiment allocation marts from LaunchDarkly and legacy flag exposures.

Dagster software-defined assets load the landing zone into DuckDB, dbt models
turn it into the contract's marts, and checks, sensors and alerts watch it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("expplatform")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
