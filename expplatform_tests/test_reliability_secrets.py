"""Secrets: the team-channel webhook URL is written nowhere a run or an alert leaves a trace.

Real runs of the platform's job (one succeeds with metadata, one fails on a
truncated gzip with an exception naming the file) and the platform's alert
sensor, with EXPPLATFORM_ALERT_WEBHOOK_URL pointing at a webhook that always
answers 500 (so every retry and the fallback to the alert log happen). The
URL's token must not be in any event of the instance (serialised whole:
messages, metadata, errors and their causes), run tags or config, any file of
the instance's storage, the alert log, or what the process logged.

The other exposure guarantees are tested elsewhere: the UI's bind address in
test_reliability_concurrency, hostile keys and names in test_reliability_inputs.
"""

from __future__ import annotations

import gzip
import json
import logging
from datetime import date

from dagster import (
    AssetKey,
    DagsterInstance,
    build_sensor_context,
    instance_for_test,
    serialize_value,
)

from expplatform.automation.alert_sensors import alert_on_failures
from expplatform.automation.alerts import WebhookBreaker
from expplatform.automation.alerts import delivery as alert_delivery
from expplatform.config import get_settings
from expplatform.definitions import build_definitions
from expplatform.jobs import MATERIALIZE_ALL
from expplatform.resources import alert_resources
from expplatform_tests.conftest import ld_line, write_text
from expplatform_tests.e2e import make_settings
from expplatform_tests.reliability_support import FailingWebhook, files_containing

SECRET = "T0SECRET/B0SECRET/reliabilityWebhookS3cret"
TOKEN = SECRET.rsplit("/", 1)[-1]
RAW_KEYS = [
    AssetKey(["raw", "partner_directpush_launchdarkly_events"]),
    AssetKey(["raw", "legacy_feature_flag_events"]),
]
MS = 1764584100000


def range_tags(start: date, end: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


def evaluate(sensor, instance: DagsterInstance, cursor: str | None) -> str | None:
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=alert_resources(get_settings()),
    )
    return sensor.evaluate_tick(context).cursor


def everything_recorded(instance: DagsterInstance) -> str:
    """Every event of every run, and every run's tags and config, as one serialised text."""
    parts = []
    for run in instance.get_runs():
        parts.append(serialize_value(run))
        parts.extend(serialize_value(entry) for entry in instance.all_logs(run.run_id))
    return "\n".join(parts)


def test_the_webhook_url_is_in_no_event_log_metadata_exception_or_file(
    tmp_path, monkeypatch, caplog, capfd
):
    webhook = FailingWebhook(SECRET)
    alert_log = tmp_path / "alerts.log"
    monkeypatch.setenv("EXPPLATFORM_ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("EXPPLATFORM_ALERT_LOG", str(alert_log))
    monkeypatch.setattr(alert_delivery, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(alert_delivery, "BREAKER", WebhookBreaker())
    caplog.set_level(logging.DEBUG)

    landing = tmp_path / "landing"
    write_text(
        landing / "launchdarkly" / "date=2025-12-01" / "part-000.jsonl",
        ld_line("ld-1", "u-1", MS) + "\nnot json\n",
    )
    write_text(
        landing / "legacy" / "date=2025-12-01" / "part-000.csv",
        "id,user,timestamp,key,variation_name,value\nlg-1,u-2,2025-12-01T10:00:00Z,vault_launch,control,1\n",
    )
    broken = landing / "launchdarkly" / "date=2025-12-02" / "part-000.jsonl.gz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(gzip.compress((ld_line("ld-2", "u-2", MS) + "\n").encode() * 100)[:50])
    settings = make_settings(tmp_path, landing)
    defs = build_definitions(settings)
    job = defs.resolve_job_def(MATERIALIZE_ALL)
    home = tmp_path / "dagster_home"
    home.mkdir()

    try:
        with instance_for_test(temp_dir=str(home)) as instance:
            cursor = evaluate(alert_on_failures, instance, None)
            ok = job.execute_in_process(
                instance=instance,
                asset_selection=RAW_KEYS,
                tags=range_tags(date(2025, 12, 1), date(2025, 12, 1)),
            )
            failed = job.execute_in_process(
                instance=instance,
                asset_selection=RAW_KEYS,
                tags=range_tags(date(2025, 12, 1), date(2025, 12, 2)),
                raise_on_error=False,
            )
            assert ok.success and not failed.success
            for _ in range(2):
                cursor = evaluate(alert_on_failures, instance, cursor)
            recorded = everything_recorded(instance)
    finally:
        webhook.close()
    out, err = capfd.readouterr()
    logged = caplog.text + out + err

    # Not vacuous: the URL was used, the failure and its exception were recorded and alerted.
    assert webhook.paths and all(p == f"/services/{SECRET}" for p in webhook.paths)
    assert "launchdarkly/date=2025-12-02/part-000.jsonl.gz: cannot be read" in recorded
    assert "rows_loaded" in recorded  # materialization metadata is in what was scanned
    assert "webhook delivery failed (HTTP 500" in logged
    kept = [json.loads(line) for line in alert_log.read_text().splitlines()]
    # runs are alerted in order: the first alert (a failed check of the first run) met the 500s,
    # the failed run's alert came during the cool-down and went straight to the log
    assert kept[0]["kind"] == "check_failure" and kept[0]["webhook_error"] == "HTTP 500"
    (alert,) = [a for a in kept if a["kind"] == "run_failure"]
    assert alert["webhook_error"].startswith("not sent: the webhook failed recently")
    assert "part-000.jsonl.gz: cannot be read" in alert["text"]

    # the alert state lives in the sensor's cursor, which Dagster stores in the instance
    texts = (recorded, logged, alert_log.read_text(), cursor, repr(settings), repr(defs.resources))
    for text in texts:
        assert TOKEN not in text
    assert files_containing(tmp_path, TOKEN) == []  # instance storage, warehouse, alert log


def test_the_webhook_url_is_not_a_setting(monkeypatch):
    """Read from the environment when an alert is sent, never copied into Settings."""
    monkeypatch.setenv(
        "EXPPLATFORM_ALERT_WEBHOOK_URL", f"https://hooks.example.test/services/{SECRET}"
    )
    assert TOKEN not in repr(get_settings())
