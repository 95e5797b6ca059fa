"""Alerts to the team channel: a real webhook on 127.0.0.1, real failed runs, no leaked secret."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DailyPartitionsDefinition,
    asset,
    asset_check,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from expplatform.automation import alerts
from expplatform.automation.alert_sensors import alert_on_failed_checks, alert_on_run_failure
from expplatform.automation.alerts import (
    Alert,
    WebhookBreaker,
    deliver,
    deliver_all,
    describe_error,
    format_check_failure,
    post_json,
    redact,
    runbook_section,
)
from expplatform.config import PROJECT_ROOT

TOKEN = "T0FAKE/B0FAKE/s3cr3tWebhookT0ken"
UI = "http://ui.example.test"
RUNBOOK_TEXT = (PROJECT_ROOT / "docs" / "RUNBOOK.md").read_text(encoding="utf-8")


class Webhook:
    """An HTTP server in a thread on a random port; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.statuses.pop(0) if hook.statuses else 200
                hook.received.append({"path": self.path, "status": status, **json.loads(body)})
                self.send_response(status)
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
    def delivered(self) -> list[str]:
        return [r["text"] for r in self.received if r["status"] == 200]

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
    """The sensors' environment: the webhook, the UI base, a temporary alert log, fast retries."""
    log = tmp_path / "alerts.log"
    monkeypatch.setenv("EXPPLATFORM_ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("EXPPLATFORM_UI_URL", UI)
    monkeypatch.setenv("EXPPLATFORM_ALERT_LOG", str(log))
    monkeypatch.setattr(alerts, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(alerts, "BREAKER", WebhookBreaker())
    return log


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert "s3cr3tWebhookT0ken" not in text


def _alert(text: str = "check failed") -> Alert:
    return Alert(kind="check_failure", title="t", text=text, run_id="r1", key="r1:a:c")


# --- formatting and delivery (pure) -------------------------------------------------------------


def test_check_alert_says_what_where_the_numbers_and_links_the_run():
    alert = format_check_failure(
        run_id="abc-123",
        job_name="materialize_all",
        tags={"dagster/partition": "2025-12-09"},
        asset="raw/partner_directpush_launchdarkly_events",
        check_name="rejected_record_rate",
        severity="WARN",
        description="3.2% of lines were rejected (threshold 1%)",
        metadata={"rejected_rate": 0.0321, "rows_rejected": 321, "invocation_id": "noise"},
        partition=None,
        ui_url=UI + "/",
    )
    assert "Check failed (WARN): raw/partner_directpush_launchdarkly_events" in alert.text
    assert "rejected_record_rate" in alert.text
    assert "Partition: 2025-12-09" in alert.text
    assert "rejected_rate=0.0321, rows_rejected=321" in alert.text
    assert "invocation_id" not in alert.text
    assert f"{UI}/runs/abc-123" in alert.text
    assert "RUNBOOK.md → Rejected-record rate" in alert.text
    assert alert.key == (
        "abc-123:raw/partner_directpush_launchdarkly_events:rejected_record_rate:2025-12-09"
    )


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
        (None, "Run failure"),
    ],
)
def test_every_alert_points_at_its_runbook_section(check_name, section):
    assert runbook_section(check_name) == section
    assert f"## {section}" in RUNBOOK_TEXT


def test_a_500_then_200_delivers_once(webhook, tmp_path):
    webhook.statuses = [500]
    delays: list[float] = []
    result = deliver(
        _alert(), webhook_url=webhook.url, alert_log=tmp_path / "a.log", sleep=delays.append
    )
    assert result.delivered and result.attempts == 2
    assert delays == [1.0]
    assert webhook.delivered == ["check failed"]
    assert webhook.received[0]["path"] == f"/services/{TOKEN}"
    assert not (tmp_path / "a.log").exists()


def test_exhausted_or_refused_delivery_is_logged_never_raised_and_kept_in_the_alert_log(
    webhook, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    log = tmp_path / "a.log"
    webhook.statuses = [503, 503, 503]
    result = deliver(_alert(), webhook_url=webhook.url, alert_log=log, sleep=lambda s: None)
    assert not result.delivered and result.attempts == 3 and result.error == "HTTP 503"
    webhook.statuses = [404]  # a wrong token: retrying cannot help
    result = deliver(_alert(), webhook_url=webhook.url, alert_log=log, sleep=lambda s: None)
    assert result.attempts == 1
    dead = f"http://127.0.0.1:9/services/{TOKEN}"  # nothing listens on the discard port
    result = deliver(_alert(), webhook_url=dead, alert_log=log, sleep=lambda s: None)
    assert not result.delivered and result.logged
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 3 and {line["text"] for line in lines} == {"check failed"}
    _assert_no_secret(log.read_text(), caplog.text, result.error or "")


def test_urllib_errors_that_quote_the_url_are_redacted(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # http.client refuses a URL with a space and quotes it back in the exception
    url = f"http://127.0.0.1:9/services/{TOKEN} x"
    with pytest.raises(Exception, match="s3cr3tWebhookT0ken"):
        post_json(url, {"text": "x"}, timeout=1)  # the raw error does quote the secret
    result = deliver(_alert(), webhook_url=url, alert_log=tmp_path / "a.log", sleep=lambda s: None)
    assert not result.delivered
    _assert_no_secret(result.error or "", caplog.text, (tmp_path / "a.log").read_text())
    assert describe_error(ValueError(f"unknown url type: {url!r}"), url).count("[redacted") >= 1
    assert TOKEN not in redact(f"failed posting to {url}", url)


def test_without_a_url_alerts_go_to_the_alert_log_one_json_line_each(tmp_path):
    log = tmp_path / "sub" / "alerts.log"
    results = deliver_all([_alert("one"), _alert("two")], webhook_url=None, alert_log=log)
    assert all(r.delivered and r.channel == "alert_log" for r in results)
    assert [json.loads(line)["text"] for line in log.read_text().splitlines()] == ["one", "two"]


def test_a_dead_webhook_costs_one_round_of_retries_per_cooldown(webhook, tmp_path):
    webhook.statuses = [500] * 3
    log = tmp_path / "a.log"
    results = deliver_all(
        [_alert("one"), _alert("two")],
        webhook_url=webhook.url,
        alert_log=log,
        breaker=WebhookBreaker(),
        sleep=lambda s: None,
    )
    assert [r.delivered for r in results] == [False, False]
    assert len(webhook.received) == 3  # the second alert did not hammer the dead webhook
    assert len(log.read_text().splitlines()) == 2


# --- the sensors on real runs -------------------------------------------------------------------

days = DailyPartitionsDefinition(start_date="2025-12-01")


@asset(partitions_def=days)
def throwaway_events() -> None:
    pass


@asset_check(asset=throwaway_events)
def rejected_record_rate() -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.WARN,
        description="rejected-record rate above threshold",
        metadata={"rejected_rate": 0.25, "rows_rejected": 12},
    )


@asset_check(asset=throwaway_events)
def row_count_positive() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


@asset_check(asset=throwaway_events)
def sample_ratio_mismatch() -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description="sample-ratio mismatch",
        metadata={"srm_p_value": 0.00002},
    )


@asset
def throwaway_broken() -> None:
    raise RuntimeError("cannot read launchdarkly/date=2025-12-03/part-0.jsonl.gz: truncated")


def _evaluate(sensor, instance, cursor):
    data = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor))
    return data.cursor


def test_alert_sensors_post_one_message_per_failure_with_retry_and_no_secret(
    webhook, alert_env, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    with instance_for_test() as instance:
        # first evaluations only place the cursors (runs before a sensor existed are not alerted)
        checks_cursor = _evaluate(alert_on_failed_checks, instance, None)
        failure_cursor = _evaluate(alert_on_run_failure, instance, None)

        ok_run = materialize(
            [throwaway_events, rejected_record_rate, row_count_positive, sample_ratio_mismatch],
            partition_key="2025-12-03",
            instance=instance,
        )
        failed_run = materialize([throwaway_broken], instance=instance, raise_on_error=False)
        assert ok_run.success and not failed_run.success

        webhook.statuses = [500]  # the first delivery fails once, then is retried
        for _ in range(2):  # the second evaluation must not repeat anything
            checks_cursor = _evaluate(alert_on_failed_checks, instance, checks_cursor)
            failure_cursor = _evaluate(alert_on_run_failure, instance, failure_cursor)

    assert len(webhook.received) == 4 and webhook.received[0]["status"] == 500
    messages = webhook.delivered
    assert len(messages) == 3, messages
    warn, error, run_failure = (
        next(m for m in messages if "rejected_record_rate" in m),
        next(m for m in messages if "sample_ratio_mismatch" in m),
        next(m for m in messages if "Run failed" in m),
    )
    assert "Check failed (WARN): throwaway_events · rejected_record_rate" in warn
    assert "Partition: 2025-12-03" in warn
    assert "rejected_rate=0.25, rows_rejected=12" in warn
    assert f"{UI}/runs/{ok_run.run_id}" in warn
    assert "Check failed (ERROR)" in error and "srm_p_value=2e-05" in error
    assert "RUNBOOK.md → Sample-ratio mismatch" in error
    assert "• throwaway_broken: RuntimeError: cannot read" in run_failure
    assert "Not materialized: throwaway_broken" in run_failure
    assert f"{UI}/runs/{failed_run.dagster_run.run_id}" in run_failure
    assert not any("row_count_positive" in m for m in messages)
    assert not alert_env.exists()  # everything reached the channel
    out, err = capfd.readouterr()
    captured = caplog.text + out + err
    assert "webhook delivery failed (HTTP 500)" in captured  # the logs were captured: not vacuous
    _assert_no_secret(captured, *messages)


def test_alert_sensors_without_a_url_write_the_alert_log(alert_env, monkeypatch):
    monkeypatch.delenv("EXPPLATFORM_ALERT_WEBHOOK_URL")
    with instance_for_test() as instance:
        cursor = _evaluate(alert_on_run_failure, instance, None)
        failed_run = materialize([throwaway_broken], instance=instance, raise_on_error=False)
        cursor = _evaluate(alert_on_run_failure, instance, cursor)
        _evaluate(alert_on_run_failure, instance, cursor)
    lines = [json.loads(line) for line in alert_env.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["kind"] == "run_failure"
    assert lines[0]["run_id"] == failed_run.dagster_run.run_id
    assert f"{UI}/runs/{failed_run.dagster_run.run_id}" in lines[0]["text"]
