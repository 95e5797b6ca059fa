"""`expplatform soak`: idempotence soaked over random sequences of runs and landing-zone changes.

Each sequence starts from a fresh warehouse and a private copy of a small sample landing zone
(`expplatform sample-data`, every quirk of the contract's §2) and draws, from its own seed, a
few steps among:

- **run** a partition or a range of arrival dates (one single-run backfill through the real
  Dagster job: raw loads, the dbt build with its checks, the serving copy, the pages);
- **re-deliver** a file of a daily folder under another name (the same lines twice: nothing
  may change);
- **correct** a file in place (re-delivered under its own name with one line less);
- **retract** an event: its LaunchDarkly line with ``is_active = "N"`` lands in the folder of
  its own or a later arrival date;
- **re-date** an event: a copy of its LaunchDarkly line with a timestamp up to two days earlier
  or later (within the sample's days, never after the folder's date) lands in the folder of its
  own or a later arrival date: the event moves to its earliest copy's date.

A landing change is picked up the way the platform picks it up (the landing sensor requests
the changed date): after the drawn steps, every date whose folder changed since it was last run,
or that was never run, is run, one run per contiguous range. The warehouse must then equal, row
for row in every table of raw, intermediate and marts, one clean build of the final landing
zone (one run of the whole range on a fresh warehouse, cached per landing state), with the
marts' queues empty and no raw line loaded twice.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from expplatform.config import Settings
from expplatform.snapshots import (
    differences,
    duplicated_raw_lines,
    queue_sizes,
    warehouse_snapshot,
)

#: The sample every sequence starts from (small: a run costs seconds, not minutes).
FIRST_DAY = date(2025, 12, 1)
DAYS = 4
USERS = 150
SAMPLE_SEED = 1
#: What a drawn step is, with its weight.
STEP_WEIGHTS = {"run": 5, "redeliver": 1, "correct": 1, "retract": 2, "redate": 2}
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Step:
    """One step of a sequence: a run of [start, end], or a change to the landing zone."""

    kind: str
    start: date
    end: date
    seed: int = 0  # which file / line a landing change picks

    def describe(self) -> str:
        if self.kind == "run":
            return f"run {self.start:%m-%d}..{self.end:%m-%d}"
        if self.kind in ("retract", "redate"):
            return f"{self.kind} an event of {self.start:%m-%d} into {self.end:%m-%d}"
        return f"{self.kind} a file of {self.start:%m-%d}"


@dataclass
class SequenceResult:
    """What one sequence did and whether it ended at the clean build."""

    index: int
    seed: int
    steps: list[Step]
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def runs(self) -> int:
        return sum(step.kind == "run" for step in self.steps)


def days_of(first: date = FIRST_DAY, days: int = DAYS) -> list[date]:
    return [first + timedelta(days=i) for i in range(days)]


def draw_steps(seed: int, days: Sequence[date], count: int | None = None) -> list[Step]:
    """The drawn part of a sequence (before the catch-up runs): 3 to 6 steps, at least one run."""
    rng = random.Random(seed)
    kinds = list(STEP_WEIGHTS)
    weights = list(STEP_WEIGHTS.values())
    steps: list[Step] = []
    for _ in range(count or rng.randint(3, 6)):
        kind = rng.choices(kinds, weights)[0]
        a = rng.randrange(len(days))
        b = rng.randrange(a, len(days))
        if kind in ("redeliver", "correct"):
            b = a
        steps.append(Step(kind, days[a], days[b], rng.randrange(1 << 30)))
    if not any(step.kind == "run" for step in steps):
        steps.insert(rng.randrange(len(steps) + 1), Step("run", days[0], days[-1]))
    return steps


def catch_up(steps: Sequence[Step], days: Sequence[date]) -> list[Step]:
    """The runs the landing sensor would request after `steps`: every date whose folder changed
    after it was last run, or never run, as one run per contiguous range."""
    stale = set(days)
    for step in steps:
        if step.kind == "run":
            stale -= {d for d in days if step.start <= d <= step.end}
        else:
            stale.add(step.end)  # the folder the change landed in
    runs: list[Step] = []
    for day in sorted(stale):
        if runs and runs[-1].end == day - timedelta(days=1):
            runs[-1] = Step("run", runs[-1].start, day)
        else:
            runs.append(Step("run", day, day))
    return runs


def _daily_files(landing: Path, day: date) -> list[Path]:
    return sorted(
        p
        for folder in ("launchdarkly", "legacy")
        for p in (landing / folder / f"date={day.isoformat()}").glob("*")
        if p.is_file()
    )


def apply_change(landing: Path, step: Step, number: int) -> str:
    """Change the landing zone as `step` says; a line saying what was done."""
    rng = random.Random(step.seed)
    if step.kind in ("retract", "redate"):
        candidates = [
            p for d in days_between(FIRST_DAY, step.start) for p in _ld_files(landing, d)
        ] or [p for d in days_between(FIRST_DAY, step.end) for p in _ld_files(landing, d)]
        if not candidates:
            return f"{step.kind}: no LaunchDarkly file yet; nothing changed"
        source = rng.choice(candidates)
        lines = [json.loads(line) for line in _good_lines(source)]
        active = [e for e in lines if e.get("is_active") == "Y"]
        if step.kind == "redate":  # a copy of a line with a readable time
            active = [
                e
                for e in active
                if isinstance(e.get("event"), dict)
                and isinstance(e["event"].get("creationDate"), int)
            ]
        if not active:
            return f"{step.kind}: no active event in {source.name}; nothing changed"
        target = landing / "launchdarkly" / f"date={step.end.isoformat()}"
        target.mkdir(parents=True, exist_ok=True)
        original = rng.choice(active)
        if step.kind == "retract":
            event = dict(original, is_active="N")
            (target / f"retract-{number:03d}.jsonl").write_text(json.dumps(event) + "\n")
            return f"retracted {event.get('event_id')} into {target.name}"
        return _redate(original, target, rng, number, step.end)
    files = _daily_files(landing, step.start)
    if not files:
        return f"{step.kind}: no file on {step.start}; nothing changed"
    source = rng.choice(files)
    if step.kind == "redeliver":
        copy = source.with_name(f"redelivered-{number:03d}{''.join(source.suffixes)}")
        shutil.copyfile(source, copy)
        return f"re-delivered {source.parent.name}/{source.name} as {copy.name}"
    lines = source.read_bytes().splitlines(keepends=True)
    first = 1 if source.suffix == ".csv" else 0  # keep a CSV header
    if len(lines) <= first + 1:
        return f"correct: {source.name} too short; nothing changed"
    drop = rng.randrange(first, len(lines))
    source.write_bytes(b"".join(lines[:drop] + lines[drop + 1 :]))
    return f"corrected {source.parent.name}/{source.name} (line {drop + 1} removed)"


def _redate(event: dict, target: Path, rng: random.Random, number: int, folder_day: date) -> str:
    """Write a copy of `event` with its timestamp moved by whole days into `target`."""
    at = event["event"]["creationDate"]
    first_ms = (FIRST_DAY - date(1970, 1, 1)).days * DAY_MS
    # not after the folder's own day: a timestamp after the load is rejected, not a copy
    last_ms = ((folder_day - date(1970, 1, 1)).days + 1) * DAY_MS - 1
    shifts = [d for d in (-2, -1, 1, 2) if first_ms <= at + d * DAY_MS <= last_ms]
    if not shifts:
        return f"redate: no other day for {event.get('event_id')}; nothing changed"
    shift = rng.choice(shifts)
    copy = dict(event, event=dict(event["event"], creationDate=at + shift * DAY_MS))
    (target / f"redate-{number:03d}.jsonl").write_text(json.dumps(copy) + "\n")
    return f"re-dated {event.get('event_id')} by {shift:+d} day(s) into {target.name}"


def days_between(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _ld_files(landing: Path, day: date) -> list[Path]:
    return sorted((landing / "launchdarkly" / f"date={day.isoformat()}").glob("*.jsonl"))


def _good_lines(path: Path) -> Iterator[str]:
    for line in path.read_text(errors="replace").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield line


def landing_state(landing: Path) -> str:
    """A fingerprint of every file's path and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(landing)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class Soak:
    """Runs sequences in `work_dir`; clean builds are cached per landing state."""

    def __init__(
        self,
        work_dir: Path,
        *,
        days: int = DAYS,
        users: int = USERS,
    ) -> None:
        from expplatform.sample_data import generate_landing_zone

        self.work_dir = work_dir
        self.days = days_of(FIRST_DAY, days)
        self.base = work_dir / "base-landing"
        if not self.base.exists():
            generate_landing_zone(
                self.base, start=FIRST_DAY, days=days, users=users, seed=SAMPLE_SEED
            )
        self.clean: dict[str, dict[str, list]] = {}

    def settings(self, name: str, landing: Path) -> Settings:
        folder = self.work_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        return Settings(
            landing_dir=landing,
            duckdb_path=folder / "warehouse.duckdb",
            start_date=self.days[0],
            lookback_days=2,
            alert_log=folder / "alerts.log",
        )

    def run(self, settings: Settings, start: date, end: date) -> None:
        """One single-run materialization of [start, end], in this process."""
        from dagster import DagsterInstance

        from expplatform.definitions import materialize_range

        with DagsterInstance.ephemeral() as instance:
            materialize_range(settings, instance, start, end, quiet=True)

    def clean_build(self, landing: Path) -> dict[str, list]:
        state = landing_state(landing)
        if state not in self.clean:
            folder = self.work_dir / f"clean-{len(self.clean)}"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(landing, folder / "landing")
            settings = self.settings(folder.name, folder / "landing")
            self.run(settings, self.days[0], self.days[-1])
            self.clean[state] = warehouse_snapshot(settings.duckdb_path)
            shutil.rmtree(folder, ignore_errors=True)
        return self.clean[state]

    def sequence(
        self,
        index: int,
        seed: int,
        steps: Sequence[Step] | None = None,
        *,
        caught_up: bool = True,
    ) -> SequenceResult:
        """Run one sequence (drawn from `seed` unless `steps` are given, then caught up unless
        `caught_up` is False: the test that shows the comparison can fail)."""
        began = time.monotonic()
        drawn = list(steps) if steps is not None else draw_steps(seed, self.days)
        planned = drawn + (catch_up(drawn, self.days) if caught_up else [])
        folder = self.work_dir / f"sequence-{index}"
        shutil.rmtree(folder, ignore_errors=True)
        landing = folder / "landing"
        shutil.copytree(self.base, landing)
        settings = self.settings(folder.name, landing)
        for number, step in enumerate(planned):
            if step.kind == "run":
                self.run(settings, step.start, step.end)
            else:
                apply_change(landing, step, number)
        result = SequenceResult(index, seed, planned)
        result.differences = differences(
            warehouse_snapshot(settings.duckdb_path), self.clean_build(landing)
        )
        queues = {q: n for q, n in queue_sizes(settings.duckdb_path).items() if n}
        if queues:
            result.differences.append(f"queues not empty: {queues}")
        duplicated = duplicated_raw_lines(settings.duckdb_path)
        if duplicated:
            result.differences.append(f"raw lines loaded twice: {duplicated[:3]}")
        shutil.rmtree(folder, ignore_errors=True)
        result.seconds = time.monotonic() - began
        return result


def run_soak(
    sequences: int,
    seed: int,
    *,
    work_dir: Path | None = None,
    echo: Callable[[str], None] = print,
) -> list[SequenceResult]:
    """Run `sequences` sequences (sequence i draws from seed + i); print one line each."""
    keep = work_dir is not None
    root = work_dir or Path(tempfile.mkdtemp(prefix="expplatform-soak-"))
    try:
        soak = Soak(root)
        results = []
        for i in range(sequences):
            result = soak.sequence(i, seed + i)
            verdict = "equal" if not result.differences else "DIFFERENT"
            echo(
                f"sequence {i + 1}/{sequences} (seed {seed + i}, {result.seconds:.1f} s): "
                + ", ".join(step.describe() for step in result.steps)
                + f" -> {verdict}"
            )
            for line in result.differences:
                echo(f"    {line}")
            results.append(result)
        return results
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def summary(results: Sequence[SequenceResult], seconds: float) -> dict[str, object]:
    """The figures a soak prints and docs/RELIABILITY.md records."""
    kinds: dict[str, int] = {}
    for result in results:
        for step in result.steps:
            kinds[step.kind] = kinds.get(step.kind, 0) + 1
    return {
        "sequences": len(results),
        "with_differences": sum(bool(r.differences) for r in results),
        "steps": kinds,
        "runs": sum(r.runs for r in results),
        "seconds": round(seconds, 1),
        "seconds_per_run": round(seconds / max(1, sum(r.runs for r in results)), 2),
    }
