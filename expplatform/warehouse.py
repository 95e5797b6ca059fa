"""The DuckDB warehouse: connections, the schemas the Python side owns, retries on the lock.

DuckDB allows one writing process; a second process (writer or, on DuckDB 2.0,
even a reader) fails with a lock error while another holds the file. Dagster
serialises our own steps with a pool of one; `connect()` additionally waits
and retries with a clear message, so a CLI reader never crashes on a busy
warehouse.

A process killed while writing leaves `<file>.wal` behind. DuckDB replays its
committed transactions (and drops uncommitted ones) when the file is next
opened; `connect()` says so in one line. Failure handling is described in
docs/RELIABILITY.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

#: Raw tables written by the ingestion assets (contract §2) and the ops
#: bookkeeping read by the incremental dbt models (docs/ARCHITECTURE.md).
DDL = """
create schema if not exists raw;
create schema if not exists ops;

create table if not exists raw.partner_directpush_launchdarkly_events (
    event_id varchar,
    is_active varchar,
    project varchar,
    environment varchar,
    event_kind varchar,
    event_creationdate timestamp,
    event_key varchar,
    event_version bigint,
    event_contextkeys_user varchar,
    event_variation bigint,
    event_variationname varchar,
    event_value varchar,
    event_default varchar,
    event_reason_kind varchar,
    event_in_experiment boolean,
    event_prereqof varchar,
    _load_date date not null,
    _source_file varchar not null,
    _line_number bigint not null,
    _loaded_at timestamp not null
);

create table if not exists raw.legacy_feature_flag_events (
    id varchar,
    "user" varchar,
    "timestamp" timestamp,
    key varchar,
    variation_name varchar,
    value boolean,
    value_raw varchar,
    _load_date date not null,
    _source_file varchar not null,
    _line_number bigint not null,
    _loaded_at timestamp not null
);

create table if not exists raw.users (
    user_id varchar,
    created_at timestamp,
    country varchar,
    is_test_account boolean,
    _source_file varchar not null,
    _line_number bigint not null,
    _loaded_at timestamp not null
);

create table if not exists raw.subscription_changes (
    subscription_change_id varchar,
    user_id varchar,
    tier varchar,
    effective_at timestamp,
    _source_file varchar not null,
    _line_number bigint not null,
    _loaded_at timestamp not null
);

create table if not exists raw.rejected_records (
    source varchar not null,
    _load_date date,
    _source_file varchar not null,
    line_number bigint,
    raw_record varchar,
    reason varchar not null,
    _loaded_at timestamp not null
);

create table if not exists ops.recompute_dates (recompute_date date not null);
create table if not exists ops.dim_changed_users (user_id varchar not null);
create table if not exists ops.user_dim_state (user_id varchar not null, dim_hash varchar not null);
create table if not exists ops.pending_users (user_id varchar not null);
create table if not exists ops.pending_dates (pending_date date not null);
create table if not exists ops.assignments_before (
    experiment_key varchar not null,
    user_id varchar not null,
    assignment_date date,
    variation_name varchar,
    subscription_tier varchar,
    last_exposure_date date
);
"""

LOCK_MARKERS = ("could not set lock", "conflicting lock", "database is locked", "lock on file")


def duckdb_settings() -> dict[str, str]:
    """Memory and thread limits set explicitly (same env vars as the dbt profile).

    DuckDB defaults to 80% of RAM and every core; a bounded budget keeps the
    whole process tree (Dagster + dbt + DuckDB) under the benchmark's 4 GB.
    """
    return {
        "memory_limit": os.environ.get("EXPPLATFORM_DUCKDB_MEMORY_LIMIT", "3GB"),
        "threads": os.environ.get("EXPPLATFORM_DUCKDB_THREADS", "2"),
    }


def wal_path(path: Path) -> Path:
    """DuckDB's write-ahead log of a database file (present only after an unclean exit)."""
    return path.with_name(path.name + ".wal")


def recovery_message(path: Path, wal_bytes: int) -> str:
    return (
        f"warehouse {path.name}: recovering from {path.name}.wal ({wal_bytes} bytes) left by a "
        "process that did not close it cleanly (crash or kill); DuckDB replays its committed "
        "transactions and discards the uncommitted ones"
    )


class WarehouseBusyError(RuntimeError):
    """The warehouse file stayed locked by another process for the whole wait."""


def is_lock_error(exc: BaseException) -> bool:
    """True when a DuckDB error means another process holds the file."""
    text = str(exc).lower()
    return any(marker in text for marker in LOCK_MARKERS)


def open_connection(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float = 60.0,
    on_wait: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting while another process holds the lock.

    `on_wait` receives a human message each time we back off (the CLI prints
    it; assets log it), and the recovery line when a WAL left by a killed
    writer is replayed. Raises WarehouseBusyError after `wait_seconds`.
    """
    path = Path(path)
    wal = wal_path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"warehouse {path} does not exist yet: run `expplatform materialize` first"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.2
    while True:
        # A live writer also has a WAL, but then the connect below fails on the lock; a WAL
        # still there once we hold the file was left by a writer that never closed it.
        wal_bytes = wal.stat().st_size if wal.exists() else None
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=duckdb_settings())
            con.execute("set TimeZone = 'UTC'")
            if wal_bytes is not None and wal.exists():
                (on_wait or log.warning)(recovery_message(path, wal_bytes))
            return con
        except duckdb.Error as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                if is_lock_error(exc):
                    raise WarehouseBusyError(
                        f"warehouse {path} is busy: another process (a Dagster run?) holds it; "
                        f"waited {wait_seconds:.0f}s. Try again when the run has finished."
                    ) from None
                raise
            message = (
                f"warehouse busy (another process is writing {path.name}), retrying in {delay:.1f}s"
            )
            (on_wait or log.info)(message)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


@contextmanager
def connect(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float = 60.0,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`open_connection`; writers get the raw/ops schemas."""
    con = open_connection(path, read_only=read_only, wait_seconds=wait_seconds, on_wait=on_wait)
    try:
        if not read_only:
            con.execute(DDL)
        yield con
    finally:
        con.close()


#: Fault injection for the crash tests (docs/RELIABILITY.md). Inert unless both are set.
PAUSE_AT_ENV = "EXPPLATFORM_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "EXPPLATFORM_TEST_PAUSE_FILE"


def pause_point(point: str, detail: str = "") -> None:
    """Let a test SIGKILL this process at a known place; does nothing in normal runs.

    When EXPPLATFORM_TEST_PAUSE_AT is `point` (or `point:SUFFIX` and `detail`
    ends with SUFFIX) and EXPPLATFORM_TEST_PAUSE_FILE names a file: write that
    file, then sleep (up to 10 minutes) waiting for the kill.
    """
    wanted, marker = os.environ.get(PAUSE_AT_ENV), os.environ.get(PAUSE_FILE_ENV)
    if not wanted or not marker:
        return
    name, _, suffix = wanted.partition(":")
    if name != point or (suffix and not detail.endswith(suffix)):
        return
    tmp = Path(marker + ".tmp")
    tmp.write_text(f"{point} {detail} pid={os.getpid()}\n")
    tmp.replace(marker)
    time.sleep(600)
