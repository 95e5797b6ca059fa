"""What a benchmark run measures and at which scale: :class:`BenchScale`, :class:`BenchOptions`.

The scales of the issue (default, and ``--quick`` for the test suite), the
make-run sample of section E, and :func:`options_for`, which the CLI calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from expplatform.config import PROJECT_ROOT

DEFAULT_CACHE_DIR = PROJECT_ROOT / "bench" / "cache"
DEFAULT_RESULTS_DIR = PROJECT_ROOT / "bench" / "results"

#: The dev dbt target and its sample (dbt_project/macros/dev_sample.sql): set for every child
#: when sampling, removed from the children's environment otherwise.
DEV_ENV = (
    "EXPPLATFORM_DBT_TARGET",
    "EXPPLATFORM_DEV_SAMPLE_PCT",
    "EXPPLATFORM_DEV_DAYS",
    "EXPPLATFORM_DEV_AS_OF",
)

Progress = Callable[[str], None]

#: The parts a run can hold (``--sections``): C, A (+ D + storage), B, E.
SECTIONS = ("bare", "backfill", "daily", "single")
#: The parts that measure the main scale (E has its own, the make-run sample).
MAIN_SCALE_SECTIONS = ("bare", "backfill", "daily")


@dataclass(frozen=True)
class BenchScale:
    """The size of the generated landing zone."""

    users: int
    days: int
    #: LaunchDarkly + legacy lines per arrival day; None: the generator's default (about ten
    #: events per active user and day, as `expplatform sample-data` writes them).
    events_per_day: int | None
    files_per_day: int
    seed: int = 42
    start: date = date(2025, 12, 1)
    compress: bool = True

    def key(self) -> str:
        """Folder name of this scale in the landing-zone cache."""
        gz = "gz" if self.compress else "plain"
        events = "auto" if self.events_per_day is None else self.events_per_day
        return (
            f"u{self.users}-d{self.days}-e{events}-f{self.files_per_day}"
            f"-s{self.seed}-{self.start.isoformat()}-{gz}"
        )


DEFAULT_SCALE = BenchScale(users=1_000_000, days=30, events_per_day=3_000_000, files_per_day=4)
#: Two days: the fewest that give B an early and a late daily run (3 Dagster runs in all,
#: each dominated by fixed costs at this size).
QUICK_SCALE = BenchScale(users=2_000, days=2, events_per_day=20_000, files_per_day=2)
#: E's landing zone: the `make run` sample, i.e. `expplatform sample-data --days 30
#: --users 20000 --start 2025-12-01` (about 60,000 event lines a day, plain files).
MAKE_RUN_SCALE = BenchScale(
    users=20_000, days=30, events_per_day=None, files_per_day=1, compress=False
)
#: E at the quick scale: the same commands on a tiny sample (keeps E working in the suite).
QUICK_MAKE_RUN_SCALE = BenchScale(
    users=300, days=2, events_per_day=None, files_per_day=1, compress=False
)


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
    #: E's landing zone and the day it times (1-based; None: the last day).
    single_scale: BenchScale = MAKE_RUN_SCALE
    single_day: int | None = None
    #: Which parts to run: "bare" (C), "backfill" (A, then D and storage on its warehouse),
    #: "daily" (B), "single" (E). A long run can be split and its results merged
    #: (`merge_results`).
    sections: tuple[str, ...] = SECTIONS
    progress: Progress = field(default=print)


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
        {
            "repeats": 1,
            "early_day": 1,
            "dashboard_repeats": 5,
            "dev_sample_pct": 50.0,
            "single_scale": QUICK_MAKE_RUN_SCALE,
        }
        if quick
        else {}
    )
    return BenchOptions(scale=scale, quick=quick, **{**defaults, **other})
