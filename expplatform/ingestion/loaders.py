"""Load landing-zone files into the raw tables with DuckDB's readers (contract §2).

Every file is read by DuckDB (`read_csv`, gzip handled by the reader), never
line by line in Python. Lines the reader itself cannot take (bad encoding,
wrong number of CSV fields, over-long lines) come back through DuckDB's
rejects tables; every other rule is SQL over the lines. Each line ends either
in its raw table or in `raw.rejected_records` with a reason, so for every
file `loaded + rejected = lines`.

A load of daily partitions replaces exactly those partitions (raw rows and
rejected records) inside one transaction: a file that cannot be read rolls
the whole load back and the partitions keep their previous contents.
"""

from __future__ import annotations

import csv
import gzip
import io
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

# Scalar JSON value → text: strings unquoted, everything else as its JSON text
# (so `true`, `1` and `{"a": 1}` survive as written); JSON null → SQL null.
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


def _read_csv_sql(columns: Sequence[str]) -> str:
    struct = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
    return f"""
        select ordinality::bigint as ord, *
        from read_csv(
            $path, columns = {{{struct}}}, header = true, delim = ',', quote = '"', escape = '"',
            auto_detect = false, strict_mode = true, null_padding = false,
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


def _read_header(path: Path) -> list[str]:
    """The CSV header of a file (BOM and CRLF tolerated); [] for an empty file."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        first = fh.readline(MAX_LINE_BYTES)
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text.strip():
        return []
    return [c.strip() for c in next(csv.reader(io.StringIO(text)))]


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first[:300]


def _stage_lines(
    con: duckdb.DuckDBPyConnection, read_sql: str, path: Path, first_line: int, source_file: str
) -> None:
    """Read a file into temp tables `_lines` (accepted, numbered) and `_reader_rejected`.

    `first_line` is the number of the first data line (1 for JSONL, 2 for CSV
    whose line 1 is the header). Line numbers of accepted lines are recovered
    by skipping the numbers the reader rejected.
    """
    con.execute("drop table if exists _reader_rejects; drop table if exists _reader_scans")
    try:
        con.execute(
            f"create or replace temp table _raw_lines as {read_sql}",
            {"path": duckdb_file_path(path)},
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
            f"create or replace temp table _lines as "
            f"select ord + {first_line - 1} as line_number, * exclude (ord) from _raw_lines"
        )
        return
    # The k-th accepted line is the k-th line number that the reader did not reject.
    con.execute(
        f"""
        create or replace temp table _lines as
        with numbers as (
            select range + {first_line} as line_number
            from range((select count(*) from _raw_lines) + {n_rejected})
        ),
        accepted as (
            select line_number, row_number() over (order by line_number) as ord
            from numbers
            where line_number not in (select line_number from _reader_rejected)
        )
        select accepted.line_number, _raw_lines.* exclude (ord)
        from _raw_lines join accepted using (ord)
        """
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


def _load_launchdarkly_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_file: str,
    load_date: date,
    loaded_at: datetime,
) -> FileReport:
    _stage_lines(con, _read_lines_sql(), path, 1, source_file)
    paths_sql = "[" + ", ".join(f"'{p}'" for p in _LD_PATHS) + "]"
    # Each valid line is parsed twice in all: json_extract_string with the list of paths gives
    # every field as text (strings unquoted, JSON null as NULL, objects and numbers as their
    # JSON text), and json_extract of two paths gives the JSON values whose type matters (is
    # `event` an object, is `creationDate` a number). Extracting every field as JSON and
    # converting each to text re-parsed every field: 20-30% slower on a 3M-line day.
    con.execute(
        f"""
        create or replace temp table _parsed as
        with extracted as (
            select line_number, line,
                   case when json_valid(line) then json_extract_string(line, {paths_sql}) end as v,
                   case when json_valid(line)
                        then json_extract(line, ['$.event', '$.event.creationDate']) end as j
            from _lines
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
        """,
        {"load_date": load_date},
    )
    params = {"load_date": load_date, "source_file": source_file, "loaded_at": loaded_at}
    con.execute(
        """
        insert into raw.partner_directpush_launchdarkly_events
        select trim(event_id), is_active, project, environment, event_kind, event_at, event_key,
               event_version, trim(user_id), event_variation, variation_name, event_value,
               event_default, reason_kind, in_experiment, prereq_of,
               $load_date, $source_file, line_number, $loaded_at
        from _parsed where reason is null
        """,
        params,
    )
    _insert_parsed_rejects(con, "launchdarkly", "coalesce(line, '')", params)
    _insert_reader_rejects(con, "launchdarkly", load_date, source_file, loaded_at)
    return _file_report(con, "launchdarkly", source_file)


def _insert_parsed_rejects(
    con: duckdb.DuckDBPyConnection, source: str, raw_expr: str, params: dict
) -> None:
    con.execute(
        f"""
        insert into raw.rejected_records
        select $source, $load_date, $source_file, line_number, {raw_expr}, reason, $loaded_at
        from _parsed where reason is not null
        """,
        {**params, "source": source},
    )


def _file_report(con: duckdb.DuckDBPyConnection, source: str, source_file: str) -> FileReport:
    loaded, rejected = con.execute(
        "select count(*) filter (where reason is null), count(*) filter (where reason is not null) "
        "from _parsed"
    ).fetchone()
    reader_rows = con.execute(
        "select error_type, count(*) from _reader_rejected group by error_type"
    ).fetchall()
    report = FileReport(source_file=source_file, loaded=loaded)
    report.rejected.update(
        dict(
            con.execute(
                "select reason, count(*) from _parsed where reason is not null group by reason"
            ).fetchall()
        )
    )
    for error_type, n in reader_rows:
        report.rejected[READER_REASONS.get(error_type, "malformed_line")] += n
    report.lines = loaded + rejected + sum(n for _, n in reader_rows)
    return report


# --- CSV sources --------------------------------------------------------------------------------


def _stage_csv(
    con: duckdb.DuckDBPyConnection, path: Path, source_file: str, required: Sequence[str]
) -> bool:
    """Stage a CSV file into `_lines`; False for an empty file (nothing to load)."""
    try:
        header = _read_header(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise LoadError(f"{source_file}: cannot be read: {exc}") from None
    if not header:
        return False
    missing = [c for c in required if c not in header]
    if missing:
        raise LoadError(
            f"{source_file}: missing required column(s) {', '.join(missing)} "
            f"(header is {', '.join(header)}; expected {', '.join(required)})"
        )
    if len(set(header)) != len(header):
        raise LoadError(f"{source_file}: duplicate column names in header {', '.join(header)}")
    # Extra columns are read (so the field count of each row is checked) and then ignored.
    _stage_lines(con, _read_csv_sql(header), path, 2, source_file)
    return True


def _empty_parsed(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "create or replace temp table _parsed as select 1 as x, null::varchar as reason where false"
    )
    con.execute(
        "create or replace temp table _reader_rejected as select null::varchar as error_type where false"
    )


def _load_legacy_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_file: str,
    load_date: date,
    loaded_at: datetime,
) -> FileReport:
    if not _stage_csv(con, path, source_file, LEGACY_COLUMNS):
        _empty_parsed(con)
        return _file_report(con, "legacy", source_file)
    con.execute(
        """
        create or replace temp table _parsed as
        select line_number, id, "user", "timestamp", key, variation_name, value,
               parse_iso("timestamp") as event_at,
               concat_ws(',', csv_field(id), csv_field("user"), csv_field("timestamp"), csv_field(key),
                         csv_field(variation_name), csv_field(value)) as raw_record,
               case
                   when blank(id) then 'missing_event_id'
                   when blank("user") then 'missing_user_id'
                   when blank("timestamp") then 'missing_timestamp'
                   when not iso_datetime_ok("timestamp") or parse_iso("timestamp") is null
                       then 'invalid_timestamp'
                   when parse_iso("timestamp") >= $load_date::date + interval 2 day
                       then 'future_timestamp'
               end as reason
        from _lines
        """,
        {"load_date": load_date},
    )
    params = {"load_date": load_date, "source_file": source_file, "loaded_at": loaded_at}
    con.execute(
        """
        insert into raw.legacy_feature_flag_events
        select trim(id), trim("user"), event_at, key, variation_name, parse_bool(value), value,
               $load_date, $source_file, line_number, $loaded_at
        from _parsed where reason is null
        """,
        params,
    )
    _insert_parsed_rejects(con, "legacy", "raw_record", params)
    _insert_reader_rejects(con, "legacy", load_date, source_file, loaded_at)
    return _file_report(con, "legacy", source_file)


def _load_users_file(
    con: duckdb.DuckDBPyConnection, path: Path, source_file: str, loaded_at: datetime
) -> FileReport:
    if not _stage_csv(con, path, source_file, USERS_COLUMNS):
        _empty_parsed(con)
        return _file_report(con, "users", source_file)
    con.execute(
        """
        create or replace temp table _parsed as
        select line_number, user_id, created_at, country, is_test_account,
               concat_ws(',', csv_field(user_id), csv_field(created_at), csv_field(country),
                         csv_field(is_test_account)) as raw_record,
               case
                   when blank(user_id) then 'missing_user_id'
                   when not blank(created_at)
                        and (not iso_datetime_ok(created_at) or parse_iso(created_at) is null)
                       then 'invalid_timestamp'
               end as reason
        from _lines
        """
    )
    params = {"load_date": None, "source_file": source_file, "loaded_at": loaded_at}
    con.execute(
        """
        insert into raw.users
        select trim(user_id), parse_iso(created_at), nullif(trim(country), ''),
               parse_bool(is_test_account), $source_file, line_number, $loaded_at
        from _parsed where reason is null
        """,
        {"source_file": source_file, "loaded_at": loaded_at},
    )
    _insert_parsed_rejects(con, "users", "raw_record", params)
    _insert_reader_rejects(con, "users", None, source_file, loaded_at)
    return _file_report(con, "users", source_file)


def _load_subscriptions_file(
    con: duckdb.DuckDBPyConnection, path: Path, source_file: str, loaded_at: datetime
) -> FileReport:
    if not _stage_csv(con, path, source_file, SUBSCRIPTION_COLUMNS):
        _empty_parsed(con)
        return _file_report(con, "subscriptions", source_file)
    tiers = ", ".join(f"'{t}'" for t in TIERS)
    con.execute(
        f"""
        create or replace temp table _parsed as
        select line_number, subscription_change_id, user_id, tier, effective_at,
               concat_ws(',', csv_field(subscription_change_id), csv_field(user_id), csv_field(tier),
                         csv_field(effective_at)) as raw_record,
               case
                   when blank(subscription_change_id) then 'missing_event_id'
                   when blank(user_id) then 'missing_user_id'
                   when blank(effective_at) then 'missing_timestamp'
                   when not iso_datetime_ok(effective_at) or parse_iso(effective_at) is null
                       then 'invalid_timestamp'
                   when lower(trim(tier)) not in ({tiers}) or tier is null then 'invalid_tier'
               end as reason
        from _lines
        """
    )
    params = {"load_date": None, "source_file": source_file, "loaded_at": loaded_at}
    con.execute(
        """
        insert into raw.subscription_changes
        select trim(subscription_change_id), trim(user_id), lower(trim(tier)), parse_iso(effective_at),
               $source_file, line_number, $loaded_at
        from _parsed where reason is null
        """,
        {"source_file": source_file, "loaded_at": loaded_at},
    )
    _insert_parsed_rejects(con, "subscriptions", "raw_record", params)
    _insert_reader_rejects(con, "subscriptions", None, source_file, loaded_at)
    return _file_report(con, "subscriptions", source_file)


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
