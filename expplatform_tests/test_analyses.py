"""The seed's dashboard query, answered (dbt_project/analyses/).

The corrected query recomputes the allocation mart from the raw tables alone, in plain SQL;
run on the raw tables of the hand-made fixture it must return exactly the mart's rows, per tier
and summed over tiers. The cleaned-up original must run, and still shows the miscounts its
comments list.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import jinja2
import pytest

from expplatform.config import DBT_PROJECT_DIR
from expplatform.transform.project import manifest_path
from expplatform.warehouse import connect

ANALYSES = DBT_PROJECT_DIR / "analyses"
MART_COLUMNS = (
    "experiment_key, date, variation_name, is_treatment, subscription_tier, "
    "new_users, cumulative_users, active_users, exposures"
)


def render(path: Path) -> str:
    """The analysis with `source()`/`ref()` replaced by their relations, as dbt compiles them.

    Relations are `schema.identifier` from the project's manifest, without the database (it is
    named after the warehouse file the manifest was parsed with).
    """
    manifest = json.loads(manifest_path(DBT_PROJECT_DIR).read_text())
    sources = {
        (node["source_name"], node["name"]): f"{node['schema']}.{node['identifier']}"
        for node in manifest["sources"].values()
    }
    refs = {
        node["name"]: f"{node['schema']}.{node['alias']}"
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("seed", "model")
    }
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(path.read_text())
    return template.render(source=lambda source, table: sources[(source, table)], ref=refs.get)


def run(db_path: Path, sql: str) -> list[tuple]:
    with connect(db_path, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_corrected_query_reads_only_raw_tables_and_the_registry():
    sql = render(ANALYSES / "allocation_dashboard_corrected.sql")
    relations = set(re.findall(r"\b(?:from|join)\s+([a-z_]+\.[a-z_]+)", sql, re.IGNORECASE))
    assert relations == {
        "raw.partner_directpush_launchdarkly_events",
        "raw.legacy_feature_flag_events",
        "raw.users",
        "raw.subscription_changes",
        "seeds.experiments",
        "seeds.experiment_variations",
    }


@pytest.mark.slow  # `built` is a Dagster run
def test_corrected_query_equals_the_allocation_mart(built):
    corrected = run(built.duckdb_path, render(ANALYSES / "allocation_dashboard_corrected.sql"))
    mart = run(
        built.duckdb_path,
        f"select {MART_COLUMNS} from marts.mart_experiment_allocation_daily "
        "order by experiment_key, date, variation_name, subscription_tier",
    )
    assert mart  # the fixture has allocation rows to compare
    assert corrected == mart


@pytest.mark.slow  # `built` is a Dagster run
def test_corrected_query_equals_the_mart_summed_over_tiers(built):
    """The dashboard's view without the tier split: per experiment, date and variation."""
    totals = (
        "select experiment_key, date, variation_name, sum(new_users), sum(cumulative_users), "
        "sum(active_users), sum(exposures) from ({}) group by all order by all"
    )
    corrected = render(ANALYSES / "allocation_dashboard_corrected.sql")
    assert run(built.duckdb_path, totals.format(corrected)) == run(
        built.duckdb_path, totals.format("select * from marts.mart_experiment_allocation_daily")
    )
    # e.g. 12-03: control 3 users so far, treatment 5 (u-2, u-3, u-7, u-8, u-9)
    day3 = run(
        built.duckdb_path,
        f"select variation_name, sum(cumulative_users) from ({corrected}) where date = '2025-12-03' "
        "group by all order by all",
    )
    assert day3 == [("control", 3), ("treatment", 5)]


@pytest.mark.slow  # `built` is a Dagster run
def test_original_query_runs_and_shows_its_miscounts(built):
    rows = run(built.duckdb_path, render(ANALYSES / "allocation_dashboard_original.sql"))
    by_instant = {created_on: (true, false) for _, created_on, true, false in rows}
    assert all(isinstance(instant, datetime) for instant in by_instant)  # timestamps, not dates
    # 12-01 10:00: a test account (t-1), a debug event (u-4) and a retracted event (u-5): three
    # users for the original, none of whom the mart counts at that instant
    assert by_instant[datetime(2025, 12, 1, 10)] == (3, 0)
    # 12-01 09:00: u-2 seen in both feeds with different served values: in both columns
    assert by_instant[datetime(2025, 12, 1, 9)] == (1, 1)
    # an event before the experiment's start date is counted
    assert min(by_instant) < datetime(2025, 12, 1)
