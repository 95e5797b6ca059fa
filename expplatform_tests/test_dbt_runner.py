"""dbt's parse state is shared by every warehouse of one file name (expplatform/transform/dbt_runner.py).

A new warehouse in a new folder (every test, every bench site) must not cost dbt a full parse:
dbt parses with a canonical warehouse path of the file's stem. Each parse runs in a process of
its own, as runs do (in one process the parsed manifest is cached), on a copy of the project so
that its partial-parse state starts empty. dbt's own `perf_info.json` says how many files a
parse read: all of them on a full parse, none when nothing changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from expplatform.sources import DEFAULT_REGISTRY
from expplatform.transform.dbt_runner import DbtProjectRunner
from expplatform_tests.e2e import copy_dbt_project

pytestmark = pytest.mark.slow

PARSE = """
import sys
from pathlib import Path
from expplatform.config import get_settings
from expplatform.sources import DEFAULT_REGISTRY
from expplatform.transform.dbt_runner import DbtProjectRunner
settings = get_settings({"EXPPLATFORM_DUCKDB_PATH": sys.argv[2]})
runner = DbtProjectRunner(Path(sys.argv[1]), "duckdb", DEFAULT_REGISTRY.dbt_vars())
runner.manifest(settings.dbt_env())
print(runner._target_path(settings.dbt_env()))
"""


def parse_in_a_new_process(project: Path, warehouse: Path) -> tuple[Path, int]:
    """Parse for `warehouse`; the target folder used and the number of files dbt parsed."""
    done = subprocess.run(
        [sys.executable, "-c", PARSE, str(project), str(warehouse)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    target = Path(done.stdout.strip().splitlines()[-1])
    return target, json.loads((target / "perf_info.json").read_text())["parsed_path_count"]


def test_a_new_warehouse_of_a_known_name_is_not_parsed_again(tmp_path):
    project = copy_dbt_project(tmp_path)
    first_target, first = parse_in_a_new_process(project, tmp_path / "a" / "warehouse.duckdb")
    again_target, again = parse_in_a_new_process(project, tmp_path / "b" / "warehouse.duckdb")
    assert first > 0, "the first parse reads the project"
    assert again_target == first_target
    assert again == 0, "another folder, the same file name: nothing parsed again"
    # Two processes of one stem may parse at once and write the shared state over each other
    # (dbt writes it with a plain open/write): a torn state costs a full parse, not a failure.
    state = first_target / "partial_parse.msgpack"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    torn_target, torn = parse_in_a_new_process(project, tmp_path / "c" / "warehouse.duckdb")
    assert torn_target == first_target
    assert torn == first, "the torn state was not used: everything parsed again"
    # another file name is another database name in the manifest: its own state, a full parse
    other_target, other = parse_in_a_new_process(project, tmp_path / "a" / "other.duckdb")
    assert other_target != first_target
    assert other == first


def test_dbt_parses_with_a_canonical_path_of_the_warehouse_stem():
    env = {"EXPPLATFORM_DUCKDB_PATH": "/data/x/warehouse.duckdb", "EXPPLATFORM_LOOKBACK_DAYS": "2"}
    parse_env = DbtProjectRunner.parse_env(env)
    assert parse_env == {
        "EXPPLATFORM_DUCKDB_PATH": "/expplatform-parse/warehouse.duckdb",
        "EXPPLATFORM_LOOKBACK_DAYS": "2",
    }
    runner = DbtProjectRunner(Path("dbt_project"), "duckdb", DEFAULT_REGISTRY.dbt_vars())
    other_folder = {**env, "EXPPLATFORM_DUCKDB_PATH": "/elsewhere/warehouse.duckdb"}
    assert runner._target_path(env) == runner._target_path(other_folder)
