"""Idempotence as a property: random sequences of partition and range runs end at the clean build.

A seeded random driver draws sequences of single-run materializations of the
arrival dates 2025-12-01..04 of the hand-made fixture (test_models_e2e):
partitions and ranges, repeated, overlapping, in reverse order, with gaps
filled later. Each sequence runs through the real Dagster job (raw loads, the
dbt build, checks) on a fresh warehouse, and must end with every table of
raw, intermediate and marts equal, row for row, to the session's clean build
(`built`: one run of the whole range), with the marts' queues empty and no raw
line loaded twice along the way.

The seeds are in the test ids; EXPPLATFORM_RELIABILITY_SEEDS="1,2,3,..." runs
other or more sequences (each run costs 10-20 s); `expplatform soak` draws richer ones.
"""

from __future__ import annotations

import os
import random
import shutil
from datetime import date

import pytest

from expplatform_tests.e2e import data_instance, make_settings, run_range
from expplatform_tests.reliability_support import (
    differences,
    duplicated_raw_lines,
    queue_sizes,
    warehouse_snapshot,
)

pytestmark = pytest.mark.slow

DAYS = (1, 2, 3, 4)
RUNS_PER_SEQUENCE = 3
SEEDS = [int(s) for s in os.environ.get("EXPPLATFORM_RELIABILITY_SEEDS", "7,2025").split(",")]


def day(n: int) -> date:
    return date(2025, 12, n)


def traits(sequence: list[tuple[int, int]]) -> set[str]:
    """What a sequence exercises: repeats/overlaps, reverse order, a gap filled later."""
    found = set()
    seen: set[int] = set()
    for i, (a, b) in enumerate(sequence):
        days = set(range(a, b + 1))
        if days & seen:
            found.add("overlap")
        if i and a < sequence[i - 1][0]:
            found.add("reverse")
        if seen and any(d < max(seen) and d not in seen for d in days):
            found.add("gap filled later")
        seen |= days
    return found


def random_sequence(seed: int) -> list[tuple[int, int]]:
    """A sequence of RUNS_PER_SEQUENCE (start, end) runs covering every day, with an overlap and a
    reverse step or a gap filled later (drawn until one is: the seed fixes the result)."""
    rng = random.Random(seed)
    while True:
        sequence = []
        for _ in range(RUNS_PER_SEQUENCE):
            start = rng.choice(DAYS)
            sequence.append((start, rng.randint(start, DAYS[-1])))
        covered = set().union(*(range(a, b + 1) for a, b in sequence))
        found = traits(sequence)
        if covered == set(DAYS) and "overlap" in found and found & {"reverse", "gap filled later"}:
            return sequence


def test_the_driver_draws_what_it_promises():
    for seed in range(50):
        sequence = random_sequence(seed)
        assert len(sequence) == RUNS_PER_SEQUENCE
        assert set().union(*(range(a, b + 1) for a, b in sequence)) == set(DAYS)
    assert traits([(3, 4), (1, 1), (1, 3)]) == {"overlap", "reverse", "gap filled later"}
    assert traits([(1, 2), (3, 4)]) == set()


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_random_run_sequences_end_equal_to_the_clean_build(seed, built, tmp_path_factory):
    clean = warehouse_snapshot(built.duckdb_path)
    assert clean["marts.fct_experiment_exposures_daily"], "the clean build is empty"
    sequence = random_sequence(seed)
    # The same warehouse path for every sequence: the parsed dbt manifest is cached per
    # warehouse name, so the sequences do not re-parse the project.
    folder = tmp_path_factory.getbasetemp() / "idempotence"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    settings = make_settings(folder, built.landing_dir)
    with data_instance() as instance:
        for start, end in sequence:
            run_range(settings, instance, day(start), day(end))
            assert duplicated_raw_lines(settings.duckdb_path) == [], (start, end)
            assert set(queue_sizes(settings.duckdb_path).values()) == {0}, (start, end)
    diff = differences(warehouse_snapshot(settings.duckdb_path), clean)
    assert not diff, f"sequence {sequence} ({sorted(traits(sequence))}):\n" + "\n".join(diff)
