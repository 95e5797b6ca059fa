"""dbt's `target`, `adapter` and `env_var` for sqlfluff's jinja templater (see `.sqlfluff`).

sqlfluff renders the models without dbt (fast, and no warehouse is opened), with its own
stand-ins for ref/source/config/var/is_incremental. The project's macros also read the target
and dispatch per adapter: here they render as on the default `duckdb` target of
dbt_project/profiles.yml.
"""

from __future__ import annotations

from typing import Any

import jinja2

#: The default output of dbt_project/profiles.yml.
target = {"name": "duckdb", "type": "duckdb", "schema": "main", "database": "warehouse"}


class _DuckDBAdapter:
    """The two adapter methods the project uses: quote() and dispatch()."""

    @staticmethod
    def quote(identifier: str) -> str:
        return f'"{identifier}"'

    @jinja2.pass_context
    def dispatch(
        self, context: jinja2.runtime.Context, macro_name: str, macro_namespace: str = ""
    ) -> Any:
        # dbt's order for the duckdb adapter: duckdb__x, then default__x.
        for prefix in ("duckdb__", "default__"):
            macro = context.get(prefix + macro_name)
            if macro is not None:
                return macro
        raise jinja2.UndefinedError(f"no duckdb__ or default__ implementation of {macro_name}")


adapter = _DuckDBAdapter()


def env_var(name: str, default: str | None = None) -> str:
    """The default when given (lint output must not depend on the shell), else the name."""
    return default if default is not None else name


@jinja2.pass_context
def render(context: jinja2.runtime.Context, template: str) -> str:
    """dbt's render(): a string holding Jinja, rendered in the calling template's context."""
    return context.environment.from_string(template).render(context.get_all())


class _DbtNamespace:
    """The `dbt.` cross-database type macros the models use, as dbt-duckdb renders them."""

    @staticmethod
    def type_string() -> str:
        return "varchar"

    @staticmethod
    def type_boolean() -> str:
        return "boolean"


dbt = _DbtNamespace()


def var(name: str, default: Any = None) -> Any:
    """dbt's var(): the dbt_project.yml vars and the registry's `flag_sources`, as every dbt
    invocation of the platform receives them (expplatform/sources.py)."""
    from pathlib import Path

    import yaml

    from expplatform.sources import DEFAULT_REGISTRY

    project = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"
    values = {
        **(yaml.safe_load(project.read_text()).get("vars") or {}),
        **DEFAULT_REGISTRY.dbt_vars(),
    }
    if name in values:
        return values[name]
    if default is not None:
        return default
    raise jinja2.UndefinedError(f"dbt var {name!r} is not defined")
