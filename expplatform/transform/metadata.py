"""Materialization metadata of the dbt assets, read from the warehouse after dbt finished.

Every query here costs milliseconds: row counts, the figures of the run's own partitions (a
single-run backfill gives each partition *its own* figures, not the run's totals), the latest
allocation and health per experiment (numbers rounded for people), a link to the experiment's
health page, and the column schema. dbt holds the warehouse while it runs, so the dbt step
collects dbt's results first and reads these afterwards on one connection.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import duckdb
from dagster import MetadataValue, TableColumn, TableSchema

from expplatform import catalog
from expplatform.health.links import page_url


def _key(*parts: str) -> str:
    return "__".join(p.replace("-", "_") for p in parts)


def significant(value: float | None, digits: int = 3) -> str:
    """A number for people: `digits` significant digits (p-values, chi-square)."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}g}"


def row_count(con: duckdb.DuckDBPyConnection, relation: str) -> int | None:
    """Rows of a table (None if it does not exist)."""
    try:
        return int(con.execute(f"select count(*) from {relation}").fetchone()[0])
    except duckdb.Error:
        return None


def column_schema(con: duckdb.DuckDBPyConnection, relation: str) -> TableSchema | None:
    """The built table's columns and types (information_schema)."""
    schema, name = relation.split(".", 1)
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    ).fetchall()
    if not rows:
        return None
    return TableSchema(columns=[TableColumn(c, t.lower()) for c, t in rows])


def rows_by_date(
    con: duckdb.DuckDBPyConnection, relation: str, date_column: str, dates: Sequence[date]
) -> dict[date, int]:
    """Rows of each of `dates` in a date-keyed table (0 for a date without rows)."""
    counts = dict.fromkeys(dates, 0)
    if dates:
        for day, n in con.execute(
            f"select {date_column}, count(*) from {relation} "
            f"where {date_column} in (select unnest($dates::date[])) group by 1",
            {"dates": list(dates)},
        ).fetchall():
            counts[day] = int(n)
    return counts


def daily_fact_metadata(
    con: duckdb.DuckDBPyConnection, dates: Sequence[date]
) -> dict[date, dict[str, object]]:
    """For each date: that day's rows, exposures, active users and new users per variation.

    A partition is an arrival date; its figures are those of the same event date (what arrived
    late for it is counted on its own date, as the fact does).
    """
    per_date: dict[date, dict[str, object]] = {d: {} for d in dates}
    if not dates:
        return per_date
    params = {"dates": list(dates)}
    for day, rows, exposures, users in con.execute(
        f"select exposure_date, count(*), coalesce(sum(exposures), 0)::bigint, "
        f"count(distinct user_id) from {catalog.FCT_EXPOSURES_DAILY} "
        "where exposure_date in (select unnest($dates::date[])) group by 1",
        params,
    ).fetchall():
        per_date[day] |= {
            "dagster/row_count": MetadataValue.int(int(rows)),
            "exposures": MetadataValue.int(int(exposures)),
            "active_users": MetadataValue.int(int(users)),
        }
    for metadata in per_date.values():
        metadata.setdefault("dagster/row_count", MetadataValue.int(0))
        metadata.setdefault("exposures", MetadataValue.int(0))
        metadata.setdefault("active_users", MetadataValue.int(0))
    for day, experiment, variation, n in con.execute(
        f"select assignment_date, experiment_key, coalesce(variation_name, '(none)'), count(*) "
        f"from {catalog.FCT_ASSIGNMENTS} "
        "where assignment_date in (select unnest($dates::date[])) group by all order by all",
        params,
    ).fetchall():
        per_date[day][_key("new_users", experiment, variation)] = MetadataValue.int(int(n))
    return per_date


def allocation_preview(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """The latest day's allocation by variation × tier of each experiment, as a markdown table."""
    rows = con.execute(
        f"""
        select experiment_key, date, variation_name, subscription_tier,
               new_users, cumulative_users, active_users
        from {catalog.MART_ALLOCATION}
        where (experiment_key, date) in (
            select experiment_key, max(date) from {catalog.MART_ALLOCATION} group by 1
        )
        order by experiment_key, variation_name, subscription_tier
        """
    ).fetchall()
    if not rows:
        return {}
    table = "\n".join(
        f"| {e} | {d} | {v} | {t} | {n:,} | {c:,} | {a:,} |" for e, d, v, t, n, c, a in rows
    )
    header = (
        "| experiment | date | variation | tier | new | cumulative | active |\n"
        "|---|---|---|---|---:|---:|---:|\n"
    )
    return {"latest_allocation": MetadataValue.md(header + table)}


def health_metadata(con: duckdb.DuckDBPyConnection, pages_url: str) -> dict[str, object]:
    """Latest sample-ratio status per experiment (p-values to 3 significant digits) and links.

    The allocation chart itself is on the experiment's health page (the URL), which the UI shows
    as a link: Dagster's UI does not render images inside metadata without an extra click.
    """
    rows = con.execute(
        f"""
        select experiment_key, date, assigned_users, srm_chi_square, srm_p_value, srm_status
        from {catalog.MART_HEALTH}
        where (experiment_key, date) in (
            select experiment_key, max(date) from {catalog.MART_HEALTH} group by 1
        )
        order by experiment_key
        """
    ).fetchall()
    metadata: dict[str, object] = {}
    lines = []
    for experiment, day, assigned, chi_square, p_value, status in rows:
        page = page_url(pages_url, experiment)
        if p_value is not None:
            metadata[_key("srm_p_value", experiment)] = MetadataValue.float(
                float(significant(p_value))
            )
        metadata[_key("assigned_users", experiment)] = MetadataValue.int(int(assigned))
        metadata[_key("health_page", experiment)] = MetadataValue.url(page)
        lines.append(
            f"| [{experiment}]({page}) | {day} | {assigned:,} | {significant(chi_square)} | "
            f"{significant(p_value)} | {status} |"
        )
    if lines:
        metadata["latest_health"] = MetadataValue.md(
            "| experiment | date | assigned | χ² | p-value | status |\n"
            "|---|---|---:|---:|---:|---|\n" + "\n".join(lines)
        )
    return metadata


def per_partition_row_counts(
    con: duckdb.DuckDBPyConnection, relation: str, date_column: str, dates: Sequence[date]
) -> dict[date, dict[str, object]]:
    """`dagster/row_count` of each date's rows of a date-keyed model."""
    out: dict[date, dict[str, object]] = defaultdict(dict)
    for day, n in rows_by_date(con, relation, date_column, dates).items():
        out[day]["dagster/row_count"] = MetadataValue.int(n)
    return dict(out)
