"""The flags of `expplatform bench` and the command itself (kept light: parsed on every CLI call)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {n}")
    return n


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the bench flags on `parser` (defaults: the issue's scale, or --quick's)."""
    scale = parser.add_argument_group(
        "scale (default 1,000,000 users x 30 days x 3,000,000 events)"
    )
    scale.add_argument(
        "--quick",
        action="store_true",
        help="small run (2,000 users x 2 days x 20,000 events, 1 repetition, "
        "dev target sampling 50%% of users): keeps the harness working in the test suite",
    )
    scale.add_argument("--users", type=_positive)
    scale.add_argument("--days", type=_positive, help="arrival days (at least 2)")
    scale.add_argument("--events-per-day", type=_positive)
    scale.add_argument("--files-per-day", type=_positive, help="gzip files per day (default 4)")
    scale.add_argument("--seed", type=int)
    run = parser.add_argument_group("run")
    run.add_argument("--repeats", type=_positive, help="repetitions of each measurement (3)")
    run.add_argument(
        "--early-day", type=_positive, help="the early daily run of B (default 10; last = --days)"
    )
    run.add_argument(
        "--single-day",
        type=_positive,
        help="the day E times on the make-run sample (default: its last day, 30)",
    )
    run.add_argument("--memory-limit", help="DuckDB memory_limit of every run (3GB)")
    run.add_argument("--threads", type=_positive, help="DuckDB threads of every run (2)")
    run.add_argument(
        "--max-rss-gb",
        type=float,
        help="kill a measured run whose process tree passes this (16; protects a shared machine)",
    )
    run.add_argument(
        "--dev-sample-pct",
        type=float,
        help="run dbt on the dev target keeping this percent of users (the bare script too)",
    )
    run.add_argument("--dev-days", type=_positive, help="dev target: keep only the last N days")
    run.add_argument(
        "--production-target",
        action="store_true",
        help="never use the dev target (--quick uses it by default)",
    )
    run.add_argument(
        "--sections",
        help="comma-separated parts to run: bare (C), backfill (A + D + storage), daily (B), "
        "single (E: one day of the make-run sample, command start to exit); default all. "
        "Merge the results of parts run separately with --merge",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="RESULT_JSON",
        help="no run: merge results of the same scale (run in parts) into one report",
    )
    paths = parser.add_argument_group("paths")
    paths.add_argument("--cache-dir", type=Path, help="landing-zone cache (bench/cache)")
    paths.add_argument("--results-dir", type=Path, help="where results go (bench/results)")
    paths.add_argument("--work-dir", type=Path, help="parent of the temporary work folder")
    paths.add_argument("--keep-work-dir", action="store_true", help="keep warehouses and logs")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark as the flags say; print the markdown table; 0 when every run succeeded."""
    from expplatform.bench.harness import run_bench
    from expplatform.bench.merge import merge_results
    from expplatform.bench.options import DEFAULT_RESULTS_DIR, options_for
    from expplatform.bench.report import markdown_report

    if args.merge:
        merged, path = merge_results(args.merge, args.results_dir or DEFAULT_RESULTS_DIR)
        print(markdown_report(merged))
        print(f"results: {path}")
        return 1 if merged["errors"] else 0
    sections = tuple(s.strip() for s in args.sections.split(",")) if args.sections else None
    options = options_for(
        args.quick,
        sections=sections,
        users=args.users,
        days=args.days,
        events_per_day=args.events_per_day,
        files_per_day=args.files_per_day,
        seed=args.seed,
        repeats=args.repeats,
        early_day=args.early_day,
        single_day=args.single_day,
        memory_limit=args.memory_limit,
        threads=args.threads,
        max_rss_gib=args.max_rss_gb,
        dev_sample_pct=args.dev_sample_pct,
        dev_days=args.dev_days,
        cache_dir=args.cache_dir,
        results_dir=args.results_dir,
        work_dir=args.work_dir,
        keep_work_dir=args.keep_work_dir or None,
        progress=lambda line: print(line, flush=True),
    )
    if args.production_target:
        options.dev_sample_pct = options.dev_days = None
    result, path = run_bench(options)
    print()
    print(markdown_report(result))
    print(f"results: {path}")
    return 1 if result["errors"] else 0
