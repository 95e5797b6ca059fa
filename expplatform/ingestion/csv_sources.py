"""CSV sources → raw tables: legacy flag events, users snapshots, subscription changes.

Contract §2.2–2.5. A file's header is checked first (required columns present, no
duplicate names: else LoadError), then the file is read, validated and typed in one
statement: the CSV reader splits the fields (every header column is read, so each row's
field count is checked), SQL names the first rule a row breaks, and `raw_record`, the
row as CSV text, is built for rejected rows only.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from expplatform.ingestion.batches import (
    MAX_LINE_BYTES,
    FileReport,
    LandedFile,
    LoadError,
    file_reports,
    insert_parsed_rejects,
    insert_reader_rejects,
    rejects_options,
    stage_batch,
)
from expplatform.ingestion.landing import LEGACY, SUBSCRIPTIONS, USERS

#: Required header columns of the CSV sources (contract §2.2–2.4).
LEGACY_COLUMNS = ("id", "user", "timestamp", "key", "variation_name", "value")
USERS_COLUMNS = ("user_id", "created_at", "country", "is_test_account")
SUBSCRIPTION_COLUMNS = ("subscription_change_id", "user_id", "tier", "effective_at")
TIERS = ("standard", "plus", "premium")


@dataclass(frozen=True)
class CsvSource:
    """How one CSV source's rows are validated and typed (all fields are read as text)."""

    name: str
    table: str
    columns: tuple[str, ...]  # required header columns, in the order raw_record lists them
    values: tuple[str, ...]  # SQL of the raw table's data columns, in the table's order
    reason: str  # SQL CASE naming the first rule a row breaks, null when it loads
    partitioned: bool  # the raw table has `_load_date`


LEGACY_CSV = CsvSource(
    name=LEGACY.name,
    table=LEGACY.table,
    columns=LEGACY_COLUMNS,
    values=(
        "trim(id)",
        'trim("user")',
        "event_at",
        "key",
        "variation_name",
        "parse_bool(value)",
        "value",
    ),
    reason="""
        case
            when blank(id) then 'missing_event_id'
            when blank("user") then 'missing_user_id'
            when blank("timestamp") then 'missing_timestamp'
            when not iso_datetime_ok("timestamp") or event_at is null then 'invalid_timestamp'
            when event_at >= load_date + interval 2 day then 'future_timestamp'
        end
    """,
    partitioned=True,
)
USERS_CSV = CsvSource(
    name=USERS.name,
    table=USERS.table,
    columns=USERS_COLUMNS,
    values=(
        "trim(user_id)",
        "parse_iso(created_at)",
        "nullif(trim(country), '')",
        "parse_bool(is_test_account)",
    ),
    reason="""
        case
            when blank(user_id) then 'missing_user_id'
            when not blank(created_at)
                 and (not iso_datetime_ok(created_at) or parse_iso(created_at) is null)
                then 'invalid_timestamp'
        end
    """,
    partitioned=False,
)
SUBSCRIPTIONS_CSV = CsvSource(
    name=SUBSCRIPTIONS.name,
    table=SUBSCRIPTIONS.table,
    columns=SUBSCRIPTION_COLUMNS,
    values=(
        "trim(subscription_change_id)",
        "trim(user_id)",
        "lower(trim(tier))",
        "parse_iso(effective_at)",
    ),
    reason=f"""
        case
            when blank(subscription_change_id) then 'missing_event_id'
            when blank(user_id) then 'missing_user_id'
            when blank(effective_at) then 'missing_timestamp'
            when not iso_datetime_ok(effective_at) or parse_iso(effective_at) is null
                then 'invalid_timestamp'
            when lower(trim(tier)) not in ({", ".join(f"'{t}'" for t in TIERS)}) or tier is null
                then 'invalid_tier'
        end
    """,
    partitioned=False,
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def fast_sql(source: CsvSource, header: Sequence[str], i: int) -> str:
    """Read, validate and type batch file `i` (`$path_i`) whose header is `header`.

    Every header column is read (so each row's field count is checked) but only the
    required ones are kept. `raw_record`, the row as CSV text, is built for rejected rows
    only.
    """
    struct = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in header)
    columns = ", ".join(quote_ident(c) for c in source.columns)
    values = ", ".join(f"{sql} as _v{i}" for i, sql in enumerate(source.values))
    raw_record = ", ".join(f"csv_field({quote_ident(c)})" for c in source.columns)
    # the legacy reason and value share the parsed timestamp: parse it once
    event_at = 'parse_iso("timestamp")' if source is LEGACY_CSV else "null::timestamp"
    load_date = f"$load_date_{i}::date" if source.partitioned else "null::date"
    return f"""
        with lines as (
            select ordinality::bigint as ord, {columns}
            from read_csv(
                $path_{i}, columns = {{{struct}}}, header = true, delim = ',', quote = '"',
                escape = '"', auto_detect = false, strict_mode = true, null_padding = false,
                {rejects_options(i)}
            ) with ordinality
        ),
        timed as (select *, {event_at} as event_at, {load_date} as load_date from lines),
        judged as (select *, {source.reason} as reason from timed)
        select ord, {values}, reason,
               case when reason is not null then concat_ws(',', {raw_record}) end as raw_record
        from judged
    """


def read_header(path: Path, source_file: str) -> list[str]:
    """The CSV header of a file (BOM and CRLF tolerated); [] for an empty file."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            first = fh.readline(MAX_LINE_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise LoadError(f"{source_file}: cannot be read: {exc}") from None
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text.strip():
        return []
    return [c.strip() for c in next(csv.reader(io.StringIO(text)))]


def _checked_header(source: CsvSource, f: LandedFile) -> list[str]:
    header = read_header(f.path, f.source_file)
    missing = [c for c in source.columns if c not in header]
    if header and missing:
        raise LoadError(
            f"{f.source_file}: missing required column(s) {', '.join(missing)} "
            f"(header is {', '.join(header)}; expected {', '.join(source.columns)})"
        )
    if len(set(header)) != len(header):
        raise LoadError(f"{f.source_file}: duplicate column names in header {', '.join(header)}")
    return header


def load_batch(
    con: duckdb.DuckDBPyConnection,
    source: CsvSource,
    files: Sequence[LandedFile],
    loaded_at: datetime,
) -> list[FileReport]:
    """Load a batch of one CSV source's files (inside the caller's transaction)."""
    headers = [_checked_header(source, f) for f in files]
    readable = [(f, h) for f, h in zip(files, headers, strict=True) if h]  # [] = empty file
    reports = {f.source_file: FileReport(source_file=f.source_file) for f in files}
    if readable:
        batch = [f for f, _ in readable]
        stage_batch(
            con,
            batch,
            lambda i: fast_sql(source, readable[i][1], i),
            first_line=2,
            uses_load_date=source.partitioned,
        )
        values = ", ".join(f"_v{i}" for i in range(len(source.values)))
        lineage = "load_date, " if source.partitioned else ""
        con.execute(
            f"""
            insert into {source.table}
            select {values}, {lineage}source_file, line_number, $loaded_at
            from _numbered join _batch_files using (file_idx)
            where reason is null
            """,
            {"loaded_at": loaded_at},
        )
        insert_parsed_rejects(con, source.name, "_numbered", "raw_record", loaded_at)
        insert_reader_rejects(con, source.name, loaded_at)
        for report in file_reports(con, batch, "select file_idx, reason from _fast"):
            reports[report.source_file] = report
    return [reports[f.source_file] for f in files]
