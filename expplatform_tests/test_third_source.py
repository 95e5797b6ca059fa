"""A flag source is one registry entry plus one staging model (issue 14, item 1).

The test adds a third vendor — a small JSONL export with its own field names and epoch-ms
timestamps — to a copy of the dbt project: one `Source` in the registry, and one staging
folder (the model and its YAML, which declares the raw table). Nothing else changes: its lines
are loaded (and a bad one rejected with its reason), its exposures reach the fact, the
assignments and the marts, and its rank in the registry (third) breaks a tie with LaunchDarkly.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import duckdb
import pytest

from expplatform.sources import DEFAULT_REGISTRY, Source
from expplatform.transform.project import prepare_manifest
from expplatform_tests.conftest import ld_line, write_text
from expplatform_tests.e2e import copy_dbt_project, data_instance, make_settings, run_range

pytestmark = pytest.mark.slow

D1 = date(2025, 12, 1)

VENDOR = Source(
    name="vendor",
    folder="vendor",
    raw_table="raw.vendor_flag_events",
    suffixes=(".jsonl",),
    format="jsonl_events",
    daily=True,
    description="Another vendor's flag evaluations (vendor/date=D/*.jsonl).",
    event_time_column="event_at",
    staging_model="stg_vendor__flag_events",
    # the vendor evaluates the same flags as LaunchDarkly, under the same keys
    flag_key_column="launchdarkly_flag_key",
    options={
        "fields": {
            "event_id": "$.id",
            "user_id": "$.subject.id",
            "event_at": "$.ts",
            "flag_key": "$.flag",
            "variation_name": "$.arm",
        },
        "timestamp": "epoch_ms",
    },
)

SOURCES_YML = """
version: 2

sources:
  - name: vendor
    description: Another vendor's flag evaluations.
    schema: raw
    tables:
      - name: vendor_flag_events
        description: One row per loaded line of vendor/date=*/*.jsonl.
        config:
          meta:
            dagster:
              asset_key: ["raw", "vendor_flag_events"]
        columns:
          - {name: event_id, data_type: varchar, description: The vendor's event id.}
          - {name: user_id, data_type: varchar, description: The user.}
          - {name: event_at, data_type: timestamp, description: When it was evaluated (UTC).}
          - {name: flag_key, data_type: varchar, description: The flag.}
          - {name: variation_name, data_type: varchar, description: The arm served.}
          - name: _load_date
            data_type: date
            meta: {not_null: true}
            description: The arrival date.
          - name: _source_file
            data_type: varchar
            meta: {not_null: true}
            description: The landing file.
          - name: _line_number
            data_type: bigint
            meta: {not_null: true}
            description: The line in the file.
          - name: _loaded_at
            data_type: timestamp
            meta: {not_null: true}
            description: When the load ran.
"""

STAGING_SQL = """{{ config(tags=['daily']) }}

-- The vendor's evaluations in the common exposure shape (every one is an active exposure).
with

source as (

    select * from {{ source('vendor', 'vendor_flag_events') }}

),

renamed as (

    select
        event_id,
        user_id,
        event_at,
        cast(event_at as date) as event_date,
        flag_key,
        lower(trim(variation_name)) as variation_name,
        true as is_active,
        false as is_retracted,
        'feature' as event_kind,
        cast(null as varchar) as prerequisite_of,
        _load_date,
        _source_file,
        _line_number

    from source

)

select * from renamed
"""


def ms(hour: int, minute: int = 0) -> int:
    return int(datetime(2025, 12, 1, hour, minute, tzinfo=UTC).timestamp() * 1000)


def vendor_line(event_id: str, user: str, at_ms: int, arm: str) -> str:
    return json.dumps(
        {"id": event_id, "subject": {"id": user}, "ts": at_ms, "flag": "vault-launch", "arm": arm}
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("third_source")
    project = copy_dbt_project(tmp)
    # the one staging model of the new source (its folder: the SQL and the YAML)
    write_text(project / "models/staging/vendor/_vendor__sources.yml", SOURCES_YML)
    write_text(project / "models/staging/vendor/stg_vendor__flag_events.sql", STAGING_SQL)
    registry = DEFAULT_REGISTRY.with_source(VENDOR)

    landing = tmp / "landing"
    write_text(
        landing / "vendor/date=2025-12-01/export.jsonl",
        "\n".join(
            [
                vendor_line("v-1", "w-1", ms(10), "Treatment"),
                vendor_line("v-1", "w-1", ms(10), "Treatment"),  # a retry: one event
                vendor_line("v-2", "w-2", ms(11), "control"),
                vendor_line("v-3", "w-3", ms(12), "control"),
                '{"id": "v-4", "subject": {"id": "w-4"}, "ts": 1764583200',  # not JSON
            ]
        )
        + "\n",
    )
    # LaunchDarkly sees w-3 at the same instant in the other arm: rank 1 beats the vendor's 3
    write_text(
        landing / "launchdarkly/date=2025-12-01/part-000.jsonl",
        ld_line("ld-1", "w-3", ms(12), variation="treatment") + "\n",
    )
    settings = make_settings(tmp, landing).with_changes(dbt_project_dir=project)
    prepare_manifest(settings, registry, force=True)
    with data_instance() as instance:
        run_range(settings, instance, D1, D1, registry=registry)
    return settings


def rows(settings, sql: str) -> list[tuple]:
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_vendor_lines_are_loaded_or_rejected_with_their_reason(built):
    assert rows(built, "select count(*) from raw.vendor_flag_events") == [(4,)]
    assert rows(
        built,
        "select source, line_number, reason from raw.rejected_records where source = 'vendor'",
    ) == [("vendor", 5, "invalid_json")]


def test_the_vendor_exposures_reach_the_fact_and_the_marts(built):
    t = lambda h: datetime(2025, 12, 1, h)  # noqa: E731 - the fixture's instants, naive UTC
    assert rows(
        built,
        "select user_id, exposure_date, first_exposure_at, variation_name, variations_seen, "
        "exposures from marts.fct_experiment_exposures_daily order by user_id",
    ) == [
        ("w-1", D1, t(10), "treatment", 1, 1),  # the retry counted once
        ("w-2", D1, t(11), "control", 1, 1),
        # w-3: LaunchDarkly (rank 1) and the vendor (rank 3) at the same instant
        ("w-3", D1, t(12), "treatment", 2, 2),
    ]
    assert rows(
        built,
        "select user_id, variation_name, has_multiple_variations "
        "from marts.fct_experiment_assignments order by user_id",
    ) == [("w-1", "treatment", False), ("w-2", "control", False), ("w-3", "treatment", True)]
    assert rows(
        built,
        "select variation_name, subscription_tier, new_users, cumulative_users, active_users, "
        "exposures from marts.mart_experiment_allocation_daily order by variation_name",
    ) == [("control", "unknown", 1, 1, 1, 1), ("treatment", "unknown", 2, 2, 2, 3)]
