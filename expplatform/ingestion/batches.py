"""Reading a batch of landing files with DuckDB in one statement (shared by the loaders).

A batch is a few files of one source. Each file is read by its own DuckDB reader call
(`read_csv`, gzip handled by the reader) numbered `with ordinality`, and the calls are
joined with `union all` into one statement that creates the temp table `_fast`. DuckDB
runs the branches of that statement on its threads at once, so a batch of several files
uses every core even though a gzip file can only be read by one thread; within a file,
ordinality follows the file's line order.

After `stage_batch`:

- `_fast` holds one row per line the reader accepted: `file_idx` (the file's place in the
  batch), `ord` (its rank among the file's accepted lines) and what the loader's SQL
  computed from the line;
- `_reader_rejected(file_idx, line_number, error_type, raw_record)` holds the lines the
  reader itself refused (bad encoding, wrong field count, over-long line);
- the view `_numbered` adds each accepted line's `line_number` in its file (the k-th
  accepted line is the k-th line number the reader did not refuse);
- `_batch_files(file_idx, source_file, load_date)` gives each file's lineage.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

#: Lines longer than this are rejected (reason `line_too_long`), not loaded.
MAX_LINE_BYTES = 1_000_000

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


@dataclass(frozen=True)
class LandedFile:
    """One file to load: where it is, the name `_source_file` records, its partition."""

    path: Path
    source_file: str
    load_date: date | None  # the arrival date of a daily source; None for snapshots


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Session settings and macros the loaders' SQL relies on."""
    con.execute("set TimeZone = 'UTC'")
    con.execute(_MACROS)


def duckdb_file_path(path: Path) -> str:
    """`path` as DuckDB's readers must receive it to read that one file.

    The readers expand glob patterns: a file named `part[1].jsonl` would read
    `part1.jsonl` instead, and `*.jsonl` every file of the folder. Each of
    `[ * ?` becomes a one-character class (`[[]`, `[*]`, `[?]`), which matches
    only itself.
    """
    return "".join(f"[{c}]" if c in "[*?" else c for c in str(path))


def rejects_options(i: int) -> str:
    """read_csv options that keep the lines refused by the reader of batch file `i`."""
    return (
        f"max_line_size = {MAX_LINE_BYTES}, store_rejects = true, "
        f"rejects_table = '_reader_rejects_{i}', rejects_scan = '_reader_scans_{i}'"
    )


def read_lines_sql(i: int) -> str:
    """Batch file `i` (`$path_i`) as one VARCHAR `line` per physical line, numbered `ord`.

    NUL as delimiter and no quoting, so that the reader never splits a JSON line.
    """
    return f"""
        select ordinality::bigint as ord, line
        from read_csv(
            $path_{i}, columns = {{'line': 'VARCHAR'}}, header = false, delim = '\\0',
            quote = '', escape = '', auto_detect = false, strict_mode = false,
            {rejects_options(i)}
        ) with ordinality
    """


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first[:300]


def _params(files: Sequence[LandedFile], uses_load_date: bool) -> dict[str, object]:
    params: dict[str, object] = {}
    for i, f in enumerate(files):
        params.update(_file_params(i, f, uses_load_date))
    return params


def _file_params(i: int, f: LandedFile, uses_load_date: bool) -> dict[str, object]:
    params: dict[str, object] = {f"path_{i}": duckdb_file_path(f.path)}
    if uses_load_date:
        params[f"load_date_{i}"] = f.load_date
    return params


def _name_unreadable_file(
    files: Sequence[LandedFile], branch_sql: Callable[[int], str], uses_load_date: bool
) -> LoadError:
    """The LoadError of the first file of a failed batch that cannot be read on its own.

    The failed statement aborted the load's transaction, so each file is tried again on a
    private in-memory connection.
    """
    probe = duckdb.connect()
    try:
        prepare(probe)
        for i, f in enumerate(files):
            try:
                probe.execute(
                    f"select count(*) from ({branch_sql(i)})", _file_params(i, f, uses_load_date)
                )
            except duckdb.Error as exc:
                return LoadError(f"{f.source_file}: cannot be read: {_describe(exc)}")
    finally:
        probe.close()
    names = ", ".join(f.source_file for f in files)
    return LoadError(f"{names}: cannot be read together (each file reads on its own)")


def stage_batch(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[LandedFile],
    branch_sql: Callable[[int], str],
    *,
    first_line: int,
    uses_load_date: bool,
) -> None:
    """Read and parse `files` in one statement into `_fast`, `_numbered`, `_reader_rejected`.

    `branch_sql(i)` reads batch file `i` (`$path_i`, and `$load_date_i` when
    `uses_load_date`) and returns `ord` plus the loader's columns. `first_line` is the
    number of a file's first data line (1 for JSONL, 2 for CSV whose line 1 is the header).
    A file that cannot be read raises LoadError naming it.
    """
    for i in range(len(files)):
        con.execute(f"drop table if exists _reader_rejects_{i}")
        con.execute(f"drop table if exists _reader_scans_{i}")
    union = "\nunion all\n".join(
        f"select {i} as file_idx, * from ({branch_sql(i)})" for i in range(len(files))
    )
    try:
        con.execute(
            f"create or replace temp table _fast as {union}", _params(files, uses_load_date)
        )
    except duckdb.Error as exc:
        if len(files) == 1:
            raise LoadError(f"{files[0].source_file}: cannot be read: {_describe(exc)}") from None
        raise _name_unreadable_file(files, branch_sql, uses_load_date) from None

    con.execute(
        "create or replace temp table _batch_files "
        "(file_idx integer, source_file varchar, load_date date)"
    )
    con.executemany(
        "insert into _batch_files values (?, ?, ?)",
        [(i, f.source_file, f.load_date) for i, f in enumerate(files)],
    )
    rejects = "\nunion all\n".join(
        f"select {i} as file_idx, line, error_type, csv_line from _reader_rejects_{i}"
        for i in range(len(files))
    )
    con.execute(
        f"""
        create or replace temp table _reader_rejected as
        select file_idx, line::bigint as line_number,
               coalesce(max(error_type), 'UNKNOWN') as error_type,
               trim(max(csv_line), chr(10) || chr(13)) as raw_record
        from ({rejects})
        group by file_idx, line
        """
    )
    if con.execute("select count(*) from _reader_rejected").fetchone()[0] == 0:
        con.execute(
            f"create or replace temp view _numbered as "
            f"select ord + {first_line - 1} as line_number, * from _fast"
        )
        return
    # Rare: in a file where the reader refused lines, the k-th accepted line is the k-th
    # line number it did not refuse.
    con.execute(
        f"""
        create or replace temp table _line_map as
        with refused as (
            select file_idx, count(*) as n from _reader_rejected group by file_idx
        ),
        accepted as (
            select file_idx, count(*) as n from _fast semi join refused using (file_idx)
            group by file_idx
        ),
        numbers as (
            select file_idx,
                   unnest(range({first_line}, {first_line} + accepted.n + refused.n)) as line_number
            from accepted join refused using (file_idx)
        )
        select file_idx, line_number,
               row_number() over (partition by file_idx order by line_number) as ord
        from numbers anti join _reader_rejected using (file_idx, line_number)
        """
    )
    con.execute(
        f"""
        create or replace temp view _numbered as
        select coalesce(_line_map.line_number, _fast.ord + {first_line - 1}) as line_number,
               _fast.*
        from _fast left join _line_map using (file_idx, ord)
        """
    )


def insert_reader_rejects(con: duckdb.DuckDBPyConnection, source: str, loaded_at: datetime) -> None:
    """Record the lines the reader refused, with the reason its error type maps to."""
    cases = " ".join(f"when '{k}' then '{v}'" for k, v in READER_REASONS.items())
    con.execute(
        f"""
        insert into raw.rejected_records
        select $source, load_date, source_file, line_number, raw_record,
               case error_type {cases} else 'malformed_line' end, $loaded_at
        from _reader_rejected join _batch_files using (file_idx)
        """,
        {"source": source, "loaded_at": loaded_at},
    )


def insert_parsed_rejects(
    con: duckdb.DuckDBPyConnection, source: str, table: str, raw_expr: str, loaded_at: datetime
) -> None:
    """Record the rows of `table` (file_idx, line_number, reason) that have a reason."""
    con.execute(
        f"""
        insert into raw.rejected_records
        select $source, load_date, source_file, line_number, {raw_expr}, reason, $loaded_at
        from {table} join _batch_files using (file_idx)
        where reason is not null
        """,
        {"source": source, "loaded_at": loaded_at},
    )


def file_reports(
    con: duckdb.DuckDBPyConnection, files: Sequence[LandedFile], verdicts_sql: str
) -> list[FileReport]:
    """Each file's outcome: `verdicts_sql` gives `file_idx, reason` for every line the reader
    accepted (reason null when the line was loaded); the reader's own refusals are added."""
    reports = [FileReport(source_file=f.source_file) for f in files]
    for i, reason, n in con.execute(
        f"select file_idx, reason, count(*) from ({verdicts_sql}) group by all"
    ).fetchall():
        if reason is None:
            reports[i].loaded = n
        else:
            reports[i].rejected[reason] += n
    for i, error_type, n in con.execute(
        "select file_idx, error_type, count(*) from _reader_rejected group by all"
    ).fetchall():
        reports[i].rejected[READER_REASONS.get(error_type, "malformed_line")] += n
    for report in reports:
        report.lines = report.loaded + report.rejected_total
    return reports
