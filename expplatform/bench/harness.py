"""The benchmark harness: landing-zone cache, the four measured sections, targets, report.

Every pipeline measurement (A, B) is a fresh child process running the real
`materialize_all` Dagster job (``expplatform.bench.runner``), on a warehouse
at one fixed work path (so dbt's partial parsing behaves as in production),
restored from a copy before each repetition so that every repetition starts
from the same state. The parent only samples memory and keeps time; it never
imports Dagster.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from expplatform.bench.memory import ProcessOutcome, run_measured
from expplatform.bench.sql import adhoc_query, compare_outputs, dashboard_queries
from expplatform.config import PROJECT_ROOT, SHIPPED_DAGSTER_YAML

DEFAULT_CACHE_DIR = PROJECT_ROOT / "bench" / "cache"
DEFAULT_RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
SAMPLE_DATA_PACKAGE = PROJECT_ROOT / "expplatform" / "sample_data"

#: The issue's targets, at the default scale on the 2-core machine.
TARGET_A_OVER_C = 1.5
TARGET_B_LATE_OVER_EARLY = 1.2
TARGET_DASHBOARD_MS = 50.0
TARGET_DASHBOARD_SPEEDUP = 1000.0
TARGET_PEAK_RSS_GIB = 4.0

#: The dev dbt target and its sample (dbt_project/macros/dev_sample.sql): set for every child
#: when sampling, removed from the children's environment otherwise.
DEV_ENV = (
    "EXPPLATFORM_DBT_TARGET",
    "EXPPLATFORM_DEV_SAMPLE_PCT",
    "EXPPLATFORM_DEV_DAYS",
    "EXPPLATFORM_DEV_AS_OF",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchScale:
    """The size of the generated landing zone."""

    users: int
    days: int
    events_per_day: int
    files_per_day: int
    seed: int = 42
    start: date = date(2025, 12, 1)
    compress: bool = True

    def key(self) -> str:
        """Folder name of this scale in the landing-zone cache."""
        gz = "gz" if self.compress else "plain"
        return (
            f"u{self.users}-d{self.days}-e{self.events_per_day}-f{self.files_per_day}"
            f"-s{self.seed}-{self.start.isoformat()}-{gz}"
        )


DEFAULT_SCALE = BenchScale(users=1_000_000, days=30, events_per_day=3_000_000, files_per_day=4)
#: Two days: the fewest that give B an early and a late daily run (3 Dagster runs in all,
#: each dominated by fixed costs at this size).
QUICK_SCALE = BenchScale(users=2_000, days=2, events_per_day=20_000, files_per_day=2)


@dataclass
class BenchOptions:
    """Everything a benchmark run needs; the CLI builds it from its flags."""

    scale: BenchScale = DEFAULT_SCALE
    repeats: int = 3
    early_day: int = 10
    quick: bool = False
    cache_dir: Path = DEFAULT_CACHE_DIR
    results_dir: Path = DEFAULT_RESULTS_DIR
    work_dir: Path | None = None
    keep_work_dir: bool = False
    memory_limit: str = "3GB"
    threads: int = 2
    max_rss_gib: float | None = 16.0
    dashboard_repeats: int = 20
    #: The dev target's sample: percent of users kept, and days of history kept (None: all).
    dev_sample_pct: float | None = None
    dev_days: int | None = None
    #: Which parts to run: "bare" (C), "backfill" (A, then D and storage on its warehouse),
    #: "daily" (B). A long run can be split and its results merged (`merge_results`).
    sections: tuple[str, ...] = ("bare", "backfill", "daily")
    progress: Progress = field(default=print)


class BenchError(RuntimeError):
    """A measured run failed; the message says which and where its log is."""


# --- small helpers ---------------------------------------------------------------------------


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, min, max and count of a series (None when empty)."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def folder_bytes(path: Path) -> int:
    """Total size of the files under `path` (or of the file itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def database_bytes(path: Path) -> int:
    """A DuckDB database's size on disk: the file and its write-ahead log."""
    wal = path.with_name(path.name + ".wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())


def _sha(path: Path) -> str:
    """A short hash of a file, or of every .py file of a package (names and bytes)."""
    digest = hashlib.sha256()
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    """CPU, memory and software versions: numbers mean nothing without them."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": os.getloadavg()[0],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        for package in ("dagster", "dagster-dbt", "dbt-core", "dbt-duckdb"):
            info[package] = version(package)
    except Exception:  # informational only
        pass
    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=False,
        )
        info["git_commit"] = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return info


# --- the landing zone, generated once per scale -------------------------------------------------


def ensure_landing(scale: BenchScale, cache_dir: Path, progress: Progress) -> tuple[Path, dict]:
    """The cached landing zone of `scale` (generated on first use); returns (path, summary).

    A marker file records the scale and a hash of the generator: a landing
    zone written by another version of the `sample_data` package is regenerated.
    """
    from expplatform.sample_data import generate_landing_zone

    folder = cache_dir / scale.key()
    marker = folder / "bench-landing.json"
    generator = _sha(SAMPLE_DATA_PACKAGE)
    if marker.exists():
        meta = json.loads(marker.read_text())
        if meta.get("generator_sha") == generator:
            progress(f"landing zone: cached in {folder}")
            return folder / "landing", meta
        progress("landing zone: generator changed since the cache was written, regenerating")
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    progress(
        f"landing zone: generating {scale.days} days x {scale.events_per_day:,} events/day, "
        f"{scale.users:,} users into {folder}"
    )
    started = time.monotonic()
    summary = generate_landing_zone(
        staging / "landing",
        start=scale.start,
        days=scale.days,
        users=scale.users,
        seed=scale.seed,
        events_per_day=scale.events_per_day,
        files_per_day=scale.files_per_day,
        compress=scale.compress,
    )
    meta = {
        "scale": {**asdict(scale), "start": scale.start.isoformat()},
        "generator_sha": generator,
        "generated_s": round(time.monotonic() - started, 1),
        "files": summary.files,
        "launchdarkly_lines": summary.launchdarkly_lines,
        "legacy_lines": summary.legacy_lines,
        "event_lines": summary.launchdarkly_lines + summary.legacy_lines,
        "bad_lines": summary.bad_lines,
        "bytes": folder_bytes(staging / "landing"),
    }
    (staging / "bench-landing.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    progress(f"landing zone: {meta['event_lines']:,} event lines in {meta['generated_s']} s")
    return folder / "landing", meta


# --- measured runs --------------------------------------------------------------------------------


RUNNER_SCRIPT = "run_measurement.py"

#: What a code snapshot holds: the package, the dbt project, the instance config, the SQL.
SNAPSHOT_FOLDERS = ("expplatform", "dbt_project", "config", "bench")
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    "target", "logs", "dbt_packages", "__pycache__", "*.pyc", ".user.yml", "cache", "results"
)


def snapshot_code(dest: Path) -> Path:
    """Copy the code under test to `dest` (build output and data left out); returns `dest`.

    A benchmark takes hours on a repository others edit: the measured
    children import this frozen copy (PYTHONPATH), so every repetition runs
    the same code, and dbt writes its target/ folders inside the copy instead
    of the shared dbt_project/target/.
    """
    dest.mkdir(parents=True)
    for name in SNAPSHOT_FOLDERS:
        shutil.copytree(PROJECT_ROOT / name, dest / name, ignore=SNAPSHOT_IGNORE)
    # The measured children's entry point: the snapshot's folder is first on their sys.path.
    (dest / RUNNER_SCRIPT).write_text(
        "import sys\n\nfrom expplatform.bench.runner import main\n\nsys.exit(main())\n"
    )
    return dest


class Workspace:
    """The temp folder of one benchmark run: code snapshot, DAGSTER_HOME, warehouses, logs."""

    def __init__(self, options: BenchOptions, landing: Path) -> None:
        self.options = options
        parent = options.work_dir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="xpbench-", dir=parent))
        self.code = snapshot_code(self.root / "src")
        self.dagster_home = self.root / "dagster_home"
        self.dagster_home.mkdir()
        shutil.copyfile(SHIPPED_DAGSTER_YAML, self.dagster_home / "dagster.yaml")
        self.warehouse = self.root / "warehouse.duckdb"
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.landing = landing
        self._runs = 0
        #: Every finished measurement, in order; `checkpoint` is called after each one so that
        #: a run killed after hours still leaves its measurements on disk.
        self.completed: list[dict[str, Any]] = []
        self.checkpoint: Callable[[], None] = lambda: None
        # The definitions load the dbt manifest from disk: build the snapshot's own.
        subprocess.run(
            [sys.executable, "-m", "expplatform.cli", "prepare"],
            cwd=self.code,
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def env(self) -> dict[str, str]:
        """The environment of a pipeline child: this workspace, the scale's start, DuckDB limits."""
        env = dict(os.environ)
        env.pop("EXPPLATFORM_ALERT_WEBHOOK_URL", None)  # a benchmark never alerts the team
        for name in DEV_ENV:
            env.pop(name, None)
        env.update(
            {
                "DAGSTER_HOME": str(self.dagster_home),
                "EXPPLATFORM_LANDING_DIR": str(self.landing),
                "EXPPLATFORM_DUCKDB_PATH": str(self.warehouse),
                "EXPPLATFORM_START_DATE": self.options.scale.start.isoformat(),
                "EXPPLATFORM_ALERT_LOG": str(self.root / "alerts.log"),
                "EXPPLATFORM_DUCKDB_MEMORY_LIMIT": self.options.memory_limit,
                "EXPPLATFORM_DUCKDB_THREADS": str(self.options.threads),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(self.code), os.environ.get("PYTHONPATH", "")) if p
                ),
            }
        )
        options = self.options
        if options.dev_sample_pct is not None or options.dev_days is not None:
            last_day = options.scale.start + timedelta(days=options.scale.days - 1)
            env["EXPPLATFORM_DBT_TARGET"] = "dev"
            env["EXPPLATFORM_DEV_SAMPLE_PCT"] = str(options.dev_sample_pct or 100)
            env["EXPPLATFORM_DEV_DAYS"] = str(options.dev_days or "")
            env["EXPPLATFORM_DEV_AS_OF"] = last_day.isoformat()
        return env

    def restore(self, state: Path | None) -> None:
        """Put a saved warehouse (or none: an empty start) at the work path."""
        for path in (self.warehouse, self.warehouse.with_name(self.warehouse.name + ".wal")):
            path.unlink(missing_ok=True)
        if state is not None:
            shutil.copyfile(state, self.warehouse)

    def save(self, name: str) -> Path:
        """Copy the work warehouse aside as a named state."""
        target = self.root / f"{name}.duckdb"
        shutil.copyfile(self.warehouse, target)
        return target

    def _measure(self, label: str, argv: list[str], out: Path) -> tuple[ProcessOutcome, dict]:
        self._runs += 1
        log = self.logs / f"{self._runs:02d}-{label}.log"
        max_mib = self.options.max_rss_gib * 1024 if self.options.max_rss_gib else None
        outcome = run_measured(
            argv, env=self.env(), cwd=self.code, log_path=log, max_rss_mib=max_mib
        )
        summary = json.loads(out.read_text()) if out.exists() else {}
        out.unlink(missing_ok=True)
        if outcome.killed_for_memory:
            raise BenchError(
                f"{label}: killed when its process tree passed {self.options.max_rss_gib} GiB "
                f"(--max-rss-gb); log: {log}"
            )
        if outcome.returncode != 0 or not summary.get("success"):
            failures = "; ".join(summary.get("failures", [])) or outcome.stderr_tail[-1500:]
            raise BenchError(f"{label} failed (exit {outcome.returncode}): {failures}; log: {log}")
        return outcome, summary

    def run_job(self, label: str, start: date, end: date) -> dict[str, Any]:
        """One measured Dagster run of arrival dates [start, end] on the work warehouse."""
        out = self.root / "result.json"
        argv = [sys.executable, str(self.code / RUNNER_SCRIPT), "job"]
        argv += [start.isoformat(), end.isoformat(), str(out)]
        outcome, summary = self._measure(label, argv, out)
        return self._done(label, _measurement(outcome, summary))

    def _done(self, label: str, measurement: dict[str, Any]) -> dict[str, Any]:
        self.completed.append({"label": label, **measurement})
        self.checkpoint()
        return measurement

    def run_bare(self, label: str, db: Path) -> dict[str, Any]:
        """One measured run of bench/bare_pipeline.sql into a new database `db`."""
        for path in (db, db.with_name(db.name + ".wal")):
            path.unlink(missing_ok=True)
        out = self.root / "result.json"
        argv = [sys.executable, str(self.code / RUNNER_SCRIPT), "bare", str(db)]
        argv += [str(self.landing), str(out), self.options.memory_limit, str(self.options.threads)]
        outcome, summary = self._measure(label, argv, out)
        return self._done(label, _measurement(outcome, summary))

    def close(self) -> None:
        """Remove the workspace unless asked to keep it."""
        if self.options.keep_work_dir:
            self.options.progress(f"work folder kept: {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def _measurement(outcome: ProcessOutcome, summary: dict[str, Any]) -> dict[str, Any]:
    by_step = {
        step: round(outcome.peak_between_mib(times["start"], times["end"]) / 1024, 3)
        for step, times in summary.get("steps", {}).items()
        if "start" in times and "end" in times
    }
    return {
        "wall_s": outcome.wall_s,
        "execute_s": summary.get("execute_s"),
        "peak_rss_gib": outcome.peak_rss_mib / 1024,
        "peak_tree_rss_gib": outcome.peak_tree_rss_mib / 1024,
        "max_process_rss_gib": outcome.max_process_rss_mib / 1024,
        "rss_samples": outcome.samples,
        "peak_tree_rss_gib_by_step": by_step,
        # Other work on the machine skews timings: the 1-minute load average as the run ended.
        "load_average_1m": os.getloadavg()[0],
        "detail": summary,
    }


def _series(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "wall_s": summarize([r["wall_s"] for r in runs]),
        "execute_s": summarize([r["execute_s"] for r in runs if r["execute_s"] is not None]),
        "peak_rss_gib": summarize([r["peak_rss_gib"] for r in runs]),
        "runs": runs,
    }


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s"


# --- the sections -------------------------------------------------------------------------------


def section_bare(ws: Workspace, options: BenchOptions) -> tuple[dict[str, Any], Path]:
    """C: the bare SQL script, `repeats` times; returns the series and the last output database."""
    db = ws.root / "floor.duckdb"
    runs = []
    for i in range(options.repeats):
        run = ws.run_bare(f"C-bare-{i + 1}", db)
        runs.append(run)
        options.progress(
            f"C bare script {i + 1}/{options.repeats}: {_fmt_s(run['wall_s'])}, "
            f"peak {run['peak_rss_gib']:.2f} GiB"
        )
    return _series(runs), db


def section_backfill(
    ws: Workspace, options: BenchOptions, event_lines: int
) -> tuple[dict[str, Any], Path]:
    """A: the whole range as one single-run backfill, from an empty warehouse each time."""
    scale = options.scale
    end = scale.start + timedelta(days=scale.days - 1)
    runs = []
    for i in range(options.repeats):
        ws.restore(None)
        run = ws.run_job(f"A-backfill-{i + 1}", scale.start, end)
        run["events_per_s"] = event_lines / run["wall_s"]
        runs.append(run)
        options.progress(
            f"A backfill {scale.start}..{end} {i + 1}/{options.repeats}: "
            f"{_fmt_s(run['wall_s'])} ({run['events_per_s']:,.0f} events/s), "
            f"peak {run['peak_rss_gib']:.2f} GiB"
        )
    series = _series(runs)
    series["events_per_s"] = summarize([r["events_per_s"] for r in runs])
    series["range"] = [scale.start.isoformat(), end.isoformat()]
    return series, ws.save("full_history")


def section_daily(ws: Workspace, options: BenchOptions) -> dict[str, Any]:
    """B: one new arrival day on top of the history, at an early and at the last day.

    The history is built by single-run backfills and reused: backfill days
    1..e-1, time day e; keep that result, backfill e+1..N-1, time day N.
    Each repetition restores the saved history first.
    """
    scale = options.scale
    day = lambda n: scale.start + timedelta(days=n - 1)  # noqa: E731  (1-based day numbers)
    late = scale.days
    early = max(1, min(options.early_day, late - 1))
    history: dict[str, Any] = {}

    def backfill(first: int, last: int, label: str) -> None:
        run = ws.run_job(label, day(first), day(last))
        history[label] = {
            "range": [day(first).isoformat(), day(last).isoformat()],
            "wall_s": run["wall_s"],
            "peak_rss_gib": run["peak_rss_gib"],
        }
        options.progress(f"B history: backfill days {first}..{last} in {_fmt_s(run['wall_s'])}")

    def daily(n: int, base: Path | None, keep: str | None) -> tuple[dict[str, Any], Path | None]:
        runs, kept = [], None
        for i in range(options.repeats):
            ws.restore(base)
            run = ws.run_job(f"B-day{n}-{i + 1}", day(n), day(n))
            runs.append(run)
            options.progress(
                f"B daily run day {n} ({day(n)}) {i + 1}/{options.repeats}: "
                f"{_fmt_s(run['wall_s'])}, peak {run['peak_rss_gib']:.2f} GiB"
            )
            if keep and kept is None:
                kept = ws.save(keep)
        series = _series(runs)
        series["day"] = n
        series["date"] = day(n).isoformat()
        return series, kept

    ws.restore(None)
    base_early = None
    if early > 1:
        backfill(1, early - 1, f"history-1-{early - 1}")
        base_early = ws.save("history_early")
    early_series, after_early = daily(early, base_early, keep="after_early")
    if late - 1 > early:
        ws.restore(after_early)
        backfill(early + 1, late - 1, f"history-{early + 1}-{late - 1}")
        base_late = ws.save("history_late")
    else:
        base_late = after_early
    late_series, _ = daily(late, base_late, keep=None)
    ratio = late_series["wall_s"]["median"] / early_series["wall_s"]["median"]
    ratio_execute = None
    if late_series["execute_s"]["median"] and early_series["execute_s"]["median"]:
        ratio_execute = late_series["execute_s"]["median"] / early_series["execute_s"]["median"]
    return {
        "early": early_series,
        "late": late_series,
        "late_over_early": ratio,
        "late_over_early_execute": ratio_execute,
        "history_backfills": history,
    }


def _time_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return (time.perf_counter() - started) * 1000, len(rows)


def section_dashboard(db: Path, options: BenchOptions) -> dict[str, Any]:
    """D: the dashboard's mart queries vs the seed's ad-hoc SQL over the raw tables.

    Read-only connection with the same DuckDB limits as the pipeline. "cold"
    is the first execution on a newly opened connection (DuckDB's buffers
    empty; the OS page cache may hold the file), "warm" the repetitions after.
    """

    def connect() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(db), read_only=True)
        con.execute(f"set memory_limit = '{options.memory_limit}'")
        con.execute(f"set threads = {int(options.threads)}")
        con.execute("set TimeZone = 'UTC'")
        return con

    adhoc_repeats = max(1, options.repeats)
    con = connect()
    try:
        con.execute("set search_path = 'raw,main'")
        cold, rows = _time_query(con, adhoc_query())
        warm = [_time_query(con, adhoc_query())[0] for _ in range(adhoc_repeats)]
    finally:
        con.close()
    adhoc = {"cold_ms": cold, "warm_ms": summarize(warm), "rows": rows}
    options.progress(
        f"D ad-hoc dashboard SQL: {statistics.median(warm):,.1f} ms median ({rows} rows)"
    )

    queries: dict[str, Any] = {}
    for name, sql in dashboard_queries().items():
        con = connect()
        try:
            cold, rows = _time_query(con, sql)
            warm = [_time_query(con, sql)[0] for _ in range(options.dashboard_repeats)]
        finally:
            con.close()
        median = statistics.median(warm)
        queries[name] = {
            "cold_ms": cold,
            "warm_ms": summarize(warm),
            "rows": rows,
            "speedup_vs_adhoc": adhoc["warm_ms"]["median"] / median if median else None,
        }
        options.progress(
            f"D {name}: {median:.2f} ms median, cold {cold:.1f} ms ({rows} rows), "
            f"{queries[name]['speedup_vs_adhoc']:,.0f}x faster than the ad-hoc SQL"
        )
    return {"adhoc": adhoc, "queries": queries}


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and whether it is met."""
    targets: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, higher_is_better: bool = False) -> None:
        met = None
        if value is not None:
            met = value >= limit if higher_is_better else value <= limit
        targets.append(
            {
                "target": name,
                "value": value,
                "limit": limit,
                "rule": ">=" if higher_is_better else "<=",
                "met": met,
            }
        )

    a, b, c, d = (result.get(k) for k in ("backfill", "daily", "bare", "dashboard"))
    if a and c:
        add(
            "A backfill wall / C bare wall",
            a["wall_s"]["median"] / c["wall_s"]["median"],
            TARGET_A_OVER_C,
        )
    if b:
        add(
            f"B day {b['late']['day']} / B day {b['early']['day']} (wall)",
            b["late_over_early"],
            TARGET_B_LATE_OVER_EARLY,
        )
    if d:
        for name, q in d["queries"].items():
            add(f"D {name} median ms", q["warm_ms"]["median"], TARGET_DASHBOARD_MS)
            add(
                f"D {name} speed-up vs ad-hoc",
                q["speedup_vs_adhoc"],
                TARGET_DASHBOARD_SPEEDUP,
                higher_is_better=True,
            )
    if a:
        add("A peak RSS GiB (max of runs)", a["peak_rss_gib"]["max"], TARGET_PEAK_RSS_GIB)
    if b:
        peak = max(b["early"]["peak_rss_gib"]["max"], b["late"]["peak_rss_gib"]["max"])
        add("B peak RSS GiB (max of runs)", peak, TARGET_PEAK_RSS_GIB)
    return targets


# --- the whole run --------------------------------------------------------------------------------


def run_bench(options: BenchOptions) -> tuple[dict[str, Any], Path]:
    """Run every section; write bench/results/<timestamp>.json; returns (result, path).

    A failing section is recorded under `errors` and the sections that do not
    depend on it still run; the result file is written either way.
    """
    progress = options.progress
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scale = options.scale
    if scale.days < 2:
        raise ValueError("the benchmark needs at least 2 days (B compares two daily runs)")
    result: dict[str, Any] = {
        "timestamp": stamp,
        "quick": options.quick,
        "scale": {**asdict(scale), "start": scale.start.isoformat()},
        "settings": {
            "repeats": options.repeats,
            "early_day": options.early_day,
            "duckdb_memory_limit": options.memory_limit,
            "duckdb_threads": options.threads,
            "dev_sample_pct": options.dev_sample_pct,
            "dev_days": options.dev_days,
            "lookback_days": int(os.environ.get("EXPPLATFORM_LOOKBACK_DAYS", "2")),
        },
        "machine": machine_info(),
        "sections": list(options.sections),
        "errors": {},
    }
    unknown = set(options.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    started = time.monotonic()
    landing, landing_meta = ensure_landing(scale, options.cache_dir, progress)
    result["landing"] = {**landing_meta, "path": str(landing)}
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{stamp}.json"

    def save() -> None:
        # Written after every measurement with complete=false, so nothing is lost if killed.
        path.write_text(json.dumps(result, indent=2, default=str))

    result["complete"] = False
    ws = Workspace(options, landing)
    result["completed_runs"] = ws.completed
    ws.checkpoint = save
    full = floor = None
    try:
        try:
            if "bare" in options.sections:
                result["bare"], floor = section_bare(ws, options)
        except BenchError as exc:
            result["errors"]["bare"] = str(exc)
            progress(f"C failed: {exc}")
        try:
            if "backfill" in options.sections:
                events = landing_meta["event_lines"]
                result["backfill"], full = section_backfill(ws, options, events)
        except BenchError as exc:
            result["errors"]["backfill"] = str(exc)
            progress(f"A failed: {exc}")
        if full is not None and floor is not None:
            # Under the dev target both sides apply the same sample: still comparable.
            result["equivalence"] = compare_outputs(
                full, floor, memory_limit=options.memory_limit, threads=options.threads
            )
            verdict = "equal" if result["equivalence"]["equal"] else "DIFFERENT"
            progress(f"C vs A outputs: {verdict}")
        if full is not None:
            result["dashboard"] = section_dashboard(full, options)
            result["storage"] = {
                "warehouse_bytes": database_bytes(full),
                "bare_bytes": database_bytes(floor) if floor is not None else None,
                "landing_bytes": landing_meta["bytes"],
            }
            save()
        try:
            if "daily" in options.sections:
                result["daily"] = section_daily(ws, options)
        except BenchError as exc:
            result["errors"]["daily"] = str(exc)
            progress(f"B failed: {exc}")
    finally:
        ws.close()
    result["total_s"] = time.monotonic() - started
    result["targets"] = evaluate_targets(result)
    result.pop("completed_runs")  # every run is in its section now
    result["complete"] = True
    save()
    path.with_suffix(".md").write_text(markdown_report(result))
    return result, path


#: The parts a result can hold, and which part each key belongs to.
SECTIONS = ("bare", "backfill", "daily")
SECTION_KEYS = {
    "bare": ("bare",),
    "backfill": ("backfill", "dashboard", "storage"),
    "daily": ("daily",),
}


def merge_results(paths: Sequence[Path], results_dir: Path) -> tuple[dict[str, Any], Path]:
    """Combine results of one scale run in parts (``--sections``) into one result and report.

    Later files win for a part they both hold; the equivalence check is kept
    only from a file that ran C and A together. Writes
    ``<results_dir>/<timestamp>-merged.json`` (and ``.md``).
    """
    parts = [json.loads(Path(p).read_text()) for p in paths]
    scales = {json.dumps(p["scale"], sort_keys=True) for p in parts}
    if len(scales) != 1:
        raise ValueError("these results are of different scales: they cannot be merged")
    merged: dict[str, Any] = {
        key: parts[-1][key] for key in ("quick", "scale", "settings", "machine", "landing")
    }
    merged["timestamp"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    merged["merged_from"] = [str(p) for p in paths]
    merged["errors"] = {}
    for part in parts:
        for section in part.get("sections", SECTIONS):
            for key in SECTION_KEYS[section]:
                if key in part:
                    merged[key] = part[key]
            if section in part.get("errors", {}):
                merged["errors"][section] = part["errors"][section]
        if "equivalence" in part:
            merged["equivalence"] = part["equivalence"]
    merged["complete"] = all(p.get("complete") for p in parts)
    merged["targets"] = evaluate_targets(merged)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{merged['timestamp']}-merged.json"
    path.write_text(json.dumps(merged, indent=2, default=str))
    path.with_suffix(".md").write_text(markdown_report(merged))
    return merged, path


# --- the report -----------------------------------------------------------------------------------


def _range(s: dict[str, Any], fmt: str, scale: float = 1.0) -> tuple[str, str]:
    if not s or s.get("median") is None:
        return "–", "–"
    median = format(s["median"] * scale, fmt)
    spread = f"{format(s['min'] * scale, fmt)} – {format(s['max'] * scale, fmt)}"
    return median, spread


def _step_breakdown(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown bullets: median seconds per Dagster step (dbt steps split into models, tests
    and the rest: dbt start-up, parsing, Dagster), the slowest dbt models, start-up."""
    steps: dict[str, dict[str, list[float]]] = {}
    models: dict[str, list[float]] = {}
    startup: list[float] = []
    for run in runs:
        detail = run.get("detail", {})
        for step, times in detail.get("steps", {}).items():
            parts = steps.setdefault(step, {})
            for part in ("seconds", "models_s", "tests_s"):
                parts.setdefault(part, []).append(times.get(part, 0.0))
        for model, seconds in detail.get("dbt_models_s", {}).items():
            models.setdefault(model, []).append(seconds)
        if detail.get("startup_s") is not None:
            startup.append(detail["startup_s"])
    med = statistics.median
    lines = []
    for step, parts in sorted(steps.items(), key=lambda kv: -med(kv[1]["seconds"])):
        total, in_models, in_tests = (med(parts[p]) for p in ("seconds", "models_s", "tests_s"))
        if total < 0.5:
            continue
        split = ""
        if in_models or in_tests:
            rest = total - in_models - in_tests
            split = f" (models {in_models:.1f}, tests {in_tests:.1f}, dbt/Dagster rest {rest:.1f})"
        lines.append(f"- step {step}: {total:.1f}{split}")
    if startup:
        lines.append(f"- process start-up (imports, definitions): {med(startup):.1f}")
    slow = sorted(((m, med(v)) for m, v in models.items()), key=lambda r: -r[1])[:5]
    if slow:
        lines.append(
            "- slowest dbt models: " + ", ".join(f"{m} {sec:.1f}" for m, sec in slow if sec >= 0.05)
        )
    return lines


def _components(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of every step, dbt model and dbt test over the runs."""
    per: dict[str, list[float]] = {}
    for run in runs:
        detail = run.get("detail", {})
        for step, times in detail.get("steps", {}).items():
            per.setdefault(f"step {step}", []).append(times.get("seconds", 0.0))
        for kind in ("dbt_models_s", "dbt_tests_s"):
            for name, seconds in detail.get(kind, {}).items():
                label = "model" if kind == "dbt_models_s" else "test"
                per.setdefault(f"{label} {name}", []).append(seconds)
    return {name: statistics.median(values) for name, values in per.items()}


def _growth_lines(daily: dict[str, Any], top: int = 8) -> list[str]:
    """What grew most from the early to the late daily run: the profile of B's ratio."""
    early = _components(daily["early"]["runs"])
    late = _components(daily["late"]["runs"])
    growth = sorted(
        ((name, early.get(name, 0.0), seconds) for name, seconds in late.items()),
        key=lambda row: -(row[2] - row[1]),
    )
    lines = [
        f"What grew most from day {daily['early']['day']} to day {daily['late']['day']} "
        "(median seconds, early → late):",
        "",
    ]
    lines += [f"- {name}: {a:.2f} → {b:.2f}" for name, a, b in growth[:top] if b - a >= 0.05]
    return lines


def _memory_lines(label: str, runs: Sequence[dict[str, Any]], top: int = 5) -> list[str]:
    """The steps with the highest sampled tree RSS (max over runs)."""
    peaks: dict[str, float] = {}
    for run in runs:
        for step, gib in run.get("peak_tree_rss_gib_by_step", {}).items():
            peaks[step] = max(peaks.get(step, 0.0), gib)
    if not peaks:
        return []
    ranked = sorted(peaks.items(), key=lambda kv: -kv[1])[:top]
    return [
        f"{label}'s peak RSS by step (sampled tree, GiB): "
        + ", ".join(f"{step} {gib:.2f}" for step, gib in ranked)
    ]


def _load_note(result: dict[str, Any]) -> str:
    loads = [
        run["load_average_1m"]
        for section in ("backfill", "bare")
        for run in (result.get(section) or {}).get("runs", [])
    ]
    for key in ("early", "late"):
        loads += [
            run["load_average_1m"]
            for run in (result.get("daily") or {}).get(key, {}).get("runs", [])
        ]
    if not loads:
        return ""
    cpus = result.get("machine", {}).get("cpus")
    note = (
        f"Load average (1 min) at the end of the measured runs: {min(loads):.1f} – {max(loads):.1f} "
        f"on {cpus} CPUs"
    )
    # A measured run keeps `threads` cores busy itself: up to the CPU count is its own load.
    if cpus and max(loads) > cpus + 0.5:
        return note + " (above the CPU count: other work was competing, times are inflated)."
    return note + " (the benchmark's own load: nothing else competed noticeably)."


def _sample_note(settings: dict[str, Any]) -> str:
    if settings.get("dev_sample_pct") is None and settings.get("dev_days") is None:
        return ""
    days = f", last {settings['dev_days']} days" if settings.get("dev_days") else ""
    pct = settings.get("dev_sample_pct") or 100
    return f" dbt on the **dev target** ({pct:g}% of users{days}; the bare script samples alike)."


def markdown_report(result: dict[str, Any]) -> str:
    """The result as markdown: the main table, the targets, where the time went."""
    scale = result["scale"]
    machine = result.get("machine", {})
    landing = result.get("landing", {})
    lines = [
        f"### expplatform bench {result['timestamp']}"
        + (" (quick scale: targets apply to the default scale)" if result.get("quick") else ""),
        "",
        f"Scale: {scale['users']:,} users, {scale['days']} days, "
        f"{scale['events_per_day']:,} events/day ({landing.get('event_lines', 0):,} event lines, "
        f"{scale['files_per_day']} files/day, gzip={scale['compress']}). "
        f"Machine: {machine.get('cpus')} CPUs ({machine.get('cpu_model', '?')}), "
        f"{machine.get('memory_gib', '?')} GiB; DuckDB {machine.get('duckdb')} with "
        f"memory_limit={result['settings']['duckdb_memory_limit']}, "
        f"threads={result['settings']['duckdb_threads']}; "
        f"{result['settings']['repeats']} repetition(s)." + _sample_note(result["settings"]),
        "",
        _load_note(result),
        "",
        "| section | measure | median | min – max |",
        "|---|---|---:|---:|",
    ]

    def row(section: str, measure: str, s: dict[str, Any] | None, fmt: str, k: float = 1.0):
        median, spread = _range(s or {}, fmt, k)
        lines.append(f"| {section} | {measure} | {median} | {spread} |")

    a = result.get("backfill")
    if a:
        label = f"A backfill {a['range'][0]}..{a['range'][1]}"
        row(label, "wall time (s)", a["wall_s"], ".1f")
        row(label, "of which job execution (s)", a["execute_s"], ".1f")
        row(label, "events/s", a["events_per_s"], ",.0f")
        row(label, "peak RSS, process tree (GiB)", a["peak_rss_gib"], ".2f")
    b = result.get("daily")
    if b:
        for key in ("early", "late"):
            s = b[key]
            label = f"B daily run, day {s['day']} ({s['date']})"
            row(label, "wall time (s)", s["wall_s"], ".1f")
            row(label, "of which job execution (s)", s["execute_s"], ".1f")
            row(label, "peak RSS, process tree (GiB)", s["peak_rss_gib"], ".2f")
        lines.append(
            f"| B | day {b['late']['day']} / day {b['early']['day']} | "
            f"{b['late_over_early']:.2f} | execution only: "
            f"{(b['late_over_early_execute'] or 0):.2f} |"
        )
    c = result.get("bare")
    if c:
        row("C bare DuckDB script", "wall time (s)", c["wall_s"], ".1f")
        row("C bare DuckDB script", "peak RSS (GiB)", c["peak_rss_gib"], ".2f")
    if a and c:
        ratio = a["wall_s"]["median"] / c["wall_s"]["median"]
        best = a["wall_s"]["min"] / c["wall_s"]["min"]
        lines.append(
            f"| A / C | backfill over floor | {ratio:.2f} | fastest / fastest: {best:.2f} |"
        )
    d = result.get("dashboard")
    if d:
        adhoc = d["adhoc"]
        row("D ad-hoc seed SQL (raw)", "warm (ms)", adhoc["warm_ms"], ",.1f")
        lines.append(f"| D ad-hoc seed SQL (raw) | cold (ms) | {adhoc['cold_ms']:,.1f} | |")
        for name, q in d["queries"].items():
            row(f"D {name} (marts)", "warm (ms)", q["warm_ms"], ".2f")
            lines.append(
                f"| D {name} (marts) | cold (ms); speed-up vs ad-hoc | {q['cold_ms']:.1f} | "
                f"{q['speedup_vs_adhoc']:,.0f}x |"
            )
    storage = result.get("storage")
    if storage:
        lines.append(
            f"| storage | warehouse file (MiB) | {storage['warehouse_bytes'] / 2**20:,.0f} | "
            f"landing zone: {storage['landing_bytes'] / 2**20:,.0f} |"
        )
    eq = result.get("equivalence")
    if eq:
        verdict = {True: "identical", False: "DIFFERENT", None: eq.get("skipped", "skipped")}
        lines.append(f"| C vs A | §5 tables compared row by row | {verdict[eq['equal']]} | |")

    lines += ["", "| target | value | rule | met |", "|---|---:|---|---|"]
    for t in result.get("targets", []):
        value = "–" if t["value"] is None else f"{t['value']:,.2f}"
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {t['target']} | {value} | {t['rule']} {t['limit']:g} | {met} |")

    if a:
        lines += ["", "Where A's time went (median seconds):", ""]
        lines += _step_breakdown(a["runs"])
        lines += ["", *_memory_lines("A", a["runs"])]
    if b:
        for key in ("early", "late"):
            lines += ["", f"Where B's time went at day {b[key]['day']} (median seconds):", ""]
            lines += _step_breakdown(b[key]["runs"])
    if b:
        lines += ["", *_growth_lines(b)]
    if c:
        per: dict[str, list[float]] = {}
        for run in c["runs"]:
            for st in run["detail"].get("statements", []):
                per.setdefault(st["statement"], []).append(st["seconds"])
        top = sorted(((n, statistics.median(v)) for n, v in per.items()), key=lambda r: -r[1])
        lines += ["", "Where C's time went (median seconds):", ""]
        lines += [f"- {name}: {seconds:.1f}" for name, seconds in top[:6]]
    for section, message in result.get("errors", {}).items():
        lines.append(f"\n**{section} failed**: {message}")
    return "\n".join(lines) + "\n"


def options_for(quick: bool, **overrides: Any) -> BenchOptions:
    """BenchOptions for the default or the quick scale, with explicit values overriding."""
    base = QUICK_SCALE if quick else DEFAULT_SCALE
    scale_fields = {k: v for k, v in overrides.items() if k in BenchScale.__dataclass_fields__}
    other = {
        k: v
        for k, v in overrides.items()
        if k not in BenchScale.__dataclass_fields__ and v is not None
    }
    scale = replace(base, **{k: v for k, v in scale_fields.items() if v is not None})
    # The quick scale exercises the dev target (half of the users) as well as the harness.
    defaults: dict[str, Any] = (
        {"repeats": 1, "early_day": 1, "dashboard_repeats": 5, "dev_sample_pct": 50.0}
        if quick
        else {}
    )
    return BenchOptions(scale=scale, quick=quick, **{**defaults, **other})
