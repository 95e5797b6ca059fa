"""Load landing-zone files into the raw tables with DuckDB's readers (contract §2).

Every file is read by DuckDB (`read_csv`, gzip handled by the reader), never
line by line in Python, and parsed in the same statement: CSV fields by the
CSV reader, each LaunchDarkly line by `json_transform` into typed fields (one
parse). Validation is SQL over those columns. Lines the reader itself cannot
take (bad encoding, wrong number of CSV fields, over-long lines) come back
through DuckDB's rejects tables with their line numbers. Each line ends either
in its raw table or in `raw.rejected_records` with a reason, so for every file
`loaded + rejected = lines`. The sources' rules live in
:mod:`expplatform.ingestion.launchdarkly` and :mod:`expplatform.ingestion.csv_sources`,
the reading in :mod:`expplatform.ingestion.batches`.

Files are loaded in batches (the files of one arrival folder, a few at a time) so that
DuckDB reads several files at once, one per thread.

A load of daily partitions replaces exactly those partitions (raw rows and
rejected records) inside one transaction: a file that cannot be read rolls
the whole load back and the partitions keep their previous contents.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from expplatform.ingestion import csv_sources, jsonl_events, launchdarkly
from expplatform.ingestion.batches import (
    MAX_LINE_BYTES,
    READER_REASONS,
    FileReport,
    LandedFile,
    LoadError,
    duckdb_file_path,
    prepare,
)
from expplatform.ingestion.csv_sources import (
    LEGACY_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    TIERS,
    USERS_COLUMNS,
)
from expplatform.ingestion.landing import (
    SourceSpec,
    list_files,
    partition_folder,
    relative_name,
)
from expplatform.warehouse import pause_point

__all__ = [
    "MAX_LINE_BYTES",
    "READER_REASONS",
    "LEGACY_COLUMNS",
    "USERS_COLUMNS",
    "SUBSCRIPTION_COLUMNS",
    "TIERS",
    "FileReport",
    "LoadError",
    "LoadReport",
    "duckdb_file_path",
    "load_daily_partitions",
    "load_snapshot",
]

log = logging.getLogger(__name__)

#: At most this many files are read by one statement...
BATCH_MAX_FILES = 8
#: ...and at most about this many bytes of text (a gzip file counts GZIP_RATIO times its
#: size): a batch's parsed lines are held in memory (~200 bytes a line) until inserted.
BATCH_MAX_BYTES = 1_000_000_000
GZIP_RATIO = 10


@dataclass
class LoadReport:
    """The outcome of loading one source for a set of partitions (or a snapshot)."""

    source: str
    load_dates: list[date]
    files: list[FileReport] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return sum(f.loaded for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected_total for f in self.files)

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    def rejected_by_reason(self) -> dict[str, int]:
        total: Counter = Counter()
        for f in self.files:
            total.update(f.rejected)
        return dict(sorted(total.items()))


BatchLoader = Callable[
    [duckdb.DuckDBPyConnection, SourceSpec, Sequence[LandedFile], datetime], list[FileReport]
]

#: The parsers, by the registry's `format` (expplatform/sources.py).
PARSERS: dict[str, BatchLoader] = {
    "launchdarkly_export": lambda con, source, files, at: launchdarkly.load_batch(con, files, at),
    "legacy_csv": lambda con, source, files, at: csv_sources.load_batch(
        con, csv_sources.LEGACY_CSV, files, at
    ),
    "users_csv": lambda con, source, files, at: csv_sources.load_batch(
        con, csv_sources.USERS_CSV, files, at
    ),
    "subscriptions_csv": lambda con, source, files, at: csv_sources.load_batch(
        con, csv_sources.SUBSCRIPTIONS_CSV, files, at
    ),
    "jsonl_events": jsonl_events.load_batch,
}


def parser_of(source: SourceSpec) -> BatchLoader:
    """The parser of a source's format (a clear error for an unknown one)."""
    if source.format not in PARSERS:
        raise ValueError(
            f"source {source.name}: unknown format {source.format!r}; "
            f"known: {', '.join(sorted(PARSERS))}"
        )
    return PARSERS[source.format]


def _text_bytes(path: Path) -> int:
    size = path.stat().st_size
    return size * GZIP_RATIO if path.name.endswith(".gz") else size


def batches(files: Sequence[LandedFile]) -> Iterator[list[LandedFile]]:
    """Consecutive files grouped for one statement each. Files of different arrival dates
    never share a batch, so each partition's rows stay together in the raw table."""
    batch: list[LandedFile] = []
    size = 0
    for f in files:
        f_size = _text_bytes(f.path)
        if batch and (
            len(batch) >= BATCH_MAX_FILES
            or size + f_size > BATCH_MAX_BYTES
            or f.load_date != batch[0].load_date
        ):
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += f_size
    if batch:
        yield batch


def _load_files(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    files: Sequence[LandedFile],
    report: LoadReport,
    loaded_at: datetime,
    progress: Callable[[str], None] | None,
) -> None:
    parse = parser_of(spec)
    for batch in batches(files):
        for file_report in parse(con, spec, batch, loaded_at):
            report.files.append(file_report)
            pause_point("ingestion", file_report.source_file)  # crash tests: killed mid-transaction
            if progress:
                progress(
                    f"{file_report.source_file}: {file_report.loaded} loaded, "
                    f"{file_report.rejected_total} rejected"
                )


def _transaction(con: duckdb.DuckDBPyConnection, work: Callable[[], LoadReport]) -> LoadReport:
    # Reading several files in one statement runs them on several threads only when the
    # rows need not keep the files' order; line numbers come from each reader's ordinality.
    con.execute("set session preserve_insertion_order = false")
    try:
        con.execute("begin transaction")
        try:
            report = work()
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
        return report
    finally:
        con.execute("reset session preserve_insertion_order")


def load_daily_partitions(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    landing_dir: Path,
    load_dates: Sequence[date],
    *,
    loaded_at: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Replace the raw rows and rejected records of `load_dates` for a daily source.

    All partitions are replaced in one transaction; any unreadable file raises
    LoadError and leaves every partition as it was.
    """
    if not spec.daily:
        raise ValueError(f"{spec.name} is not a daily source")
    dates = sorted(set(load_dates))
    loaded_at = loaded_at or datetime.utcnow().replace(microsecond=0)
    prepare(con)
    report = LoadReport(source=spec.name, load_dates=dates)
    files = [
        LandedFile(path, relative_name(path, landing_dir), load_date)
        for load_date in dates
        for path in list_files(partition_folder(landing_dir, spec, load_date), spec)
    ]

    def work() -> LoadReport:
        con.execute(
            f"delete from {spec.table} where _load_date in (select unnest($dates::date[]))",
            {"dates": dates},
        )
        con.execute(
            "delete from raw.rejected_records "
            "where source = $source and _load_date in (select unnest($dates::date[]))",
            {"source": spec.name, "dates": dates},
        )
        _load_files(con, spec, files, report, loaded_at, progress)
        return report

    return _transaction(con, work)


def load_snapshot(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    landing_dir: Path,
    *,
    loaded_at: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Replace an unpartitioned source: a snapshot (newest file only) or a log (every file)."""
    if spec.daily:
        raise ValueError(f"{spec.name} is not an unpartitioned source")
    loaded_at = loaded_at or datetime.utcnow().replace(microsecond=0)
    prepare(con)
    paths = list_files(landing_dir / spec.folder, spec)
    if spec.newest_file_only:
        paths = paths[-1:]  # the newest snapshot (by name) is the current truth
    files = [LandedFile(path, relative_name(path, landing_dir), None) for path in paths]
    report = LoadReport(source=spec.name, load_dates=[])

    def work() -> LoadReport:
        con.execute(f"delete from {spec.table}")
        con.execute("delete from raw.rejected_records where source = $s", {"s": spec.name})
        _load_files(con, spec, files, report, loaded_at, progress)
        return report

    return _transaction(con, work)
