"""Ingestion assets: landing-zone files → raw tables (group `raw`).

The two event sources are partitioned by arrival date and backfill a range
in a single run (one transaction for the whole range). Users and subscription
changes are unpartitioned snapshots.
"""

from pathlib import Path

import duckdb
from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)
from dagster_duckdb import DuckDBResource

from expplatform.config import DUCKDB_POOL
from expplatform.ingestion.landing import (
    LAUNCHDARKLY,
    LEGACY,
    SUBSCRIPTIONS,
    USERS,
    SourceSpec,
    check_landing_dir,
)
from expplatform.ingestion.loaders import LoadReport, load_daily_partitions, load_snapshot
from expplatform.partitions import daily_partitions, dates_in_window
from expplatform.resources import LandingZoneResource
from expplatform.warehouse import DDL, connect

OWNERS = ["team:experimentation-data"]

#: What the lineage and a few key columns mean; every column is listed with its type.
COLUMN_DOCS = {
    "_load_date": "arrival date: the date=YYYY-MM-DD folder the line came from (the partition)",
    "_source_file": "file the line came from, relative to the landing zone",
    "_line_number": "line (JSONL) or record (CSV, header = 1) number within the file",
    "_loaded_at": "when the load ran (UTC)",
    "event_id": "the partner's event id; retries repeat it (deduplicated downstream)",
    "is_active": "'Y' or 'N'; an id with any 'N' copy is retracted",
    "event_creationdate": "event time, UTC (from epoch milliseconds)",
    "event_contextkeys_user": "user id (event.contextKeys.user)",
    "event_value": "served value as JSON text (strings unquoted)",
    "event_prereqof": "set when the flag was evaluated as a prerequisite: not an exposure",
    "timestamp": "event time converted to UTC (offsets applied; none means UTC)",
    "value": "served value parsed from true/false/t/f/1/0 (any case)",
    "value_raw": "served value as written in the file",
    "is_test_account": "test accounts are excluded from every fact and mart",
    "tier": "standard, plus or premium (normalised to lower case)",
    "effective_at": "from this instant on the user is on `tier`",
}


def column_schema(table: str) -> TableSchema:
    """The column schema of a raw table, read from the DDL the loaders create."""
    con = duckdb.connect()
    try:
        con.execute(DDL)
        schema, name = table.split(".")
        rows = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        ).fetchall()
    finally:
        con.close()
    return TableSchema(
        columns=[
            TableColumn(column, data_type.lower(), description=COLUMN_DOCS.get(column))
            for column, data_type in rows
        ]
    )


def report_metadata(report: LoadReport) -> dict[str, object]:
    """Materialization metadata of a load: files, lines, rows loaded and rejected per reason."""
    metadata: dict[str, object] = {
        "files": MetadataValue.int(len(report.files)),
        "lines": MetadataValue.int(report.lines),
        "rows_loaded": MetadataValue.int(report.loaded),
        "rows_rejected": MetadataValue.int(report.rejected),
        "rejected_rate": MetadataValue.float(
            report.rejected / report.lines if report.lines else 0.0
        ),
    }
    for reason, n in report.rejected_by_reason().items():
        metadata[f"rejected_{reason}"] = MetadataValue.int(n)
    if report.files:
        rows = "\n".join(
            f"| {f.source_file} | {f.lines} | {f.loaded} | {f.rejected_total} |"
            for f in report.files
        )
        metadata["file_summary"] = MetadataValue.md(
            "| file | lines | loaded | rejected |\n|---|---:|---:|---:|\n" + rows
        )
    if report.load_dates:
        metadata["arrival_dates"] = MetadataValue.text(
            f"{report.load_dates[0]} .. {report.load_dates[-1]}"
        )
    return metadata


def _daily_source_asset(spec: SourceSpec, description: str):
    @asset(
        key=AssetKey(["raw", spec.table.split(".", 1)[1]]),
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="raw",
        pool=DUCKDB_POOL,
        kinds={"duckdb", "python"},
        owners=OWNERS,
        description=description,
        metadata={"dagster/column_schema": column_schema(spec.table), "table": spec.table},
    )
    def _load(
        context: AssetExecutionContext, warehouse: DuckDBResource, landing: LandingZoneResource
    ) -> MaterializeResult:
        check_landing_dir(landing.path)
        dates = dates_in_window(context.partition_time_window)
        context.log.info(f"loading {spec.name} arrival dates {dates[0]} .. {dates[-1]}")
        with connect(Path(warehouse.database), on_wait=context.log.info) as con:
            report = load_daily_partitions(
                con, spec, landing.path, dates, progress=context.log.info
            )
        if not report.files:
            context.log.warning(f"no {spec.name} files for {dates[0]} .. {dates[-1]}")
        return MaterializeResult(metadata=report_metadata(report))

    return _load


partner_directpush_launchdarkly_events = _daily_source_asset(
    LAUNCHDARKLY,
    "LaunchDarkly data-export events pushed by the partner (launchdarkly/date=D/*.jsonl[.gz]), "
    "one row per accepted line, duplicates and retractions included; lineage columns "
    "_load_date, _source_file, _line_number, _loaded_at. Bad lines go to raw.rejected_records.",
)
legacy_feature_flag_events = _daily_source_asset(
    LEGACY,
    "Legacy flag system export (legacy/date=D/*.csv), one row per accepted CSV row, timestamps "
    "normalised to UTC and value parsed to a boolean. Bad rows go to raw.rejected_records.",
)


def _snapshot_asset(spec: SourceSpec, description: str):
    @asset(
        key=AssetKey(["raw", spec.table.split(".", 1)[1]]),
        group_name="raw",
        pool=DUCKDB_POOL,
        kinds={"duckdb", "python"},
        owners=OWNERS,
        description=description,
        metadata={"dagster/column_schema": column_schema(spec.table), "table": spec.table},
    )
    def _load(
        context: AssetExecutionContext, warehouse: DuckDBResource, landing: LandingZoneResource
    ) -> MaterializeResult:
        check_landing_dir(landing.path)
        with connect(Path(warehouse.database), on_wait=context.log.info) as con:
            report = load_snapshot(con, spec, landing.path, progress=context.log.info)
        if not report.files:
            context.log.warning(f"no {spec.name} files in {landing.path / spec.folder}")
        return MaterializeResult(metadata=report_metadata(report))

    return _load


users = _snapshot_asset(
    USERS,
    "The newest users snapshot (users/*.csv, newest by file name is the truth): user_id, "
    "created_at, country, is_test_account.",
)
subscription_changes = _snapshot_asset(
    SUBSCRIPTIONS,
    "The subscription change log (every subscriptions/*.csv): from effective_at on, the user is "
    "on tier. Repeated change ids are kept here and deduplicated in staging.",
)

ingestion_assets = [
    partner_directpush_launchdarkly_events,
    legacy_feature_flag_events,
    users,
    subscription_changes,
]
