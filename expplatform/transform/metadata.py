"""Materialization metadata of the dbt assets, read from the warehouse after dbt finished.

dagster-dbt's own fetchers (`fetch_row_counts`, `fetch_column_metadata`)
query the warehouse from this process *while* the dbt subprocess still holds
DuckDB's single write lock, so they cannot work here. Instead the dbt events
are buffered, dbt exits, and these functions add the numbers with one
connection: row counts for every table, and for the daily fact and the marts
the figures the UI plots over partitions (exposures, new users per variation,
sample-ratio p-values) plus small markdown previews and the allocation chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
from dagster import MetadataValue

from expplatform.charts import markdown_image, render_allocation_chart


def _key(*parts: str) -> str:
    return "__".join(p.replace("-", "_") for p in parts)


def row_count(con: duckdb.DuckDBPyConnection, relation: str) -> int | None:
    """Rows of a table (None if it does not exist)."""
    try:
        return int(con.execute(f"select count(*) from {relation}").fetchone()[0])
    except duckdb.Error:
        return None


def daily_fact_metadata(con: duckdb.DuckDBPyConnection, dates: Sequence[date]) -> dict:
    """Figures of the recomputed dates of fct_experiment_exposures_daily (for the UI's plots).

    For a single-day run they describe that day; for a range, the range's totals.
    """
    if not dates:
        return {}
    params = {"dates": list(dates)}
    metadata: dict[str, object] = {}
    exposures, users = con.execute(
        "select coalesce(sum(exposures), 0)::bigint, count(distinct user_id) "
        "from marts.fct_experiment_exposures_daily "
        "where exposure_date in (select unnest($dates::date[]))",
        params,
    ).fetchone()
    metadata["exposures"] = MetadataValue.int(int(exposures))
    metadata["active_users"] = MetadataValue.int(int(users))
    # New users: first daily row of the user in the experiment falls on one of the dates.
    rows = con.execute(
        """
        with firsts as (
            select experiment_key, user_id,
                   arg_min(variation_name, exposure_date) as variation_name,
                   min(exposure_date) as first_date
            from marts.fct_experiment_exposures_daily
            group by experiment_key, user_id
        )
        select experiment_key, coalesce(variation_name, '(none)'), count(*)
        from firsts where first_date in (select unnest($dates::date[]))
        group by all order by all
        """,
        params,
    ).fetchall()
    for experiment, variation, n in rows:
        metadata[_key("new_users", experiment, variation)] = MetadataValue.int(int(n))
    return metadata


def allocation_preview(con: duckdb.DuckDBPyConnection) -> dict:
    """The latest day's allocation by variation × tier of each experiment, as a markdown table."""
    rows = con.execute(
        """
        select experiment_key, date, variation_name, subscription_tier,
               new_users, cumulative_users, active_users
        from marts.mart_experiment_allocation_daily
        where (experiment_key, date) in (
            select experiment_key, max(date) from marts.mart_experiment_allocation_daily group by 1
        )
        order by experiment_key, variation_name, subscription_tier
        """
    ).fetchall()
    if not rows:
        return {}
    table = "\n".join(
        f"| {e} | {d} | {v} | {t} | {n} | {c} | {a} |" for e, d, v, t, n, c, a in rows
    )
    header = (
        "| experiment | date | variation | tier | new | cumulative | active |\n"
        "|---|---|---|---|---:|---:|---:|\n"
    )
    return {"latest_allocation": MetadataValue.md(header + table)}


def health_metadata(con: duckdb.DuckDBPyConnection, *, with_chart: bool = True) -> dict:
    """Latest sample-ratio p-value and status per experiment, and the allocation chart."""
    rows = con.execute(
        """
        select experiment_key, date, assigned_users, srm_p_value, srm_status
        from marts.mart_experiment_health_daily
        where (experiment_key, date) in (
            select experiment_key, max(date) from marts.mart_experiment_health_daily group by 1
        )
        order by experiment_key
        """
    ).fetchall()
    metadata: dict[str, object] = {}
    lines = []
    for experiment, day, assigned, p_value, status in rows:
        if p_value is not None:
            metadata[_key("srm_p_value", experiment)] = MetadataValue.float(float(p_value))
        metadata[_key("assigned_users", experiment)] = MetadataValue.int(int(assigned))
        lines.append(f"| {experiment} | {day} | {assigned} | {p_value} | {status} |")
    if lines:
        metadata["latest_health"] = MetadataValue.md(
            "| experiment | date | assigned | p-value | status |\n|---|---|---:|---:|---|\n"
            + "\n".join(lines)
        )
    if with_chart and rows:
        charts = [
            markdown_image(render_allocation_chart(con, experiment), f"allocation of {experiment}")
            for experiment, *_ in rows
        ]
        metadata["allocation_chart"] = MetadataValue.md("\n\n".join(charts))
    return metadata
