"""Load landing-zone files into the raw tables with DuckDB's readers (contract §2).

Every file is read by DuckDB (`read_csv`, gzip handled by the reader), never
line by line in Python, and parsed in the same statement: CSV fields by the
CSV reader, each LaunchDarkly line by `json_transform` into typed fields (one
parse). Validation is SQL over those columns. Lines the reader itself cannot
take (bad encoding, wrong number of CSV fields, over-long lines) come back
through DuckDB's rejects tables with their line numbers. Each line ends either
in its raw table or in `raw.rejected_records` with a reason, so for every file
`loaded + rejected = lines`.

LaunchDarkly lines take one of two paths. The fast path loads the lines whose
typed fields pass every rule (nearly all of them). The few others keep their
text and go through the slow path, which parses them field by field with the
JSON path functions and names the first rule they break, in the contract's
order (an object where a string is expected, a string where a number is, a
non-object `event`, invalid JSON, ...).

A load of daily partitions replaces exactly those partitions (raw rows and
rejected records) inside one transaction: a file that cannot be read rolls
the whole load back and the partitions keep their previous contents.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from expplatform.ingestion.landing import (
    LAUNCHDARKLY,
    LEGACY,
    SUBSCRIPTIONS,
    USERS,
    SourceSpec,
    list_files,
    partition_folder,
    relative_name,
)
from expplatform.warehouse import pause_point

log = logging.getLogger(__name__)

#: Lines longer than this are rejected (reason `line_too_long`), not loaded.
MAX_LINE_BYTES = 1_000_000

#: Required header columns of the CSV sources (contract §2.2–2.4).
LEGACY_COLUMNS = ("id", "user", "timestamp", "key", "variation_name", "value")
USERS_COLUMNS = ("user_id", "created_at", "country", "is_test_account")
SUBSCRIPTION_COLUMNS = ("subscription_change_id", "user_id", "tier", "effective_at")
TIERS = ("standard", "plus", "premium")

#: DuckDB reader error types → our rejection reasons.
READER_REASONS = {
    "INVALID ENCODING": "invalid_encoding",
    "INVALID UNICODE": "invalid_encoding",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
    "MISSING COLUMNS": "malformed_row",
    "TOO MANY COLUMNS": "malformed_row",
    "UNQUOTED VALUE": "malformed_row",
    "CAST ERROR": "malformed_row",
}


class LoadError(RuntimeError):
    """A file could not be loaded at all; the message names the file and the problem."""


@dataclass
class FileReport:
    """What one file contributed: lines seen, rows loaded, rows rejected by reason."""

    source_file: str
    lines: int = 0
    loaded: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


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


# --- SQL building blocks -----------------------------------------------------------------------

# `csv_field` re-quotes a field for `raw_record`; `iso_datetime_ok` refuses what the cast
# would take but the contract does not (a date alone).
_MACROS = """
create or replace temp macro blank(x) as x is null or trim(x) = '';
create or replace temp macro csv_field(x) as
    case
        when x is null then ''
        when x like '%,%' or x like '%"%' or x like '%' || chr(10) || '%' or x like '%' || chr(13) || '%'
            then '"' || replace(x, '"', '""') || '"'
        else x
    end;
create or replace temp macro parse_bool(x) as
    case
        when lower(trim(x)) in ('true', 't', '1', 'y', 'yes') then true
        when lower(trim(x)) in ('false', 'f', '0', 'n', 'no') then false
    end;
create or replace temp macro iso_datetime_ok(x) as
    regexp_matches(trim(x), '^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}');
create or replace temp macro parse_iso(x) as
    try_cast(trim(x) as timestamptz) at time zone 'UTC';
"""


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("set TimeZone = 'UTC'")
    con.execute(_MACROS)


def _read_lines_sql() -> str:
    # One VARCHAR column per physical line: NUL as delimiter and no quoting so
    # the reader never splits a JSON line; `with ordinality` numbers the lines
    # the reader accepted (rejected ones are numbered by the rejects table).
    return f"""
        select ordinality::bigint as ord, line
        from read_csv(
            $path, columns = {{'line': 'VARCHAR'}}, header = false, delim = '\\0',
            quote = '', escape = '', auto_detect = false, strict_mode = false,
            max_line_size = {MAX_LINE_BYTES}, store_rejects = true,
            rejects_table = '_reader_rejects', rejects_scan = '_reader_scans'
        ) with ordinality
    """


def duckdb_file_path(path: Path) -> str:
    """`path` as DuckDB's readers must receive it to read that one file.

    The readers expand glob patterns: a file named `part[1].jsonl` would read
    `part1.jsonl` instead, and `*.jsonl` every file of the folder. Each of
    `[ * ?` becomes a one-character class (`[[]`, `[*]`, `[?]`), which matches
    only itself.
    """
    return re.sub(r"[\[*?]", lambda m: f"[{m.group(0)}]", str(path))


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first[:300]


def _stage(
    con: duckdb.DuckDBPyConnection,
    parse_sql: str,
    path: Path,
    first_line: int,
    source_file: str,
    params: dict | None = None,
) -> None:
    """Read and parse a file in one statement into temp table `_fast`, numbered by `_numbered`.

    `parse_sql` reads the file (`$path`) with a DuckDB reader numbered by `ord` and types
    its fields. Lines the reader itself rejects land in `_reader_rejected` (line number,
    error type, text). The temp view `_numbered` adds each accepted line's `line_number`:
    `first_line` is the number of the first data line (1 for JSONL, 2 for CSV whose line 1
    is the header), and line numbers skip the ones the reader rejected.
    """
    con.execute("drop table if exists _reader_rejects; drop table if exists _reader_scans")
    try:
        con.execute(
            f"create or replace temp table _fast as {parse_sql}",
            {**(params or {}), "path": duckdb_file_path(path)},
        )
    except duckdb.Error as exc:
        raise LoadError(f"{source_file}: cannot be read: {_describe(exc)}") from None
    con.execute(
        """
        create or replace temp table _reader_rejected as
        select line::bigint as line_number,
               coalesce(max(error_type), 'UNKNOWN') as error_type,
               trim(max(csv_line), chr(10) || chr(13)) as raw_record
        from _reader_rejects
        group by line
        """
    )
    n_rejected = con.execute("select count(*) from _reader_rejected").fetchone()[0]
    if n_rejected == 0:
        con.execute(
            f"create or replace temp view _numbered as "
            f"select ord + {first_line - 1} as line_number, * from _fast"
        )
        return
    # The k-th accepted line is the k-th line number that the reader did not reject.
    con.execute(
        f"""
        create or replace temp table _line_map as
        with numbers as (
            select range + {first_line} as line_number
            from range((select count(*) from _fast) + {n_rejected})
        )
        select line_number, row_number() over (order by line_number) as ord
        from numbers
        where line_number not in (select line_number from _reader_rejected)
        """
    )
    con.execute(
        "create or replace temp view _numbered as "
        "select _line_map.line_number, _fast.* from _fast join _line_map using (ord)"
    )


def _insert_reader_rejects(
    con: duckdb.DuckDBPyConnection,
    source: str,
    load_date: date | None,
    source_file: str,
    loaded_at: datetime,
) -> None:
    cases = " ".join(f"when '{k}' then '{v}'" for k, v in READER_REASONS.items())
    con.execute(
        f"""
        insert into raw.rejected_records
        select $source, $load_date, $source_file, line_number, raw_record,
               case error_type {cases} else 'malformed_line' end, $loaded_at
        from _reader_rejected
        """,
        {
            "source": source,
            "load_date": load_date,
            "source_file": source_file,
            "loaded_at": loaded_at,
        },
    )


# --- LaunchDarkly ------------------------------------------------------------------------------

# The fast path types every field of a line in one parse (`json_transform`). A VARCHAR field
# comes out exactly as `json_extract_string` gives it (strings unquoted, other values as their
# JSON text, JSON null as NULL, the first of duplicate keys); `creationDate` stays JSON so that
# a number can be told from a string of digits.
_LD_STRUCT = json.dumps(
    {
        "event_id": "VARCHAR",
        "is_active": "VARCHAR",
        "project": "VARCHAR",
        "environment": "VARCHAR",
        "event": {
            "kind": "VARCHAR",
            "creationDate": "JSON",
            "key": "VARCHAR",
            "version": "VARCHAR",
            "contextKeys": {"user": "VARCHAR"},
            "variation": "VARCHAR",
            "variationName": "VARCHAR",
            "value": "VARCHAR",
            "default": "VARCHAR",
            "reason": {"kind": "VARCHAR", "inExperiment": "VARCHAR"},
            "prereqOf": "VARCHAR",
        },
    }
)

_LD_PATHS = [
    "$.event",
    "$.event_id",
    "$.is_active",
    "$.project",
    "$.environment",
    "$.event.kind",
    "$.event.creationDate",
    "$.event.key",
    "$.event.version",
    "$.event.contextKeys.user",
    "$.event.variation",
    "$.event.variationName",
    "$.event.value",
    "$.event.default",
    "$.event.reason.kind",
    "$.event.reason.inExperiment",
    "$.event.prereqOf",
]

#: The raw LaunchDarkly columns computed from the typed fields (fast and slow path alike).
_LD_INSERT_COLUMNS = (
    "trim(event_id), is_active, project, environment, event_kind, event_at, event_key, "
    "event_version, trim(user_id), event_variation, variation_name, event_value, "
    "event_default, reason_kind, in_experiment, prereq_of"
)


def _launchdarkly_fast_sql() -> str:
    """Read a file's lines and type them; `clean` marks the lines loaded as they are.

    A clean line is valid JSON with a non-blank event id and user id and a numeric
    `creationDate` between 10^11 ms and the load's limit: exactly the lines the slow
    path would load, with the same values. Every other line keeps its text (`line`) for
    the slow path, which names its reason; clean lines drop it, so the temp table holds
    typed values only.
    """
    struct = _LD_STRUCT.replace("'", "''")
    return f"""
        with lines as ({_read_lines_sql()}),
        typed as (
            select ord, line,
                   case when json_valid(line) then json_transform(line, '{struct}') end as v
            from lines
        ),
        fields as (
            select ord, line,
                   v.event_id as event_id, v.is_active as is_active, v.project as project,
                   v.environment as environment, v.event.kind as event_kind,
                   v.event.key as event_key, try_cast(v.event.version as bigint) as event_version,
                   v.event.contextKeys.user as user_id,
                   try_cast(v.event.variation as bigint) as event_variation,
                   v.event.variationName as variation_name, v.event.value as event_value,
                   v.event.default as event_default, v.event.reason.kind as reason_kind,
                   try_cast(v.event.reason.inExperiment as boolean) as in_experiment,
                   v.event.prereqOf as prereq_of,
                   -- a JSON number's text never starts with a quote; a string's always does
                   case when not starts_with(v.event.creationDate::varchar, '"')
                        then try_cast(v.event.creationDate::varchar as double) end as creation_ms
            from typed
        ),
        timed as (
            select *,
                   -- below 10^13 ms (year 2286) the conversion cannot overflow
                   case when creation_ms >= 1e11 and creation_ms < 1e13
                        then epoch_ms(creation_ms::bigint) end as event_at
            from fields
        ),
        judged as (
            select *,
                   coalesce(
                       not blank(event_id) and not blank(user_id)
                       and event_at < $load_date::date + interval 2 day,
                       false
                   ) as clean
            from timed
        )
        select * exclude (line, creation_ms), case when not clean then line end as line
        from judged
    """


def _launchdarkly_slow_sql() -> str:
    """The reason of every line the fast path did not load (and the values, should it load).

    Each line is parsed with `json_extract_string` over the list of paths (every field as
    text) and `json_extract` of the two values whose JSON type matters (is `event` an
    object, is `creationDate` a number); the reasons are checked in the contract's order.
    """
    paths_sql = "[" + ", ".join(f"'{p}'" for p in _LD_PATHS) + "]"
    return f"""
        with extracted as (
            select line_number, line,
                   case when json_valid(line) then json_extract_string(line, {paths_sql}) end as v,
                   case when json_valid(line)
                        then json_extract(line, ['$.event', '$.event.creationDate']) end as j
            from _slow_lines
        ),
        typed as (
            select line_number, line, v is not null as is_json,
                   coalesce(json_type(j[1]) = 'OBJECT', false) as has_event,
                   v[2] as event_id, v[3] as is_active,
                   v[4] as project, v[5] as environment,
                   v[6] as event_kind,
                   json_type(j[2]) as creation_type, j[2] as creation_json,
                   v[8] as event_key, try_cast(v[9] as bigint) as event_version,
                   v[10] as user_id, try_cast(v[11] as bigint) as event_variation,
                   v[12] as variation_name, v[13] as event_value,
                   v[14] as event_default, v[15] as reason_kind,
                   try_cast(v[16] as boolean) as in_experiment,
                   v[17] as prereq_of
            from extracted
        ),
        timed as (
            select *,
                   case when creation_type in ('BIGINT', 'UBIGINT', 'DOUBLE')
                        then try_cast(creation_json::varchar as double) end as creation_ms
            from typed
        )
        select *,
               case when creation_ms >= 1e11 then try(epoch_ms(creation_ms::bigint)) end as event_at,
               case
                   when line is null or trim(line) = '' then 'empty_line'
                   when not is_json then 'invalid_json'
                   when not has_event then 'missing_event'
                   when blank(event_id) then 'missing_event_id'
                   when blank(user_id) then 'missing_user_id'
                   when creation_type is null or creation_type = 'NULL' then 'missing_timestamp'
                   when creation_ms is null or creation_ms < 0 then 'invalid_timestamp'
                   when creation_ms < 1e11 then 'timestamp_in_seconds'
                   when try(epoch_ms(creation_ms::bigint)) is null then 'invalid_timestamp'
                   when epoch_ms(creation_ms::bigint) >= $load_date::date + interval 2 day
                       then 'future_timestamp'
               end as reason
        from timed
    """


def _load_launchdarkly_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_file: str,
    load_date: date,
    loaded_at: datetime,
) -> FileReport:
    _stage(con, _launchdarkly_fast_sql(), path, 1, source_file, {"load_date": load_date})
    params = {"load_date": load_date, "source_file": source_file, "loaded_at": loaded_at}
    con.execute(
        f"""
        insert into raw.partner_directpush_launchdarkly_events
        select {_LD_INSERT_COLUMNS}, $load_date, $source_file, line_number, $loaded_at
        from _numbered where clean
        """,
        params,
    )
    con.execute(
        "create or replace temp table _slow_lines as "
        "select line_number, line from _numbered where not clean"
    )
    con.execute(
        f"create or replace temp table _parsed as {_launchdarkly_slow_sql()}",
        {"load_date": load_date},
    )
    con.execute(
        f"""
        insert into raw.partner_directpush_launchdarkly_events
        select {_LD_INSERT_COLUMNS}, $load_date, $source_file, line_number, $loaded_at
        from _parsed where reason is null
        """,
        params,
    )
    _insert_parsed_rejects(con, "launchdarkly", "_parsed", "coalesce(line, '')", params)
    _insert_reader_rejects(con, "launchdarkly", load_date, source_file, loaded_at)
    return _file_report(
        con,
        source_file,
        "select null::varchar as reason from _numbered where clean "
        "union all select reason from _parsed",
    )


def _insert_parsed_rejects(
    con: duckdb.DuckDBPyConnection, source: str, table: str, raw_expr: str, params: dict
) -> None:
    con.execute(
        f"""
        insert into raw.rejected_records
        select $source, $load_date, $source_file, line_number, {raw_expr}, reason, $loaded_at
        from {table} where reason is not null
        """,
        {**params, "source": source},
    )


def _file_report(con: duckdb.DuckDBPyConnection, source_file: str, verdicts_sql: str) -> FileReport:
    """Count a file's outcome: `verdicts_sql` gives one `reason` per line the reader
    accepted (null when the line was loaded); the reader's own rejects are added."""
    report = FileReport(source_file=source_file)
    for reason, n in con.execute(
        f"select reason, count(*) from ({verdicts_sql}) group by reason"
    ).fetchall():
        if reason is None:
            report.loaded = n
        else:
            report.rejected[reason] += n
    for error_type, n in con.execute(
        "select error_type, count(*) from _reader_rejected group by error_type"
    ).fetchall():
        report.rejected[READER_REASONS.get(error_type, "malformed_line")] += n
    report.lines = report.loaded + report.rejected_total
    return report


# --- CSV sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CsvSource:
    """How one CSV source's rows are validated and typed (all fields are read as text)."""

    name: str
    table: str
    columns: tuple[str, ...]  # required header columns, in the order raw_record lists them
    values: tuple[str, ...]  # SQL of the raw table's data columns, in the table's order
    reason: str  # SQL CASE naming the first rule a row breaks, null when it loads
    partitioned: bool  # the raw table has `_load_date`


_LEGACY = _CsvSource(
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
            when event_at >= $load_date::date + interval 2 day then 'future_timestamp'
        end
    """,
    partitioned=True,
)
_USERS = _CsvSource(
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
_SUBSCRIPTIONS = _CsvSource(
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


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _csv_fast_sql(source: _CsvSource, header: Sequence[str]) -> str:
    """Read, validate and type a CSV file in one pass.

    Every header column is read (so each row's field count is checked) but only the
    required ones are kept. `raw_record`, the row as CSV text, is built for rejected rows
    only.
    """
    struct = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in header)
    columns = ", ".join(_quote_ident(c) for c in source.columns)
    values = ", ".join(f"{sql} as _v{i}" for i, sql in enumerate(source.values))
    raw_record = ", ".join(f"csv_field({_quote_ident(c)})" for c in source.columns)
    # the legacy reason and value share the parsed timestamp: parse it once
    event_at = 'parse_iso("timestamp")' if source is _LEGACY else "null::timestamp"
    return f"""
        with lines as (
            select ordinality::bigint as ord, {columns}
            from read_csv(
                $path, columns = {{{struct}}}, header = true, delim = ',', quote = '"',
                escape = '"', auto_detect = false, strict_mode = true, null_padding = false,
                max_line_size = {MAX_LINE_BYTES}, store_rejects = true,
                rejects_table = '_reader_rejects', rejects_scan = '_reader_scans'
            ) with ordinality
        ),
        timed as (select *, {event_at} as event_at from lines),
        judged as (select *, {source.reason} as reason from timed)
        select ord, {values}, reason,
               case when reason is not null then concat_ws(',', {raw_record}) end as raw_record
        from judged
    """


def _read_header(path: Path, source_file: str) -> list[str]:
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


def _load_csv_file(
    con: duckdb.DuckDBPyConnection,
    source: _CsvSource,
    path: Path,
    source_file: str,
    load_date: date | None,
    loaded_at: datetime,
) -> FileReport:
    header = _read_header(path, source_file)
    if not header:
        return FileReport(source_file=source_file)  # empty file: nothing to load
    missing = [c for c in source.columns if c not in header]
    if missing:
        raise LoadError(
            f"{source_file}: missing required column(s) {', '.join(missing)} "
            f"(header is {', '.join(header)}; expected {', '.join(source.columns)})"
        )
    if len(set(header)) != len(header):
        raise LoadError(f"{source_file}: duplicate column names in header {', '.join(header)}")
    _stage(
        con,
        _csv_fast_sql(source, header),
        path,
        2,
        source_file,
        {"load_date": load_date} if source.partitioned else None,
    )
    values = ", ".join(f"_v{i}" for i in range(len(source.values)))
    lineage = "$load_date, " if source.partitioned else ""
    params = {"load_date": load_date, "source_file": source_file, "loaded_at": loaded_at}
    con.execute(
        f"""
        insert into {source.table}
        select {values}, {lineage}$source_file, line_number, $loaded_at
        from _numbered where reason is null
        """,
        {k: v for k, v in params.items() if source.partitioned or k != "load_date"},
    )
    _insert_parsed_rejects(con, source.name, "_numbered", "raw_record", params)
    _insert_reader_rejects(con, source.name, load_date, source_file, loaded_at)
    return _file_report(con, source_file, "select reason from _numbered")


def _load_legacy_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_file: str,
    load_date: date,
    loaded_at: datetime,
) -> FileReport:
    return _load_csv_file(con, _LEGACY, path, source_file, load_date, loaded_at)


def _load_users_file(
    con: duckdb.DuckDBPyConnection, path: Path, source_file: str, loaded_at: datetime
) -> FileReport:
    return _load_csv_file(con, _USERS, path, source_file, None, loaded_at)


def _load_subscriptions_file(
    con: duckdb.DuckDBPyConnection, path: Path, source_file: str, loaded_at: datetime
) -> FileReport:
    return _load_csv_file(con, _SUBSCRIPTIONS, path, source_file, None, loaded_at)


# --- public API -----------------------------------------------------------------------------------

_DAILY_LOADERS = {LAUNCHDARKLY.name: _load_launchdarkly_file, LEGACY.name: _load_legacy_file}


def _transaction(con: duckdb.DuckDBPyConnection, work: Callable[[], LoadReport]) -> LoadReport:
    con.execute("begin transaction")
    try:
        report = work()
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    return report


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
    if spec.name not in _DAILY_LOADERS:
        raise ValueError(f"{spec.name} is not a daily source")
    loader = _DAILY_LOADERS[spec.name]
    dates = sorted(set(load_dates))
    loaded_at = loaded_at or datetime.utcnow().replace(microsecond=0)
    _prepare(con)
    report = LoadReport(source=spec.name, load_dates=dates)

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
        for load_date in dates:
            for path in list_files(partition_folder(landing_dir, spec, load_date), spec):
                source_file = relative_name(path, landing_dir)
                file_report = loader(con, path, source_file, load_date, loaded_at)
                report.files.append(file_report)
                pause_point("ingestion", source_file)  # crash tests: killed mid-transaction
                if progress:
                    progress(
                        f"{source_file}: {file_report.loaded} loaded, "
                        f"{file_report.rejected_total} rejected"
                    )
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
    """Replace an unpartitioned source: users (newest file only) or subscriptions (every file)."""
    if spec not in (USERS, SUBSCRIPTIONS):
        raise ValueError(f"{spec.name} is not an unpartitioned source")
    loaded_at = loaded_at or datetime.utcnow().replace(microsecond=0)
    _prepare(con)
    files = list_files(landing_dir / spec.folder, spec)
    if spec is USERS:
        files = files[-1:]  # the newest snapshot (by name) is the current truth
    report = LoadReport(source=spec.name, load_dates=[])

    def work() -> LoadReport:
        con.execute(f"delete from {spec.table}")
        con.execute("delete from raw.rejected_records where source = $s", {"s": spec.name})
        for path in files:
            source_file = relative_name(path, landing_dir)
            loader = _load_users_file if spec is USERS else _load_subscriptions_file
            file_report = loader(con, path, source_file, loaded_at)
            report.files.append(file_report)
            if progress:
                progress(
                    f"{source_file}: {file_report.loaded} loaded, {file_report.rejected_total} rejected"
                )
        return report

    return _transaction(con, work)
