"""Resident memory of a process tree, measured two ways (psutil and wait4).

- **Sampled tree RSS**: a thread sums the resident set size of the process and
  all its descendants (psutil) every ``interval`` seconds and keeps the peak
  of the sum. It sees concurrent processes (the Dagster run and its dbt
  subprocess) but can miss a spike shorter than the interval, and it counts
  shared pages (the Python interpreter, libraries) once per process: an
  over-estimate of the tree's true footprint.
- **Largest single process**: ``ru_maxrss`` of the child as returned by
  ``wait4``: the kernel's exact high-water mark of the child and of every
  descendant it reaped (dbt included), the largest one, never a sum.

The benchmark reports both and judges the larger one against the target.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


def kill_group(pgid: int) -> None:
    """SIGKILL the process group `pgid` (one this module created with ``start_new_session``).

    The group outlives its leader while any member lives, and its id is not
    reused meanwhile: orphans of a dead child are reached, nothing else is.
    """
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # the group is already empty
        pass


def tree_rss_kib(root: int) -> int:
    """Summed resident set size of `root` and its live descendants, in KiB (0 when gone)."""
    try:
        parent = psutil.Process(root)
        tree = [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # exited (or became a zombie) between the listing and the read
            pass
    return total // 1024


class TreeRssSampler:
    """Samples the summed RSS of a process tree in a thread; the peak is in `peak_kib`."""

    def __init__(
        self,
        root: int,
        interval: float = 0.1,
        limit_kib: int | None = None,
        on_limit: Callable[[int], None] | None = None,
    ) -> None:
        self.root = root
        self.interval = interval
        self.limit_kib = limit_kib
        self.on_limit = on_limit
        self.peak_kib = 0
        self.samples = 0
        #: (epoch seconds, KiB) of every sample: lets a caller find the peak of each step.
        self.timeline: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = tree_rss_kib(self.root)
            self.samples += 1
            self.peak_kib = max(self.peak_kib, total)
            self.timeline.append((time.time(), total))
            if self.limit_kib is not None and total > self.limit_kib and self.on_limit:
                self.on_limit(total)
                self.on_limit = None  # once
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class ProcessOutcome:
    """How a measured child process ended and what it used."""

    returncode: int
    wall_s: float
    peak_tree_rss_mib: float
    max_process_rss_mib: float
    samples: int
    timeline: list[tuple[float, int]]
    killed_for_memory: bool
    stdout: str
    stderr_tail: str

    def peak_between_mib(self, start: float, end: float) -> float:
        """The sampled tree peak between two epoch times (0 when no sample fell inside)."""
        inside = [kib for t, kib in self.timeline if start <= t <= end]
        return max(inside, default=0) / 1024

    @property
    def peak_rss_mib(self) -> float:
        """The figure judged against the memory target: the larger of the two measurements."""
        return max(self.peak_tree_rss_mib, self.max_process_rss_mib)


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    log_path: Path | None = None,
    max_rss_mib: float | None = None,
    interval: float = 0.1,
) -> ProcessOutcome:
    """Run `argv` in its own process group; wall time and peak RSS of its process tree.

    stderr goes to `log_path` (the child's logs can be large); stdout is
    returned. When the sampled tree RSS exceeds `max_rss_mib`, the whole
    group is killed (a guard for a shared machine) and the outcome says so.
    """
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    # stdout goes to a file, not a pipe: a grandchild the child leaves behind (Dagster's
    # compute-log `tail -F`, once seen after a run) would hold a pipe open, and reading it to
    # its end would then wait forever for a child that has already exited.
    out = tempfile.TemporaryFile()  # noqa: SIM115
    killed = threading.Event()
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=log,
            start_new_session=True,
        )

        def kill(total_kib: int) -> None:
            killed.set()
            kill_group(proc.pid)

        limit = int(max_rss_mib * 1024) if max_rss_mib else None
        with TreeRssSampler(proc.pid, interval, limit, kill) as sampler:
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Leave nothing behind: the group may hold orphans if the child died abruptly.
        kill_group(proc.pid)
        out.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
    finally:
        out.close()
        if log_path:
            log.close()
    tail = ""
    if log_path and log_path.exists():
        with open(log_path, "rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - 4000))
            tail = fh.read().decode("utf-8", errors="replace")
    return ProcessOutcome(
        returncode=proc.returncode,
        wall_s=wall,
        peak_tree_rss_mib=sampler.peak_kib / 1024,
        max_process_rss_mib=usage.ru_maxrss / 1024,  # Linux: KiB
        samples=sampler.samples,
        timeline=sampler.timeline,
        killed_for_memory=killed.is_set(),
        stdout=stdout,
        stderr_tail=tail,
    )
