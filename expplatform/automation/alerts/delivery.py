"""Alerts to the team channel: formatting and delivery, as plain functions (no Dagster here).

An alert is one message per failure (a failed run, or one failed check of a
run). It goes to EXPPLATFORM_ALERT_WEBHOOK_URL as Slack-compatible JSON
`{"text": ...}`; without a URL, or when the webhook keeps failing, it is
appended to the local alert log (Settings.alert_log) as one JSON line.

The webhook URL is a secret (its path is the token): it is read from the
environment when an alert is sent, never stored in settings, and every error
text that leaves this module goes through :func:`redact` first.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

WEBHOOK_ENV = "EXPPLATFORM_ALERT_WEBHOOK_URL"
RUNBOOK = "docs/RUNBOOK.md"

#: Metadata entries that are bookkeeping, not numbers a reader needs.
NOISE_METADATA = {"invocation_id", "Execution Duration", "dagster/freshness_params"}
MAX_METADATA_ENTRIES = 12
MAX_VALUE_CHARS = 200
MAX_ERROR_CHARS = 600
MAX_LISTED_ASSETS = 8
#: Delivery: attempts per alert, first backoff (doubles each retry), request timeout in seconds.
#: Worst case per alert ~ 3 x 5 s + 1 s + 2 s, well inside a sensor evaluation's time limit.
ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 5.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One failure to report; `text` is the message the channel shows."""

    kind: str  # "run_failure" | "check_failure"
    title: str
    text: str
    run_id: str
    asset: str | None = None
    check: str | None = None
    partition: str | None = None
    severity: str | None = None
    #: Identity of the failure: run id + check key (+ partition); run failures: the run id.
    key: str = ""


@dataclass
class DeliveryResult:
    delivered: bool
    channel: str  # "webhook" | "alert_log"
    attempts: int = 0
    error: str | None = None
    logged: bool = False


# --- formatting ---------------------------------------------------------------------------------


def run_url(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def describe_partition(tags: Mapping[str, str]) -> str | None:
    """The partition of a run from its tags: a key, or a single-run range `A..B`."""
    if tags.get("dagster/partition"):
        return tags["dagster/partition"]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if start and end:
        return start if start == end else f"{start}..{end}"
    return None


def format_value(value: object) -> str | None:
    """A metadata value as short text; None for values that do not fit in a chat line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = " ".join(value.split())
        return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
    return None


def key_numbers(metadata: Mapping[str, object]) -> list[str]:
    """`name=value` for the scalar entries of check metadata (MetadataValue or raw values)."""
    out = []
    for name, raw in metadata.items():
        if name in NOISE_METADATA or len(out) >= MAX_METADATA_ENTRIES:
            continue
        cls = type(raw).__name__
        value = getattr(raw, "value", raw)
        if cls == "TimestampMetadataValue" and isinstance(value, (int, float)):
            text = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
        elif cls in {"MarkdownMetadataValue", "JsonMetadataValue", "TableMetadataValue"}:
            continue
        else:
            text = format_value(value)
        if text is not None:
            out.append(f"{name}={text}")
    return out


#: dbt generic tests arrive as checks named `<test>_<model>_<column>...`.
DBT_TEST_PREFIXES = ("unique_", "not_null_", "accepted_values_", "relationships_")
#: Runbook sections of the Python checks and freshness, found from words in the check name.
RUNBOOK_SECTIONS = (
    ("freshness", "Freshness"),
    ("sample_ratio", "Sample-ratio mismatch"),
    ("multiple_variation", "Multiple variations"),
    ("unregistered", "Unregistered variations"),
    ("rejected", "Rejected-record rate"),
    ("reconciliation", "Reconciliation"),
    ("volume", "Volume anomaly"),
    ("late_events", "Late events"),
)


def runbook_section(check_name: str | None) -> str:
    """The RUNBOOK.md section for a failed check (None: a failed run)."""
    if check_name is None:
        return "Run failure"
    lowered = check_name.lower()
    if lowered.startswith(DBT_TEST_PREFIXES):
        return "dbt tests"
    for word, section in RUNBOOK_SECTIONS:
        if word in lowered:
            return section
    return "Data-quality checks"


def first_line(text: str | None, limit: int = MAX_ERROR_CHARS) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    line = lines[0] if lines else "no error message"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_run_failure(
    *,
    run_id: str,
    job_name: str,
    tags: Mapping[str, str],
    failed_steps: Mapping[str, str],
    run_error: str | None,
    ui_url: str,
    not_materialized: list[str] | None = None,
) -> Alert:
    """The alert for a failed run: which job and partition, which steps and why, the link."""
    partition = describe_partition(tags)
    title = f"Run failed: {job_name}" + (f" [{partition}]" if partition else "")
    lines = [f":red_circle: *expplatform — {title}*"]
    if partition:
        lines.append(f"Partition: {partition}")
    if failed_steps:
        lines.append(f"Failed steps ({len(failed_steps)}):")
        lines.extend(f"• {step}: {first_line(msg)}" for step, msg in sorted(failed_steps.items()))
    else:
        lines.append(f"Error: {first_line(run_error)}")
    if not_materialized:
        shown = ", ".join(not_materialized[:MAX_LISTED_ASSETS])
        more = len(not_materialized) - MAX_LISTED_ASSETS
        lines.append(f"Not materialized: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    launched = tags.get("expplatform/launched_by") or tags.get("dagster/schedule_name")
    if launched:
        lines.append(f"Launched by: {launched}")
    lines.append(f"Run: {run_url(ui_url, run_id)}")
    lines.append(f"Runbook: {RUNBOOK} → {runbook_section(None)}")
    return Alert(
        kind="run_failure",
        title=title,
        text="\n".join(lines),
        run_id=run_id,
        partition=partition,
        key=run_id,
    )


def format_check_failure(
    *,
    run_id: str,
    job_name: str,
    tags: Mapping[str, str],
    asset: str,
    check_name: str,
    severity: str,
    description: str | None,
    metadata: Mapping[str, object],
    partition: str | None,
    ui_url: str,
) -> Alert:
    """The alert for one failed asset check (dbt test, Python check or freshness check)."""
    partition = partition or describe_partition(tags)
    section = runbook_section(check_name)
    what = "Freshness missed" if section == "Freshness" else "Check failed"
    title = f"{what} ({severity}): {asset} · {check_name}"
    icon = ":red_circle:" if severity == "ERROR" else ":warning:"
    lines = [f"{icon} *expplatform — {title}*", f"Asset: {asset}"]
    if partition:
        lines.append(f"Partition: {partition}")
    if description:
        lines.append(f"What: {first_line(description)}")
    numbers = key_numbers(metadata)
    if numbers:
        lines.append("Numbers: " + ", ".join(numbers))
    lines.append(f"Run: {run_url(ui_url, run_id)} ({job_name})")
    lines.append(f"Runbook: {RUNBOOK} → {section}")
    return Alert(
        kind="check_failure",
        title=title,
        text="\n".join(lines),
        run_id=run_id,
        asset=asset,
        check=check_name,
        partition=partition,
        severity=severity,
        key=f"{run_id}:{asset}:{check_name}" + (f":{partition}" if partition else ""),
    )


# --- secrecy ------------------------------------------------------------------------------------

REDACTED = "[redacted webhook]"


def secret_fragments(url: str | None) -> list[str]:
    """Every piece of the webhook URL that could leak the token, longest first."""
    if not url:
        return []
    parts = urlsplit(url)
    pieces = {url, url.split("://", 1)[-1], parts.netloc + parts.path, parts.path, parts.query}
    # a token split into path segments (/services/T000/B000/XXXX) must not leak piecewise;
    # plain lower-case words ("services", "webhook") are not secret and stay readable
    pieces.update(
        seg
        for seg in parts.path.split("/")
        if len(seg) >= 6 and not (seg.isalpha() and seg.islower())
    )
    return sorted((p for p in pieces if p and p != "/"), key=len, reverse=True)


def redact(text: str, url: str | None) -> str:
    for piece in secret_fragments(url):
        text = text.replace(piece, REDACTED)
    return text


def redacted(alert: Alert, url: str | None) -> Alert:
    return replace(alert, text=redact(alert.text, url), title=redact(alert.title, url))


def describe_error(exc: BaseException, url: str | None) -> str:
    """A short, secret-free description of a delivery error (urllib may quote the URL)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return redact(f"URLError: {exc.reason}", url)
    return redact(f"{type(exc).__name__}: {exc}", url)


# --- delivery -----------------------------------------------------------------------------------


def webhook_url_from_env() -> str | None:
    return os.environ.get(WEBHOOK_ENV) or None


def post_json(url: str, payload: Mapping[str, object], timeout: float) -> int:
    """POST JSON; the HTTP status (urllib raises HTTPError for >= 400)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
        return response.status


def is_retryable(exc: BaseException) -> bool:
    """Server errors, rate limits and network trouble are worth another try; 4xx are not."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError, OSError))


def append_alert_log(alert_log: Path, alert: Alert, *, webhook_error: str | None = None) -> None:
    """One JSON line per alert (the log never holds the URL: only the alert and a redacted error)."""
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **asdict(alert)}
    if webhook_error:
        record["webhook_error"] = webhook_error
    alert_log.parent.mkdir(parents=True, exist_ok=True)
    with alert_log.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def deliver(
    alert: Alert,
    *,
    webhook_url: str | None,
    alert_log: Path,
    attempts: int | None = None,
    backoff_seconds: float | None = None,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> DeliveryResult:
    """Send one alert; never raises. Retries with exponential backoff, falls back to the log."""
    # An error message quoted in the alert must not carry the secret to the channel or the log.
    alert = redacted(alert, webhook_url)
    attempts = ATTEMPTS if attempts is None else attempts
    backoff_seconds = BACKOFF_SECONDS if backoff_seconds is None else backoff_seconds
    timeout = TIMEOUT_SECONDS if timeout is None else timeout
    if not webhook_url:
        try:
            append_alert_log(alert_log, alert)
        except OSError as exc:
            log.error(f"alert {alert.title!r} could not be written to {alert_log}: {exc}")
            return DeliveryResult(False, "alert_log", error=str(exc))
        log.info(f"alert {alert.title!r} written to {alert_log} (no webhook configured)")
        return DeliveryResult(True, "alert_log", logged=True)

    error = None
    attempt = 0
    for attempt in range(1, attempts + 1):
        try:
            post_json(webhook_url, {"text": alert.text}, timeout)
            log.info(f"alert {alert.title!r} sent to the team channel (attempt {attempt})")
            return DeliveryResult(True, "webhook", attempts=attempt)
        except Exception as exc:  # delivery must never crash the sensor
            error = describe_error(exc, webhook_url)
            if attempt < attempts and is_retryable(exc):
                delay = backoff_seconds * 2 ** (attempt - 1)
                log.warning(
                    f"alert {alert.title!r}: webhook delivery failed ({error}), "
                    f"retry {attempt}/{attempts - 1} in {delay:g}s"
                )
                sleep(delay)
                continue
            break
    log.error(
        f"alert {alert.title!r}: webhook delivery failed after {attempt} attempt(s) ({error}); "
        f"kept in {alert_log}"
    )
    result = DeliveryResult(False, "webhook", attempts=attempt, error=error)
    try:
        append_alert_log(alert_log, alert, webhook_error=error)
        result.logged = True
    except OSError as exc:
        log.error(f"alert {alert.title!r} could not be written to {alert_log}: {exc}")
    return result


@dataclass
class WebhookBreaker:
    """After a delivery exhausted its retries, skip the webhook for a while (alerts go to the log).

    A dead or hanging webhook then costs one round of retries per cool-down,
    not one per alert: a sensor evaluation has a time limit, and an evaluation
    that times out would be re-done (and its alerts repeated).
    """

    cooldown_seconds: float = 60.0
    open_until: float = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self) -> None:
        self.open_until = time.monotonic() + self.cooldown_seconds

    def reset(self) -> None:
        self.open_until = 0.0


#: Shared by the alert sensors of this process.
BREAKER = WebhookBreaker()


def deliver_all(
    alerts: list[Alert],
    *,
    webhook_url: str | None,
    alert_log: Path,
    breaker: WebhookBreaker | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
    **kwargs,
) -> list[DeliveryResult]:
    """Send several alerts; never raises. While the breaker is open they go to the alert log."""
    breaker = BREAKER if breaker is None else breaker
    results: list[DeliveryResult] = []
    for alert in alerts:
        if webhook_url and breaker.is_open():
            note = "not sent: the webhook failed recently, retried after a cool-down"
            try:
                append_alert_log(alert_log, redacted(alert, webhook_url), webhook_error=note)
                log.warning(f"alert {alert.title!r} kept in {alert_log} ({note})")
                results.append(DeliveryResult(False, "webhook", error=note, logged=True))
            except OSError as exc:
                log.error(f"alert {alert.title!r} could not be written to {alert_log}: {exc}")
                results.append(DeliveryResult(False, "webhook", error=note))
            continue
        result = deliver(alert, webhook_url=webhook_url, alert_log=alert_log, log=log, **kwargs)
        if webhook_url and result.delivered:
            breaker.reset()
        elif webhook_url:
            breaker.trip()
        results.append(result)
    return results
