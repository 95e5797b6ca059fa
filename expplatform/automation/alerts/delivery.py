"""Delivery of alerts: one POST to the team channel's webhook, else the local alert log.

An alert goes to EXPPLATFORM_ALERT_WEBHOOK_URL as one JSON body (Block Kit
plus a `text` fallback, :func:`slack_payload`). urllib3's `Retry` retries it
on a rate limit (429, honouring `Retry-After` up to RETRY_AFTER_MAX seconds),
on 500/502/503/504 and when the connection cannot be made; a 4xx is final (a
wrong URL will not heal), and so is a read error (the server may have posted
the message: better one message in the log than two in the channel). Without
a URL, or when delivery fails, the alert is appended to the local alert log
(Settings.alert_log) as one JSON line.

The webhook URL is a secret (its path is the token): it is read from the
environment when an alert is sent, never stored in settings, and every text
that leaves this module — errors, the alert log, our log lines and urllib3's
own (which quote the URL on retries) — goes through :func:`redact` first.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util import Retry, Timeout

from expplatform.automation.alerts.formatting import Alert, slack_payload

WEBHOOK_ENV = "EXPPLATFORM_ALERT_WEBHOOK_URL"

#: Attempts per alert (the first try and two retries).
ATTEMPTS = 3
#: urllib3 backoff: no wait before the first retry, then BACKOFF_FACTOR * 2 seconds.
BACKOFF_FACTOR = 1.0
#: A `Retry-After` longer than this is cut to it (a sensor evaluation has a time limit).
RETRY_AFTER_MAX = 10
#: Statuses worth another attempt: rate limited, or the server's (temporary) fault.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
#: Worst case per alert: 3 x (3 s + 5 s) of timeouts, or two 10 s Retry-After waits: < 30 s.

logger = logging.getLogger(__name__)

#: One pool for the process (keeps the connection to the webhook between alerts).
_POOL = urllib3.PoolManager(num_pools=2, maxsize=1)


@dataclass
class DeliveryResult:
    delivered: bool
    channel: str  # "webhook" | "alert_log"
    #: HTTP requests made (None when a connection error ended the delivery: urllib3 does not say).
    attempts: int | None = 0
    error: str | None = None
    logged: bool = False


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
    # urllib3 percent-encodes what it sends (a space becomes %20): hide that spelling too
    pieces.update(p.replace(" ", "%20") for p in list(pieces))
    return sorted((p for p in pieces if p and p != "/"), key=len, reverse=True)


def redact(text: str, url: str | None) -> str:
    for piece in secret_fragments(url):
        text = text.replace(piece, REDACTED)
    return text


def redacted(alert: Alert, url: str | None) -> Alert:
    """The alert with every text field redacted (an error quoted in it could carry the URL)."""
    if not url:
        return alert
    return replace(
        alert,
        title=redact(alert.title, url),
        text=redact(alert.text, url),
        details=redact(alert.details, url),
        fields=tuple((label, redact(value, url)) for label, value in alert.fields),
    )


class _RedactWebhookUrls(logging.Filter):
    """Redacts the webhook URLs this process posted to from urllib3's own log records."""

    urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls:
            message = record.getMessage()
            clean = message
            for url in self.urls:
                clean = redact(clean, url)
            if clean != message:
                record.msg, record.args = clean, ()
        return True


_URL_FILTER = _RedactWebhookUrls()
# A logger's filters apply to its own records only: install on each urllib3 module that logs.
for _name in (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "urllib3.poolmanager",
    "urllib3.connection",
    "urllib3.response",
):
    logging.getLogger(_name).addFilter(_URL_FILTER)


def describe_error(exc: BaseException, url: str | None) -> str:
    """A short, secret-free description of a delivery error (urllib3 quotes the URL)."""
    reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
    if isinstance(reason, ReadTimeoutError):
        text = "read timed out (the message may have been posted; not retried)"
    elif isinstance(reason, NewConnectionError):  # a subclass of ConnectTimeoutError
        text = f"connection failed: {reason}"
    elif isinstance(reason, ConnectTimeoutError):
        text = "connection timed out"
    else:
        text = f"{type(reason).__name__}: {reason}"
    return redact(text, url)


# --- delivery -----------------------------------------------------------------------------------


def webhook_url_from_env() -> str | None:
    return os.environ.get(WEBHOOK_ENV) or None


def webhook_retry(
    attempts: int | None = None,
    backoff_factor: float | None = None,
    retry_after_max: int | None = None,
) -> Retry:
    """The retry policy of a webhook POST (see the module docstring); defaults: the constants."""
    attempts = ATTEMPTS if attempts is None else attempts
    backoff_factor = BACKOFF_FACTOR if backoff_factor is None else backoff_factor
    retry_after_max = RETRY_AFTER_MAX if retry_after_max is None else retry_after_max
    retries = attempts - 1
    return Retry(
        total=retries,
        connect=retries,
        status=retries,
        read=0,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        respect_retry_after_header=True,
        retry_after_max=retry_after_max,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def post_json(
    url: str,
    payload: dict[str, object],
    *,
    retry: Retry | None = None,
    timeout: Timeout | None = None,
) -> tuple[int, int]:
    """POST JSON with retries; (final HTTP status, requests made). Raises on connection errors."""
    _URL_FILTER.urls.add(url)
    response = _POOL.request(
        "POST",
        url,
        body=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        retries=retry if retry is not None else webhook_retry(),
        timeout=timeout if timeout is not None else Timeout(CONNECT_TIMEOUT, READ_TIMEOUT),
        redirect=False,
    )
    history = response.retries.history if response.retries is not None else ()
    return response.status, len(history) + 1


def append_alert_log(alert_log: Path, alert: Alert, *, webhook_error: str | None = None) -> None:
    """One JSON line per alert (the log never holds the URL: only the alert and a redacted error)."""
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **asdict(alert)}
    if webhook_error:
        record["webhook_error"] = webhook_error
    alert_log.parent.mkdir(parents=True, exist_ok=True)
    with alert_log.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def _keep_in_log(
    alert: Alert,
    alert_log: Path,
    result: DeliveryResult,
    log: logging.Logger | logging.LoggerAdapter,
    webhook_error: str | None = None,
) -> DeliveryResult:
    try:
        append_alert_log(alert_log, alert, webhook_error=webhook_error)
        result.logged = True
    except OSError as exc:
        log.error(f"alert {alert.title!r} could not be written to {alert_log}: {exc}")
        if result.channel == "alert_log":
            result.delivered, result.error = False, str(exc)
    return result


def deliver(
    alert: Alert,
    *,
    webhook_url: str | None,
    alert_log: Path,
    retry: Retry | None = None,
    timeout: Timeout | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> DeliveryResult:
    """Send one alert (one POST, retried by urllib3); never raises. Falls back to the alert log."""
    # An error message quoted in the alert must not carry the secret to the channel or the log.
    alert = redacted(alert, webhook_url)
    if not webhook_url:
        result = _keep_in_log(alert, alert_log, DeliveryResult(True, "alert_log"), log)
        if result.logged:
            log.info(f"alert {alert.title!r} written to {alert_log} (no webhook configured)")
        return result

    attempts: int | None = None
    try:
        status, attempts = post_json(
            webhook_url, slack_payload(alert), retry=retry, timeout=timeout
        )
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except Exception as exc:  # delivery must never crash the sensor
        error = describe_error(exc, webhook_url)
    if error is None:
        log.info(f"alert {alert.title!r} sent to the team channel ({attempts} request(s))")
        return DeliveryResult(True, "webhook", attempts=attempts)
    tried = f"{attempts} request(s)" if attempts else "retries exhausted"
    log.error(
        f"alert {alert.title!r}: webhook delivery failed ({error}; {tried}); kept in {alert_log}"
    )
    result = DeliveryResult(False, "webhook", attempts=attempts, error=error)
    return _keep_in_log(alert, alert_log, result, log, webhook_error=error)


@dataclass
class WebhookBreaker:
    """After a delivery failed, skip the webhook for a while (alerts go to the log).

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


#: Shared by the alert sensor's evaluations in this process (a cool-down, not alert state).
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
            result = DeliveryResult(False, "webhook", attempts=0, error=note)
            clean = redacted(alert, webhook_url)
            results.append(_keep_in_log(clean, alert_log, result, log, webhook_error=note))
            log.warning(f"alert {clean.title!r} kept in {alert_log} ({note})")
            continue
        result = deliver(alert, webhook_url=webhook_url, alert_log=alert_log, log=log, **kwargs)
        if webhook_url and result.delivered:
            breaker.reset()
        elif webhook_url:
            breaker.trip()
        results.append(result)
    return results
