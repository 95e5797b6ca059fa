"""The benchmark harness: its pure parts, its memory measurement, and the quick benchmark itself.

The quick benchmark runs the real pipeline (three Dagster runs) on a tiny
landing zone: it proves the harness works end to end and that the bare
script computes exactly the pipeline's marts. Its numbers are not judged
against the targets (those apply to the default scale, run by hand).
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from datetime import date
from pathlib import Path

import psutil
import pytest

from expplatform.bench.harness import run_bench
from expplatform.bench.landing import day_event_lines
from expplatform.bench.memory import run_measured
from expplatform.bench.merge import merge_results
from expplatform.bench.options import (
    MAKE_RUN_SCALE,
    QUICK_MAKE_RUN_SCALE,
    QUICK_SCALE,
    BenchScale,
    options_for,
)
from expplatform.bench.report import _load_note, markdown_report
from expplatform.bench.split import daily_split, step_overheads, two_point_fit
from expplatform.bench.sql import (
    COMPARED_TABLES,
    DevSample,
    adhoc_query,
    bare_statements,
    dashboard_queries,
)
from expplatform.bench.targets import evaluate_targets
from expplatform.bench.workspace import summarize
from expplatform.cli import build_parser
from expplatform.config import DBT_PROJECT_DIR


def test_summarize() -> None:
    assert summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert summarize([]) == {"median": None, "min": None, "max": None, "n": 0}


def test_scale_key_names_every_parameter() -> None:
    key = BenchScale(users=10, days=2, events_per_day=30, files_per_day=4, seed=7).key()
    assert key == "u10-d2-e30-f4-s7-2025-12-01-gz"


def test_make_run_scale_is_the_make_run_sample() -> None:
    # `make run`: sample-data --days 30 --users 20000 (default events, one plain file a day)
    assert MAKE_RUN_SCALE.key() == "u20000-d30-eauto-f1-s42-2025-12-01-plain"
    assert options_for(False).single_scale == MAKE_RUN_SCALE
    assert options_for(True).single_scale == QUICK_MAKE_RUN_SCALE
    assert options_for(False, single_day=12).single_day == 12
    assert options_for(False).sections == ("bare", "backfill", "daily", "single")


def test_two_point_fit_by_hand() -> None:
    # 60,000 events in 12 s and 3,000,000 in 75 s: slope 63 / 2,940,000 s per event
    # = 21.4286 s per million; intercept 12 - 60,000 * 63 / 2,940,000 = 10.7143 s.
    fit = two_point_fit((60_000, 12.0), (3_000_000, 75.0))
    assert fit == {
        "fixed_s": pytest.approx(10.7142857),
        "per_million_events_s": pytest.approx(21.4285714),
    }
    assert two_point_fit((100, 1.0), (100, 2.0)) is None


def _daily_run(wall: float, startup: float, execute: float) -> dict:
    steps = {
        "load": {"seconds": 6.0},
        "dbt_daily": {"seconds": 10.0, "models_s": 4.0, "tests_s": 2.0},
        "dbt_marts": {"seconds": 4.0, "models_s": 1.0},
    }
    return {
        "wall_s": wall,
        "detail": {"startup_s": startup, "execute_s": execute, "steps": steps},
    }


def test_step_overheads_by_hand() -> None:
    # steps 6 + 10 + 4 = 20 s of a 22 s execution: 2 s between steps; dbt's own time
    # (10 - 4 - 2) + (4 - 1) = 7 s; exit 30 - 5 - 22 = 3 s; fixed 5 + 3 + 7 + 2 = 17 s.
    split = step_overheads([_daily_run(30.0, 5.0, 22.0)])
    assert split == {
        "wall_s": 30.0,
        "startup_s": 5.0,
        "exit_s": 3.0,
        "dbt_overhead_s": 7.0,
        "between_steps_s": 2.0,
        "fixed_s": 17.0,
        "rest_s": 13.0,
    }


def test_daily_split_uses_e_as_the_small_day() -> None:
    def series(median: float) -> dict:
        return {"median": median, "min": median, "max": median, "n": 1}

    result = {
        "daily": {
            "late": {"day": 30, "event_lines": 3_000_000, "wall_s": series(75.0), "runs": []}
        },
        "single": {"day": 30, "event_lines": 60_000, "wall_s": series(12.0)},
    }
    split = daily_split(result)
    assert split["two_sizes"]["fixed_s"] == pytest.approx(10.7142857)
    assert split["two_sizes"]["small"] == {"day": 30, "event_lines": 60_000}
    assert split["from_steps"] is None  # no step timings in this hand-made result
    assert daily_split({"single": result["single"]}) is None


def test_day_event_lines_counts_what_the_loaders_read(tmp_path: Path) -> None:
    ld = tmp_path / "launchdarkly" / "date=2025-12-02"
    legacy = tmp_path / "legacy" / "date=2025-12-02"
    ld.mkdir(parents=True)
    legacy.mkdir(parents=True)
    with gzip.open(ld / "part-000.jsonl.gz", "wb") as fh:
        fh.write(b"{}\n{}\n{}\n")
    (ld / "part-001.jsonl").write_bytes(b"{}\n{}\n")
    (ld / "_in_flight.jsonl").write_bytes(b"{}\n" * 50)  # ignored, like the loaders do
    (legacy / "part-000.csv").write_bytes(
        b"id,user,timestamp,key,variation_name,value\n" + b"x\n" * 4
    )
    (tmp_path / "legacy" / "date=2025-12-01").mkdir()
    (tmp_path / "legacy" / "date=2025-12-01" / "part-000.csv").write_bytes(b"h\nx\n")
    assert day_event_lines(tmp_path, date(2025, 12, 2)) == 3 + 2 + 4
    assert day_event_lines(tmp_path, date(2025, 12, 3)) == 0


def test_options_quick_defaults_and_overrides(tmp_path: Path) -> None:
    quick = options_for(True, users=500, cache_dir=tmp_path)
    assert quick.scale.users == 500
    assert quick.scale.days == QUICK_SCALE.days
    assert quick.repeats == 1 and quick.dev_sample_pct == 50.0
    assert quick.cache_dir == tmp_path
    full = options_for(False, repeats=None)
    assert (full.scale.users, full.scale.days, full.scale.events_per_day) == (
        1_000_000,
        30,
        3_000_000,
    )
    assert full.repeats == 3 and full.dev_sample_pct is None


def test_cli_parses_bench_flags() -> None:
    args = build_parser().parse_args(["bench", "--quick", "--repeats", "2", "--days", "4"])
    assert args.quick and args.repeats == 2 and args.days == 4
    assert args.func.__name__ == "cmd_bench"
    args = build_parser().parse_args(["bench", "--sections", "single", "--single-day", "5"])
    assert args.sections == "single" and args.single_day == 5


def test_bare_script_renders_every_placeholder(tmp_path: Path) -> None:
    statements = list(bare_statements(tmp_path / "landing"))
    text = "\n".join(body for _, body in statements)
    assert "${" not in text
    assert str(tmp_path / "landing") in text
    labels = [label for label, _ in statements]
    for table in COMPARED_TABLES:
        assert f"bare.{table}" in labels


def test_dev_sample_matches_the_dbt_macro() -> None:
    # The bare script must sample exactly like dbt_project/macros/dev_sample.sql.
    # dev_sample.sql compares user_bucket() (cross_engine.sql; DuckDB's version here) to the pct
    macro = (DBT_PROJECT_DIR / "macros" / "dev_sample.sql").read_text()
    assert "{{ user_bucket(user_column) }} < " in macro
    buckets = (DBT_PROJECT_DIR / "macros" / "cross_engine.sql").read_text()
    assert "(hash({{ user_column }}) % 10000)" in buckets.split("macro duckdb__user_bucket")[1]
    sample = DevSample(user_pct=12.5, recent_days=3)
    assert sample.user_condition() == "(hash(u) % 10000) < 1250"
    assert sample.days_condition() == "d > current_date - interval 3 day"
    env = {"EXPPLATFORM_DBT_TARGET": "dev", "EXPPLATFORM_DEV_SAMPLE_PCT": "50"}
    assert DevSample.from_env(env) == DevSample(user_pct=50.0)
    assert DevSample.from_env({"EXPPLATFORM_DEV_SAMPLE_PCT": "50"}) is None
    rendered = "\n".join(b for _, b in bare_statements(Path("/x"), sample=sample))
    assert "(hash(u) % 10000) < 1250" in rendered


def test_dashboard_and_adhoc_queries_are_found() -> None:
    queries = dashboard_queries()
    assert {"allocation_by_variation_tier", "daily_true_false_counts"} <= set(queries)
    assert all(q.lower().lstrip().startswith("select") for q in queries.values())
    assert "partner_directpush_launchdarkly_events" in adhoc_query()


def test_evaluate_targets_and_report_on_a_partial_result() -> None:
    def series(median: float) -> dict:
        return {"median": median, "min": median, "max": median, "n": 1}

    result = {
        "timestamp": "t",
        "quick": False,
        "scale": {"users": 1, "days": 2, "events_per_day": 3, "files_per_day": 1, "compress": True},
        "settings": {"duckdb_memory_limit": "3GB", "duckdb_threads": 2, "repeats": 1},
        "backfill": {
            "range": ["a", "b"],
            "wall_s": series(30.0),
            "execute_s": series(25.0),
            "events_per_s": series(1000.0),
            "peak_rss_gib": series(5.0),
            "runs": [],
        },
        "bare": {"wall_s": series(10.0), "peak_rss_gib": series(1.0), "runs": []},
        "errors": {"daily": "B-day2-1 failed"},
    }
    targets = {t["target"]: t for t in evaluate_targets(result)}
    assert targets["A backfill wall / C bare wall"]["value"] == pytest.approx(3.0)
    assert targets["A backfill wall / C bare wall"]["met"] is False
    assert targets["A peak RSS GiB (max of runs)"]["met"] is False
    result["targets"] = list(targets.values())
    report = markdown_report(result)
    assert "| A / C | backfill over floor | 3.00 |" in report
    assert "**daily failed**" in report


def test_merge_results_combines_parts_run_separately(tmp_path: Path) -> None:
    def series(median: float) -> dict:
        return {"median": median, "min": median, "max": median, "n": 1}

    common = {
        "quick": False,
        "scale": {"users": 1, "days": 2, "events_per_day": 3, "files_per_day": 1, "compress": True},
        "settings": {"duckdb_memory_limit": "3GB", "duckdb_threads": 2, "repeats": 1},
        "machine": {},
        "landing": {},
        "complete": True,
    }
    daily = {
        "early": {
            "day": 1,
            "date": "d1",
            "wall_s": series(10.0),
            "execute_s": series(9.0),
            "peak_rss_gib": series(1.0),
            "runs": [],
        },
        "late": {
            "day": 2,
            "date": "d2",
            "wall_s": series(11.0),
            "execute_s": series(10.0),
            "peak_rss_gib": series(1.5),
            "runs": [],
        },
        "late_over_early": 1.1,
        "late_over_early_execute": 1.11,
    }
    backfill = {
        "range": ["a", "b"],
        "wall_s": series(40.0),
        "execute_s": series(35.0),
        "events_per_s": series(1000.0),
        "peak_rss_gib": series(2.0),
        "runs": [],
    }
    parts = {
        "daily.json": {**common, "sections": ["daily"], "daily": daily, "errors": {}},
        "rest.json": {
            **common,
            "sections": ["bare", "backfill"],
            "bare": {"wall_s": series(20.0), "peak_rss_gib": series(1.0), "runs": []},
            "backfill": backfill,
            # a stale daily key in a part that did not run B must not win
            "daily": {**daily, "late_over_early": 9.9},
            "errors": {},
        },
    }
    for name, part in parts.items():
        (tmp_path / name).write_text(json.dumps(part))
    merged, path = merge_results([tmp_path / "daily.json", tmp_path / "rest.json"], tmp_path)
    targets = {t["target"]: t for t in merged["targets"]}
    assert targets["A backfill wall / C bare wall"]["value"] == pytest.approx(2.0)
    assert targets["B day 2 / B day 1 (wall)"]["value"] == pytest.approx(1.1)
    assert json.loads(path.read_text())["merged_from"] == [
        str(tmp_path / "daily.json"),
        str(tmp_path / "rest.json"),
    ]
    other_scale = {**parts["rest.json"], "scale": {**common["scale"], "users": 2}}
    (tmp_path / "other.json").write_text(json.dumps(other_scale))
    with pytest.raises(ValueError, match="different scales"):
        merge_results([tmp_path / "daily.json", tmp_path / "other.json"], tmp_path)


def test_run_measured_sees_the_peak_of_a_process_tree(tmp_path: Path) -> None:
    # A parent that starts a child holding ~200 MiB for a moment: the tree's peak shows it.
    code = (
        "import subprocess, sys; "
        "subprocess.run([sys.executable, '-c', "
        '\'import time; b = bytearray(200 * 2**20); b[::4096] = b"x" * len(b[::4096]); '
        "time.sleep(0.6)'], check=True); print('done')"
    )
    outcome = run_measured([sys.executable, "-c", code], env={}, log_path=tmp_path / "log")
    assert outcome.returncode == 0 and outcome.stdout.strip() == "done"
    assert outcome.max_process_rss_mib > 190  # exact, from wait4
    assert outcome.peak_tree_rss_mib > 190  # sampled
    assert outcome.peak_rss_mib >= outcome.max_process_rss_mib


def test_run_measured_kills_a_tree_over_the_limit(tmp_path: Path) -> None:
    code = (
        "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    )
    outcome = run_measured(
        [sys.executable, "-c", code], env={}, log_path=tmp_path / "log", max_rss_mib=150
    )
    assert outcome.killed_for_memory
    assert outcome.wall_s < 20


@pytest.mark.timeout(120)  # before the fix it waited forever: a hang must fail, not stall
def test_run_measured_returns_when_a_grandchild_keeps_stdout_open(tmp_path: Path) -> None:
    # The child leaves a grandchild behind holding its stdout (as Dagster's compute-log
    # `tail -F` once did after a run) and exits: the measurement ends with the child, and the
    # grandchild is killed with the child's process group.
    code = "import subprocess; p = subprocess.Popen(['sleep', '300']); print(p.pid, flush=True)"
    outcome = run_measured([sys.executable, "-c", code], env={}, log_path=tmp_path / "log")
    assert outcome.returncode == 0
    grandchild = int(outcome.stdout.strip())

    def alive() -> bool:
        try:
            return psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    # SIGKILL is delivered asynchronously: give the kernel a moment to end it
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive()


@pytest.mark.slow
@pytest.mark.bench
def test_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    options = options_for(
        True,
        cache_dir=tmp_path / "cache",
        results_dir=tmp_path / "results",
        work_dir=tmp_path / "work",
        progress=lambda _line: None,
    )
    result, path = run_bench(options)

    assert result["errors"] == {}
    data = json.loads(path.read_text())
    for section in ("landing", "backfill", "daily", "bare", "dashboard", "storage", "targets"):
        assert section in data, section
    # The floor is honest: the bare script computes exactly the pipeline's marts.
    assert data["equivalence"]["equal"] is True, data["equivalence"]
    assert all(t["pipeline_rows"] > 0 for t in data["equivalence"]["tables"].values())

    a, b, c, d = data["backfill"], data["daily"], data["bare"], data["dashboard"]
    assert 0 < c["wall_s"]["median"] < a["wall_s"]["median"] < 900
    assert 0 < a["events_per_s"]["median"]
    assert 0.05 < a["peak_rss_gib"]["max"] < 8
    assert a["runs"][0]["detail"]["steps"]  # the per-step breakdown is there
    assert b["early"]["day"] == 1 and b["late"]["day"] == 2
    assert b["late_over_early"] > 0
    for query in d["queries"].values():
        assert 0 < query["warm_ms"]["median"] < 5000 and query["rows"] > 0
    assert d["adhoc"]["warm_ms"]["median"] > 0
    assert data["storage"]["warehouse_bytes"] > 0
    assert {t["target"] for t in data["targets"]} >= {"A backfill wall / C bare wall"}
    # E: the make-run commands on a tiny sample: built once, then its last day timed whole.
    e = data["single"]
    assert e["day"] == 2 and e["event_lines"] > 0 and e["build"]["wall_s"] > 0
    assert 0 < e["execute_s"]["median"] < e["wall_s"]["median"] < 900
    assert e["runs"][0]["detail"]["steps"]  # the run's steps, read back from its DAGSTER_HOME
    assert any(t["target"].startswith("E make-run day 2") for t in data["targets"])
    split = data["daily_split"]
    assert split["from_steps"]["fixed_s"] > 0 and "two_sizes" in split
    assert "| A / C |" in path.with_suffix(".md").read_text()
    assert not list((tmp_path / "work").iterdir())  # the work folder was removed


def test_load_note_says_whether_other_work_competed() -> None:
    def result(*loads: float) -> dict:
        runs = [{"load_average_1m": load} for load in loads]
        return {"machine": {"cpus": 2}, "bare": {"runs": runs}}

    assert "nothing else competed" in _load_note(result(1.7, 1.9, 2.4))
    assert "other work was competing" in _load_note(result(1.7, 2.6))
    assert _load_note({"machine": {"cpus": 2}}) == ""


def _single(median: float) -> dict:
    s = {"median": median, "min": median - 1, "max": median + 1, "n": 3}
    return {
        "day": 30,
        "date": "2025-12-30",
        "event_lines": 60_000,
        "scale": {"users": 20_000, "days": 30, "start": "2025-12-01"},
        "wall_s": s,
        "execute_s": {"median": 9.0, "min": 9.0, "max": 9.0, "n": 3},
        "outside_run_s": {"median": 3.0, "min": 3.0, "max": 3.0, "n": 3},
        "peak_rss_gib": {"median": 0.5, "min": 0.5, "max": 0.5, "n": 3},
        "build": {"range": ["2025-12-01", "2025-12-30"], "wall_s": 95.0, "peak_rss_gib": 1.0},
        "runs": [],
    }


def test_e_target_report_and_merge_of_an_e_only_part(tmp_path: Path) -> None:
    common = {
        "quick": False,
        "scale": {"users": 1, "days": 2, "events_per_day": 3, "files_per_day": 1, "compress": True},
        "settings": {"duckdb_memory_limit": "3GB", "duckdb_threads": 2, "repeats": 3},
        "machine": {"cpus": 2},
        "complete": True,
        "errors": {},
    }
    e_only = {
        **common,
        "timestamp": "t",
        "sections": ["single"],
        "single": _single(12.0),
        "single_landing": {"event_lines": 1_800_000},
    }
    targets = {t["target"]: t for t in evaluate_targets(e_only)}
    e_target = targets["E make-run day 30, command start to exit (s, median)"]
    assert (e_target["value"], e_target["limit"], e_target["met"]) == (12.0, 10.0, False)
    assert evaluate_targets({**e_only, "single": _single(9.5)})[0]["met"] is True
    e_only["targets"] = list(targets.values())
    report = markdown_report(e_only)
    assert "| E make-run day 30 (2025-12-30), `expplatform materialize` | wall time" in report
    assert "60,000 event lines" not in report.split("E: the")[0]  # no main-scale line
    assert "day 30 has 60,000" in report

    def series(median: float) -> dict:
        return {"median": median, "min": median, "max": median, "n": 1}

    b_part = {
        **common,
        "sections": ["daily"],
        "landing": {"event_lines": 6},
        "daily": {
            "early": {"day": 1, "date": "d1", "wall_s": series(70.0), "execute_s": series(60.0),
                      "peak_rss_gib": series(1.0), "runs": []},
            "late": {"day": 2, "date": "d2", "event_lines": 3_000_000, "wall_s": series(75.0),
                     "execute_s": series(65.0), "peak_rss_gib": series(1.0), "runs": []},
            "late_over_early": 75.0 / 70.0,
            "late_over_early_execute": 65.0 / 60.0,
        },
    }  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps(b_part))
    (tmp_path / "e.json").write_text(json.dumps(e_only))
    merged, path = merge_results([tmp_path / "b.json", tmp_path / "e.json"], tmp_path)
    assert merged["landing"] == {"event_lines": 6}  # from the part that has one
    assert merged["single"]["wall_s"]["median"] == 12.0
    # 60,000 events in 12 s, 3,000,000 in 75 s: fixed 10.71 s + 21.43 s per million events
    assert merged["daily_split"]["two_sizes"]["fixed_s"] == pytest.approx(10.7142857)
    assert "fixed 10.7 s + 21.4 s per million events" in path.with_suffix(".md").read_text()
