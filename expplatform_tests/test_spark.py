"""The same dbt models on Apache Spark give the same tables as on DuckDB (docs/DEPLOYMENT.md).

The hand-made fixture (test_models_e2e.build_fixture, whose DuckDB tables are checked against
hand-computed numbers there) is built through Dagster on DuckDB; its raw and ops tables are
copied to a local Spark (pyspark, dbt-spark `method: session`) and the whole dbt graph is built
there. Every contract table must be equal row for row, first after a backfill of three days
(Spark: a full build, tests included), then after the fourth day's incremental run (Spark:
int_experiment_user_days overwrites only the recomputed date partitions), then after a run that
withdraws every event of a day (its Spark partition must become empty).

Run alone with `pytest -m spark` (three to five minutes, most of it dbt on Spark).
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from expplatform_tests.conftest import write_text
from expplatform_tests.e2e import (
    CONTRACT_TABLES,
    data_instance,
    make_settings,
    query,
    run_range,
    serving_copy,
)
from expplatform_tests.test_models_e2e import (
    EXPECTED_ASSIGNMENTS,
    LEGACY_HEADER,
    D,
    build_fixture,
    ld,
)

USER_DAYS_FOLDER = Path("spark-warehouse", "intermediate.db", "int_experiment_user_days")


def partition_files(work_dir: Path) -> dict[str, set[str]]:
    """The Parquet files of each date partition of Spark's int_experiment_user_days."""
    root = work_dir / USER_DAYS_FOLDER
    return {
        folder.name: {f.name for f in folder.glob("*.parquet")}
        for folder in root.glob("exposure_date=*")
    }


pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def spark_env(tmp_path_factory):
    """A DuckDB warehouse built through Dagster for D1..D3 and a local Spark session."""
    from expplatform.spark import spark_session

    tmp = tmp_path_factory.mktemp("spark")
    landing = tmp / "landing"
    build_fixture(landing)
    # lookback 0: a daily run recomputes its own date and the dates of late events only, so
    # some date partitions lie outside its window
    settings = make_settings(tmp, landing, lookback_days=0)
    with data_instance() as instance:
        run_range(settings, instance, D[1], D[3])
        spark = spark_session(tmp / "spark")
        yield settings, instance, spark, tmp / "spark"
    spark.stop()
    shutil.rmtree(tmp / "spark", ignore_errors=True)


def assert_same_serving_copy(spark_copy: Path, duckdb_copy: Path) -> None:
    """Same tables, column names and types, rows; floats (p-values) to a relative 1e-9."""
    from expplatform.spark import same_value

    left, right = serving_copy(spark_copy), serving_copy(duckdb_copy)
    assert left.keys() == right.keys()
    for relation, (columns, rows) in right.items():
        assert left[relation][0] == columns, relation
        assert len(left[relation][1]) == len(rows), relation
        for mine, theirs in zip(left[relation][1], rows, strict=True):
            assert all(same_value(a, b) for a, b in zip(mine, theirs, strict=True)), (
                relation, mine, theirs
            )  # fmt: skip


def _assert_equal(check) -> None:
    from expplatform.spark import comparison_report

    assert check.dbt.success, comparison_report(check)
    compared = {c.table for c in check.comparisons}
    assert compared >= set(CONTRACT_TABLES) | {"mart_experiment_health_by_tier_daily"}
    assert check.equal, comparison_report(check)


def test_spark_build_equals_duckdb_then_an_incremental_day_too(spark_env) -> None:
    from expplatform.cli import main
    from expplatform.spark import build_and_compare, publish_serving_copy

    settings, instance, spark, work_dir = spark_env

    # 1. Backfill D1..D3: Spark builds every model from scratch and runs the data tests.
    first = build_and_compare(spark, settings.duckdb_path, work_dir)
    _assert_equal(first)
    # Non-empty on both sides (an empty == empty comparison would prove nothing), with
    # sample-ratio p-values (chi2_sf runs as a Python UDF on Spark).
    assert all(c.spark_rows > 0 for c in first.comparisons)
    p_values = spark.sql(
        "select count(*) from marts.mart_experiment_health_daily where srm_p_value is not null"
    ).first()[0]
    assert p_values > 0
    tests_run = [k for k in first.dbt.statuses if k.startswith("test.")]
    assert len(tests_run) >= 50 and all(first.dbt.statuses[k] == "pass" for k in tests_run)
    before = partition_files(work_dir)
    assert {f"exposure_date=2025-12-0{n}" for n in (1, 2, 3)} <= before.keys()
    # Readers do not care which engine built the marts: the serving copy published from Spark
    # is the one the DuckDB run published, table for table, type for type.
    published = publish_serving_copy(
        spark, work_dir / "serving.duckdb", work_dir / "export-serving"
    )
    assert published.tables and all(n > 0 for n in published.tables.values())
    assert_same_serving_copy(published.path, settings.serving)

    # 2. Day D4 on DuckDB is a daily (incremental) run; Spark overwrites the recomputed date
    # partitions of int_experiment_user_days and rebuilds the user-sliced tables.
    run_range(settings, instance, D[4], D[4])
    window = {r[0] for r in query(settings.duckdb_path, "select * from ops.recompute_dates")}
    assert window == {D[1], D[4]}  # D4 itself and the date of its late event ld-18
    second = build_and_compare(spark, settings.duckdb_path, work_dir, dbt_args=("run",))
    _assert_equal(second)
    by_table = {c.table: c for c in second.comparisons}
    assert by_table["fct_experiment_assignments"].spark_rows == len(EXPECTED_ASSIGNMENTS)
    # Only the recomputed dates were rewritten: D2 and D3, outside the window, keep the files
    # of the first build; D1 (the late event's date) got new ones.
    after = partition_files(work_dir)
    for unchanged in ("exposure_date=2025-12-02", "exposure_date=2025-12-03"):
        assert after[unchanged] == before[unchanged]
    assert after["exposure_date=2025-12-01"].isdisjoint(before["exposure_date=2025-12-01"])

    # 3. Every event of D3 is withdrawn: copies of its three LaunchDarkly events with
    # is_active 'N' arrive on D5 (retractions), and the legacy system re-delivers D3's export
    # without its one row. DuckDB's replace_where deletes D3's rows; Spark's insert_overwrite
    # alone would keep them (no row of D3 to overwrite with): the recomputed partitions are
    # dropped first (macros/cross_engine.sql, spark_drop_recomputed_partitions).
    d5 = date(2025, 12, 5)
    landing = settings.landing_dir
    write_text(
        landing / "launchdarkly" / f"date={d5}" / "part-000.jsonl",
        "".join(
            ld(event_id, user, "2025-12-03T06:00:00", "control", active="N") + "\n"
            for event_id, user in (("ld-99", "u-9"), ("ld-100", "u-9"), ("ld-17", "u-1"))
        ),
    )
    write_text(landing / "legacy" / f"date={D[3]}" / "part-000.csv", LEGACY_HEADER + "\n")
    d3_rows = (
        "select count(*) from intermediate.int_experiment_user_days "
        f"where exposure_date = date '{D[3]}'"
    )
    assert query(settings.duckdb_path, d3_rows) == [(3,)]  # u-9, u-1 and u-2 on D3
    run_range(settings, instance, D[3], d5)
    assert query(settings.duckdb_path, d3_rows) == [(0,)]
    # This time through the command (the same Spark session: the command gets it), which
    # compares every table (exit 0 only if equal) and then publishes the serving copy.
    published_path = work_dir / "serving-cli.duckdb"
    argv = ["spark-check", "--duckdb-path", str(settings.duckdb_path), "--work-dir", str(work_dir)]
    assert main([*argv, "--publish", str(published_path)]) == 0
    assert "exposure_date=2025-12-03" not in partition_files(work_dir)
    assert_same_serving_copy(published_path, settings.serving)


def test_copy_names_a_missing_warehouse(spark_env, tmp_path: Path) -> None:
    from expplatform.spark import copy_warehouse_tables

    _, _, spark, _ = spark_env
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        copy_warehouse_tables(spark, missing, tmp_path / "export")
    assert not missing.exists()
