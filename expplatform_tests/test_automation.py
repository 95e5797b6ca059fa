"""The daily schedule, the landing sensor and the freshness checks (issue 4)."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetMaterialization,
    DagsterEventType,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from expplatform.automation import freshness_checks, freshness_sensors, landing_sensor
from expplatform.automation.freshness import (
    DAILY_FRESHNESS_ASSETS,
    LANDING_CHECK,
    LANDING_SPECS,
    UNPARTITIONED_FRESHNESS_ASSETS,
    DeliveryStatus,
    dagster_freshness_checks,
    daily_sources,
    delivery_status,
    expected_date,
    freshness_checks_sensor,
    landing_delivery_sensor,
    plan_landing_check,
)
from expplatform.automation.landing_sensor import (
    CATCH_UP_TAG,
    FileStat,
    LandingPlan,
    PendingReload,
    pending_reloads,
    plan_landing_runs,
    retry_pending,
)
from expplatform.automation.schedules import last_complete_partition
from expplatform.catalog import FCT_EXPOSURES_DAILY_KEY as FCT
from expplatform.jobs import MATERIALIZE_ALL
from expplatform.partitions import build_daily_partitions
from expplatform.sources import DEFAULT_REGISTRY
from expplatform_tests.conftest import ld_line, write_text

LD = "launchdarkly/date={}/part-{}.jsonl"
LEGACY = "legacy/date={}/export.csv"
LEGACY_CSV = "id,user,timestamp,key,variation_name,value\nlg-1,u-1,2025-12-02T10:00:00Z,vault_launch,control,true\n"


# --- schedule -----------------------------------------------------------------------------------


def _defs(tmp_path: Path, landing: Path):
    from expplatform.definitions import build_definitions
    from expplatform_tests.e2e import make_settings

    return build_definitions(make_settings(tmp_path, landing))


@pytest.mark.parametrize(
    ("tick", "partition"),
    [
        (datetime(2025, 12, 10, 6, 0, tzinfo=UTC), "2025-12-09"),
        (datetime(2026, 1, 1, 6, 0, tzinfo=UTC), "2025-12-31"),  # across the year
    ],
)
def test_schedule_materializes_yesterday(tmp_path, landing, tick, partition):
    schedule = _defs(tmp_path, landing).get_schedule_def("materialize_all_daily")
    data = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick))
    [request] = data.run_requests
    assert request.partition_key == partition
    assert request.tags["expplatform/launched_by"] == "schedule"


def test_schedule_is_daily_at_six_utc_for_the_whole_graph_and_on_by_default(tmp_path, landing):
    defs = _defs(tmp_path, landing)
    [schedule] = defs.schedules
    schedule = defs.resolve_schedule_def(schedule.name)
    assert schedule.name == "materialize_all_daily"
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == MATERIALIZE_ALL
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_every_sensor_is_on_by_default(tmp_path, landing):
    sensors = _defs(tmp_path, landing).sensors
    assert {s.name for s in sensors} == {
        "landing_zone_sensor",
        "freshness_checks_sensor",
        "landing_delivery_sensor",
        "reap_dead_cli_runs",
        "alert_on_failures",
    }
    assert all(s.default_status == DefaultSensorStatus.RUNNING for s in sensors)


def test_the_sensors_look_every_60_s_and_30_s_unless_configured():
    from expplatform.config import ConfigError, get_settings
    from expplatform.definitions import build_definitions

    def intervals(env: dict[str, str]) -> tuple[int | None, int | None]:
        defs = build_definitions(get_settings(env))
        return (
            defs.resolve_sensor_def("landing_zone_sensor").minimum_interval_seconds,
            defs.resolve_sensor_def("alert_on_failures").minimum_interval_seconds,
        )

    assert intervals({}) == (60, 30)
    assert intervals({"EXPPLATFORM_LANDING_SENSOR_INTERVAL": "5"}) == (5, 30)
    assert intervals({"EXPPLATFORM_ALERT_SENSOR_INTERVAL": "7"}) == (60, 7)
    for name in ("EXPPLATFORM_LANDING_SENSOR_INTERVAL", "EXPPLATFORM_ALERT_SENSOR_INTERVAL"):
        with pytest.raises(ConfigError, match=f"{name} must be >= 5"):
            get_settings({name: "4"})


# --- landing sensor -----------------------------------------------------------------------------


def _touch(landing: Path, rel: str, text: str, mtime: int | None = None) -> Path:
    path = write_text(landing / rel, text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _tick(defs, instance, cursor):
    sensor = defs.resolve_sensor_def("landing_zone_sensor")
    # only the resource the sensor uses (the warehouse's holds the writer lock while it is open)
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"landing": defs.resources["landing"]},
    )
    data = sensor.evaluate_tick(context)
    ranges = {
        (
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
        ): r
        for r in data.run_requests
    }
    return ranges, data.cursor


def _built(instance, *days: str) -> None:
    """Record that the daily fact of these arrival dates was built (now)."""
    for day in days:
        instance.report_runless_asset_event(AssetMaterialization(FCT, partition=day))


def test_plan_turns_changed_dates_into_contiguous_ranges_and_skips_what_is_not_a_partition():
    stat = FileStat(10, 1)
    snapshot = {
        "launchdarkly/date=2025-11-30": {"a.jsonl": stat},  # before the first partition
        "launchdarkly/date=2025-12-02": {"a.jsonl": stat},
        "legacy/date=2025-12-03": {"b.csv": stat},
        "launchdarkly/date=2025-12-04": {"a.jsonl": stat},
        "launchdarkly/date=2025-12-07": {"a.jsonl": stat},
        "launchdarkly/date=2025-12-10": {"a.jsonl": stat},  # "today": not complete yet
        "subscriptions": {"changes.csv": stat},  # joins the latest partition, 12-09
    }
    plan = plan_landing_runs({}, snapshot, date(2025, 12, 1), date(2025, 12, 9))
    assert plan.ranges() == [
        (date(2025, 12, 2), date(2025, 12, 4)),
        (date(2025, 12, 7), date(2025, 12, 7)),
        (date(2025, 12, 9), date(2025, 12, 9)),
    ]
    assert sorted(s.split(":")[0] for s in plan.skipped) == [
        "launchdarkly/date=2025-11-30",
        "launchdarkly/date=2025-12-10",
    ]
    # skipped folders stay out of the cursor: today's files are requested once today is a partition
    assert "launchdarkly/date=2025-12-10" not in plan.state
    later = plan_landing_runs(plan.state, snapshot, date(2025, 12, 1), date(2025, 12, 10))
    assert later.ranges() == [(date(2025, 12, 10), date(2025, 12, 10))]
    # nothing new: nothing requested; a catch-up date joins the ranges
    again = plan_landing_runs(
        later.state, snapshot, date(2025, 12, 1), date(2025, 12, 10),
        catch_up={date(2025, 12, 5): "catch-up: never built"},
    )  # fmt: skip
    assert again.ranges() == [(date(2025, 12, 5), date(2025, 12, 5))]


def test_ranges_at_most_the_merge_gap_apart_become_one_run():
    plan = LandingPlan(dates={date(2025, 12, d): ["x"] for d in (2, 3, 4, 7, 9)})
    # 2-4, then two days (5, 6) before 7, then one day (8) before 9
    assert plan.ranges() == [
        (date(2025, 12, 2), date(2025, 12, 4)),
        (date(2025, 12, 7), date(2025, 12, 7)),
        (date(2025, 12, 9), date(2025, 12, 9)),
    ]
    assert plan.ranges(1) == [
        (date(2025, 12, 2), date(2025, 12, 4)),
        (date(2025, 12, 7), date(2025, 12, 9)),
    ]
    assert plan.ranges(2) == [(date(2025, 12, 2), date(2025, 12, 9))]


def test_a_changed_folder_that_a_re_execution_will_load_is_left_to_it():
    old, new = FileStat(10, 1), FileStat(20, 2)
    before = {
        "launchdarkly/date=2025-12-03": {"a.jsonl.gz": old},
        "legacy/date=2025-12-03": {"b.csv": old},
        "launchdarkly/date=2025-12-05": {"a.jsonl.gz": old},
    }
    seen = plan_landing_runs({}, before, date(2025, 12, 1), date(2025, 12, 9)).state
    after = {folder: {name: new for name in files} for folder, files in before.items()}
    # the retry of a failed run of 12-02..12-04 will load launchdarkly (its failed step) again
    retry = PendingReload("retry-1", date(2025, 12, 2), date(2025, 12, 4), {"launchdarkly": None})
    plan = plan_landing_runs(seen, after, date(2025, 12, 1), date(2025, 12, 9), pending=[retry])
    # left to it: launchdarkly on 12-03; not: legacy on 12-03 (its step succeeded, the retry
    # skips it) and launchdarkly on 12-05 (outside the retry's range)
    assert plan.dates == {
        date(2025, 12, 3): ["legacy/date=2025-12-03/b.csv"],
        date(2025, 12, 5): ["launchdarkly/date=2025-12-05/a.jsonl.gz"],
    }
    assert [line.split(":")[0] for line in plan.left] == ["launchdarkly/date=2025-12-03"]
    assert "retry-1" in plan.left[0]
    # the cursor advanced for all three folders: the left one is not requested at the next tick
    assert plan.state == plan_landing_runs({}, after, date(2025, 12, 1), date(2025, 12, 9)).state

    # a retry whose load step has started: the files it read are those modified more than a
    # second before it started (mtime 2 ns after the epoch; steps started at 100 s and at 0.5 s)
    def left_to(started: float) -> list[str]:
        running = PendingReload(
            "r", date(2025, 12, 2), date(2025, 12, 4), {"launchdarkly": started}
        )
        return plan_landing_runs(
            seen, after, date(2025, 12, 1), date(2025, 12, 9), pending=[running]
        ).left

    assert [line.split(":")[0] for line in left_to(100.0)] == ["launchdarkly/date=2025-12-03"]
    assert left_to(0.5) == []  # it may have read the file before it changed: requested


def _load_steps_job(on_legacy=None, fail_launchdarkly: bool = False):
    """A job whose ops carry the registry's load step keys, one after the other."""
    from dagster import In, Nothing, job, op

    def make(step_key: str, upstream: bool):
        @op(name=step_key, ins={"after": In(Nothing)} if upstream else None)
        def load(context) -> None:
            if step_key.endswith("launchdarkly_events") and fail_launchdarkly:
                raise RuntimeError("truncated gzip")
            if step_key.endswith("legacy_feature_flag_events") and on_legacy:
                on_legacy(context.instance, context.run_id)

        return load

    ops = [make(source.step_key, i > 0) for i, source in enumerate(DEFAULT_REGISTRY)]

    @job(name=MATERIALIZE_ALL)
    def chain() -> None:
        done = ops[0]()
        for each in ops[1:]:
            done = each(after=done)

    return chain


RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2025-12-02",
    "dagster/asset_partition_range_end": "2025-12-04",
}


def test_a_re_execution_in_progress_leaves_the_loads_it_has_not_started():
    # sources in registry order: launchdarkly, legacy, users, subscriptions; the probe runs in
    # legacy's step, when launchdarkly's and legacy's steps have started and the others not
    seen: list = []

    def probe(instance, run_id):
        seen.extend(pending_reloads(instance, MATERIALIZE_ALL, DEFAULT_REGISTRY, 0.0))

    with instance_for_test() as instance:
        result = _load_steps_job(on_legacy=probe).execute_in_process(
            instance=instance, tags={**RANGE_TAGS, "dagster/parent_run_id": "parent"}
        )
        assert result.success
        (pending,) = seen
        assert (pending.run_id, pending.start, pending.end) == (
            result.run_id, date(2025, 12, 2), date(2025, 12, 4)
        )  # fmt: skip
        # launchdarkly's and legacy's steps started (when, from their statistics), the others not
        assert {f for f, started in pending.folders.items() if started is None} == {
            "users",
            "subscriptions",
        }
        ld_started = pending.folders["launchdarkly"]
        assert ld_started is not None and pending.folders["legacy"] is not None
        # a file changed before launchdarkly's step started was read by it; one changed now, not
        before_step = int((ld_started - 5) * 1e9)
        assert pending.covers("launchdarkly/date=2025-12-03", date(2025, 12, 3), before_step)
        now_ns = int(datetime.now(UTC).timestamp() * 1e9) + 2_000_000_000
        assert not pending.covers("launchdarkly/date=2025-12-03", date(2025, 12, 3), now_ns)
        assert pending.covers("users", date(2025, 12, 4), now_ns)  # not started: reads it later
        # a first run (not a re-execution) is not waited for: the sensor merges ranges instead
        seen.clear()
        _load_steps_job(on_legacy=probe).execute_in_process(instance=instance, tags=RANGE_TAGS)
        assert seen == []
        # once finished, nothing is pending
        assert pending_reloads(instance, MATERIALIZE_ALL, DEFAULT_REGISTRY, 0.0) == []


def test_a_failed_run_that_dagster_will_retry_leaves_the_steps_that_did_not_succeed(monkeypatch):
    with instance_for_test() as instance:
        tags = {**RANGE_TAGS, "dagster/will_retry": "true"}
        result = _load_steps_job(fail_launchdarkly=True).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
        assert not result.success
        # an in-process run has no job origin, so Dagster could not retry it: nothing pending
        assert pending_reloads(instance, MATERIALIZE_ALL, DEFAULT_REGISTRY, 0.0) == []
        # as if the daemon had launched it (the origin is the only difference)
        monkeypatch.setattr(
            landing_sensor,
            "retry_pending",
            lambda tags, has_origin, ended_at, now: retry_pending(tags, True, ended_at, now),
        )
        ended = instance.get_run_record_by_id(result.run_id).end_time
        (pending,) = pending_reloads(instance, MATERIALIZE_ALL, DEFAULT_REGISTRY, ended + 1)
        # the failed step and the three after it, which never ran: the retry runs all four
        assert pending.folders == {
            f: None for f in ("launchdarkly", "legacy", "users", "subscriptions")
        }
        assert (pending.start, pending.end) == (date(2025, 12, 2), date(2025, 12, 4))

    # A run of a selection (a retry's retry, a UI selection) plans only some steps: its retry
    # loads only those that did not succeed, never the steps outside its plan.
    with instance_for_test() as instance:
        steps = [source.step_key for source in DEFAULT_REGISTRY]
        result = _load_steps_job(fail_launchdarkly=True).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, op_selection=steps[:2]
        )
        assert not result.success
        ended = instance.get_run_record_by_id(result.run_id).end_time
        (pending,) = pending_reloads(instance, MATERIALIZE_ALL, DEFAULT_REGISTRY, ended + 1)
        assert pending.folders == {"launchdarkly": None, "legacy": None}  # not users, subscriptions


def test_landing_sensor_one_run_per_range_once_then_redeliveries(tmp_path, landing):
    line = ld_line("ld-1", "u-1", 1764669600000) + "\n"
    for day in ("2025-12-02", "2025-12-03", "2025-12-04", "2025-12-06"):
        _touch(landing, LD.format(day, 0), line)
    _touch(landing, LEGACY.format("2025-12-03"), LEGACY_CSV)
    _touch(landing, "legacy/date=2025-12-03/.export-2.csv.tmp", "in flight")  # ignored
    _touch(landing, LD.format("2999-01-01", 0), line)  # not a partition yet
    defs = _defs(tmp_path, landing)
    partitions = defs.resolve_job_def(MATERIALIZE_ALL).partitions_def
    latest = last_complete_partition(partitions, datetime.now(UTC))
    with instance_for_test() as instance:
        # 12-02 and 12-03 were built after their files landed (e.g. by `make run`)
        _built(instance, "2025-12-02", "2025-12-03")
        ranges, cursor = _tick(defs, instance, None)
        # the first tick catches up the days never built, 12-04 and 12-06: one day lies between
        # them (at most EXPPLATFORM_LANDING_MERGE_GAP_DAYS = 3), so one run rebuilds 12-04..06
        assert set(ranges) == {("2025-12-04", "2025-12-06")}
        assert ranges[("2025-12-04", "2025-12-06")].tags["expplatform/catch_up"] == "true"
        assert ranges[("2025-12-04", "2025-12-06")].run_key.startswith("landing-2025-12-04-")
        _built(instance, "2025-12-04", "2025-12-06")
        assert _tick(defs, instance, cursor)[0] == {}, "nothing changed: nothing requested twice"

        # four arrival folders and a re-delivery into an old folder land at once: four days lie
        # between 12-02 and 12-07 (more than 3), so two runs
        for day in ("2025-12-07", "2025-12-08", "2025-12-09", "2025-12-10"):
            _touch(landing, LD.format(day, 0), line)
        _touch(landing, LD.format("2025-12-02", 1), line)
        ranges, cursor = _tick(defs, instance, cursor)
        assert set(ranges) == {("2025-12-02", "2025-12-02"), ("2025-12-07", "2025-12-10")}
        changes = ranges[("2025-12-07", "2025-12-10")].tags["expplatform/landing_changes"]
        assert "launchdarkly/date=2025-12-07/part-0.jsonl" in changes
        assert CATCH_UP_TAG not in ranges[("2025-12-02", "2025-12-02")].tags
        _built(instance, "2025-12-02", "2025-12-07", "2025-12-08", "2025-12-09", "2025-12-10")
        assert _tick(defs, instance, cursor)[0] == {}

        # a rewritten file (same name, new size and mtime) requests its partition again
        _touch(landing, LD.format("2025-12-02", 1), line * 2)
        ranges, cursor = _tick(defs, instance, cursor)
        assert set(ranges) == {("2025-12-02", "2025-12-02")}
        _built(instance, "2025-12-02")

        # a new users snapshot requests the latest partition (its run reloads users)
        _touch(
            landing, "users/users_2025-12-05.csv", "user_id,created_at,country,is_test_account\n"
        )
        ranges, cursor = _tick(defs, instance, cursor)
        assert set(ranges) == {(latest, latest)}

        # deleting a file requests nothing (a retention job must not wipe a partition)
        (landing / LD.format("2025-12-03", 0)).unlink()
        assert _tick(defs, instance, cursor)[0] == {}


def _fail_run_for(instance, day: str) -> str:
    """A failed run of `materialize_all` that planned the daily fact of `day`."""
    from dagster import Definitions, asset, define_asset_job

    partitions = DailyPartitionsDefinition(start_date="2025-12-01", timezone="UTC")

    @asset(key=FCT, partitions_def=partitions)
    def fails() -> None:
        raise RuntimeError("the warehouse disk is full")

    job = define_asset_job(MATERIALIZE_ALL, partitions_def=partitions)
    result = (
        Definitions(assets=[fails], jobs=[job])
        .resolve_job_def(MATERIALIZE_ALL)
        .execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
    )
    assert not result.success
    return result.run_id


def test_landing_sensor_catches_up_a_failed_day_once(tmp_path, landing):
    line = ld_line("ld-1", "u-1", 1764669600000) + "\n"
    _touch(landing, LD.format("2025-12-02", 0), line)
    defs = _defs(tmp_path, landing)
    with instance_for_test() as instance:
        _built(instance, "2025-12-02")
        _, cursor = _tick(defs, instance, None)
        _fail_run_for(instance, "2025-12-02")  # its retries failed too
        ranges, cursor = _tick(defs, instance, cursor)
        assert set(ranges) == {("2025-12-02", "2025-12-02")}
        assert "failed" in ranges[("2025-12-02", "2025-12-02")].tags["expplatform/landing_changes"]
        assert _tick(defs, instance, cursor)[0] == {}, "one catch-up per failure"
        # the catch-up run fails as well: a person decides (the freshness alert names the day)
        _fail_run_for(instance, "2025-12-02")
        assert _tick(defs, instance, cursor)[0] != {}  # a new failure: caught up once more


@pytest.mark.parametrize(
    ("tags", "has_origin", "ended_seconds_ago", "pending"),
    [
        ({"dagster/will_retry": "true"}, True, 10, True),  # the daemon retries it soon
        ({"dagster/will_retry": "true", "dagster/auto_retry_run_id": "r2"}, True, 10, False),
        ({"dagster/will_retry": "false"}, True, 10, False),  # the last retry failed
        ({}, True, 10, False),  # run retries off
        ({"dagster/will_retry": "true"}, False, 10, False),  # a CLI run: nothing to re-launch
        ({"dagster/will_retry": "true"}, True, 301, False),  # no retry came: catch up
    ],
)
def test_a_failed_day_waits_for_dagsters_retry_before_its_catch_up(
    tags, has_origin, ended_seconds_ago, pending
):
    now = 1_000_000.0
    assert retry_pending(tags, has_origin, now - ended_seconds_ago, now) is pending


# --- freshness ----------------------------------------------------------------------------------


def test_freshness_checks_cover_the_raw_and_mart_assets_and_have_a_sensor():
    keys = {spec.key for checks in freshness_checks for spec in checks.check_specs}
    assert keys == {
        AssetCheckKey(key, "freshness_check")
        for key in [*DAILY_FRESHNESS_ASSETS, *UNPARTITIONED_FRESHNESS_ASSETS]
    } | {
        AssetCheckKey(AssetKey(["raw", "partner_directpush_launchdarkly_events"]), LANDING_CHECK),
        AssetCheckKey(AssetKey(["raw", "legacy_feature_flag_events"]), LANDING_CHECK),
    }
    assert {k.to_user_string() for k in DAILY_FRESHNESS_ASSETS} == {
        "raw/partner_directpush_launchdarkly_events",
        "raw/legacy_feature_flag_events",
        "marts/fct_experiment_exposures_daily",
    }
    assert {k.to_user_string() for k in UNPARTITIONED_FRESHNESS_ASSETS} == {
        "marts/mart_experiment_allocation_daily",
        "marts/mart_experiment_health_daily",
    }
    assert (
        freshness_checks_sensor in freshness_sensors
        and landing_delivery_sensor in freshness_sensors
    )
    assert freshness_checks_sensor.asset_selection is not None
    # the landing checks are on the raw assets the ingestion defines (keys derived, not typed)
    from expplatform.definitions import build_definitions

    defs = build_definitions()

    assert {spec.asset_key for spec in LANDING_SPECS} <= set(defs.resolve_all_asset_keys())


def test_freshness_checks_pass_only_for_the_expected_partition():
    """Run the real checks (a check-only run, no warehouse) after faking two loads."""
    from expplatform.definitions import build_definitions

    defs = build_definitions()

    now = datetime.now(UTC)
    # the last 09:00 UTC deadline that passed (yesterday's before 09:00) → the partition it expects
    deadline = now.replace(hour=9, minute=0, second=0, microsecond=0)
    if deadline > now:
        deadline -= timedelta(days=1)
    expected = last_complete_partition(build_daily_partitions(date(2025, 12, 1)), deadline)
    with instance_for_test() as instance:
        fresh = AssetKey(["raw", "legacy_feature_flag_events"])
        instance.report_runless_asset_event(AssetMaterialization(fresh, partition=expected))
        instance.report_runless_asset_event(
            AssetMaterialization(AssetKey(["marts", "mart_experiment_health_daily"]))
        )
        keys = {spec.key for checks in dagster_freshness_checks for spec in checks.check_specs}
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_check_selection=keys, asset_selection=set()
        )
        result = job.execute_in_process(instance=instance)
        passed = {
            e.event_specific_data.asset_key.to_user_string(): e.event_specific_data.passed
            for e in result.all_events
            if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        }
    assert passed == {
        "raw/legacy_feature_flag_events": True,
        "raw/partner_directpush_launchdarkly_events": False,
        "marts/fct_experiment_exposures_daily": False,
        "marts/mart_experiment_health_daily": True,
        "marts/mart_experiment_allocation_daily": False,
    }


# --- landing delivery and the alerts of freshness -----------------------------------------------


def _deliveries(landing: Path, source: str, days: list[date], name: str = "part-0.csv") -> None:
    for day in days:
        write_text(landing / source / f"date={day.isoformat()}" / name, "x\n")


def _span(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _statuses(landing: Path, now: datetime) -> dict[str, tuple]:
    """source → (state, expected, last arrival, missing dates) at `now`."""
    out = {}
    for spec in daily_sources():
        s = delivery_status(landing, spec, now)
        out[s.source] = (s.state, s.expected, s.last_arrival, s.missing)
    return out


def test_landing_delivery_alerts_a_stopped_source_and_retires_it_after_a_week(landing):
    d = date

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2025, 12, day, hour, minute, tzinfo=UTC)

    # legacy until 12-20 (the migration), its 12-21 file still in flight (a temporary name)
    _deliveries(landing, "legacy", _span(d(2025, 12, 1), d(2025, 12, 20)))
    _deliveries(landing, "legacy", [d(2025, 12, 21)], ".export.csv.tmp")
    assert _statuses(landing, at(10, 10)) == {
        "launchdarkly": ("never", d(2025, 12, 9), None, ()),  # not delivering yet: not watched
        "legacy": ("delivered", d(2025, 12, 9), d(2025, 12, 20), ()),
    }
    # LaunchDarkly from 12-11 on
    _deliveries(landing, "launchdarkly", _span(d(2025, 12, 11), d(2025, 12, 21)), "part-0.jsonl")
    # 08:59 still expects the day before yesterday; 09:00 expects yesterday
    assert _statuses(landing, at(22, 8, 59))["legacy"][0] == "delivered"
    assert _statuses(landing, at(22, 9)) == {
        "launchdarkly": ("delivered", d(2025, 12, 21), d(2025, 12, 21), ()),
        "legacy": ("missing", d(2025, 12, 21), d(2025, 12, 20), (d(2025, 12, 21),)),
    }
    # seven silent days are still watched, the eighth is a retirement
    week = tuple(_span(d(2025, 12, 21), d(2025, 12, 27)))
    assert _statuses(landing, at(28, 9))["legacy"] == (
        "missing",
        d(2025, 12, 27),
        d(2025, 12, 20),
        week,
    )
    assert _statuses(landing, at(29, 9))["legacy"] == (
        "retired",
        d(2025, 12, 28),
        d(2025, 12, 20),
        (),
    )
    # a source that delivers today but skipped yesterday is missing yesterday
    _deliveries(landing, "launchdarkly", [d(2025, 12, 23)], "part-0.jsonl")
    assert _statuses(landing, at(23, 10))["launchdarkly"] == (
        "missing",
        d(2025, 12, 22),
        d(2025, 12, 23),
        (d(2025, 12, 22),),
    )


def test_the_landing_sensor_runs_the_check_once_a_day_and_when_a_verdict_changes():
    def status(source: str, state: str, expected: date) -> DeliveryStatus:
        return DeliveryStatus(source, source, expected, None, state)

    day1, day2 = date(2025, 12, 21), date(2025, 12, 22)
    run_key, cursor = plan_landing_check([status("a", "missing", day1)], None)
    assert run_key == "landing-delivery-2025-12-21"
    assert plan_landing_check([status("a", "missing", day1)], cursor)[0] is None
    run_key, cursor = plan_landing_check([status("a", "delivered", day1)], cursor)  # a late file
    assert run_key == "landing-delivery-2025-12-21-1"
    run_key, cursor = plan_landing_check([status("a", "missing", day1)], cursor)  # and gone again
    assert run_key == "landing-delivery-2025-12-21-2"
    assert (
        plan_landing_check([status("a", "missing", day2)], cursor)[0]
        == "landing-delivery-2025-12-22"
    )


def _alert_log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_landing_check_reads_only_the_landing_zone_and_alerts_once_per_stop(
    tmp_path, landing, monkeypatch
):
    from expplatform.automation.alert_sensors import alert_on_failures
    from expplatform.definitions import build_definitions
    from expplatform_tests.e2e import make_settings

    alert_log = tmp_path / "alerts.log"
    monkeypatch.delenv("EXPPLATFORM_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("EXPPLATFORM_ALERT_LOG", str(alert_log))
    monkeypatch.setenv("EXPPLATFORM_LANDING_DIR", str(landing))
    e = expected_date(datetime.now(UTC))
    _deliveries(landing, "launchdarkly", [e - timedelta(days=1), e], "part-0.jsonl")
    _deliveries(landing, "legacy", [e - timedelta(days=3), e - timedelta(days=2)])
    settings = make_settings(tmp_path, landing)
    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={spec.key for spec in LANDING_SPECS}, asset_selection=set()
    )

    def tick(sensor, instance, cursor):
        # the two resources the sensors use (the warehouse's would take the writer lock)
        context = build_sensor_context(
            instance=instance,
            cursor=cursor,
            definitions=defs,
            resources={k: defs.resources[k] for k in ("landing", "alerts", "serving")},
        )
        return sensor.evaluate_tick(context)

    with instance_for_test() as instance:
        alerts_cursor = tick(alert_on_failures, instance, None).cursor
        landing_tick = tick(landing_delivery_sensor, instance, None)
        (request,) = landing_tick.run_requests
        assert request.run_key == f"landing-delivery-{e}"
        assert tick(landing_delivery_sensor, instance, landing_tick.cursor).run_requests == []
        for _ in range(2):  # the check fails twice: one alert
            result = job.execute_in_process(instance=instance)
            alerts_cursor = tick(alert_on_failures, instance, alerts_cursor).cursor
        verdicts = {
            ev.asset_key.to_user_string(): ev.passed
            for ev in (e.event_specific_data for e in result.all_events)
            if type(ev).__name__ == "AssetCheckEvaluation"
        }
        assert verdicts == {
            "raw/partner_directpush_launchdarkly_events": True,
            "raw/legacy_feature_flag_events": False,
        }
        (missing,) = _alert_log_lines(alert_log)

        _deliveries(landing, "legacy", [e])  # a late delivery: the sensor asks for a new check
        (request,) = tick(landing_delivery_sensor, instance, landing_tick.cursor).run_requests
        assert request.run_key == f"landing-delivery-{e}-1"
        job.execute_in_process(instance=instance)
        tick(alert_on_failures, instance, alerts_cursor)

    assert not settings.duckdb_path.exists()  # the warehouse was never opened
    _, back = _alert_log_lines(alert_log)
    assert missing["title"] == (
        "Landing delivery missing (ERROR): raw/legacy_feature_flag_events · landing_delivery"
    )
    e1, e2 = e - timedelta(days=1), e - timedelta(days=2)
    assert (
        f"What: legacy: no file has arrived for {e} by 09:00 UTC (last arrival {e2}; "
        f"missing arrival dates: {e1}, {e})"
    ) in missing["text"]
    assert f"last_arrival_date={e2}" in missing["text"]
    assert (
        back["title"] == "Landing check passes: raw/legacy_feature_flag_events · landing_delivery"
    )
    assert f"Now: legacy: files for {e} arrived" in back["text"]


def test_a_freshness_miss_names_the_missing_partitions_and_is_posted_once(tmp_path, monkeypatch):
    from expplatform.automation.alert_sensors import alert_on_failures
    from expplatform.definitions import build_definitions

    alert_log = tmp_path / "alerts.log"
    monkeypatch.delenv("EXPPLATFORM_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("EXPPLATFORM_ALERT_LOG", str(alert_log))
    defs = build_definitions()  # its alerts resource writes to that log
    e = expected_date(datetime.now(UTC))
    legacy = AssetKey(["raw", "legacy_feature_flag_events"])
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={AssetCheckKey(legacy, "freshness_check")}, asset_selection=set()
    )

    def loaded(*days_before: int) -> None:
        for n in days_before:
            partition = (e - timedelta(days=n)).isoformat()
            instance.report_runless_asset_event(AssetMaterialization(legacy, partition=partition))

    def tick(cursor):
        context = build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={k: defs.resources[k] for k in ("alerts", "serving")},
        )
        return alert_on_failures.evaluate_tick(context).cursor

    with instance_for_test() as instance:
        cursor = tick(None)
        loaded(2, 4, 9)  # 9 days before: outside the 7 days an alert looks at
        for _ in range(2):  # missed twice (e.g. the sensor's run and a re-run): one alert
            job.execute_in_process(instance=instance)
            cursor = tick(cursor)
        loaded(0)
        job.execute_in_process(instance=instance)
        tick(cursor)

    miss, back = _alert_log_lines(alert_log)
    assert (
        miss["title"]
        == "Freshness missed (ERROR): raw/legacy_feature_flag_events · freshness_check"
    )
    days = ", ".join(str(e - timedelta(days=n)) for n in (6, 5, 3, 1, 0))
    assert f"Missing partitions: {days}" in miss["text"]
    assert back["title"] == "Freshness back: raw/legacy_feature_flag_events · freshness_check"
