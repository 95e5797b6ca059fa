"""`python -m expplatform.health`: write the health pages, build the dbt docs, serve them.

    python -m expplatform.health render [--serving FILE] [--out DIR]
    python -m expplatform.health page --experiment KEY --html FILE [--serving FILE]
    python -m expplatform.health dbt-docs [--out DIR]
    python -m expplatform.health serve [--dir DIR] [--port N] [--host H] [--exit-with-parent]

Defaults come from EXPPLATFORM_SERVING_PATH (data/serving.duckdb), EXPPLATFORM_PAGES_DIR
(data/pages) and EXPPLATFORM_PAGES_PORT (3001).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from expplatform.config import ConfigError
from expplatform.health.data import ServingCopyError, serving_path_from_env
from expplatform.health.dbt_docs import build_dbt_docs
from expplatform.health.page import render_health_page, write_health_pages
from expplatform.health.server import pages_dir_from_env, serve


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m expplatform.health`."""
    parser = argparse.ArgumentParser(
        prog="python -m expplatform.health", description="Experiment health pages."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="write index.html and one page per experiment")
    p.add_argument("--serving", type=Path, help="serving copy (default EXPPLATFORM_SERVING_PATH)")
    p.add_argument("--out", type=Path, help="pages folder (default EXPPLATFORM_PAGES_DIR)")

    p = sub.add_parser("page", help="write one experiment's page to a file")
    p.add_argument("--experiment", required=True)
    p.add_argument("--html", type=Path, required=True, help="the file to write")
    p.add_argument("--serving", type=Path, help="serving copy (default EXPPLATFORM_SERVING_PATH)")

    p = sub.add_parser("dbt-docs", help="build the dbt docs into <pages folder>/dbt-docs/")
    p.add_argument("--out", type=Path, help="pages folder (default EXPPLATFORM_PAGES_DIR)")

    p = sub.add_parser("serve", help="serve the pages folder over HTTP")
    p.add_argument("--dir", type=Path, help="pages folder (default EXPPLATFORM_PAGES_DIR)")
    p.add_argument("--port", type=int, help="port (default EXPPLATFORM_PAGES_PORT or 3001)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started the server goes away (make run)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":
            paths = write_health_pages(
                args.serving or serving_path_from_env(), args.out or pages_dir_from_env()
            )
            for path in paths:
                print(path)
        elif args.command == "page":
            text = render_health_page(args.serving or serving_path_from_env(), args.experiment)
            args.html.parent.mkdir(parents=True, exist_ok=True)
            args.html.write_text(text, encoding="utf-8")
            print(args.html)
        elif args.command == "dbt-docs":
            print(build_dbt_docs(args.out or pages_dir_from_env()))
        elif args.command == "serve":
            serve(args.dir, args.port, args.host, exit_with_parent=args.exit_with_parent)
    except (ServingCopyError, ConfigError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
