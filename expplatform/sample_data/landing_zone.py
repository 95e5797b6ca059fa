"""The public entry point: :func:`generate_landing_zone` and the :class:`SampleSummary` it returns.

It draws the population, writes the users and subscriptions files, then
simulates the arrival days in order (one seeded generator per day) and
queues each folder's part files for the writer threads.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from expplatform.sample_data.batches import Batch, size
from expplatform.sample_data.events import simulate_day
from expplatform.sample_data.formats import (
    LEGACY_HEADER,
    ld_fields,
    ld_format,
    legacy_fields,
    legacy_format,
)
from expplatform.sample_data.population import World, write_subscriptions, write_users
from expplatform.sample_data.quirks import (
    LD_BAD_KINDS,
    LEGACY_BAD_KINDS,
    bad_lines,
    finalize,
    forced_kinds,
    ld_bad_line,
    legacy_bad_line,
)
from expplatform.sample_data.story import Plan
from expplatform.sample_data.writer import Source, reset_sources, submit_files


@dataclass(frozen=True)
class SampleSummary:
    """Counts of what :func:`generate_landing_zone` wrote (lines exclude CSV headers)."""

    landing_dir: Path
    start: date
    days: int
    users: int
    files: int
    launchdarkly_lines: int
    legacy_lines: int
    bad_lines: int

    def as_text(self) -> str:
        """A few human-readable lines for the CLI."""
        end = self.start + timedelta(days=self.days - 1)
        total = self.launchdarkly_lines + self.legacy_lines
        return "\n".join(
            [
                f"Sample landing zone in {self.landing_dir}",
                f"  arrival days : {self.start} .. {end} ({self.days} days), {self.users:,} users",
                f"  files        : {self.files:,}",
                f"  launchdarkly : {self.launchdarkly_lines:,} lines",
                f"  legacy       : {self.legacy_lines:,} lines",
                f"  bad lines    : {self.bad_lines:,} ({self.bad_lines / max(total, 1):.3%},"
                " rejected on load by design)",
            ]
        )


def generate_landing_zone(
    landing_dir: Path,
    *,
    start: date,
    days: int = 30,
    users: int = 20_000,
    seed: int = 42,
    events_per_day: int | None = None,
    files_per_day: int = 1,
    compress: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SampleSummary:
    """Write a deterministic sample landing zone (contract §2) and return what was written.

    The four source folders under `landing_dir` are replaced; nothing else is
    touched. `events_per_day` (LaunchDarkly + legacy lines per arrival day)
    overrides the default of about ten events per active user and day;
    `files_per_day` splits each daily folder into that many parts;
    `compress` writes LaunchDarkly parts as ``.jsonl.gz``.
    """
    if days < 1 or users < 1 or files_per_day < 1:
        raise ValueError("days, users and files_per_day must be at least 1")
    if events_per_day is not None and events_per_day < 0:
        raise ValueError("events_per_day must be >= 0")
    report = progress or (lambda _line: None)
    landing = Path(landing_dir)
    plan = Plan(
        start=start,
        days=days,
        users=users,
        legacy_end=2 * days // 3,
        ld_start=days // 3,
        epoch_day0=(start - date(1970, 1, 1)).days,
        user_width=max(6, len(str(users))),
    )
    reset_sources(landing)
    world = World(np.random.default_rng([seed, 1]), plan)
    for line in write_users(landing, plan, world, np.random.default_rng([seed, 2])):
        report(line)
    for line in write_subscriptions(landing, plan, world, np.random.default_rng([seed, 3])):
        report(line)
    files = 2 + len(list((landing / "subscriptions").iterdir()))

    sources = (
        Source(
            name="launchdarkly",
            days=plan.ld_days,
            suffix=".jsonl.gz" if compress else ".jsonl",
            header=b"",
            fmt=ld_format(plan),
            fields=lambda rows: ld_fields(rows, plan),
            bad_kinds=LD_BAD_KINDS,
            bad_line=ld_bad_line,
            retractions=True,
            compress=compress,
        ),
        Source(
            name="legacy",
            days=plan.legacy_days,
            suffix=".csv",  # the contract's legacy export is plain CSV
            header=LEGACY_HEADER,
            fmt=legacy_format(plan),
            fields=lambda rows: legacy_fields(rows, plan),
            bad_kinds=LEGACY_BAD_KINDS,
            bad_line=legacy_bad_line,
            retractions=False,
            compress=False,
        ),
    )
    forced = [forced_kinds(src.bad_kinds, src.days) for src in sources]
    variants: dict[str, int] = {}
    next_id = [1, 1]
    carry: list[Batch | None] = [None, None]
    lines_written = [0, 0]
    bad_written = 0

    with ThreadPoolExecutor(max_workers=2) as pool:
        inflight: list[tuple[int, str, list[Future]]] = []

        def drain(before_day: int) -> None:
            # Waiting for older days bounds memory: at most ~two days of rows are alive.
            while inflight and inflight[0][0] < before_day:
                _, message, futures = inflight.pop(0)
                for fut in futures:
                    fut.result()
                report(message)

        for d in range(days):
            rng = np.random.default_rng([seed, 4, d])
            new_rows = simulate_day(d, rng, plan, world, events_per_day)
            for i, src in enumerate(sources):
                if d not in src.days:
                    continue
                lines, carry[i], next_id[i] = finalize(
                    new_rows[i], rng, d, next_id[i], carry[i], d + 1 in src.days, src.retractions
                )
                n = size(lines)
                bad = bad_lines(
                    src.bad_kinds, forced[i].get(d, []), src.bad_line, rng, plan, d, n,
                    next_id[i], variants,
                )  # fmt: skip
                next_id[i] += len(bad)
                folder = landing / src.name / f"date={plan.day(d)}"
                futures = submit_files(pool, src, folder, files_per_day, lines, bad)
                lines_written[i] += n + len(bad)
                bad_written += len(bad)
                files += files_per_day
                message = (
                    f"{src.name} {folder.name}: {n + len(bad):,} lines in {files_per_day} file(s)"
                )
                inflight.append((d, message, futures))
            drain(before_day=d - 1)
        drain(before_day=days)

    return SampleSummary(
        landing_dir=landing,
        start=start,
        days=days,
        users=users,
        files=files,
        launchdarkly_lines=lines_written[0],
        legacy_lines=lines_written[1],
        bad_lines=bad_written,
    )
