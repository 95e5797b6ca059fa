"""`expplatform prepare` and `expplatform instance`: the explicit set-up steps.

Nothing in the package writes on import; these commands (called by `make install`, `make run`,
`make ui`) build the dbt manifest and put the instance settings into DAGSTER_HOME before any
Dagster process starts.
"""

from __future__ import annotations

import argparse

from expplatform.cli.common import EXIT_OK, err
from expplatform.config import ConfigError, dagster_home, get_settings


def cmd_prepare(args: argparse.Namespace) -> int:
    from expplatform.instance import prepare_dagster_home
    from expplatform.sources import DEFAULT_REGISTRY
    from expplatform.transform.project import prepare_manifest

    path = prepare_manifest(get_settings(), DEFAULT_REGISTRY, force=not args.if_stale)
    print(f"dbt manifest ready: {path}")
    home = prepare_dagster_home()
    print(f"Dagster instance settings: {home / 'dagster.yaml'}")
    return EXIT_OK


def cmd_instance_check(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from expplatform.instance import check_instance, prepare_dagster_home

    home = prepare_dagster_home() if args.init else dagster_home()
    if not (home / "dagster.yaml").exists():
        return err(f"{home} has no dagster.yaml: run `expplatform instance --init`")
    try:
        check_instance(DagsterInstance.from_config(str(home)))
    except ConfigError as exc:
        return err(str(exc))
    print(f"{home / 'dagster.yaml'}: run queue, warehouse pool and run retries in place")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="build the dbt manifest and write the instance settings into DAGSTER_HOME",
    )
    p.add_argument("--if-stale", action="store_true", help="re-parse only when a dbt file changed")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser(
        "instance", help="check (or --init) the Dagster instance settings the platform needs"
    )
    p.add_argument(
        "--init", action="store_true", help="write config/dagster.yaml into DAGSTER_HOME if absent"
    )
    p.set_defaults(func=cmd_instance_check)
