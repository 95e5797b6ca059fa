"""LaunchDarkly JSON lines → `raw.partner_directpush_launchdarkly_events` (contract §2.1, §2.5).

Each line takes one of two paths. The fast path types every field of every line in one
parse (`json_transform`) and loads the lines whose typed fields pass every rule: nearly all
of them. The others keep their text and go through the slow path, which parses them field
by field with the JSON path functions and names the first rule they break, in the
contract's order: an empty line, invalid JSON, an `event` that is not an object, a missing
id, a `creationDate` that is a string, in seconds or in the future, ... The slow path is the
loader's former single path; the fast path accepts only lines that it would load, with the
same values (checked row for row against it, expplatform_tests/test_ingestion.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import duckdb

from expplatform.ingestion.batches import (
    FileReport,
    LandedFile,
    file_reports,
    insert_parsed_rejects,
    insert_reader_rejects,
    read_lines_sql,
    stage_batch,
)

TABLE = "raw.partner_directpush_launchdarkly_events"

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


def fast_sql(i: int) -> str:
    """Read batch file `i` and type its lines; `clean` marks the lines loaded as they are.

    A clean line is valid JSON with a non-blank event id and user id and a numeric
    `creationDate` between 10^11 ms and the load's limit: exactly the lines the slow
    path would load, with the same values. Every other line keeps its text (`line`) for
    the slow path, which names its reason; clean lines drop it, so the temp table holds
    typed values only.
    """
    struct = _LD_STRUCT.replace("'", "''")
    return f"""
        with lines as ({read_lines_sql(i)}),
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
                       and event_at < $load_date_{i}::date + interval 2 day,
                       false
                   ) as clean
            from timed
        )
        select * exclude (line, creation_ms), case when not clean then line end as line
        from judged
    """


def slow_sql() -> str:
    """The reason of every line the fast path did not load (and the values, should it load).

    Each line is parsed with `json_extract_string` over the list of paths (every field as
    text) and `json_extract` of the two values whose JSON type matters (is `event` an
    object, is `creationDate` a number); the reasons are checked in the contract's order.
    """
    paths_sql = "[" + ", ".join(f"'{p}'" for p in _LD_PATHS) + "]"
    return f"""
        with extracted as (
            select file_idx, line_number, load_date, line,
                   case when json_valid(line) then json_extract_string(line, {paths_sql}) end as v,
                   case when json_valid(line)
                        then json_extract(line, ['$.event', '$.event.creationDate']) end as j
            from _slow_lines join _batch_files using (file_idx)
        ),
        typed as (
            select file_idx, line_number, load_date, line, v is not null as is_json,
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
        select * exclude (load_date),
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
                   when epoch_ms(creation_ms::bigint) >= load_date + interval 2 day
                       then 'future_timestamp'
               end as reason
        from timed
    """


def load_batch(
    con: duckdb.DuckDBPyConnection, files: Sequence[LandedFile], loaded_at: datetime
) -> list[FileReport]:
    """Load a batch of LaunchDarkly files (inside the caller's transaction)."""
    stage_batch(con, files, fast_sql, first_line=1, uses_load_date=True)
    con.execute(
        f"""
        insert into {TABLE}
        select {_LD_INSERT_COLUMNS}, load_date, source_file, line_number, $loaded_at
        from _numbered join _batch_files using (file_idx)
        where clean
        """,
        {"loaded_at": loaded_at},
    )
    con.execute(
        """
        create or replace temp table _slow_lines as
        select file_idx, line_number, line from _numbered where not clean
        """
    )
    con.execute(f"create or replace temp table _parsed as {slow_sql()}")
    con.execute(
        f"""
        insert into {TABLE}
        select {_LD_INSERT_COLUMNS}, load_date, source_file, line_number, $loaded_at
        from _parsed join _batch_files using (file_idx)
        where reason is null
        """,
        {"loaded_at": loaded_at},
    )
    insert_parsed_rejects(con, "launchdarkly", "_parsed", "coalesce(line, '')", loaded_at)
    insert_reader_rejects(con, "launchdarkly", loaded_at)
    return file_reports(
        con,
        files,
        "select file_idx, null::varchar as reason from _fast where clean "
        "union all select file_idx, reason from _parsed",
    )
