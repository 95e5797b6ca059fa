"""The temporary folder of one benchmark run and the measured child processes it starts.

:func:`snapshot_code` freezes the code under test; :class:`Workspace` holds it
with a temporary ``DAGSTER_HOME``, the work warehouse and the logs, restores
saved warehouse states, and runs each measurement as a fresh process
(:func:`~expplatform.bench.memory.run_measured`): wall time and peak RSS."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from expplatform.bench.memory import ProcessOutcome, run_measured
from expplatform.bench.options import DEV_ENV, BenchOptions, BenchScale
from expplatform.config import PROJECT_ROOT, SHIPPED_DAGSTER_YAML


class BenchError(RuntimeError):
    """A measured run failed; the message says which and where its log is."""


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


def database_bytes(path: Path) -> int:
    """A DuckDB database's size on disk: the file and its write-ahead log."""
    wal = path.with_name(path.name + ".wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())


RUNNER_SCRIPT = "run_measurement.py"
#: The `expplatform` command of the snapshot: what the console script in .venv/bin runs.
CLI_SCRIPT = "expplatform_cli.py"

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
    # The children's entry points: a script's folder is first on its sys.path, so they
    # import the snapshot. The CLI script is what pip writes for `expplatform`.
    (dest / RUNNER_SCRIPT).write_text(
        "import sys\n\nfrom expplatform.bench.runner import main\n\nsys.exit(main())\n"
    )
    (dest / CLI_SCRIPT).write_text(
        "import sys\n\nfrom expplatform.cli import main\n\nsys.exit(main())\n"
    )
    return dest


class Workspace:
    """The temp folder of one benchmark run: code snapshot, DAGSTER_HOME, warehouses, logs.

    :meth:`site` gives another landing zone its own warehouse and ``DAGSTER_HOME`` in the
    same folder, sharing the code snapshot, the logs and the list of measurements (E).
    """

    def __init__(
        self,
        options: BenchOptions,
        landing: Path | None,
        *,
        scale: BenchScale | None = None,
        dev_target: bool = True,
        parent: Workspace | None = None,
        name: str = "",
    ) -> None:
        self.options = options
        self.landing = landing
        self.scale = scale or options.scale
        #: Whether the dev target's sample (options.dev_*) applies to this site's runs.
        self.dev_target = dev_target
        self.parent = parent
        if parent is None:
            work_parent = options.work_dir
            if work_parent is not None:
                work_parent.mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix="xpbench-", dir=work_parent))
            self.code = snapshot_code(self.root / "src")
            self.logs = self.root / "logs"
            self.logs.mkdir()
            self._runs = [0]  # shared with the sites: log numbers stay in run order
            #: Every finished measurement, in order; `checkpoint` is called after each one so
            #: that a run killed after hours still leaves its measurements on disk.
            self.completed: list[dict[str, Any]] = []
            self.checkpoint: Callable[[], None] = lambda: None
        else:
            self.root, self.code, self.logs = parent.root, parent.code, parent.logs
            self._runs, self.completed = parent._runs, parent.completed
            self.checkpoint = lambda: parent.checkpoint()
        self._prefix = f"{name}-" if name else ""
        self.dagster_home = self.root / f"{self._prefix}dagster_home"
        self.dagster_home.mkdir()
        shutil.copyfile(SHIPPED_DAGSTER_YAML, self.dagster_home / "dagster.yaml")
        self.warehouse = self.root / f"{self._prefix}warehouse.duckdb"
        if parent is None:
            # The definitions load the dbt manifest from disk: build the snapshot's own.
            subprocess.run(
                [sys.executable, str(self.code / CLI_SCRIPT), "prepare"],
                cwd=self.code,
                env=self.env(),
                check=True,
                capture_output=True,
            )

    def site(self, name: str, landing: Path, scale: BenchScale) -> Workspace:
        """Another landing zone with its own warehouse and DAGSTER_HOME, on the default target."""
        return Workspace(
            self.options, landing, scale=scale, dev_target=False, parent=self, name=name
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
                "EXPPLATFORM_LANDING_DIR": str(self.landing or self.root / "no-landing"),
                "EXPPLATFORM_DUCKDB_PATH": str(self.warehouse),
                "EXPPLATFORM_START_DATE": self.scale.start.isoformat(),
                "EXPPLATFORM_ALERT_LOG": str(self.root / f"{self._prefix}alerts.log"),
                "EXPPLATFORM_DUCKDB_MEMORY_LIMIT": self.options.memory_limit,
                "EXPPLATFORM_DUCKDB_THREADS": str(self.options.threads),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(self.code), os.environ.get("PYTHONPATH", "")) if p
                ),
            }
        )
        options = self.options
        if self.dev_target and (options.dev_sample_pct is not None or options.dev_days is not None):
            last_day = self.scale.start + timedelta(days=self.scale.days - 1)
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
        target = self.root / f"{self._prefix}{name}.duckdb"
        shutil.copyfile(self.warehouse, target)
        return target

    def _run(self, label: str, argv: list[str]) -> tuple[ProcessOutcome, Path]:
        self._runs[0] += 1
        log = self.logs / f"{self._runs[0]:02d}-{label}.log"
        max_mib = self.options.max_rss_gib * 1024 if self.options.max_rss_gib else None
        outcome = run_measured(
            argv, env=self.env(), cwd=self.code, log_path=log, max_rss_mib=max_mib
        )
        if outcome.killed_for_memory:
            raise BenchError(
                f"{label}: killed when its process tree passed {self.options.max_rss_gib} GiB "
                f"(--max-rss-gb); log: {log}"
            )
        return outcome, log

    def _measure(self, label: str, argv: list[str], out: Path) -> tuple[ProcessOutcome, dict]:
        outcome, log = self._run(label, argv)
        summary = json.loads(out.read_text()) if out.exists() else {}
        out.unlink(missing_ok=True)
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
        return self._done(label, measurement_of(outcome, summary))

    def run_cli(self, label: str, start: date, end: date, *, steps: bool = True) -> dict[str, Any]:
        """`expplatform materialize --start START --end END`, timed from start to exit.

        With `steps`, the step timings come afterwards from the run recorded in this
        site's DAGSTER_HOME (a child that is not timed).
        """
        argv = [sys.executable, str(self.code / CLI_SCRIPT), "materialize"]
        argv += ["--start", start.isoformat(), "--end", end.isoformat()]
        outcome, log = self._run(label, argv)
        with open(log, "a", encoding="utf-8") as fh:  # the command's own progress lines
            fh.write("\n--- stdout ---\n" + outcome.stdout)
        if outcome.returncode != 0:
            tail = (outcome.stdout[-800:] + outcome.stderr_tail[-800:]).strip()
            raise BenchError(f"{label} failed (exit {outcome.returncode}): {tail}; log: {log}")
        summary: dict[str, Any] = {}
        if steps:
            out = self.root / "result.json"
            argv = [sys.executable, str(self.code / RUNNER_SCRIPT), "last-run", str(out)]
            subprocess.run(argv, cwd=self.code, env=self.env(), capture_output=True, check=False)
            summary = json.loads(out.read_text()) if out.exists() else {}
            out.unlink(missing_ok=True)
        measurement = measurement_of(outcome, summary)
        # The command's own start-up and exit: everything outside the Dagster run.
        if measurement["execute_s"] is not None:
            measurement["outside_run_s"] = outcome.wall_s - measurement["execute_s"]
        return self._done(label, measurement)

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
        return self._done(label, measurement_of(outcome, summary))

    def close(self) -> None:
        """Remove the workspace (the whole folder, sites included) unless asked to keep it."""
        if self.parent is not None:
            return
        if self.options.keep_work_dir:
            self.options.progress(f"work folder kept: {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def measurement_of(outcome: ProcessOutcome, summary: dict[str, Any]) -> dict[str, Any]:
    """One measurement: the child's wall time and memory, with its own JSON summary as detail."""
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


def series_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The repetitions of one measurement: wall, execution and peak RSS summarized, and the runs."""
    return {
        "wall_s": summarize([r["wall_s"] for r in runs]),
        "execute_s": summarize([r["execute_s"] for r in runs if r["execute_s"] is not None]),
        "peak_rss_gib": summarize([r["peak_rss_gib"] for r in runs]),
        "runs": runs,
    }


def fmt_s(seconds: float) -> str:
    """Seconds for a progress line."""
    return f"{seconds:.1f} s"
