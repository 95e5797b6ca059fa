"""The experiment registry is validated by dbt tests on its seeds (issue 15, item 2).

A copy of the dbt project gets a registry that breaks every rule once (each broken row is
named below); one real Dagster run over it must fail before any model that reads the registry
is built, with a message naming every broken rule, and each rule's asset check must have failed with the
number of offending rows worked out here by hand. The shipped registry passes them all (every
end-to-end test builds it).
"""

from __future__ import annotations

from datetime import date

import duckdb
import pytest
from dagster import DagsterEventType

from expplatform.sources import DEFAULT_REGISTRY
from expplatform.transform.project import prepare_manifest
from expplatform_tests.conftest import ld_line, write_text
from expplatform_tests.e2e import copy_dbt_project, data_instance, make_settings, run_range

pytestmark = pytest.mark.slow

D1 = date(2025, 12, 1)

EXPERIMENTS = """\
experiment_key,launchdarkly_flag_key,legacy_flag_key,description,start_date,end_date,owner
vault-launch,vault-launch,vault_launch,ok,2025-12-01,,growth
backwards,backwards,backwards_legacy,ends before it starts,2025-12-10,2025-12-05,growth
shares-ld-key,vault-launch,shares_ld_key,reuses vault-launch's LaunchDarkly key,2025-12-01,,growth
shares-legacy-key,shares-legacy-key,vault_launch,reuses vault-launch's legacy key,2025-12-01,,growth
"""

VARIATIONS = """\
experiment_key,variation_name,is_treatment,expected_weight
vault-launch,control,false,0.5
vault-launch,treatment,true,0.5
backwards,control,false,0.5
backwards, Treatment,true,0.5
shares-ld-key,control,false,0.5
shares-ld-key,treatment,true,0
shares-legacy-key,control,false,1
not-registered,control,false,1
"""

#: rule (the dbt test's name) -> offending rows, by hand:
EXPECTED_FAILURES = {
    # backwards: 2025-12-10 > 2025-12-05
    "registry_start_date_on_or_before_end_date": 1,
    # vault-launch is the LaunchDarkly key of two experiments: one duplicated value
    "registry_launchdarkly_flag_key_unique": 1,
    # vault_launch is the legacy key of two experiments: one duplicated value
    "registry_legacy_flag_key_unique": 1,
    # shares-legacy-key registers only `control`
    "registry_experiment_has_two_variations": 1,
    # backwards' " Treatment"
    "registry_variation_name_trimmed_and_lower_case": 1,
    # shares-ld-key's treatment weighs 0
    "registry_expected_weight_positive": 1,
    # not-registered is no experiment of experiments.csv
    "registry_variation_of_a_registered_experiment": 1,
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry")
    project = copy_dbt_project(tmp)
    write_text(project / "seeds/experiments.csv", EXPERIMENTS)
    write_text(project / "seeds/experiment_variations.csv", VARIATIONS)
    landing = tmp / "landing"
    write_text(
        landing / "launchdarkly/date=2025-12-01/part-000.jsonl",
        ld_line("ld-1", "u-1", 1764583200000, variation="treatment") + "\n",
    )
    settings = make_settings(tmp, landing).with_changes(dbt_project_dir=project)
    prepare_manifest(settings, DEFAULT_REGISTRY, force=True)
    with data_instance() as instance:
        with pytest.raises(RuntimeError) as failure:
            run_range(settings, instance, D1, D1)
        (run,) = instance.get_runs()
        checks = {
            evaluation.check_name: evaluation
            for entry in instance.all_logs(
                run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            )
            for evaluation in [entry.dagster_event.event_specific_data]
            if evaluation.asset_key.path[0] == "registry"
        }
    return settings, str(failure.value), checks


def test_the_run_fails_naming_every_broken_rule(broken):
    _, message, _ = broken
    assert (
        "experiment registry" in message and "no model that reads the registry was built" in message
    )
    for rule in EXPECTED_FAILURES:
        assert rule in message, f"{rule} not named in: {message}"
    # the rule in words (the test's description), not only its name
    assert "No two experiments share a LaunchDarkly flag key" in message
    assert "Every experiment has at least two registered variations" in message


def test_each_rule_fails_its_check_with_the_offending_rows(broken):
    _, _, checks = broken
    failed = {name: c.metadata["failing_rows"].value for name, c in checks.items() if not c.passed}
    assert failed == EXPECTED_FAILURES
    # the rules this registry keeps (experiment keys given and unique, no variation twice) ran
    # and passed
    assert {name for name, c in checks.items() if c.passed} == {
        "registry_experiment_key_given",
        "registry_experiment_key_unique",
        "registry_variation_name_given",
        "registry_variation_unique",
    }


def test_nothing_that_reads_the_registry_was_built(broken):
    settings, _, _ = broken
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        built = {
            row[0]
            for row in con.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_schema in ('seeds', 'intermediate', 'marts')"
            ).fetchall()
        }
    finally:
        con.close()
    # The seeds were loaded (their tests read them); every model downstream of the registry
    # was skipped. Models that do not read it (users, subscription history) may be built.
    assert {"seeds.experiments", "seeds.experiment_variations"} <= built
    for model in (
        "intermediate.int_experiment_user_days",
        "marts.dim_experiments",
        "marts.dim_experiment_variations",
        "marts.fct_experiment_exposures_daily",
        "marts.fct_experiment_assignments",
        "marts.mart_experiment_allocation_daily",
        "marts.mart_experiment_health_daily",
        "marts.mart_experiment_health_by_tier_daily",
    ):
        assert model not in built, model
