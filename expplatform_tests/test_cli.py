"""The `expplatform` command: report formats and numbers, and errors a person can act on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expplatform.cli import format_rows, main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "expplatform.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_format_rows_table_csv_json():
    rows = [{"date": "2025-12-01", "variation_name": "control", "new_users": 12}]
    assert format_rows(rows, "csv") == "date,variation_name,new_users\n2025-12-01,control,12"
    assert json.loads(format_rows(rows, "json")) == rows
    assert format_rows(rows, "table").splitlines() == [
        "date        variation_name  new_users",
        "----------  --------------  ---------",
        "2025-12-01  control                12",
    ]


@pytest.mark.slow
def test_report_by_variation_and_by_tier(built):
    # readers read the serving copy the run published, never the warehouse
    env = {"EXPPLATFORM_SERVING_PATH": str(built.serving), "EXPPLATFORM_DUCKDB_PATH": "/nowhere"}
    by_variation = run_cli("report", "--experiment", "vault-launch", "--format", "json", env=env)
    assert by_variation.returncode == 0, by_variation.stderr
    rows = json.loads(by_variation.stdout)
    # From the hand-computed allocation of test_models_e2e: on 12-02 control has 3 cumulative
    # users (u-1, u-6, u-4) and 2 active (u-1, u-4); treatment 4 cumulative (u-2, u-3, u-7, u-8).
    day2 = {r["variation_name"]: r for r in rows if r["date"] == "2025-12-02"}
    assert (day2["control"]["cumulative_users"], day2["control"]["active_users"]) == (3, 2)
    assert (day2["treatment"]["new_users"], day2["treatment"]["cumulative_users"]) == (2, 4)
    assert f"ms from {built.serving})" in by_variation.stderr

    by_tier = run_cli(
        "report", "--experiment", "vault-launch", "--by", "tier", "--start", "2025-12-03",
        "--format", "csv", env=env,
    )  # fmt: skip
    assert by_tier.returncode == 0, by_tier.stderr
    lines = by_tier.stdout.splitlines()
    assert (
        lines[0]
        == "date,variation_name,subscription_tier,new_users,cumulative_users,active_users,exposures"
    )
    assert "2025-12-03,treatment,unknown,1,3,1,2" in lines
    assert all(line.startswith("2025-12-03") for line in lines[1:])


def test_errors_say_what_to_do(tmp_path: Path, capsys):
    missing = tmp_path / "nowhere.duckdb"
    os.environ["EXPPLATFORM_SERVING_PATH"] = str(missing)
    try:
        assert main(["report", "--experiment", "vault-launch"]) == 2
        error = capsys.readouterr().err
        assert f"the serving copy {missing} does not exist yet" in error
        assert "run `expplatform materialize`" in error
    finally:
        del os.environ["EXPPLATFORM_SERVING_PATH"]

    bad_date = run_cli("report", "--experiment", "x", "--start", "2025-13-01")
    assert bad_date.returncode == 2
    assert "--start must be a date like 2025-12-01, got '2025-13-01'" in bad_date.stderr

    no_landing = run_cli(
        "materialize", "--sample-range", env={"EXPPLATFORM_LANDING_DIR": str(tmp_path / "none")}
    )
    assert no_landing.returncode == 2
    assert "does not exist" in no_landing.stderr and "expplatform sample-data" in no_landing.stderr

    no_warehouse = run_cli("spark-check", "--duckdb-path", str(missing))
    assert no_warehouse.returncode == 2
    assert f"{missing}: no warehouse there" in no_warehouse.stderr
    assert "expplatform materialize" in no_warehouse.stderr
