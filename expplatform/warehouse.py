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

import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb
from dagster import InitResourceContext
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from expplatform.catalog import ddl

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_MARKERS = ("could not set lock", "conflicting lock", "database is locked", "lock on file")


def duckdb_settings(memory_limit: str | None = None, threads: int | None = None) -> dict[str, str]:
    """Memory and thread limits set explicitly (the same settings as the dbt profile).

    DuckDB defaults to 80% of RAM and every core; a bounded budget keeps the whole process
    tree (Dagster + dbt + DuckDB) under the benchmark's 4 GB. Defaults: the platform settings.
    """
    if memory_limit is None or threads is None:
        from expplatform.config import get_settings

        settings = get_settings()
        memory_limit = memory_limit or settings.duckdb_memory_limit
        threads = threads or settings.duckdb_threads
    return {"memory_limit": memory_limit, "threads": str(threads)}


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
    settings: dict[str, str] | None = None,
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

    def attempt() -> duckdb.DuckDBPyConnection:
        # A live writer also has a WAL, but then the connect below fails on the lock; a WAL
        # still there once we hold the file was left by a writer that never closed it.
        wal_bytes = wal.stat().st_size if wal.exists() else None
        # No connect-time config: dbt-duckdb opens the file with none, and DuckDB refuses a
        # second connection in the same process "with a different configuration". The
        # limits are set on the connection instead.
        con = duckdb.connect(str(path), read_only=read_only)
        for name, value in (settings or duckdb_settings()).items():
            con.execute(f"set {name} = '{value}'")
        con.execute("set TimeZone = 'UTC'")
        if wal_bytes is not None and wal.exists():
            (on_wait or log.warning)(recovery_message(path, wal_bytes))
        return con

    return retry_while_locked(attempt, path, wait_seconds=wait_seconds, on_wait=on_wait or log.info)


def retry_while_locked(
    attempt: Callable[[], T],
    path: Path,
    *,
    locked: Callable[[T], bool] | None = None,
    wait_seconds: float = 60.0,
    on_wait: Callable[[str], None] = log.info,
    who: str = "expplatform",
) -> T:
    """Call `attempt` until it gets the warehouse file: the one retry policy on DuckDB's lock.

    A lock error raised by `attempt` (or a result `locked` says failed on the lock: dbt reports
    it instead of raising) is retried after 0.2 s, doubling up to 5 s, each wait announced to
    `on_wait`; after `wait_seconds` a raised lock error becomes WarehouseBusyError and a locked
    result is returned as it is (its caller reports it). Other errors are raised at once.
    """
    path = Path(path)
    deadline = time.monotonic() + wait_seconds
    delay = 0.2
    while True:
        try:
            result = attempt()
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    f"warehouse {path} is busy: another process (a Dagster run?) holds it; "
                    f"waited {wait_seconds:.0f}s. Try again when the run has finished."
                ) from None
        else:
            if locked is None or not locked(result) or time.monotonic() >= deadline:
                return result
        on_wait(
            f"warehouse busy: {who} could not lock {path.name} (another process holds it), "
            f"retrying in {delay:.1f}s"
        )
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


@contextmanager
def connect(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float = 60.0,
    on_wait: Callable[[str], None] | None = None,
    settings: dict[str, str] | None = None,
    project_dir: Path | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`open_connection`; writers get the raw/ops tables."""
    con = open_connection(
        path, read_only=read_only, wait_seconds=wait_seconds, on_wait=on_wait, settings=settings
    )
    try:
        if not read_only:
            con.execute(ddl(project_dir) if project_dir else ddl())
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


#: How a run waiting for the writer lock starts its log line (the CLI prints those lines).
WRITER_LOCK_WAIT = "waiting for the warehouse writer lock"


def writer_lock_path(path: Path) -> Path:
    """The lock file a writing run holds next to the warehouse (`.warehouse.duckdb.writer.lock`)."""
    return path.with_name(f".{path.name}.writer.lock")


class WriterLock:
    """The warehouse's writer lock: one run (one process) writes at a time, held by the kernel.

    The run queue (config/dagster.yaml) lets one run of the code location start at a time, and
    `expplatform materialize` waits for the runs in progress; but both decide from a look at the
    run history, and a run the daemon dequeues in the moment between the CLI's look and its run's
    start would write the warehouse at the same time (DuckDB: "Could not set lock on file", seen
    under `dagster dev`). So every run holds this lock, an exclusive `flock` on a file beside the
    warehouse, from its start to its end: a second writer waits for it at its start, before any
    step. The kernel releases it when the holding process exits, however it exits (a killed run
    never leaves it behind). Not for readers: they read the serving copy.
    """

    def __init__(self, database: Path) -> None:
        self.database = Path(database)
        self.path = writer_lock_path(self.database)
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it (empty when unknown)."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def acquire(
        self,
        holder: str,
        on_wait: Callable[[str], None] | None = None,
        poll_seconds: float = 0.5,
        report_every: float = 60.0,
    ) -> None:
        """Take the lock, waiting (and saying so) while another process holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        next_report = 0.0
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if waited >= next_report:
                        (on_wait or log.info)(
                            f"{WRITER_LOCK_WAIT}: another run is writing "
                            f"{self.database.name} ({self.holder() or 'holder unknown'}); "
                            f"waited {waited:.0f}s"
                        )
                        next_report = waited + report_every
                    time.sleep(poll_seconds)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the file releases it; the file itself stays)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse: where it is, its limits, and how to open it (with the lock wait).

    dagster-duckdb's resource, with the platform's way of connecting: every asset opens the
    warehouse through :meth:`connect`, so the wait on a busy file (with a message saying who
    holds it), the recovery line after a crash, the memory and thread limits and the creation
    of the declared raw/ops tables live in one place. A run that uses the warehouse holds its
    :class:`WriterLock` from start to end.
    """

    memory_limit: str = "3GB"
    threads: int = 2
    dbt_project_dir: str = ""
    _writer_lock: WriterLock | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """At the start of a run: take the writer lock (wait while another run writes)."""
        lock = WriterLock(self.database_path)
        holder = f"run {context.run_id or '-'}, pid {os.getpid()} on {socket.gethostname()}"
        lock.acquire(holder, on_wait=context.log.info if context.log else None)
        self._writer_lock = lock

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """At the end of the run, whatever its outcome: release the writer lock."""
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    @property
    def database_path(self) -> Path:
        return Path(self.database).resolve()

    def connect(
        self,
        *,
        read_only: bool = False,
        on_wait: Callable[[str], None] | None = None,
        wait_seconds: float = 60.0,
    ):
        """A connection (context manager); writers get the declared raw and ops tables."""
        return connect(
            self.database_path,
            read_only=read_only,
            on_wait=on_wait,
            wait_seconds=wait_seconds,
            settings=duckdb_settings(self.memory_limit, self.threads),
            project_dir=Path(self.dbt_project_dir) if self.dbt_project_dir else None,
        )
