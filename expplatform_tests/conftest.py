"""Shared fixtures: temporary landing zones and warehouses (never the developer's data/)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from expplatform.catalog import ddl
from expplatform.signals import restore_interrupts


def write_text(path: Path, text: str, *, compress: bool = False) -> Path:
    """Write a landing file (creating folders); bytes exactly as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def ld_line(
    event_id: str | None,
    user: str | None,
    created_ms: object,
    *,
    key: str = "vault-launch",
    variation: str = "treatment",
    kind: str = "feature",
    active: str = "Y",
    value: object = True,
    prereq_of: str | None = None,
) -> str:
    """One LaunchDarkly data-export line in the contract's shape (§2.1)."""
    event: dict[str, object] = {
        "kind": kind,
        "creationDate": created_ms,
        "key": key,
        "version": 7,
        "contextKeys": {"user": user} if user is not None else {},
        "variation": 1,
        "variationName": variation,
        "value": value,
        "default": False,
        "reason": {"kind": "RULE_MATCH", "inExperiment": True},
    }
    if prereq_of is not None:
        event["prereqOf"] = prereq_of
    record: dict[str, object] = {"is_active": active, "project": "default", "event": event}
    if event_id is not None:
        record["event_id"] = event_id
    return json.dumps(record)


def pytest_configure(config: pytest.Config) -> None:
    """In-process runs start compute-log `tail -F` processes: they must stay stoppable even when
    the suite was started in the background (expplatform/signals.py)."""
    restore_interrupts()


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest the definitions are built from (an explicit step, never done on import)."""
    from expplatform.config import get_settings
    from expplatform.sources import DEFAULT_REGISTRY
    from expplatform.transform.project import prepare_manifest

    return prepare_manifest(get_settings(), DEFAULT_REGISTRY)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory warehouse with the raw and ops schemas."""
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    connection.execute(ddl())
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """One clean build of the hand-made fixture (test_models_e2e.build_fixture), shared by modules.

    Every arrival date 2025-12-01..04 in one single-run backfill through Dagster and dbt.
    """
    from expplatform_tests.e2e import data_instance, make_settings, run_range
    from expplatform_tests.test_models_e2e import D, build_fixture

    tmp = tmp_path_factory.mktemp("e2e")
    landing = tmp / "landing"
    build_fixture(landing)
    settings = make_settings(tmp, landing)
    with data_instance() as instance:
        run_range(settings, instance, D[1], D[4])
    return settings
