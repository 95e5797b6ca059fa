"""The benchmark's SQL: the bare script, the dashboard queries, and the equivalence check.

The SQL itself lives in the project's ``bench/`` folder so that a human can
read and run it: ``bare_pipeline.sql`` (section C), ``dashboard_queries.sql``
(the dashboard on the marts) and ``adhoc_dashboard.sql`` (the seed's ad-hoc
query, made runnable) for section D.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from expplatform.catalog import CONTRACT_TABLES, name_of
from expplatform.config import DBT_PROJECT_DIR, PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "bench"
BARE_SQL = BENCH_DIR / "bare_pipeline.sql"
DASHBOARD_SQL = BENCH_DIR / "dashboard_queries.sql"
ADHOC_SQL = BENCH_DIR / "adhoc_dashboard.sql"
SEEDS_DIR = DBT_PROJECT_DIR / "seeds"

#: The contract's section-5 tables, compared between the pipeline (schema marts) and the bare
#: script (schema bare).
COMPARED_TABLES = tuple(name_of(table) for table in CONTRACT_TABLES)

_NAME_RE = re.compile(r"create\s+(?:or\s+replace\s+)?(?:temp\s+)?(?:table|macro|schema)\s+"
                      r"(?:if\s+not\s+exists\s+)?([\w.]+)", re.IGNORECASE)  # fmt: skip
_QUERY_NAME_RE = re.compile(r"^--\s*name:\s*(\S+)", re.MULTILINE)


def _sql_literal_path(path: Path) -> str:
    return str(path).replace("'", "''")


@dataclass(frozen=True)
class DevSample:
    """The dev dbt target's sample (dbt_project/macros/dev_sample.sql), for the bare script."""

    user_pct: float = 100.0
    recent_days: int | None = None
    as_of: date | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DevSample | None:
        """The sample the dbt `dev` target applies under `env`; None on any other target."""
        from expplatform.config import get_settings  # the one parser of the dev settings

        settings = get_settings(env)
        if settings.dbt_target != "dev":
            return None
        return cls(
            user_pct=settings.dev_sample_pct,
            recent_days=settings.dev_days,
            as_of=settings.dev_as_of,
        )

    def user_condition(self) -> str:
        """The macro's user filter on `u`: the same hash and threshold as the dbt macro."""
        return f"(hash(u) % 10000) < {int(self.user_pct * 100)}"

    def days_condition(self) -> str:
        """The macro's recent-days filter on `d`."""
        if self.recent_days is None:
            return "true"
        as_of = f"date '{self.as_of.isoformat()}'" if self.as_of else "current_date"
        return f"d > {as_of} - interval {int(self.recent_days)} day"


def render_bare_script(
    landing: Path, seeds: Path = SEEDS_DIR, sample: DevSample | None = None
) -> str:
    """bench/bare_pipeline.sql with its placeholders replaced."""
    text = BARE_SQL.read_text(encoding="utf-8")
    return (
        text.replace("${LANDING}", _sql_literal_path(landing))
        .replace("${SEEDS}", _sql_literal_path(seeds))
        .replace("${USER_SAMPLE}", sample.user_condition() if sample else "true")
        .replace("${RECENT_DAYS}", sample.days_condition() if sample else "true")
    )


def _strip_comments(statement: str) -> str:
    return "\n".join(
        line for line in statement.splitlines() if not line.strip().startswith("--")
    ).strip()


def bare_statements(
    landing: Path, seeds: Path = SEEDS_DIR, sample: DevSample | None = None
) -> Iterator[tuple[str, str]]:
    """(label, statement) for every statement of the bare script, in order.

    Statements end with `;` at the end of a line (the script has no other).
    """
    for chunk in re.split(r";\s*\n", render_bare_script(landing, seeds, sample)):
        body = _strip_comments(chunk)
        if not body:
            continue
        match = _NAME_RE.search(body)
        label = match.group(1) if match else body.split()[0].lower()
        yield label, body


def dashboard_queries() -> dict[str, str]:
    """The named queries of bench/dashboard_queries.sql (`-- name: x` starts query x)."""
    text = DASHBOARD_SQL.read_text(encoding="utf-8")
    names = list(_QUERY_NAME_RE.finditer(text))
    queries = {}
    for i, match in enumerate(names):
        end = names[i + 1].start() if i + 1 < len(names) else len(text)
        queries[match.group(1)] = _strip_comments(text[match.end() : end]).rstrip(";")
    return queries


def adhoc_query() -> str:
    """The seed's ad-hoc dashboard query, made runnable (reads the raw schema)."""
    return ADHOC_SQL.read_text(encoding="utf-8").strip().rstrip(";")


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> dict:
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position",
        [catalog, schema, table],
    ).fetchall()
    return dict(rows)


def compare_outputs(
    pipeline_db: Path, bare_db: Path, *, memory_limit: str = "3GB", threads: int = 2
) -> dict[str, object]:
    """Row-by-row comparison of the contract tables: pipeline marts vs the bare script.

    Columns present in both are compared (the contract's columns at least);
    doubles are rounded to 9 decimals (summation order differs). Returns per
    table the row counts and the rows found on one side only, and `equal`.
    """
    con = duckdb.connect()
    try:
        con.execute(f"set memory_limit = '{memory_limit}'")
        con.execute(f"set threads = {int(threads)}")
        con.execute(f"attach '{_sql_literal_path(pipeline_db)}' as pipeline (read_only)")
        con.execute(f"attach '{_sql_literal_path(bare_db)}' as bare_db (read_only)")
        tables: dict[str, dict[str, object]] = {}
        for table in COMPARED_TABLES:
            left = _columns(con, "pipeline", "marts", table)
            right = _columns(con, "bare_db", "bare", table)
            common = [c for c in left if c in right]
            if not common:
                tables[table] = {"error": "table missing on one side"}
                continue
            cols = ", ".join(
                f'round("{c}", 9) as "{c}"' if left[c] == "DOUBLE" else f'"{c}"' for c in common
            )
            a = f"select {cols} from pipeline.marts.{table}"
            b = f"select {cols} from bare_db.bare.{table}"
            tables[table] = {
                "columns": len(common),
                "pipeline_rows": con.execute(f"select count(*) from ({a})").fetchone()[0],
                "bare_rows": con.execute(f"select count(*) from ({b})").fetchone()[0],
                "only_pipeline": con.execute(
                    f"select count(*) from ({a} except all {b})"
                ).fetchone()[0],
                "only_bare": con.execute(f"select count(*) from ({b} except all {a})").fetchone()[
                    0
                ],
            }
    finally:
        con.close()
    equal = all(
        "error" not in t and t["only_pipeline"] == 0 and t["only_bare"] == 0
        for t in tables.values()
    )
    return {"equal": equal, "tables": tables}
