"""The `expplatform` command: one module per group of subcommands.

- `sample-data` (data.py), `materialize` (materialize.py), `report` (report.py), `soak` (soak.py);
- `prepare`, `instance` (admin.py): explicit set-up, never done on import;
- `bench` (expplatform/bench/cli.py), `spark-check` (spark.py), `serve` (the page server).

Exit codes and output conventions are in common.py (results on stdout, progress on stderr).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from expplatform import __version__
from expplatform.cli import admin, data, materialize, report, soak
from expplatform.cli.common import EXIT_INTERRUPTED, err
from expplatform.cli.materialize import run_materialization, sample_range
from expplatform.cli.report import allocation_report, format_rows
from expplatform.config import ConfigError

__all__ = [
    "allocation_report",
    "build_parser",
    "format_rows",
    "main",
    "run_materialization",
    "sample_range",
]


def cmd_bench(args: argparse.Namespace) -> int:
    from expplatform.bench.cli import run_from_args

    return run_from_args(args)


def cmd_spark_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from expplatform.config import get_settings
    from expplatform.spark import (
        SparkUnavailable,
        build_and_compare,
        comparison_report,
        publish_serving_copy,
        spark_session,
    )

    settings = get_settings()
    duckdb_path = Path(args.duckdb_path) if args.duckdb_path else settings.duckdb_path
    if not duckdb_path.exists():
        return err(f"{duckdb_path}: no warehouse there; run `expplatform materialize` first")
    work_dir = Path(args.work_dir)
    try:
        print(f"starting a local Spark session in {work_dir}", file=sys.stderr)
        spark = spark_session(work_dir)
    except SparkUnavailable as exc:
        return err(str(exc))
    check = build_and_compare(
        spark, duckdb_path, work_dir, progress=lambda m: print(m, file=sys.stderr)
    )
    print(comparison_report(check))
    if not check.equal:
        return 1
    if args.publish:
        published = publish_serving_copy(spark, Path(args.publish), work_dir / "export-serving")
        print(
            f"published {len(published.tables)} tables from Spark to {published.path} "
            f"in {published.seconds:.2f}s"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expplatform",
        description="Experiment data platform: sample data, materialization, allocation reports.",
        epilog="Exit codes: 0 done, 1 the work failed (a run, a comparison), 2 bad arguments or "
        "configuration, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"expplatform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    admin.add_parsers(sub)
    data.add_parser(sub)
    materialize.add_parser(sub)
    report.add_parser(sub)
    soak.add_parser(sub)

    p = sub.add_parser("bench", help="benchmark backfill, daily run, bare floor and dashboard")
    from expplatform.bench.cli import add_bench_arguments

    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "spark-check",
        help="build the dbt models on a local Spark from the warehouse's raw tables and compare",
    )
    p.add_argument("--duckdb-path", help="the DuckDB warehouse (default: EXPPLATFORM_DUCKDB_PATH)")
    p.add_argument(
        "--work-dir",
        default="spark_work",
        help="Spark metastore, warehouse and dbt output (default: ./spark_work)",
    )
    p.add_argument(
        "--publish",
        metavar="SERVING_PATH",
        help="when the engines agree, publish the serving copy from Spark's marts to this DuckDB "
        "file (atomically, as a DuckDB run publishes EXPPLATFORM_SERVING_PATH)",
    )
    p.set_defaults(func=cmd_spark_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    from expplatform.signals import restore_interrupts

    restore_interrupts()  # a run's child processes must stay stoppable (expplatform/signals.py)
    # Dagster flags beta/preview parameters on every import; they say nothing to a CLI user.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        return err(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # last resort: one clear line, not a traceback, for known errors
        from expplatform.ingestion.landing import LandingZoneError
        from expplatform.ingestion.loaders import LoadError
        from expplatform.warehouse import WarehouseBusyError

        if isinstance(exc, LandingZoneError | LoadError | WarehouseBusyError):
            return err(str(exc))
        raise


if __name__ == "__main__":
    sys.exit(main())
