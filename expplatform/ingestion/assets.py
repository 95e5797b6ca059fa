"""Ingestion assets: landing-zone files → raw tables (group `raw`), one per registered source.

Daily sources are partitioned by arrival date and backfill a range in a single run (one
transaction for the whole range); snapshots and change logs are unpartitioned. A daily source's
asset also evaluates its checks (rejected-record rate, late events) on the partitions it just
loaded, in the same step, so their results are recorded before anything downstream runs.
"""

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableSchema,
    multi_asset,
)

from expplatform.catalog import declared_columns
from expplatform.config import DUCKDB_POOL
from expplatform.ingestion.landing import check_landing_dir
from expplatform.ingestion.loaders import (
    FileReport,
    LoadReport,
    load_daily_partitions,
    load_snapshot,
)
from expplatform.partitions import dates_in_window
from expplatform.quality import checks
from expplatform.resources import LandingZoneResource
from expplatform.sources import Source, SourceRegistry
from expplatform.warehouse import WarehouseResource

OWNERS = ["team:experimentation-data"]
_DATE_IN_PATH = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})/")


def column_schema(source: Source, project_dir: Path) -> TableSchema:
    """The raw table's columns, types and descriptions as declared in the dbt sources YAML."""
    return TableSchema(
        columns=[
            TableColumn(c.name, c.data_type, description=c.description or None)
            for c in declared_columns(source.raw_table, project_dir)
        ]
    )


def _file_metadata(files: Sequence[FileReport], load_dates: Sequence[date]) -> dict[str, object]:
    lines = sum(f.lines for f in files)
    rejected = sum(f.rejected_total for f in files)
    metadata: dict[str, object] = {
        "files": MetadataValue.int(len(files)),
        "lines": MetadataValue.int(lines),
        "rows_loaded": MetadataValue.int(sum(f.loaded for f in files)),
        "rows_rejected": MetadataValue.int(rejected),
        "rejected_rate": MetadataValue.float(round(rejected / lines, 6) if lines else 0.0),
    }
    by_reason: dict[str, int] = defaultdict(int)
    for f in files:
        for reason, n in f.rejected.items():
            by_reason[reason] += n
    for reason, n in sorted(by_reason.items()):
        metadata[f"rejected_{reason}"] = MetadataValue.int(n)
    if files:
        rows = "\n".join(
            f"| {f.source_file} | {f.lines} | {f.loaded} | {f.rejected_total} |" for f in files
        )
        metadata["file_summary"] = MetadataValue.md(
            "| file | lines | loaded | rejected |\n|---|---:|---:|---:|\n" + rows
        )
    if load_dates:
        metadata["arrival_dates"] = MetadataValue.text(
            f"{min(load_dates)} .. {max(load_dates)}"
            if len(load_dates) > 1
            else load_dates[0].isoformat()
        )
    return metadata


def report_metadata(report: LoadReport) -> dict[str, object]:
    """Materialization metadata of a whole load: files, lines, rows loaded and rejected by reason."""
    return _file_metadata(report.files, report.load_dates)


def metadata_by_partition(report: LoadReport) -> dict[str, dict[str, object]]:
    """The same figures for each arrival date of a range load (each partition its own numbers)."""
    files_by_date: dict[date, list[FileReport]] = {d: [] for d in report.load_dates}
    for f in report.files:
        match = _DATE_IN_PATH.search(f.source_file)
        if match:
            files_by_date.setdefault(date.fromisoformat(match.group(1)), []).append(f)
    return {d.isoformat(): _file_metadata(files, [d]) for d, files in files_by_date.items()}


def _raw_spec(
    source: Source, project_dir: Path, partitions_def: PartitionsDefinition | None = None
) -> AssetSpec:
    """The raw table of a source as an asset: its columns from the dbt sources YAML."""
    return AssetSpec(
        key=source.asset_key,
        partitions_def=partitions_def,
        group_name="raw",
        kinds={"duckdb", "python"},
        owners=OWNERS,
        description=source.description,
        metadata={
            "dagster/column_schema": column_schema(source, project_dir),
            "table": source.raw_table,
        },
    )


def _daily_source_asset(
    source: Source, partitions_def: PartitionsDefinition, project_dir: Path, pool: str | None
) -> AssetsDefinition:
    spec = _raw_spec(source, project_dir, partitions_def)

    @multi_asset(
        name=source.step_key,
        specs=[spec],
        check_specs=checks.raw_check_specs(source, partitions_def),
        can_subset=True,
        backfill_policy=BackfillPolicy.single_run(),
        pool=pool,
    )
    def _load(
        context: AssetExecutionContext,
        warehouse: WarehouseResource,
        landing: LandingZoneResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        dates = dates_in_window(context.partition_time_window)
        results: list[AssetCheckResult] = []
        with warehouse.connect(on_wait=context.log.info) as con:
            if source.asset_key in context.selected_asset_keys:
                check_landing_dir(landing.path)
                context.log.info(f"loading {source.name} arrival dates {dates[0]} .. {dates[-1]}")
                report = load_daily_partitions(
                    con, source, landing.path, dates, progress=context.log.info
                )
                if not report.files:
                    # Not a warning: a retired source (the legacy system) has no folders any
                    # more; a delivery that stopped is the landing_delivery check's to report.
                    context.log.info(f"no {source.name} files for {dates[0]} .. {dates[-1]}")
                for partition, metadata in metadata_by_partition(report).items():
                    context.add_asset_metadata(
                        metadata, asset_key=source.asset_key, partition_key=partition
                    )
                yield MaterializeResult(asset_key=source.asset_key)
            results = checks.evaluate_raw_checks(
                con,
                source,
                context.selected_asset_check_keys,
                dates,
                landing.lookback_days,
            )
            checks.record_results(con, results, context.run_id, partition_of=dates)
        yield from results

    return _load


def _snapshot_asset(source: Source, project_dir: Path, pool: str | None) -> AssetsDefinition:
    spec = _raw_spec(source, project_dir)

    @multi_asset(name=source.step_key, specs=[spec], pool=pool)
    def _load(
        context: AssetExecutionContext,
        warehouse: WarehouseResource,
        landing: LandingZoneResource,
    ) -> MaterializeResult:
        check_landing_dir(landing.path)
        with warehouse.connect(on_wait=context.log.info) as con:
            report = load_snapshot(con, source, landing.path, progress=context.log.info)
        if not report.files:
            context.log.warning(f"no {source.name} files in {landing.path / source.folder}")
        return MaterializeResult(asset_key=source.asset_key, metadata=report_metadata(report))

    return _load


def build_ingestion_assets(
    registry: SourceRegistry,
    partitions_def: PartitionsDefinition,
    project_dir: Path,
    pool: str | None = DUCKDB_POOL,
) -> list[AssetsDefinition]:
    """One raw asset per registered source (steps in `pool`, the warehouse's single writer)."""
    return [
        _daily_source_asset(source, partitions_def, project_dir, pool)
        if source.daily
        else _snapshot_asset(source, project_dir, pool)
        for source in registry
    ]
