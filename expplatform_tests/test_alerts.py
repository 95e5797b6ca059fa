"""Alerts to the team channel: a real webhook on 127.0.0.1, real runs, hand-counted posts.

The alert state is exercised three ways: pure transitions on hand-built run
outcomes, the Block Kit body of each message, and the sensor on real runs of
small jobs (execute_in_process, like `expplatform materialize`) with a
loopback receiver counting the POSTs.
"""

# No `from __future__ import annotations`: Dagster reads the checks' context annotations.

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    DailyPartitionsDefinition,
    asset,
    asset_check,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from expplatform.automation.alert_sensors import alert_on_failures
from expplatform.automation.alerts import (
    AlertState,
    CheckOutcome,
    Links,
    RunOutcome,
    WebhookBreaker,
    alert_for,
    deliver,
    deliver_all,
    redact,
    runbook_section,
    slack_payload,
    webhook_retry,
)
from expplatform.automation.alerts import delivery as delivery_module
from expplatform.automation.alerts.delivery import describe_error
from expplatform.config import PROJECT_ROOT, get_settings
from expplatform.resources import alert_resources

TOKEN = "T0FAKE/B0FAKE/s3cr3tWebhookT0ken"
UI = "http://ui.example.test"
PAGES = "http://pages.example.test"
LINKS = Links(UI, PAGES)
RUNBOOK_TEXT = (PROJECT_ROOT / "docs" / "RUNBOOK.md").read_text(encoding="utf-8")
T0 = datetime(2025, 12, 10, 7, 0, tzinfo=UTC)


class Webhook:
    """An HTTP server in a thread on a random port of 127.0.0.1.

    It answers with the queued (status, headers) responses, then 200, and
    records every request: path, JSON body, status answered, time received.
    """

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.responses: list[tuple[int, dict[str, str]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, headers = hook.responses.pop(0) if hook.responses else (200, {})
                hook.received.append(
                    {
                        "path": self.path,
                        "status": status,
                        "at": time.monotonic(),
                        "body": json.loads(body),
                    }
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{TOKEN}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def delivered(self) -> list[dict]:
        """The bodies answered with 200: the messages the channel shows."""
        return [r["body"] for r in self.received if r["status"] == 200]

    @property
    def texts(self) -> list[str]:
        return [body["text"] for body in self.delivered]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def alert_env(tmp_path: Path, webhook: Webhook, monkeypatch) -> Path:
    """The sensor's environment: the webhook, the link bases, a temporary alert log, fast retries."""
    log = tmp_path / "alerts.log"
    monkeypatch.setenv("EXPPLATFORM_ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("EXPPLATFORM_UI_URL", UI)
    monkeypatch.setenv("EXPPLATFORM_PAGES_URL", PAGES)
    monkeypatch.setenv("EXPPLATFORM_ALERT_LOG", str(log))
    monkeypatch.setattr(delivery_module, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(delivery_module, "BREAKER", WebhookBreaker())
    return log


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert "s3cr3tWebhookT0ken" not in text


def _run(run_id: str, *, ok: bool = True, checks=(), **kwargs) -> RunOutcome:
    return RunOutcome(
        run_id=run_id, job_name="materialize_all", succeeded=ok, checks=tuple(checks), **kwargs
    )


def _check(passed: bool, severity: str = "WARN", partitions=(), **kwargs) -> CheckOutcome:
    return CheckOutcome(
        "raw/events", "rejected_record_rate", passed, severity, partitions, **kwargs
    )


def _replay(outcomes: list[RunOutcome]) -> list[list[str]]:
    """The transition kinds of each run, the state going through its cursor between runs."""
    cursor = AlertState(after=0).to_cursor()
    kinds = []
    for i, outcome in enumerate(outcomes):
        state = AlertState.from_cursor(cursor)
        kinds.append([t.kind for t in state.record(outcome, T0 + timedelta(hours=i))])
        cursor = state.to_cursor()
    return kinds


# --- the alert state (pure) ---------------------------------------------------------------------


def test_a_check_failing_in_runs_1_to_3_is_posted_when_it_starts_and_when_it_recovers():
    runs = [
        _run("r1", checks=[_check(False, partitions=("2025-12-01",))]),
        _run("r2", checks=[_check(False, partitions=("2025-12-02",))]),
        _run("r3", checks=[_check(False, partitions=("2025-12-03",))]),
        # a run of another day passes: 12-01..03 still fail, nothing is posted
        _run("r4", checks=[_check(True, partitions=("2025-12-04",))]),
        # a range run re-checks the three days and passes: recovered
        _run("r5", checks=[_check(True, partitions=("2025-12-01..2025-12-03",))]),
        _run("r6", checks=[_check(True)]),
        _run("r7", checks=[_check(False)]),  # fails again: a new failure
    ]
    assert _replay(runs) == [
        ["check_failing"], [], [], [], ["check_recovered"], [], ["check_failing"]
    ]  # fmt: skip


def test_a_check_that_passes_on_other_days_only_is_not_posted_again():
    """The same bad data, runs of other days in between: one post, no recovery (issue #12)."""
    bad, good = ("2025-12-03..2025-12-06",), ("2025-12-01",)
    runs = [
        _run("r1", checks=[_check(False, partitions=bad)]),
        _run("r2", checks=[_check(True, partitions=good)]),  # a re-delivery into an old folder
        _run("r3", checks=[_check(False, partitions=("2025-12-05..2025-12-08",))]),
        _run("r4", checks=[_check(True, partitions=("2025-12-03..2025-12-04",))]),
    ]
    assert _replay(runs) == [["check_failing"], [], [], []]


def test_the_recovery_says_where_it_failed_and_on_what_it_passed():
    state = AlertState(after=0)
    state.record(_run("r1", checks=[_check(False, partitions=("2025-12-01",))]), T0)
    state.record(_run("r2", checks=[_check(False, partitions=("2025-12-02",))]), T0)
    assert state.record(_run("r3", checks=[_check(True, partitions=("2025-12-02",))]), T0) == []
    (t,) = state.record(_run("r4", checks=[_check(True, partitions=("2025-12-01",))]), T0)
    alert = alert_for(t, LINKS)
    assert alert.kind == "check_recovered"
    assert ("Failed on", "2025-12-01, 2025-12-02") in alert.fields
    assert ("Passed on", "2025-12-01") in alert.fields
    assert "Not re-checked" not in alert.text
    assert ("Failing since", "2025-12-10 07:00 UTC") in alert.fields


def test_a_warning_that_becomes_an_error_is_posted_again_but_not_the_other_way():
    runs = [
        _run("r1", checks=[_check(False, "WARN")]),
        _run("r2", checks=[_check(False, "ERROR")]),
        _run("r3", checks=[_check(False, "WARN")]),
        _run("r4", checks=[_check(False, "ERROR")]),
    ]
    assert _replay(runs) == [["check_failing"], ["check_escalated"], [], []]


def test_a_retry_chain_is_posted_once_and_its_success_once():
    retry = {"will_retry": True, "retries_left": 2}
    runs = [
        _run("a", ok=False, chain_id="a", **retry),
        _run("a1", ok=False, chain_id="a", retry_number=1, will_retry=True, retries_left=1),
        _run("b", ok=False, chain_id="b"),  # another run fails meanwhile: its own message
        _run("a2", ok=True, chain_id="a", retry_number=2),
        _run("a3", ok=True, chain_id="a"),  # a later success of the chain: nothing open
        _run("b1", ok=False, chain_id="b"),  # a re-execution that fails again: silent
    ]
    assert _replay(runs) == [["run_failed"], [], ["run_failed"], ["run_recovered"], [], []]


def _day_run(run_id: str, first: str, last: str, *, ok: bool, chain: str | None = None):
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    return _run(run_id, ok=ok, chain_id=chain or run_id, tags=tags)


def test_a_failed_day_is_one_episode_until_a_run_rebuilds_it():
    """Retries, the sensor's catch-up and the run of the replaced file: one failure, one recovery."""
    runs = [
        _day_run("a", "2025-12-08", "2025-12-08", ok=False),
        _day_run("a1", "2025-12-08", "2025-12-08", ok=False, chain="a"),  # its retry
        _day_run("c", "2025-12-08", "2025-12-08", ok=False),  # the catch-up: same episode
        _day_run("x", "2025-12-01", "2025-12-03", ok=False),  # other days: its own failure
        _day_run("y", "2025-12-02", "2025-12-02", ok=True),  # rebuilds only part of x's days
        _day_run("d", "2025-12-05", "2025-12-08", ok=True),  # the replaced file's run: healed
        _day_run("z", "2025-12-08", "2025-12-08", ok=False),  # a new failure of the day
    ]
    assert _replay(runs) == [
        ["run_failed"], [], [], ["run_failed"], [], ["run_recovered"], ["run_failed"]
    ]  # fmt: skip
    state = AlertState(after=0)
    for outcome in runs[:5]:
        state.record(outcome, T0)
    (t,) = state.record(runs[5], T0)
    alert = alert_for(t, LINKS)
    assert alert.title == "Recovered: materialize_all [2025-12-05..2025-12-08]"
    assert "The run succeeded on a later run of the same partitions (first failure: run a)" in (
        alert.text
    )
    assert ("Failed attempts", "3") in alert.fields


def test_an_open_run_failure_is_forgotten_after_a_week():
    state = AlertState(after=0)
    state.record(_run("a", ok=False), T0)
    assert state.expire(T0 + timedelta(days=6, hours=23)) == []
    assert state.expire(T0 + timedelta(days=7, minutes=1)) == ["a"]
    assert [t.kind for t in state.record(_run("a1", ok=False, chain_id="a"), T0)] == ["run_failed"]


def test_an_unreadable_cursor_starts_afresh():
    assert AlertState.from_cursor(None).after is None
    assert AlertState.from_cursor("not json").after is None
    # the cursor of the run-status sensors this sensor replaced
    assert AlertState.from_cursor('{"__class__": "RunStatusSensorCursor"}').after is None
    state = AlertState(after=12)
    state.record(_run("r1", checks=[_check(False, partitions=("2025-12-01",))]), T0)
    again = AlertState.from_cursor(state.to_cursor())
    assert again == state


# --- the messages -------------------------------------------------------------------------------


def test_a_check_alert_says_what_where_the_numbers_and_links_run_and_experiment_page():
    check = CheckOutcome(
        asset="marts/mart_experiment_health_daily",
        check="sample_ratio_mismatch",
        passed=False,
        severity="ERROR",
        description="vault-launch on 2025-12-09: unhealthy (chi-square 31.2)",
        metadata={"experiment_key": "vault-launch", "srm_p_value": 0.00002, "invocation_id": "x"},
    )
    run = _run("abc-123", checks=[check], tags={"dagster/partition": "2025-12-09"})
    (t,) = AlertState(after=0).record(run, T0)
    alert = alert_for(t, LINKS)
    assert alert.title == (
        "Check failed (ERROR): marts/mart_experiment_health_daily · sample_ratio_mismatch"
    )
    assert alert.fields == (
        ("Asset", "marts/mart_experiment_health_daily"),
        ("Check", "sample_ratio_mismatch"),
        ("Severity", "ERROR"),
        ("Partition", "2025-12-09"),
        ("Experiment", "vault-launch"),
    )
    assert alert.details == (
        "What: vault-launch on 2025-12-09: unhealthy (chi-square 31.2)\nNumbers: srm_p_value=2e-05"
    )
    assert alert.run_link == f"{UI}/runs/abc-123"
    assert alert.health_link == f"{PAGES}/experiments/vault-launch.html"
    assert "Runbook: docs/RUNBOOK.md → Sample-ratio mismatch" in alert.text


def test_the_slack_body_is_block_kit_with_buttons_and_a_plain_text_fallback():
    run = _run(
        "run-9",
        ok=False,
        tags={"dagster/partition": "2025-12-03", "expplatform/launched_by": "schedule"},
        failed_steps={"raw__legacy": "ValueError: missing column <id> in a&b.csv"},
        not_materialized=("raw/legacy_feature_flag_events",),
        will_retry=True,
        retries_left=2,
    )
    (t,) = AlertState(after=0).record(run, T0)
    payload = slack_payload(alert_for(t, LINKS))
    assert set(payload) == {"text", "blocks"}
    header, fields, details, actions, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":red_circle: Run failed: materialize_all [2025-12-03]",
            "emoji": True,
        },
    }
    assert [f["text"] for f in fields["fields"]] == [
        "*Job*\nmaterialize_all",
        "*Partition*\n2025-12-03",
        "*Launched by*\nschedule",
        "*Automatic retry*\nyes, up to 2 more attempts",
    ]
    # Slack's control characters are escaped, or `<id>` would be read as a link
    assert (
        "• raw__legacy: ValueError: missing column &lt;id&gt; in a&amp;b.csv"
        in (details["text"]["text"])
    )
    assert "Not materialized: raw/legacy_feature_flag_events" in details["text"]["text"]
    assert "only failure message for it and its retries" in details["text"]["text"]
    assert actions["type"] == "actions"
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
        ("Open run", f"{UI}/runs/run-9"),
        ("Open health page", f"{PAGES}/index.html"),
    ]
    assert context["elements"][0]["text"] == "Runbook: docs/RUNBOOK.md → Run failure"
    assert payload["text"].startswith(":red_circle: *expplatform — Run failed: materialize_all")
    assert f"Run: {UI}/runs/run-9" in payload["text"]


@pytest.mark.parametrize(
    ("check_name", "section"),
    [
        ("not_null_fct_experiment_assignments_user_id", "dbt tests"),
        ("unique_combination_of_columns_fct_experiment_exposures_daily_x", "dbt tests"),
        ("accepted_values_mart_experiment_health_daily_srm_status__healthy", "dbt tests"),
        ("relationships_fct_experiment_assignments_experiment_key", "dbt tests"),
        ("sample_ratio_mismatch_by_tier", "Sample-ratio mismatch"),
        ("multiple_variation_users", "Multiple variations"),
        ("unregistered_variations", "Unregistered variations"),
        ("rejected_record_rate", "Rejected-record rate"),
        ("exposure_reconciliation", "Reconciliation"),
        ("exposure_volume_anomaly", "Volume anomaly"),
        ("late_events_beyond_lookback", "Late events"),
        ("freshness_check", "Freshness"),
        ("landing_delivery", "Landing delivery"),
        (None, "Run failure"),
    ],
)
def test_every_alert_points_at_its_runbook_section(check_name, section):
    assert runbook_section(check_name) == section
    assert f"## {section}" in RUNBOOK_TEXT


# --- delivery (a real server on 127.0.0.1) ------------------------------------------------------


def _alert(text: str = "check failed"):
    check = CheckOutcome("a", "c", False, "WARN", description=text)
    (t,) = AlertState(after=0).record(_run("r1", checks=[check]), T0)
    return alert_for(t, LINKS)


def test_a_429_is_retried_after_its_retry_after_delay(webhook, tmp_path):
    webhook.responses = [(429, {"Retry-After": "1"})]
    result = deliver(
        _alert(),
        webhook_url=webhook.url,
        alert_log=tmp_path / "a.log",
        retry=webhook_retry(backoff_factor=0),  # no backoff of our own: any wait is Retry-After's
    )
    assert result.delivered and result.attempts == 2
    first, second = webhook.received
    assert [first["status"], second["status"]] == [429, 200]
    assert 1.0 <= second["at"] - first["at"] < 1.8
    assert first["body"] == second["body"]  # the same message, posted again
    assert not (tmp_path / "a.log").exists()


def test_a_5xx_is_retried_and_a_4xx_is_not(webhook, tmp_path):
    log = tmp_path / "a.log"
    fast = webhook_retry(backoff_factor=0.01)
    webhook.responses = [(503, {}), (502, {})]
    result = deliver(_alert("one"), webhook_url=webhook.url, alert_log=log, retry=fast)
    assert result.delivered and result.attempts == 3
    assert [r["status"] for r in webhook.received] == [503, 502, 200]

    webhook.received.clear()
    webhook.responses = [(500, {})] * 3
    result = deliver(_alert("two"), webhook_url=webhook.url, alert_log=log, retry=fast)
    assert not result.delivered and result.attempts == 3 and result.error == "HTTP 500"

    webhook.received.clear()
    webhook.responses = [(404, {})]  # a wrong token: retrying cannot help
    result = deliver(_alert("three"), webhook_url=webhook.url, alert_log=log, retry=fast)
    assert not result.delivered and result.attempts == 1 and result.error == "HTTP 404"
    assert len(webhook.received) == 1

    kept = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(k["details"], k["webhook_error"]) for k in kept] == [
        ("What: two", "HTTP 500"),
        ("What: three", "HTTP 404"),
    ]


def test_each_alert_is_one_post_with_blocks_and_text(webhook, tmp_path):
    results = deliver_all(
        [_alert("one"), _alert("two")],
        webhook_url=webhook.url,
        alert_log=tmp_path / "a.log",
        breaker=WebhookBreaker(),
    )
    assert [r.delivered for r in results] == [True, True]
    assert len(webhook.received) == 2
    assert all(set(r["body"]) == {"text", "blocks"} for r in webhook.received)
    assert [r["path"] for r in webhook.received] == [f"/services/{TOKEN}"] * 2


def test_failed_deliveries_never_raise_and_leak_the_url_nowhere(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs the URL it retries at DEBUG and WARNING
    log = tmp_path / "a.log"
    dead = f"http://127.0.0.1:9/services/{TOKEN}"  # nothing listens on the discard port
    result = deliver(_alert(), webhook_url=dead, alert_log=log, retry=webhook_retry(3, 0))
    assert not result.delivered and result.logged
    assert result.error.startswith("connection failed")
    # http.client refuses a URL with a space and quotes it back: redacted too
    spaced = f"http://127.0.0.1:9/services/{TOKEN} x"
    result = deliver(_alert(), webhook_url=spaced, alert_log=log, retry=webhook_retry(1, 0))
    assert not result.delivered and result.logged
    assert "Retrying" in caplog.text  # urllib3's retry lines were captured: not vacuous
    _assert_no_secret(log.read_text(), caplog.text, result.error or "")
    assert describe_error(ValueError(f"unknown url type: {dead!r}"), dead).count("[redacted") == 1
    assert TOKEN not in redact(f"failed posting to {spaced}", spaced)


def test_without_a_url_alerts_go_to_the_alert_log_one_json_line_each(tmp_path):
    log = tmp_path / "sub" / "alerts.log"
    results = deliver_all([_alert("one"), _alert("two")], webhook_url=None, alert_log=log)
    assert all(r.delivered and r.channel == "alert_log" for r in results)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["details"] for line in lines] == ["What: one", "What: two"]


def test_a_dead_webhook_costs_one_round_of_retries_per_cooldown(webhook, tmp_path):
    webhook.responses = [(500, {})] * 3
    log = tmp_path / "a.log"
    results = deliver_all(
        [_alert("one"), _alert("two")],
        webhook_url=webhook.url,
        alert_log=log,
        breaker=WebhookBreaker(),
        retry=webhook_retry(backoff_factor=0),
    )
    assert [r.delivered for r in results] == [False, False]
    assert len(webhook.received) == 3  # the second alert did not hammer the dead webhook
    assert len(log.read_text().splitlines()) == 2


# --- the sensor on real runs --------------------------------------------------------------------

days = DailyPartitionsDefinition(start_date="2025-12-01")


@asset(partitions_def=days)
def throwaway_events() -> None:
    pass


@asset_check(asset=throwaway_events)
def rejected_record_rate(context: AssetCheckExecutionContext) -> AssetCheckResult:
    """Fails unless the run is tagged `test/check=pass`."""
    passed = context.run.tags.get("test/check") == "pass"
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description="rejected-record rate above threshold",
        metadata={"rejected_rate": 0.25, "rows_rejected": 12},
    )


@asset_check(asset=throwaway_events)
def row_count_positive() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


@asset
def throwaway_broken(context: AssetExecutionContext) -> None:
    """Fails unless the run is tagged `test/asset=pass`."""
    if context.run.tags.get("test/asset") != "pass":
        raise RuntimeError("cannot read launchdarkly/date=2025-12-03/part-0.jsonl.gz: truncated")


CHECKED = [throwaway_events, rejected_record_rate, row_count_positive]


def _tick(instance, cursor: str | None) -> str | None:
    """One evaluation of the alert sensor in a new context (as after a daemon restart)."""
    # the sensor's resource as the platform builds it from the environment (the test's log)
    resources = alert_resources(get_settings())
    return alert_on_failures.evaluate_tick(
        build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    ).cursor


def test_a_check_failing_in_runs_1_to_3_posts_twice_across_a_restart(webhook, alert_env):
    with instance_for_test() as instance:
        cursor = _tick(instance, None)  # the first tick only places the cursor
        for day, outcome in [("2025-12-01", "fail"), ("2025-12-02", "fail")]:
            materialize(CHECKED, instance=instance, partition_key=day, tags={"test/check": outcome})
        cursor = _tick(instance, cursor)
        assert len(webhook.received) == 1
        cursor = _tick(instance, cursor)  # nothing new: nothing posted twice
        assert len(webhook.received) == 1

        # the daemon restarts: a new context with the stored cursor and nothing else
        materialize(
            CHECKED, instance=instance, partition_key="2025-12-03", tags={"test/check": "x"}
        )
        cursor = _tick(instance, cursor)
        assert len(webhook.received) == 1, "run 3 still fails: no new post"

        # another day passes: the three days still fail, nothing is posted
        materialize(
            CHECKED, instance=instance, partition_key="2025-12-04", tags={"test/check": "pass"}
        )
        cursor = _tick(instance, cursor)
        assert len(webhook.received) == 1, "a pass on another day is not a recovery"
        for day in ("2025-12-01", "2025-12-02", "2025-12-03"):
            fixed = materialize(
                CHECKED, instance=instance, partition_key=day, tags={"test/check": "pass"}
            )
        cursor = _tick(instance, cursor)
        _tick(instance, cursor)

    failing, recovered = webhook.texts
    assert len(webhook.received) == 2
    assert "Check failed (WARN): throwaway_events · rejected_record_rate" in failing
    assert "Partition: 2025-12-01" in failing  # where it started failing
    assert "Numbers: rejected_rate=0.25, rows_rejected=12" in failing
    assert "row_count_positive" not in failing + recovered
    assert "Check passes: throwaway_events · rejected_record_rate" in recovered
    assert "Failed on: 2025-12-01, 2025-12-02, 2025-12-03" in recovered
    assert "Passed on: 2025-12-03" in recovered
    assert f"{UI}/runs/{fixed.run_id}" in recovered
    assert not alert_env.exists()  # everything reached the channel


def test_a_failed_run_posts_its_steps_once_with_buttons(webhook, alert_env, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with instance_for_test() as instance:
        cursor = _tick(instance, None)
        failed = materialize([throwaway_broken], instance=instance, raise_on_error=False)
        webhook.responses = [(500, {})]  # the delivery fails once, then is retried
        for _ in range(2):
            cursor = _tick(instance, cursor)

    assert [r["status"] for r in webhook.received] == [500, 200]
    (body,) = webhook.delivered
    text = body["text"]
    run_id = failed.dagster_run.run_id
    assert "Run failed: __ephemeral_asset_job__" in text
    assert "• throwaway_broken: RuntimeError: cannot read" in text
    assert "Not materialized: throwaway_broken" in text
    assert "Automatic retry" not in text  # run retries are off in this instance
    buttons = body["blocks"][-2]["elements"]
    assert [b["url"] for b in buttons] == [f"{UI}/runs/{run_id}", f"{PAGES}/index.html"]
    out, err = capfd.readouterr()
    _assert_no_secret(caplog.text + out + err, json.dumps(webhook.delivered))


def test_a_retry_chain_posts_once_and_recovers_once(webhook, alert_env):
    retries = {"run_retries": {"enabled": True, "max_retries": 2}}
    with instance_for_test(overrides=retries) as instance:
        cursor = _tick(instance, None)
        first = materialize([throwaway_broken], instance=instance, raise_on_error=False)
        root = first.dagster_run.run_id
        # Dagster marks the failure for a retry, but a run executed in its own process (the CLI)
        # has no job origin for the daemon to re-launch: the alert must not promise a retry.
        assert instance.get_run_by_id(root).tags["dagster/will_retry"] == "true"
        cursor = _tick(instance, cursor)

        def retry(number: int, outcome: str):
            tags = {
                "dagster/root_run_id": root,
                "dagster/parent_run_id": root,
                "dagster/retry_number": str(number),
                "test/asset": outcome,
            }
            return materialize(
                [throwaway_broken], instance=instance, tags=tags, raise_on_error=False
            )

        retry(1, "fail")
        cursor = _tick(instance, cursor)
        assert len(webhook.received) == 1, "a retry of a posted failure is not posted"
        success = retry(2, "pass")
        cursor = _tick(instance, cursor)
        _tick(instance, cursor)

    failure, recovery = webhook.texts
    assert "Run failed: __ephemeral_asset_job__" in failure
    assert "Automatic retry" not in failure
    assert "Recovered: __ephemeral_asset_job__" in recovery
    assert f"The run succeeded on retry 2 (first failure: run {root[:8]})." in recovery
    assert "Failed attempts: 2" in recovery
    assert f"{UI}/runs/{success.run_id}" in recovery


def test_without_a_url_the_sensor_writes_the_alert_log(alert_env, monkeypatch):
    monkeypatch.delenv("EXPPLATFORM_ALERT_WEBHOOK_URL")
    with instance_for_test() as instance:
        cursor = _tick(instance, None)
        failed = materialize([throwaway_broken], instance=instance, raise_on_error=False)
        cursor = _tick(instance, cursor)
        _tick(instance, cursor)
    (line,) = [json.loads(line) for line in alert_env.read_text().splitlines()]
    assert line["kind"] == "run_failure"
    assert line["run_id"] == failed.dagster_run.run_id
    assert line["run_link"] == f"{UI}/runs/{failed.dagster_run.run_id}"
