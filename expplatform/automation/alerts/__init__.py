"""Alerts to the team channel, as plain code (the Dagster sensor is in ../alert_sensors.py).

- :mod:`.state`: which failures are open — a failure is posted when it starts
  and once more when it recovers, a retried run once per retry chain;
- :mod:`.formatting`: the message of each transition and its Slack Block Kit body;
- :mod:`.delivery`: one POST to EXPPLATFORM_ALERT_WEBHOOK_URL (urllib3 retries),
  else the local alert log; the URL is a secret and never leaves redacted.
"""

from __future__ import annotations

from expplatform.automation.alerts.delivery import (
    DeliveryResult,
    WebhookBreaker,
    deliver,
    deliver_all,
    redact,
    webhook_retry,
    webhook_url_from_env,
)
from expplatform.automation.alerts.formatting import (
    Alert,
    Links,
    alert_for,
    describe_partition,
    runbook_section,
    slack_payload,
)
from expplatform.automation.alerts.state import (
    AlertState,
    CheckOutcome,
    RunOutcome,
    Transition,
)

__all__ = [
    "Alert",
    "AlertState",
    "CheckOutcome",
    "DeliveryResult",
    "Links",
    "RunOutcome",
    "Transition",
    "WebhookBreaker",
    "alert_for",
    "deliver",
    "deliver_all",
    "describe_partition",
    "redact",
    "runbook_section",
    "slack_payload",
    "webhook_retry",
    "webhook_url_from_env",
]
