"""The serving copy: what readers open, so that they never wait for a writer.

DuckDB has a single writer, and on DuckDB 2.0 another process cannot even read the file while a
run writes it. So readers (`expplatform report`, the dashboard queries, the health pages,
analysts) never open the warehouse: at the end of every successful run the marts are published to
a separate DuckDB file, `EXPPLATFORM_SERVING_PATH` (default `data/serving.duckdb`), with the same
schema and table names as the warehouse's `marts` (the contract's §5 tables and both health
marts), plus `meta.check_results` (the latest data-quality results) and
`meta.build_info` (data through which date, built when, by which run).

Publishing is atomic: the run writes a new file beside the old one and renames it over it. A
reader that has the old file open keeps reading the old version (the rename does not touch an
open file); the next reader opens the new one. Nobody ever sees a half-written copy.
"""

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from expplatform import catalog
from expplatform.config import DUCKDB_POOL
from expplatform.resources import ServingResource
from expplatform.warehouse import WarehouseResource, pause_point

SERVING_ALIAS = "serving_copy"


@dataclass(frozen=True)
class Published:
    """What a publication wrote."""

    path: Path
    tables: dict[str, int]
    bytes: int
    seconds: float
    data_through: object


def publish(
    con: duckdb.DuckDBPyConnection, serving_path: Path, run_id: str | None = None
) -> Published:
    """Copy the marts, check results and build info to a new file, then rename it into place."""
    started = time.monotonic()
    serving_path = Path(serving_path)
    serving_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = serving_path.with_name(f".{serving_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    existing = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() and table_type = 'BASE TABLE'"
        ).fetchall()
    }
    missing = [t for t in catalog.SERVED_TABLES if t not in existing]
    if missing:
        raise RuntimeError(
            f"cannot publish the serving copy: {', '.join(missing)} not built yet "
            "(materialize every asset once)"
        )
    # Every table of `marts` is published: the contract's, the health marts, and any older
    # version of a renamed mart still kept for its readers (docs/CHANGING_MARTS.md).
    marts = sorted(t for t in existing if t.startswith(f"{catalog.MARTS}."))
    tables: dict[str, int] = {}
    quoted = str(tmp).replace("'", "''")
    con.execute(f"attach '{quoted}' as {SERVING_ALIAS}")
    try:
        con.execute(f"create schema {SERVING_ALIAS}.{catalog.MARTS}")
        con.execute(f"create schema {SERVING_ALIAS}.{catalog.SERVING}")
        for table in marts:
            con.execute(f"create table {SERVING_ALIAS}.{table} as select * from {table}")
            tables[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        con.execute(
            f"create table {SERVING_ALIAS}.{catalog.SERVING_CHECK_RESULTS} as "
            f"select * from {catalog.OPS_CHECK_RESULTS} order by asset_key, check_name, partition"
        )
        data_through = con.execute(
            f"select max(exposure_date) from {catalog.FCT_EXPOSURES_DAILY}"
        ).fetchone()[0]
        con.execute(
            f"create table {SERVING_ALIAS}.{catalog.SERVING_BUILD_INFO} as "
            "select now()::timestamp as built_at, ?::date as data_through, ?::varchar as run_id",
            [data_through, run_id],
        )
    finally:
        con.execute(f"detach {SERVING_ALIAS}")  # checkpoints: the file is complete on disk
    pause_point("publish", serving_path.name)  # crash tests: killed before the rename
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(serving_path)
    return Published(
        path=serving_path,
        tables=tables,
        bytes=serving_path.stat().st_size,
        seconds=time.monotonic() - started,
        data_through=data_through,
    )


def served_deps() -> list:
    """The assets the serving copy is made of."""
    return [catalog.asset_key(t) for t in catalog.SERVED_TABLES]


def build_serving_asset(pool: str | None = DUCKDB_POOL) -> AssetsDefinition:
    """`serving/marts_serving_copy`: published by every run that builds the marts."""

    @multi_asset(
        name="publish_serving_copy",
        specs=[
            AssetSpec(
                key=catalog.SERVING_KEY,
                deps=served_deps(),
                group_name="serving",
                kinds={"duckdb", "python"},
                owners=["team:experimentation-data"],
                description="The readers' copy of the marts (EXPPLATFORM_SERVING_PATH): the "
                "contract's tables and both health marts, the latest data-quality results and "
                "the build info, published atomically (a new file renamed into place) at the end "
                "of every run. `expplatform report`, the health pages and analysts read it, so "
                "they never wait for a run.",
            )
        ],
        pool=pool,
    )
    def publish_serving_copy(
        context: AssetExecutionContext, warehouse: WarehouseResource, serving: ServingResource
    ) -> MaterializeResult:
        with warehouse.connect(on_wait=context.log.info) as con:
            published = publish(con, serving.path, context.run_id)
        context.log.info(
            f"published {len(published.tables)} tables to {published.path} in "
            f"{published.seconds:.2f}s ({published.bytes / 1e6:.1f} MB)"
        )
        return MaterializeResult(
            asset_key=catalog.SERVING_KEY,
            metadata={
                "path": MetadataValue.path(str(published.path)),
                "tables": MetadataValue.md(
                    "| table | rows |\n|---|---:|\n"
                    + "\n".join(f"| {t} | {n:,} |" for t, n in published.tables.items())
                ),
                "data_through": MetadataValue.text(str(published.data_through)),
                "size_mb": MetadataValue.float(round(published.bytes / 1e6, 2)),
                "publish_seconds": MetadataValue.float(round(published.seconds, 3)),
            },
        )

    return publish_serving_copy
