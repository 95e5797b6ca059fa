"""Whole-warehouse snapshots: every row of every table, to compare a warehouse with a clean build.

Used by the soak (expplatform/soak.py) and the reliability tests. Load timestamps are left out
(they differ between two loads of the same file); everything else must be equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from expplatform.sources import DEFAULT_REGISTRY, SourceRegistry

#: Schemas holding tables (staging is views over raw); `ops` holds per-run bookkeeping.
COMPARED_SCHEMAS = ("raw", "intermediate", "marts")
#: Load timestamps differ between two loads of the same file; everything else must not.
VOLATILE_COLUMNS = ("_loaded_at",)
#: What the marts still have to merge: empty after every successful run.
QUEUES = (
    "ops.pending_users",
    "ops.pending_dates",
    "ops.assignments_before",
    "ops.dim_changed_users",
)


def table_names(
    con: duckdb.DuckDBPyConnection, schemas: Sequence[str] = COMPARED_SCHEMAS
) -> list[str]:
    """The base tables of `schemas`, qualified, in order."""
    return [
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_schema in (select unnest($s::varchar[])) "
            "order by 1, 2",
            {"s": list(schemas)},
        ).fetchall()
    ]


def read_table(con: duckdb.DuckDBPyConnection, qualified: str) -> list[tuple]:
    """Every row of one table, volatile columns left out, sorted."""
    schema, name = qualified.split(".")
    columns = [
        c
        for (c,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        ).fetchall()
        if c not in VOLATILE_COLUMNS
    ]
    select = ", ".join(f'"{c}"' for c in columns)
    return con.execute(f'select {select} from "{schema}"."{name}" order by all').fetchall()


def warehouse_snapshot(
    db_path: Path, schemas: Sequence[str] = COMPARED_SCHEMAS
) -> dict[str, list[tuple]]:
    """Every row of every table of `schemas` (load timestamps left out), in a stable order."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {t: read_table(con, t) for t in table_names(con, schemas)}
    finally:
        con.close()


def differences(actual: dict[str, list], expected: dict[str, list]) -> list[str]:
    """Readable differences between two snapshots (empty when equal)."""
    out = []
    for table in sorted(set(actual) | set(expected)):
        a, e = actual.get(table), expected.get(table)
        if a == e:
            continue
        if a is None or e is None:
            out.append(f"{table}: {'missing' if a is None else 'unexpected'}")
            continue
        extra = [r for r in a if r not in e][:3]
        missing = [r for r in e if r not in a][:3]
        out.append(f"{table}: {len(a)} rows vs {len(e)}; extra {extra}; missing {missing}")
    return out


def queue_sizes(db_path: Path) -> dict[str, int]:
    """Rows left in each bookkeeping queue (all 0 after a successful run)."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {q: con.execute(f"select count(*) from {q}").fetchone()[0] for q in QUEUES}
    finally:
        con.close()


def duplicated_raw_lines(db_path: Path, registry: SourceRegistry = DEFAULT_REGISTRY) -> list[tuple]:
    """(table, file, line) loaded more than once: a load must never duplicate a line."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        rows = []
        for table in (source.raw_table for source in registry):
            rows += con.execute(
                f"select '{table}', _source_file, _line_number from {table} "
                "group by all having count(*) > 1"
            ).fetchall()
        rows += con.execute(
            "select 'raw.rejected_records', _source_file, line_number from raw.rejected_records "
            "group by all having count(*) > 1"
        ).fetchall()
        return rows
    finally:
        con.close()
