"""DuckDB scalar functions the dbt models call, registered as a dbt-duckdb plugin.

The sample-ratio test in ``mart_experiment_health_daily`` needs the chi-square
survival function, which DuckDB lacks. dbt-duckdb loads this module from the
``plugins`` list of ``dbt_project/profiles.yml`` and calls
:meth:`Plugin.configure_connection` on its connection; Python code that queries
the warehouse on its own connections calls :func:`register_udfs`.
"""

from __future__ import annotations

import math

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb.sqltypes import BIGINT, DOUBLE

# scipy.special, not scipy.stats: chi2.sf(x, df) is scipy.stats' wrapper of chdtrc(df, x), and
# importing scipy.stats costs ~1.2 s more, paid by every process whose dbt opens the warehouse.
from scipy.special import chdtrc

CHI2_SF_NAME = "chi2_sf"


def chi2_sf(chi_square: float | None, degrees_of_freedom: int | None) -> float | None:
    """P(X >= chi_square) for X ~ chi-square(degrees_of_freedom); None for missing or invalid input."""
    if chi_square is None or degrees_of_freedom is None:
        return None
    if degrees_of_freedom < 1 or math.isnan(chi_square) or chi_square < 0:
        return None
    return float(chdtrc(degrees_of_freedom, chi_square))


def register_udfs(con: duckdb.DuckDBPyConnection) -> None:
    """Register the project's functions on ``con``; calling it twice is harmless."""
    try:
        con.remove_function(CHI2_SF_NAME)
    except duckdb.InvalidInputException:
        pass  # not registered yet on this connection
    con.create_function(
        CHI2_SF_NAME,
        chi2_sf,
        [DOUBLE, BIGINT],
        DOUBLE,
        null_handling="special",
        side_effects=False,
    )


class Plugin(BasePlugin):
    """dbt-duckdb plugin: ``plugins: [{module: expplatform.transform.duckdb_udfs}]``."""

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        register_udfs(conn)
