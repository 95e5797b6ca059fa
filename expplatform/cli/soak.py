"""`expplatform soak`: random sequences of runs and landing changes, each against a clean build."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from expplatform.cli.common import EXIT_FAILED, EXIT_OK, note, positive


def cmd_soak(args: argparse.Namespace) -> int:
    from expplatform.soak import run_soak, summary

    note(
        f"soak: {args.sequences} sequence(s) from seed {args.seed} "
        "(each: a fresh warehouse, drawn runs and landing changes, the catch-up runs, "
        "then every table compared with a clean build)"
    )
    began = time.monotonic()
    results = run_soak(
        args.sequences,
        args.seed,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        echo=lambda line: print(line, flush=True),
    )
    figures = {"seed": args.seed, **summary(results, time.monotonic() - began)}
    print(json.dumps(figures))
    if args.results:
        Path(args.results).write_text(json.dumps(figures, indent=2) + "\n")
    return EXIT_OK if not figures["with_differences"] else EXIT_FAILED


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "soak",
        help="idempotence soak: random sequences of runs, re-deliveries and retractions, "
        "each compared with a clean build",
    )
    p.add_argument("--sequences", type=positive, default=10)
    p.add_argument("--seed", type=int, default=1, help="sequence i draws from SEED + i")
    p.add_argument("--work-dir", help="keep the sample landing zone here (default: a temp dir)")
    p.add_argument("--results", help="also write the summary JSON to this file")
    p.set_defaults(func=cmd_soak)
