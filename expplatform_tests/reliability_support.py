"""Shared by the reliability tests (test_reliability_*.py, docs/RELIABILITY.md).

Whole-warehouse snapshots to compare with a clean build, copies of the clean
build to start from, the environment of `expplatform` subprocesses, and a
code location without the run-launching automation (used by the run-queue test).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dagster import Definitions, definitions

from expplatform.config import PROJECT_ROOT, SHIPPED_DAGSTER_YAML, Settings
from expplatform.snapshots import (  # noqa: F401  (re-exported for the reliability tests)
    COMPARED_SCHEMAS,
    QUEUES,
    VOLATILE_COLUMNS,
    differences,
    duplicated_raw_lines,
    queue_sizes,
    read_table,
    table_names,
    warehouse_snapshot,
)


def copy_clean_build(built: Settings, tmp: Path, landing_name: str = "landing") -> Settings:
    """A private copy of the session's clean build (warehouse, serving copy, landing zone)."""
    landing = tmp / landing_name
    shutil.copytree(built.landing_dir, landing)
    db = tmp / "wh" / "warehouse.duckdb"
    db.parent.mkdir(parents=True)
    shutil.copyfile(built.duckdb_path, db)
    if built.serving.exists():  # the readers' copy the build published, beside its warehouse
        shutil.copyfile(built.serving, db.with_name(built.serving.name))
    return Settings(
        landing_dir=landing,
        duckdb_path=db,
        start_date=built.start_date,
        lookback_days=built.lookback_days,
        ui_url=built.ui_url,
        alert_log=tmp / "alerts.log",
    )


def dagster_home(tmp: Path) -> Path:
    """A fresh DAGSTER_HOME holding the shipped dagster.yaml (pool limit 1, run queue)."""
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copyfile(SHIPPED_DAGSTER_YAML, home / "dagster.yaml")
    return home


def cli_env(settings: Settings, home: Path, **extra: str) -> dict[str, str]:
    """The environment of an `expplatform` / `dagster` subprocess working on `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EXPPLATFORM_", "DAGSTER_")) and k != "PYTEST_CURRENT_TEST"
    }
    env.update(
        DAGSTER_HOME=str(home),
        EXPPLATFORM_LANDING_DIR=str(settings.landing_dir),
        EXPPLATFORM_DUCKDB_PATH=str(settings.duckdb_path),
        EXPPLATFORM_START_DATE=settings.start_date.isoformat(),
        EXPPLATFORM_LOOKBACK_DAYS=str(settings.lookback_days),
        EXPPLATFORM_ALERT_LOG=str(settings.alert_log),
        EXPPLATFORM_CHART_METADATA="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def expplatform_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "expplatform.cli", *args]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a subprocess in its own process group (so every child dies with it)."""
    return subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
    """Signal the whole process group of `proc` (started by `start`) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    # children outside the leader (dbt, step workers) are in the same group: make sure
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2, proc=None):
    """Poll `predicate` until it returns a truthy value; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    """One query to the GraphQL API of the UI on 127.0.0.1:`port`."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def location_loaded(port: int) -> bool:
    """Whether the UI has loaded every code location (fails on a load error)."""
    try:
        data = graphql(
            port,
            "{ workspaceOrError { ... on Workspace { locationEntries { "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }",
        )
    except OSError:
        return False
    entries = data["data"]["workspaceOrError"]["locationEntries"]
    kinds = [e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]]
    errors = [k.get("message") for k in kinds if k["__typename"] == "PythonError"]
    assert not errors, f"the code location failed to load: {errors}"
    return bool(kinds) and all(k["__typename"] == "RepositoryLocation" for k in kinds)


class FailingWebhook:
    """A team-channel webhook on 127.0.0.1 that always answers 500; its URL holds `secret`."""

    def __init__(self, secret: str) -> None:
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.paths.append(self.path)
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{secret}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RecordingWebhook:
    """A team-channel webhook on 127.0.0.1 that answers 200 and keeps every body posted to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook._lock:
                    hook.posts.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/scenario"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def headers(self) -> list[str]:
        """The header line of every message posted so far, in order (Block Kit's first block)."""
        with self._lock:
            return [body["blocks"][0]["text"]["text"] for _, body in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under `root` whose bytes contain `secret` (databases, logs, compute logs)."""
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@definitions
def location_without_run_launchers() -> Definitions:
    """The platform's code location without the schedule and the sensors that launch runs.

    The run-queue test launches its own runs; the landing and freshness
    sensors (on by default) would launch more and make its timing depend on
    theirs. The alert sensors stay: they launch nothing.
    """
    from expplatform.definitions import build_definitions

    full = build_definitions()
    return Definitions(
        assets=full.assets,
        asset_checks=full.asset_checks,
        jobs=full.jobs,
        sensors=[s for s in full.sensors or [] if s.name.startswith("alert_")],
        resources=full.resources,
    )
