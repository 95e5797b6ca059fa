"""`expplatform sample-data`: a realistic sample landing zone (every quirk of the contract's §2)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from expplatform.cli.common import EXIT_OK, ProgressBar, date_arg, note, positive
from expplatform.config import get_settings


def cmd_sample_data(args: argparse.Namespace) -> int:
    from expplatform.sample_data import generate_landing_zone

    settings = get_settings()
    landing = Path(args.landing_dir) if args.landing_dir else settings.landing_dir
    start = args.start or (datetime.now(UTC).date() - timedelta(days=args.days))
    note(
        f"writing a sample landing zone to {landing} ({args.days} days from {start}, {args.users} users)"
    )
    bar = ProgressBar(args.days + 2, "sample-data")
    steps = 0

    def progress(line: str) -> None:
        nonlocal steps
        steps += 1
        bar.update(steps, line.split(":")[0])

    summary = generate_landing_zone(
        landing,
        start=start,
        days=args.days,
        users=args.users,
        seed=args.seed,
        events_per_day=args.events_per_day,
        files_per_day=args.files_per_day,
        compress=args.gzip,
        progress=progress,
    )
    bar.close()
    print(summary.as_text())
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample-data", help="write a realistic sample landing zone")
    p.add_argument(
        "--start", type=date_arg("--start"), help="first arrival date (default: DAYS ago)"
    )
    p.add_argument("--days", type=positive, default=30)
    p.add_argument("--users", type=positive, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--landing-dir", help="default: EXPPLATFORM_LANDING_DIR")
    p.add_argument("--events-per-day", type=positive, help="total events per day (benchmarks)")
    p.add_argument("--files-per-day", type=positive, default=1)
    p.add_argument("--gzip", action="store_true", help="write LaunchDarkly files as .jsonl.gz")
    p.set_defaults(func=cmd_sample_data)
