"""Bad input: a catalogue of malformed landing files, each with the outcome it must have.

Every case is one file dropped into the landing zone and loaded with the
real loaders on a real (in-memory) DuckDB. It ends in exactly one of:

- loaded: every line in its raw table;
- rejected: the bad lines in `raw.rejected_records` with their reason, the others loaded;
- a load error naming the file, the partition keeping its previous contents.

For every file that loads, loaded + rejected = lines, counted in the tables
(not in the loader's own report) against the line count written in the case.
For CSV files a "line" is a data record: a quoted newline belongs to its record.

Hostile names: SQL is never built from a file name, folder name, experiment
key or date (they are bound parameters), and file names with glob characters
are read as themselves.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pytest

from expplatform.ingestion.landing import (
    LAUNCHDARKLY,
    LEGACY,
    SUBSCRIPTIONS,
    USERS,
    SourceSpec,
    partition_folder,
    relative_name,
)
from expplatform.ingestion.loaders import LoadError, load_daily_partitions, load_snapshot
from expplatform_tests.conftest import ld_line

D2 = date(2025, 12, 2)  # the arrival date of every daily case
MS = 1764584100000  # 2025-12-01T10:15:00Z in epoch milliseconds
D4_MS = 1764806400000  # 2025-12-04T00:00:00Z: the first instant "more than a day" after D2
LG = "id,user,timestamp,key,variation_name,value"
LG_ROW = "lg-1,u-1,2025-12-01T10:00:00Z,vault_launch,control,1"
SUBS = "subscription_change_id,user_id,tier,effective_at"
USERS_HEADER = "user_id,created_at,country,is_test_account"


def ld(*lines: str, end: str = "\n") -> bytes:
    return "".join(line + end for line in lines).encode()


def csv(*rows: str, end: str = "\n") -> bytes:
    return "".join(row + end for row in rows).encode()


def truncated_gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)[:40]


def ld_event(**event) -> str:
    """A LaunchDarkly line built from a raw `event` object (to give fields wrong types)."""
    return json.dumps({"event_id": "ld-x", "is_active": "Y", "event": event})


GOOD_EVENT = {"kind": "feature", "creationDate": MS, "key": "vault-launch", "variationName": "c"}
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    spec: SourceSpec
    name: str
    data: bytes
    lines: int = 0  # lines (CSV: data records) of the file
    loaded: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # what the LoadError says after the file's name


CASES = [
    # --- LaunchDarkly JSON lines -----------------------------------------------------------------
    Case("ld-truncated-gzip", LAUNCHDARKLY, "a.jsonl.gz", truncated_gzip(ld(ld_line("a", "u", MS)) * 50),
         error="cannot be read"),
    Case("ld-gz-name-plain-bytes", LAUNCHDARKLY, "a.jsonl.gz", ld(ld_line("a", "u", MS)),
         error="cannot be read"),
    Case("ld-empty-file", LAUNCHDARKLY, "a.jsonl", b""),
    Case("ld-blank-lines", LAUNCHDARKLY, "a.jsonl", b"\n\n", 2, 0, {"empty_line": 2}),
    Case("ld-bom", LAUNCHDARKLY, "a.jsonl", "\ufeff".encode() + ld(ld_line("a", "u", MS), ld_line("b", "u", MS)), 2, 2),
    Case("ld-crlf", LAUNCHDARKLY, "a.jsonl", ld(ld_line("a", "u", MS), ld_line("b", "u", MS), end="\r\n"), 2, 2),
    Case("ld-no-final-newline", LAUNCHDARKLY, "a.jsonl", ld_line("a", "u", MS).encode(), 1, 1),
    Case("ld-non-utf8", LAUNCHDARKLY, "a.jsonl",
         ld(ld_line("a", "u", MS)) + ld_line("b", "u", MS).encode().replace(b'"u"', b'"\xe9t\xe9"') + b"\n",
         2, 1, {"invalid_encoding": 1}),
    Case("ld-10mb-line", LAUNCHDARKLY, "a.jsonl",
         ld(ld_line("a", "u", MS), json.dumps({"pad": "x" * TEN_MB}), ld_line("b", "u", MS)),
         3, 2, {"line_too_long": 1}),
    Case("ld-not-json", LAUNCHDARKLY, "a.jsonl", ld("not json", ld_line("a", "u", MS)[:-3]), 2, 0, {"invalid_json": 2}),
    Case("ld-creationdate-string", LAUNCHDARKLY, "a.jsonl", ld(ld_line("a", "u", str(MS))), 1, 0,
         {"invalid_timestamp": 1}),
    Case("ld-contextkeys-missing", LAUNCHDARKLY, "a.jsonl", ld(ld_event(**GOOD_EVENT)), 1, 0,
         {"missing_user_id": 1}),
    Case("ld-value-object", LAUNCHDARKLY, "a.jsonl", ld(ld_line("a", "u", MS, value={"on": True})), 1, 1),
    Case("ld-event-not-object", LAUNCHDARKLY, "a.jsonl", ld('{"event_id": "a", "event": [1]}', "[1, 2]"),
         2, 0, {"missing_event": 2}),
    Case("ld-epoch-seconds", LAUNCHDARKLY, "a.jsonl", ld(ld_line("a", "u", MS // 1000), ld_line("b", "u", MS / 1000)),
         2, 0, {"timestamp_in_seconds": 2}),
    Case("ld-negative-epoch", LAUNCHDARKLY, "a.jsonl", ld(ld_line("a", "u", -MS)), 1, 0, {"invalid_timestamp": 1}),
    Case("ld-future-more-than-a-day", LAUNCHDARKLY, "a.jsonl",
         ld(ld_line("a", "u", D4_MS - 1), ld_line("b", "u", D4_MS), ld_line("c", "u", 4102444800000)),
         3, 1, {"future_timestamp": 2}),
    # --- legacy CSV ------------------------------------------------------------------------------
    Case("lg-truncated-gzip", LEGACY, "a.csv.gz", truncated_gzip(csv(LG, *[LG_ROW] * 50)), error="cannot be read"),
    Case("lg-empty-file", LEGACY, "a.csv", b""),
    Case("lg-header-only", LEGACY, "a.csv", csv(LG)),
    Case("lg-bom-crlf", LEGACY, "a.csv", "\ufeff".encode() + csv(LG, LG_ROW, end="\r\n"), 1, 1),
    Case("lg-non-utf8", LEGACY, "a.csv", csv(LG, LG_ROW) + b"lg-2,\xe9t\xe9,2025-12-01T10:00:00Z,k,c,1\n", 2, 1,
         {"invalid_encoding": 1}),
    Case("lg-10mb-row", LEGACY, "a.csv", csv(LG, f"lg-1,u,2025-12-01T10:00:00Z,k,{'c' * TEN_MB},1", LG_ROW),
         2, 1, {"line_too_long": 1}),
    Case("lg-missing-column", LEGACY, "a.csv", csv("id,user,timestamp,key,value", "lg-1,u,2025-12-01T10:00:00Z,k,1"),
         error=r"missing required column\(s\) variation_name"),
    Case("lg-duplicate-column", LEGACY, "a.csv", csv(LG + ",id", LG_ROW + ",x"), error="duplicate column names"),
    Case("lg-extra-column", LEGACY, "a.csv", csv(LG + ",note", LG_ROW + ",hello"), 1, 1),
    Case("lg-quoted-newline", LEGACY, "a.csv", csv(LG, 'lg-1,u,2025-12-01T10:00:00Z,k,"two\nlines",1', LG_ROW), 2, 2),
    Case("lg-unterminated-quote", LEGACY, "a.csv", csv(LG, 'lg-1,u,2025-12-01T10:00:00Z,k,"c,1', LG_ROW), 1, 0,
         {"malformed_row": 1}),  # the rest of the file is one bad record, kept whole in raw_record
    Case("lg-too-few-too-many-fields", LEGACY, "a.csv", csv(LG, "lg-1,u", LG_ROW + ",x", LG_ROW), 3, 1,
         {"malformed_row": 2}),
    Case("lg-epoch-seconds", LEGACY, "a.csv", csv(LG, "lg-1,u,1764584100,k,c,1"), 1, 0, {"invalid_timestamp": 1}),
    Case("lg-future-more-than-a-day", LEGACY, "a.csv",
         csv(LG, "lg-1,u,2025-12-03T23:59:59Z,k,c,1", "lg-2,u,2025-12-04T00:00:00Z,k,c,1"), 2, 1,
         {"future_timestamp": 1}),
    # --- subscription change log and users snapshot ----------------------------------------------
    Case("subs-unknown-tier", SUBSCRIPTIONS, "a.csv",
         csv(SUBS, "sc-1,u,gold,2025-12-01T00:00:00Z", "sc-2,u,,2025-12-01T00:00:00Z", "sc-3,u,Plus,2025-12-01T00:00:00Z"),
         3, 1, {"invalid_tier": 2}),
    Case("subs-missing-column", SUBSCRIPTIONS, "a.csv", csv("subscription_change_id,user_id,effective_at"),
         error=r"missing required column\(s\) tier"),
    Case("users-missing-column", USERS, "a.csv", csv("user_id,created_at,country", "u,2025-01-01T00:00:00Z,DE"),
         error=r"missing required column\(s\) is_test_account"),
    Case("users-quoted-header-crlf", USERS, "a.csv",
         csv('"user_id","created_at","country","is_test_account"', "u,2025-01-01T00:00:00Z,DE,false", end="\r\n"), 1, 1),
]  # fmt: skip


def folder_of(landing: Path, spec: SourceSpec) -> Path:
    return partition_folder(landing, spec, D2) if spec.partitioned else landing / spec.folder


def load(con: duckdb.DuckDBPyConnection, spec: SourceSpec, landing: Path):
    if spec.partitioned:
        return load_daily_partitions(con, spec, landing, [D2])
    return load_snapshot(con, spec, landing)


def everything(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "select 'ld', event_id, _source_file, _line_number from raw.partner_directpush_launchdarkly_events "
        "union all select 'lg', id, _source_file, _line_number from raw.legacy_feature_flag_events "
        "union all select 'users', user_id, _source_file, _line_number from raw.users "
        "union all select 'subs', subscription_change_id, _source_file, _line_number from raw.subscription_changes "
        "union all select reason, raw_record, _source_file, line_number from raw.rejected_records "
        "order by all"
    ).fetchall()


def test_the_catalogue_covers_the_issue():
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES)
    outcomes = {"error" if c.error else "rejected" if c.rejected else "loaded" for c in CASES}
    assert outcomes == {"error", "rejected", "loaded"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_input(case: Case, con, landing: Path):
    folder = folder_of(landing, case.spec)
    folder.mkdir(parents=True, exist_ok=True)
    # A good file loaded first: an unreadable file must leave what was there.
    good_name = "0-good.csv" if case.spec is not LAUNCHDARKLY else "0-good.jsonl"
    good = {
        LAUNCHDARKLY: ld(ld_line("ld-good", "u", MS)),
        LEGACY: csv(LG, "lg-good,u,2025-12-01T10:00:00Z,k,c,1"),
        SUBSCRIPTIONS: csv(SUBS, "sc-good,u,plus,2025-12-01T00:00:00Z"),
        USERS: csv(USERS_HEADER, "u-good,2025-01-01T00:00:00Z,DE,false"),
    }[case.spec]
    (folder / good_name).write_bytes(good)
    if case.spec is USERS:  # only the newest users snapshot is read: the case file must sort last
        assert case.name > good_name
    load(con, case.spec, landing)
    before = everything(con)
    path = folder / case.name
    path.write_bytes(case.data)
    source_file = relative_name(path, landing)

    if case.error:
        with pytest.raises(LoadError, match=rf"^{source_file}: {case.error}"):
            load(con, case.spec, landing)
        assert everything(con) == before, "a failed load changed the tables"
        return

    report = load(con, case.spec, landing)
    (file_report,) = [f for f in report.files if f.source_file == source_file]
    table = case.spec.table
    loaded = con.execute(
        f"select count(*) from {table} where _source_file = ?", [source_file]
    ).fetchone()[0]
    rejected = dict(
        con.execute(
            "select reason, count(*) from raw.rejected_records where _source_file = ? group by 1",
            [source_file],
        ).fetchall()
    )
    assert (loaded, rejected) == (case.loaded, case.rejected)
    assert loaded + sum(rejected.values()) == case.lines == file_report.lines
    assert (file_report.loaded, dict(file_report.rejected)) == (case.loaded, case.rejected)
    # line numbers: each line of the file exactly once, in its table or among the rejects
    numbers = con.execute(
        f"select _line_number from {table} where _source_file = $f union all "
        "select line_number from raw.rejected_records where _source_file = $f order by 1",
        {"f": source_file},
    ).fetchall()
    first = 1 if case.spec is LAUNCHDARKLY else 2
    assert [n for (n,) in numbers] == list(range(first, first + case.lines))
    if case.spec is USERS:
        return  # only the newest snapshot is read: the good file is no longer loaded
    # the good file is untouched by its neighbour
    good_file = relative_name(folder / good_name, landing)
    assert [r for r in everything(con) if r[2] == good_file] == [
        r for r in before if r[2] == good_file
    ]


def test_glob_characters_in_file_names_read_that_file_only(con, landing: Path):
    """DuckDB's readers expand globs: `part[1]` must not read `part1`, nor `*` every file."""
    folder = partition_folder(landing, LAUNCHDARKLY, D2)
    folder.mkdir(parents=True)
    names = ["part1.jsonl", "part[1].jsonl", "p*.jsonl", "p?rt.jsonl", "part.jsonl"]
    for i, name in enumerate(names):
        (folder / name).write_bytes(ld(ld_line(f"ld-{i}", f"u-{i}", MS)))
    load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])
    rows = con.execute(
        "select _source_file, event_id from raw.partner_directpush_launchdarkly_events order by 1"
    ).fetchall()
    assert sorted(rows) == sorted(
        (f"launchdarkly/date=2025-12-02/{name}", f"ld-{i}") for i, name in enumerate(names)
    )


HOSTILE = """it's "quoted"; drop table raw.users; --"""


def test_hostile_folder_and_file_names_are_data_not_sql(con, tmp_path: Path):
    landing = tmp_path / f"landing {HOSTILE} [x]*"
    folder = partition_folder(landing, LAUNCHDARKLY, D2)
    folder.mkdir(parents=True)
    name = f"{HOSTILE}.jsonl"
    (folder / name).write_bytes(ld(ld_line("ld-1", "u-1", MS), "not json"))
    users = landing / "users"
    users.mkdir()
    (users / f"{HOSTILE}.csv").write_bytes(csv(USERS_HEADER, "u-1,2025-01-01T00:00:00Z,DE,false"))

    load_snapshot(con, USERS, landing)
    load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])
    load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])  # replaced, not duplicated

    source_file = f"launchdarkly/date=2025-12-02/{name}"
    assert con.execute(
        "select event_id, _source_file from raw.partner_directpush_launchdarkly_events"
    ).fetchall() == [("ld-1", source_file)]
    assert con.execute(
        "select _source_file, line_number, reason from raw.rejected_records"
    ).fetchall() == [(source_file, 2, "invalid_json")]
    assert con.execute("select user_id, _source_file from raw.users").fetchall() == [
        ("u-1", f"users/{HOSTILE}.csv")
    ]


@pytest.mark.slow
def test_report_with_a_hostile_experiment_key_breaks_nothing(built):
    env = {**os.environ, "EXPPLATFORM_DUCKDB_PATH": str(built.duckdb_path)}
    before = duckdb_counts(built.duckdb_path)
    for key in ("x'; drop table marts.dim_users; --", 'vault-launch" or 1=1 --', "%", "*"):
        result = subprocess.run(
            [sys.executable, "-m", "expplatform.cli", "report", "--experiment", key],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert f"no allocation rows for experiment {key!r}" in result.stderr
        assert "Traceback" not in result.stderr
    assert duckdb_counts(built.duckdb_path) == before


def duckdb_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = 'marts'"
        ).fetchall()
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for (t,) in tables}
    finally:
        con.close()
