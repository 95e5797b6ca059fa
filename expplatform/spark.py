"""The dbt models on Apache Spark: a local session, raw tables from a DuckDB warehouse, a build.

The models are written once (dbt_project/macros/cross_engine.sql holds the few dialect
differences); this module runs them on the ``spark`` target of the dbt profile, with
dbt-spark's ``session`` method in this process, and compares the result with the DuckDB build
(docs/DEPLOYMENT.md). It proves portability on one machine; a cluster changes only the
profile's output (Thrift server or Databricks), not the models.

Flow: :func:`spark_session` (local Spark, Hive metastore in a work folder, the ``chi2_sf``
UDF) -> :func:`copy_warehouse_tables` (the validated ``raw`` and the ``ops`` bookkeeping
tables of a DuckDB warehouse, through Parquet files) -> :func:`run_dbt` (dbt in-process on
the same session) -> :func:`compare_tables` (every contract table, row for row).

pyspark and dbt-spark are the optional ``spark`` extra: ``pip install -e ".[spark]"``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from expplatform import catalog
from expplatform.catalog import CONTRACT_TABLES, MART_HEALTH_BY_TIER, name_of
from expplatform.config import DBT_PROJECT_DIR
from expplatform.serving import Published, publish
from expplatform.sources import DEFAULT_REGISTRY, SourceRegistry
from expplatform.transform.duckdb_udfs import CHI2_SF_NAME, chi2_sf

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The contract's output tables and the per-tier health mart, with the columns identifying a row.
COMPARED_TABLES: dict[str, tuple[str, ...]] = {
    **{name_of(table): key for table, key in CONTRACT_TABLES.items()},
    name_of(MART_HEALTH_BY_TIER): ("experiment_key", "date", "subscription_tier"),
}

#: The DuckDB schemas copied to Spark: the loaded events and the bookkeeping the ops write
#: (dbt tests scoped to the recompute window read ops.recompute_dates).
COPIED_SCHEMAS = ("raw", "ops")

#: Relative tolerance for floating-point columns (p-values, chi-square): the engines sum in
#: different orders.
FLOAT_TOLERANCE = 1e-9


class SparkUnavailable(RuntimeError):
    """pyspark/dbt-spark are not installed or no Java runtime was found."""


def _require_spark() -> None:
    try:
        import pyspark  # noqa: F401
        from dbt.adapters import spark  # noqa: F401
    except ImportError as exc:
        raise SparkUnavailable(
            f"the Spark target needs the spark extra: pip install -e '.[spark]' ({exc})"
        ) from None


def spark_session(work_dir: Path, *, cores: int = 2) -> SparkSession:
    """A local Spark session with its metastore and warehouse under ``work_dir``.

    Configured for small local builds (two shuffle partitions, no UI), in UTC like the
    DuckDB warehouse, with Parquet timestamps read as instants (DuckDB writes its naive UTC
    timestamps without a zone), and with ``chi2_sf`` registered as a Python UDF run by this
    interpreter (which has scipy). dbt-spark's session method reuses this session.
    """
    _require_spark()
    from pyspark.sql import SparkSession
    from pyspark.sql.types import DoubleType

    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    # Python UDFs run in worker processes: they must be this interpreter, not `python3` on PATH.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    metastore = work_dir / "metastore_db"
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("expplatform")
        .config("spark.sql.warehouse.dir", str(work_dir / "spark-warehouse"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={metastore};create=true",
        )
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={work_dir}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(max(2, cores)))
        .config("spark.sql.parquet.inferTimestampNTZ.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .enableHiveSupport()
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.udf.register(CHI2_SF_NAME, _spark_chi2_sf, DoubleType())
    return spark


def _spark_chi2_sf(chi_square: float | None, degrees_of_freedom: int | None) -> float | None:
    # Spark hands integers of a bigint expression as Python ints and doubles as floats.
    if chi_square is None or degrees_of_freedom is None:
        return None
    return chi2_sf(float(chi_square), int(degrees_of_freedom))


def copy_warehouse_tables(
    spark: SparkSession,
    duckdb_path: Path,
    export_dir: Path,
    *,
    schemas: Sequence[str] = COPIED_SCHEMAS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Copy every table of ``schemas`` from a DuckDB warehouse into Spark tables of the same name.

    Each table goes through a Parquet file under ``export_dir`` (DuckDB writes it, Spark reads
    it into a managed table, replacing one of the same name). Returns the row count per
    ``schema.table``.
    """
    if not duckdb_path.is_file():
        raise FileNotFoundError(f"{duckdb_path}: no DuckDB warehouse there")
    export_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_schema in (select unnest($s::varchar[])) "
            "order by all",
            {"s": list(schemas)},
        ).fetchall()
        for schema, table in tables:
            path = export_dir / f"{schema}.{table}.parquet"
            con.execute(f"copy {schema}.\"{table}\" to '{path}' (format parquet)")
            spark.sql(f"create database if not exists {schema}")
            frame = spark.read.parquet(str(path))
            frame.write.mode("overwrite").format("parquet").saveAsTable(f"{schema}.{table}")
            counts[f"{schema}.{table}"] = spark.table(f"{schema}.{table}").count()
            if progress:
                progress(f"copied {schema}.{table}: {counts[f'{schema}.{table}']} rows")
    finally:
        con.close()
    return counts


@dataclass
class DbtOutcome:
    """What a dbt invocation on Spark did: success, and each node's status."""

    success: bool
    statuses: dict[str, str]
    error: str | None = None

    def failures(self) -> dict[str, str]:
        """Nodes that did not pass or succeed (skipped ones included)."""
        return {k: v for k, v in self.statuses.items() if v not in ("success", "pass")}


def run_dbt(
    args: Sequence[str], work_dir: Path, registry: SourceRegistry = DEFAULT_REGISTRY
) -> DbtOutcome:
    """Run dbt on the ``spark`` target in this process (after :func:`spark_session`).

    Writes dbt's target and logs under ``work_dir`` so the DuckDB manifest that Dagster loads
    (dbt_project/target) is never touched. The models read the flag sources from the source
    registry (var ``flag_sources``), as in every DuckDB invocation.
    """
    _require_spark()
    from dbt.cli.main import dbtRunner

    argv = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        "spark",
        "--target-path",
        str(work_dir / "dbt-target"),
        "--log-path",
        str(work_dir / "dbt-logs"),
        "--vars",
        json.dumps(registry.dbt_vars()),
    ]
    result = dbtRunner().invoke(argv)
    statuses: dict[str, str] = {}
    if result.result is not None and hasattr(result.result, "results"):
        for node_result in result.result.results:
            statuses[node_result.node.unique_id] = str(node_result.status)
    error = str(result.exception) if result.exception else None
    return DbtOutcome(success=bool(result.success), statuses=statuses, error=error)


def _normalise(value: Any) -> Any:
    """One comparable Python value for what DuckDB and Spark return for the same SQL value."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if hasattr(value, "item"):  # numpy scalars
        return _normalise(value.item())
    return value


def same_value(left: Any, right: Any) -> bool:
    """Equal, or for floats equal to a relative FLOAT_TOLERANCE (the engines sum in different orders)."""
    if isinstance(left, float) or isinstance(right, float):
        if left is None or right is None:
            return left is right
        return math.isclose(float(left), float(right), rel_tol=FLOAT_TOLERANCE, abs_tol=1e-12)
    return left == right


@dataclass
class TableComparison:
    """One table compared across the two engines."""

    table: str
    duckdb_rows: int
    spark_rows: int
    differences: list[str]

    @property
    def equal(self) -> bool:
        return not self.differences


def _rows(columns: Sequence[str], records: Sequence[Sequence[Any]], key: Sequence[str]) -> dict:
    index = [columns.index(k) for k in key]
    rows: dict[tuple, dict[str, Any]] = {}
    for record in records:
        values = {c: _normalise(v) for c, v in zip(columns, record, strict=True)}
        rows[tuple(values[columns[i]] for i in index)] = values
    return rows


def compare_tables(
    spark: SparkSession,
    duckdb_path: Path,
    tables: dict[str, tuple[str, ...]] = COMPARED_TABLES,
    schema: str = "marts",
    max_differences: int = 10,
) -> list[TableComparison]:
    """Compare each table of ``schema`` in the DuckDB warehouse with Spark's: columns, then rows
    by key, value by value (floats to a relative 1e-9)."""
    out: list[TableComparison] = []
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        for table, key in tables.items():
            relation = con.execute(f"select * from {schema}.{table}")
            d_columns = [c[0] for c in relation.description]
            d_records = relation.fetchall()
            s_frame = spark.table(f"{schema}.{table}")
            s_columns = list(s_frame.columns)
            s_records = [tuple(row) for row in s_frame.collect()]
            differences: list[str] = []
            if d_columns != s_columns:
                differences.append(f"columns differ: duckdb {d_columns} vs spark {s_columns}")
            else:
                d_rows = _rows(d_columns, d_records, key)
                s_rows = _rows(s_columns, s_records, key)
                if len(d_rows) != len(d_records) or len(s_rows) != len(s_records):
                    differences.append(f"key {key} is not unique")
                for k in sorted(d_rows.keys() - s_rows.keys(), key=str):
                    differences.append(f"only in duckdb: {k}")
                for k in sorted(s_rows.keys() - d_rows.keys(), key=str):
                    differences.append(f"only in spark: {k}")
                for k in sorted(d_rows.keys() & s_rows.keys(), key=str):
                    for column in d_columns:
                        left, right = d_rows[k][column], s_rows[k][column]
                        if not same_value(left, right):
                            differences.append(f"{k} {column}: duckdb {left!r}, spark {right!r}")
            out.append(
                TableComparison(
                    table, len(d_records), len(s_records), differences[:max_differences]
                )
            )
    finally:
        con.close()
    return out


@dataclass
class SparkCheck:
    """A Spark build of a DuckDB warehouse's raw tables and its comparison with DuckDB's marts."""

    copied: dict[str, int]
    dbt: DbtOutcome
    comparisons: list[TableComparison]

    @property
    def equal(self) -> bool:
        return self.dbt.success and all(c.equal for c in self.comparisons)


def build_and_compare(
    spark: SparkSession,
    duckdb_path: Path,
    work_dir: Path,
    dbt_args: Sequence[str] = ("build", "--exclude-resource-type", "unit_test"),
    progress: Callable[[str], None] | None = None,
) -> SparkCheck:
    """Copy ``raw``/``ops`` from the DuckDB warehouse, run dbt on Spark, compare every table.

    The default ``dbt build`` runs the models, seeds and data tests on Spark; the dbt unit
    tests are left to DuckDB (their fixtures are typed in DuckDB SQL and test logic, not the
    engine). Tables already in Spark are built incrementally as dbt decides (the date-partitioned
    int_experiment_user_days overwrites the dates in ops.recompute_dates).
    """
    copied = copy_warehouse_tables(spark, duckdb_path, work_dir / "export", progress=progress)
    if progress:
        progress(f"dbt {' '.join(dbt_args)} --target spark")
    outcome = run_dbt(dbt_args, work_dir)
    comparisons = compare_tables(spark, duckdb_path) if outcome.success else []
    return SparkCheck(copied, outcome, comparisons)


def comparison_report(check: SparkCheck) -> str:
    """A markdown table: each table's rows on both engines and whether they are equal."""
    lines = ["| table | DuckDB rows | Spark rows | equal |", "|---|---:|---:|---|"]
    for c in check.comparisons:
        lines.append(
            f"| {c.table} | {c.duckdb_rows} | {c.spark_rows} | {'yes' if c.equal else 'NO'} |"
        )
    for c in check.comparisons:
        for difference in c.differences:
            lines.append(f"- {c.table}: {difference}")
    if not check.dbt.success:
        lines.append(f"dbt failed: {check.dbt.error or check.dbt.failures()}")
    return "\n".join(lines)


def publish_serving_copy(
    spark: SparkSession,
    serving_path: Path,
    export_dir: Path,
    run_id: str | None = None,
    project_dir: Path = DBT_PROJECT_DIR,
) -> Published:
    """Publish the serving copy from Spark's tables, exactly as a DuckDB run publishes it.

    Readers (`expplatform report`, the health pages, analysts) open one DuckDB file whichever
    engine built the marts. Spark writes every table of ``marts`` and ``ops.check_results``
    as Parquet under ``export_dir``; an in-memory DuckDB database loads them under the same
    names (the ``ops`` tables declared in the dbt sources YAML first, so a Spark build without
    check results publishes an empty ``meta.check_results``), and
    :func:`expplatform.serving.publish` writes the file and renames it into place, the one
    publishing path of both engines. Spark's timestamps come back as instants and are stored as
    DuckDB's naive UTC timestamps, as the warehouse keeps them.
    """
    export_dir.mkdir(parents=True, exist_ok=True)
    # the session's temporary views (dbt-spark's `__dbt_tmp` of an incremental run) are listed too
    tables = [
        f"{catalog.MARTS}.{t.name}"
        for t in spark.catalog.listTables(catalog.MARTS)
        if not t.isTemporary
    ]
    if spark.catalog.tableExists(catalog.OPS_CHECK_RESULTS):
        tables.append(catalog.OPS_CHECK_RESULTS)
    con = duckdb.connect(":memory:")
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(catalog.ddl(project_dir))
        con.execute(f"create schema if not exists {catalog.MARTS}")
        for table in tables:
            folder = export_dir / table
            spark.table(table).write.mode("overwrite").parquet(str(folder))
            quoted = folder.as_posix().replace("'", "''")
            source = f"read_parquet('{quoted}/*.parquet')"
            columns = con.execute(f"describe select * from {source}").fetchall()
            select = ", ".join(
                f'"{name}"::timestamp as "{name}"'
                if kind == "TIMESTAMP WITH TIME ZONE"
                else f'"{name}"'
                for name, kind, *_ in columns
            )
            if table == catalog.OPS_CHECK_RESULTS:
                con.execute(f"insert into {table} by name select {select} from {source}")
            else:
                con.execute(f"create table {table} as select {select} from {source}")
        return publish(con, serving_path, run_id)
    finally:
        con.close()
