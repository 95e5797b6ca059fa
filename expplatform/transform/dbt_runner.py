"""dbt in this process: one parse per process, one `dbt build` per run.

A `dbt` subprocess costs 3–5 s before it builds anything (interpreter start, imports, manifest
loading), and the platform used to start three per run. dbt-core's programmatic API
(`dbtRunner`) runs dbt inside the run's own process instead: the manifest is parsed once per
process (with dbt's partial parsing, ~0.4 s when the project did not change) and handed to every
invocation, so an invocation costs only the SQL it runs.

Two facts of dbt-duckdb shape this module:
- the profile sets `keep_open: true` (dbt_project/profiles.yml), so one database serves the
  whole build (closed after each node, it was re-opened and checkpointed every time), and
  :func:`release_duckdb` closes it when the invocation returns: left open, DuckDB would refuse
  this process a connection "with a different configuration" and other processes any;
- a manifest records the warehouse's *database name* (the file's stem) in every relation, so a
  parsed manifest is reused only for warehouses of the same stem. It records nothing else of the
  warehouse's path, so dbt parses with a canonical path of that stem (:data:`PARSE_DIR`): the
  partial-parse state of `target/expplatform/<key>` then serves every warehouse of that stem
  (dbt re-parses everything when a variable its profile reads changes, and a fresh warehouse in
  a new folder used to cost a full parse, 4-9 s). Two processes of one stem parsing at once (a
  CLI run and a daemon's) can write that state over each other: dbt writes it with a plain
  open/write, and a process that then reads a torn file logs `ParsedFileLoadFailed` and parses
  in full (dbt.parser.manifest, `read_manifest_for_partial_parse`) — seconds lost, never a
  wrong manifest, since each process builds with the manifest it parsed itself.

dbt's programmatic API is not re-entrant: invocations are serialised with a lock (a run executes
one dbt step at a time anyway).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expplatform.warehouse import is_lock_error, pause_point

#: Where in-process invocations keep their artifacts and dbt's partial-parse state.
TARGET_SUBDIR = Path("target") / "expplatform"
#: dbt's own log line of a node, forwarded to the run's log when the node took at least
#: SLOW_NODE_SECONDS or did not succeed: every log line is an event written to the instance,
#: and a line per node of a small run cost more than the node itself.
PROGRESS_EVENTS = {"LogModelResult", "LogSeedResult", "LogTestResult", "LogSnapshotResult"}
SLOW_NODE_SECONDS = 1.0
QUIET_STATUSES = {"success", "pass", "ok", "no-op"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: The folder of the canonical warehouse path dbt parses with (never opened: parsing connects to
#: nothing); the build then runs on the real path with the parsed manifest.
PARSE_DIR = Path("/expplatform-parse")

_LOCK = threading.RLock()
_MANIFESTS: dict[tuple, tuple[float, Any]] = {}


class DbtError(RuntimeError):
    """dbt could not run at all (parse or compilation error, unreadable profile)."""


@dataclass(frozen=True)
class NodeResult:
    """The outcome of one dbt node of an invocation."""

    unique_id: str
    resource_type: str
    name: str
    status: str  # dbt's NodeStatus value: success, error, skipped, pass, fail, warn, ...
    message: str | None
    failures: int | None
    execution_time: float
    severity: str  # the test's configured severity (error/warn); "error" for other nodes

    @property
    def ok(self) -> bool:
        return self.status in ("success", "pass", "warn", "no-op")


@dataclass(frozen=True)
class Invocation:
    """What one `dbt build` did: its nodes, and the error that stopped it, if any."""

    results: tuple[NodeResult, ...]
    error: BaseException | None

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if r.status in ("error", "runtime error")]


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for dbt (its profile reads them), restoring them afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def project_fingerprint(project_dir: Path) -> float:
    """The newest modification time of the project's files: a parsed manifest is stale after it."""
    newest = 0.0
    for name in ("dbt_project.yml", "profiles.yml"):
        path = project_dir / name
        if path.exists():
            newest = max(newest, path.stat().st_mtime)
    for folder in ("models", "macros", "seeds", "tests", "analyses", "snapshots"):
        root = project_dir / folder
        if root.is_dir():
            for path in root.rglob("*"):
                if path.is_file():
                    newest = max(newest, path.stat().st_mtime)
    return newest


class DbtProjectRunner:
    """dbt for one project, target and set of vars, run in this process."""

    def __init__(self, project_dir: Path, target: str, dbt_vars: Mapping[str, Any]) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.target = target
        self.vars_json = json.dumps(dict(dbt_vars), sort_keys=True)

    def _target_path(self, env: Mapping[str, str]) -> Path:
        # One folder per warehouse stem (parse_env gives every warehouse of a stem the same
        # profile); dbt's partial parsing itself follows the other variables' changes.
        stem = Path(self.parse_env(env)["EXPPLATFORM_DUCKDB_PATH"]).stem
        key = hashlib.sha1(f"{self.target}|{self.vars_json}|{stem}".encode()).hexdigest()[:12]
        return self.project_dir / TARGET_SUBDIR / key

    @staticmethod
    def parse_env(env: Mapping[str, str]) -> dict[str, str]:
        """`env` with the warehouse path replaced by the canonical one of its stem."""
        stem = Path(env.get("EXPPLATFORM_DUCKDB_PATH", "warehouse.duckdb")).stem
        return {**env, "EXPPLATFORM_DUCKDB_PATH": str(PARSE_DIR / f"{stem}.duckdb")}

    def args(self, command: str, target_path: Path) -> list[str]:
        return [
            command,
            "--project-dir",
            str(self.project_dir),
            "--profiles-dir",
            str(self.project_dir),
            "--target",
            self.target,
            "--target-path",
            str(target_path),
            "--log-path",
            str(target_path),
            "--vars",
            self.vars_json,
            "--quiet",
            "--log-level-file",
            "none",
            "--no-send-anonymous-usage-stats",
            "--no-use-colors",
        ]

    def manifest(self, env: Mapping[str, str]) -> Any:
        """The parsed manifest (cached per process; re-parsed when a project file changed)."""
        from dbt.cli.main import dbtRunner

        parse_env = self.parse_env(env)
        key = (
            str(self.project_dir),
            self.target,
            self.vars_json,
            json.dumps(parse_env, sort_keys=True),
        )
        fingerprint = project_fingerprint(self.project_dir)
        with _LOCK:
            cached = _MANIFESTS.get(key)
            if cached is not None and cached[0] >= fingerprint:
                return cached[1]
            target_path = self._target_path(env)
            with environment(parse_env):
                result = dbtRunner().invoke(self.args("parse", target_path))
            if not result.success or result.result is None:
                raise DbtError(f"dbt parse failed: {result.exception or 'see the messages above'}")
            _MANIFESTS[key] = (fingerprint, result.result)
            return result.result

    def write_manifest(self, env: Mapping[str, str]) -> None:
        """`dbt parse` into the project's own target/ (the manifest the asset graph is built from)."""
        from dbt.cli.main import dbtRunner

        with _LOCK, environment(env):
            result = dbtRunner().invoke(self.args("parse", self.project_dir / "target"))
        if not result.success:
            raise DbtError(f"dbt parse of {self.project_dir} failed: {result.exception}")

    def build(
        self,
        select: Sequence[str],
        env: Mapping[str, str],
        *,
        log: Callable[[str], None] | None = None,
    ) -> Invocation:
        """`dbt build --select ...` (exactly those nodes: no indirect test selection)."""
        from dbt.cli.main import dbtRunner

        manifest = self.manifest(env)
        target_path = self._target_path(env)

        def forward(event: Any) -> None:
            if event.info.name not in PROGRESS_EVENTS:
                return
            data = event.data
            # crash tests: killed in the middle of the build, right after a model committed
            pause_point("dbt", str(getattr(getattr(data, "node_info", None), "node_name", "")))
            if log is None:
                return
            status = str(getattr(data, "status", "")).lower()
            seconds = float(getattr(data, "execution_time", 0.0) or 0.0)
            if seconds >= SLOW_NODE_SECONDS or status not in QUIET_STATUSES:
                log(ANSI.sub("", event.info.msg))

        args = [
            *self.args("build", target_path),
            # dbt's unit tests run in the test suite (test_dbt_unit.py), not in every run
            "--exclude-resource-type",
            "unit_test",
            "--indirect-selection",
            "empty",
            "--select",
            *select,
        ]
        with _LOCK, environment(env):
            try:
                result = dbtRunner(manifest=manifest, callbacks=[forward]).invoke(args)
            finally:
                release_duckdb()
        results = []
        for run_result in getattr(result.result, "results", None) or ():
            node = run_result.node
            config = getattr(node, "config", None)
            results.append(
                NodeResult(
                    unique_id=node.unique_id,
                    resource_type=str(node.resource_type),
                    name=node.name,
                    status=str(getattr(run_result.status, "value", run_result.status)),
                    message=run_result.message,
                    failures=run_result.failures,
                    execution_time=float(run_result.execution_time or 0.0),
                    severity=str(getattr(config, "severity", "error") or "error").lower(),
                )
            )
        error = result.exception
        if error is None and not result.success and not results:
            error = DbtError("dbt build failed before building anything")
        return Invocation(tuple(results), error)


def release_duckdb() -> None:
    """Close the database dbt-duckdb keeps open across a build (`keep_open` in profiles.yml).

    It lives on after dbt returns, in this process: other processes could not open the file,
    nor this one with other settings. A no-op when dbt opened none (another adapter, or dbt
    failed before connecting).
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed (a Spark-only environment)
        return
    try:
        opened = DuckDBConnectionManager.env()
    except Exception:  # "environment requested before creation": nothing to close
        return
    opened.close()
    DuckDBConnectionManager.close_all_connections()


def is_busy(invocation: Invocation) -> bool:
    """Whether dbt failed only because another process held the warehouse file."""
    if any(r.ok for r in invocation.results):
        return False
    texts = [str(invocation.error or "")] + [r.message or "" for r in invocation.failed]
    return any(is_lock_error(RuntimeError(t)) for t in texts if t)
