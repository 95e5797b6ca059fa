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

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

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


def _relation_name(props: Mapping[str, Any]) -> str:
    identifier = props["identifier"] if props["unique_id"].startswith("source") else props["alias"]
    return f'"{props["database"]}"."{props["schema"]}"."{identifier}"'


def _columns(con: duckdb.DuckDBPyConnection, props: Mapping[str, Any]) -> dict[str, dict]:
    identifier = props["identifier"] if props["unique_id"].startswith("source") else props["alias"]
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [props["schema"], identifier],
    ).fetchall()
    return {name: {"data_type": data_type} for name, data_type in rows}


def column_lineage(
    con: duckdb.DuckDBPyConnection,
    unique_id: str,
    manifest: Mapping[str, Any],
    translator: Any,
    target_path: Path,
    project: Any,
) -> dict[str, Any]:
    """Column schema and column-level lineage of a built model (sqlglot, via dagster-dbt).

    dagster-dbt builds lineage from the compiled SQL and the columns of the
    model and its parents, which it normally reads through the dbt adapter
    while dbt is still running. Here the columns come from our own connection
    after dbt exited, and dagster-dbt's builder does the rest. Any failure only
    drops the lineage (it is documentation, never worth failing a run for).
    """
    from dagster_dbt.core.dbt_cli_event import (  # not re-exported; see docstring
        EventHistoryMetadata,
        _build_column_lineage_metadata,
    )

    props = manifest["nodes"].get(unique_id)
    if props is None or props["resource_type"] not in ("model", "snapshot"):
        return {}
    try:
        parents = {}
        for parent_id in manifest["parent_map"].get(unique_id, []):
            parent = manifest["nodes"].get(parent_id) or manifest["sources"].get(parent_id)
            if parent is not None and parent["resource_type"] in ("model", "seed", "source"):
                parents[_relation_name(parent)] = _columns(con, parent)
        return _build_column_lineage_metadata(
            event_history_metadata=EventHistoryMetadata(
                columns=_columns(con, props), parents=parents
            ),
            dbt_resource_props=props,
            manifest=manifest,
            dagster_dbt_translator=translator,
            target_path=target_path,
            project=project,
        )
    except Exception:  # noqa: BLE001 - lineage is best effort, see docstring
        return {}
