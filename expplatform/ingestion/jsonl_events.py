"""The generic parser of a flag vendor's JSONL export: one flat-ish JSON event a line.

A source of format `jsonl_events` says in its registry entry (expplatform/sources.py) where
each field is in the JSON (`options["fields"]`: raw column → JSON path) and how its timestamp
is written (`options["timestamp"]`: `iso` or `epoch_ms`). The raw table has those columns
(declared, with types, in the source's dbt sources YAML) plus the lineage columns. Every line
is loaded or rejected with the contract's reasons (§2.5), so for every file
loaded + rejected = lines, like the LaunchDarkly and legacy loaders.

Required fields: `event_id`, `user_id`, `event_at`; any others (flag key, variation, ...) are
copied as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb

from expplatform.ingestion.batches import (
    LandedFile,
    file_reports,
    insert_parsed_rejects,
    insert_reader_rejects,
    read_lines_sql,
    stage_batch,
)
from expplatform.sources import Source

REQUIRED = ("event_id", "user_id", "event_at")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _options(source: Source) -> tuple[dict[str, str], str]:
    fields = dict(source.options.get("fields") or {})
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        raise ValueError(
            f"source {source.name}: format jsonl_events needs options['fields'] with "
            f"{', '.join(missing)} (raw column -> JSON path)"
        )
    unit = source.options.get("timestamp", "iso")
    if unit not in ("iso", "epoch_ms"):
        raise ValueError(f"source {source.name}: options['timestamp'] is iso or epoch_ms")
    return fields, unit


def parse_sql(source: Source) -> str:
    """Each staged line's field values (as text) and its rejection reason, if any."""
    fields, unit = _options(source)
    names = list(fields)
    paths = "[" + ", ".join(_literal(fields[n]) for n in names) + "]"
    values = ",\n               ".join(f"v[{i + 1}] as {n}" for i, n in enumerate(names))
    if unit == "iso":
        event_at = "parse_iso(event_at)"
        invalid = "not iso_datetime_ok(event_at) or parse_iso(event_at) is null"
        seconds = "false"
    else:
        event_at = "try(epoch_ms(try_cast(event_at as double)::bigint))"
        invalid = f"try_cast(event_at as double) is null or {event_at} is null"
        seconds = "try_cast(event_at as double) < 1e11"
    return f"""
        with extracted as (
            select file_idx, line_number, load_date, line,
                   case when json_valid(line) and json_type(line) = 'OBJECT'
                        then json_extract_string(line, {paths}) end as v
            from _numbered join _batch_files using (file_idx)
        ),
        typed as (
            select file_idx, line_number, load_date, line, v is not null as is_json,
                   {values}
            from extracted
        )
        select * exclude (event_at, load_date), {event_at} as event_at,
               case
                   when line is null or trim(line) = '' then 'empty_line'
                   when not is_json then 'invalid_json'
                   when blank(event_id) then 'missing_event_id'
                   when blank(user_id) then 'missing_user_id'
                   when blank(event_at) then 'missing_timestamp'
                   when {invalid} then 'invalid_timestamp'
                   when {seconds} then 'timestamp_in_seconds'
                   when {event_at} >= load_date + interval 2 day then 'future_timestamp'
               end as reason
        from typed
    """


def load_batch(
    con: duckdb.DuckDBPyConnection, source: Source, files: Sequence[LandedFile], at: datetime
) -> list:
    """Load a batch of the source's files into its raw table (inside the caller's transaction)."""
    fields, _ = _options(source)
    stage_batch(con, files, read_lines_sql, first_line=1, uses_load_date=False)
    con.execute(f"create or replace temp table _parsed as {parse_sql(source)}")
    columns = ", ".join(f'"{n}"' for n in fields)
    text = ", ".join(f"trim({n})" if n in ("event_id", "user_id") else n for n in fields)
    con.execute(
        f"""
        insert into {source.raw_table} ({columns}, _load_date, _source_file, _line_number, _loaded_at)
        select {text}, load_date, source_file, line_number, $loaded_at
        from _parsed join _batch_files using (file_idx)
        where reason is null
        """,
        {"loaded_at": at},
    )
    insert_parsed_rejects(con, source.name, "_parsed", "coalesce(line, '')", at)
    insert_reader_rejects(con, source.name, at)
    return file_reports(con, files, "select file_idx, reason from _parsed")
