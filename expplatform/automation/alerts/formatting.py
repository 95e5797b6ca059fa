"""Alert messages: what failed (or recovered), where, the key numbers, and links — no Dagster here.

An :class:`Alert` is the content of one message; :func:`slack_payload` turns it
into the one JSON body posted to the team channel: Slack Block Kit (a header,
fields, the details, buttons "Open run" and "Open health page", the runbook
section) with a plain-text `text` fallback, which is also what the alert log
keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from expplatform.automation.alerts.state import CheckOutcome, OpenChain, OpenCheck, Transition
from expplatform.health.links import page_url

RUNBOOK = "docs/RUNBOOK.md"

#: Metadata entries that are bookkeeping, not numbers a reader needs.
NOISE_METADATA = {"invocation_id", "Execution Duration", "dagster/freshness_params"}
MAX_METADATA_ENTRIES = 12
MAX_VALUE_CHARS = 200
MAX_ERROR_CHARS = 600
MAX_LISTED = 8
#: Slack Block Kit limits (characters): header text, section text, one field, button text.
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
MAX_FIELDS = 10

ICONS = {"ERROR": ":red_circle:", "WARN": ":warning:", "OK": ":white_check_mark:"}


@dataclass(frozen=True)
class Alert:
    """One message for the team channel; `text` is the plain-text version of the whole message."""

    kind: str  # run_failure | run_recovered | check_failure | check_escalated | check_recovered
    title: str
    text: str
    run_id: str
    #: Identity of the message: kind, run and (for checks) asset and check.
    key: str
    icon: str = ICONS["ERROR"]
    #: Short (label, value) pairs shown side by side.
    fields: tuple[tuple[str, str], ...] = ()
    #: The longer part (failed steps, description, numbers), Slack mrkdwn.
    details: str = ""
    run_link: str = ""
    health_link: str = ""
    runbook_section: str = ""
    asset: str | None = None
    check: str | None = None
    partition: str | None = None
    severity: str | None = None


@dataclass(frozen=True)
class Links:
    """Where the buttons point: the Dagster UI (EXPPLATFORM_UI_URL) and the health pages."""

    ui_url: str
    pages_url: str

    def run(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def health(self, experiment_key: str | None = None) -> str:
        """The experiment's health page, or the index for alerts about no one experiment."""
        return page_url(self.pages_url, experiment_key)


# --- small pieces -------------------------------------------------------------------------------


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


def experiment_key(metadata: Mapping[str, object]) -> str | None:
    """The experiment an alert is about, when the check's metadata names one."""
    value = getattr(metadata.get("experiment_key"), "value", metadata.get("experiment_key"))
    return value if isinstance(value, str) and value else None


#: dbt generic tests arrive as checks named `<test>_<model>_<column>...`.
DBT_TEST_PREFIXES = ("unique_", "not_null_", "accepted_values_", "relationships_")
#: Runbook sections of the Python checks and freshness, found from words in the check name.
RUNBOOK_SECTIONS = (
    ("landing_delivery", "Landing delivery"),
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


def listed(items: list[str] | tuple[str, ...], limit: int = MAX_LISTED) -> str:
    """`a, b, c (+N more)`."""
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def short_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _text(
    icon: str,
    title: str,
    fields: list[tuple[str, str]],
    details: list[str],
    run_line: str,
    links: tuple[str, str, str],
) -> str:
    """The plain-text message: title, fields, details, links, runbook (one item a line)."""
    run_link, health_link, section = links
    lines = [f"{icon} *expplatform — {title}*"]
    lines += [f"{label}: {value}" for label, value in fields]
    lines += details
    lines.append(f"Run: {run_link}{run_line}")
    lines.append(f"Health page: {health_link}")
    lines.append(f"Runbook: {RUNBOOK} → {section}")
    return "\n".join(lines)


# --- the messages -------------------------------------------------------------------------------


def format_run_failure(t: Transition, links: Links) -> Alert:
    """A failed run: job, partition, failed steps and why, what was not materialized, retries."""
    run = t.run
    partition = describe_partition(run.tags)
    title = f"Run failed: {run.job_name}" + (f" [{partition}]" if partition else "")
    fields = [("Job", run.job_name)]
    if partition:
        fields.append(("Partition", partition))
    launched = run.tags.get("expplatform/launched_by") or run.tags.get("dagster/schedule_name")
    if launched:
        fields.append(("Launched by", launched))
    if run.retry_number:
        fields.append(("Attempt", f"retry {run.retry_number} of run {run.chain[:8]}"))
    if run.will_retry:
        fields.append(
            (
                "Automatic retry",
                f"yes, up to {plural(run.retries_left, 'more attempt')}",
            )
        )
    details = []
    if run.failed_steps:
        details.append(f"Failed steps ({len(run.failed_steps)}):")
        details += [
            f"• {step}: {first_line(msg)}" for step, msg in sorted(run.failed_steps.items())
        ]
    else:
        details.append(f"Error: {first_line(run.error)}")
    if run.not_materialized:
        details.append(f"Not materialized: {listed(run.not_materialized)}")
    if run.will_retry:
        details.append(
            "Dagster retries this run automatically; this is the only failure message for it "
            "and its retries. A recovery message follows if a retry succeeds; none means the "
            "retries failed too (see the run's retries in the UI)."
        )
    return _run_alert("run_failure", "ERROR", run.run_id, title, fields, details, partition, links)


def format_run_recovered(t: Transition, links: Links) -> Alert:
    """A failed run's partitions were built: by a retry, a re-execution or a later run."""
    run, chain = t.run, t.opened
    assert isinstance(chain, OpenChain)
    partition = describe_partition(run.tags)
    title = f"Recovered: {run.job_name}" + (f" [{partition}]" if partition else "")
    if run.chain != chain.chain_id:
        how = "a later run of the same partitions"
    else:
        how = f"retry {run.retry_number}" if run.retry_number else "a re-execution"
    fields = [
        ("Job", run.job_name),
        ("Failing since", short_time(chain.since)),
        ("Failed attempts", str(chain.attempts)),
    ]
    details = [f"The run succeeded on {how} (first failure: run {chain.first_run[:8]})."]
    return _run_alert("run_recovered", "OK", run.run_id, title, fields, details, partition, links)


def _run_alert(
    kind: str,
    status: str,
    run_id: str,
    title: str,
    fields: list[tuple[str, str]],
    details: list[str],
    partition: str | None,
    links: Links,
) -> Alert:
    """A run's alert (failure or recovery): its links, the runbook's run section, its text."""
    section = runbook_section(None)
    run_link, health_link = links.run(run_id), links.health()
    icon = ICONS[status]
    return Alert(
        kind=kind,
        title=title,
        text=_text(icon, title, fields, details, "", (run_link, health_link, section)),
        run_id=run_id,
        key=f"{kind}:{run_id}",
        icon=icon,
        fields=tuple(fields),
        details="\n".join(details),
        run_link=run_link,
        health_link=health_link,
        runbook_section=section,
        partition=partition,
        # a failure is an ERROR; a recovery has no severity
        severity=status if status == "ERROR" else None,
    )


def _partition_field(check: CheckOutcome, section: str, run_partition: str | None) -> tuple:
    partitions = list(check.partitions) or ([run_partition] if run_partition else [])
    if not partitions:
        return ()
    if section == "Freshness":
        label = "Missing partitions"
    else:
        label = "Partition" if len(partitions) == 1 else "Partitions"
    return ((label, listed(partitions)),)


def format_check_failure(t: Transition, links: Links) -> Alert:
    """A check that started failing (or got worse): what, where, the numbers, the links."""
    run, check = t.run, t.check
    assert check is not None
    section = runbook_section(check.check)
    escalated = t.kind == "check_escalated"
    if escalated:
        what = f"Check now {check.severity}"
    elif section == "Freshness":
        what = f"Freshness missed ({check.severity})"
    elif section == "Landing delivery":
        what = f"Landing delivery missing ({check.severity})"
    else:
        what = f"Check failed ({check.severity})"
    title = f"{what}: {check.asset} · {check.check}"
    icon = ICONS["ERROR"] if check.severity == "ERROR" else ICONS["WARN"]
    run_partition = describe_partition(run.tags)
    fields = [("Asset", check.asset), ("Check", check.check), ("Severity", check.severity)]
    fields += _partition_field(check, section, run_partition)
    experiment = experiment_key(check.metadata)
    if experiment:
        fields.append(("Experiment", experiment))
    if escalated and isinstance(t.opened, OpenCheck):
        fields.append(("Failing since", short_time(t.opened.since)))
    details = []
    if check.description:
        details.append(f"What: {first_line(check.description)}")
    # the experiment is a field of its own: not repeated among the numbers
    numbers = key_numbers({k: v for k, v in check.metadata.items() if k != "experiment_key"})
    if numbers:
        details.append("Numbers: " + ", ".join(numbers))
    run_link, health_link = links.run(run.run_id), links.health(experiment)
    partitions = dict(fields).get("Partition") or dict(fields).get("Partitions")
    return Alert(
        kind="check_escalated" if escalated else "check_failure",
        title=title,
        text=_text(
            icon, title, fields, details, f" ({run.job_name})", (run_link, health_link, section)
        ),
        run_id=run.run_id,
        key=f"{t.kind}:{run.run_id}:{check.asset}:{check.check}",
        icon=icon,
        fields=tuple(fields),
        details="\n".join(details),
        run_link=run_link,
        health_link=health_link,
        runbook_section=section,
        asset=check.asset,
        check=check.check,
        partition=partitions or dict(fields).get("Missing partitions"),
        severity=check.severity,
    )


def format_check_recovered(t: Transition, links: Links) -> Alert:
    """A failing check passed: since when it failed, on what, and what it passed on now."""
    run, check, opened = t.run, t.check, t.opened
    assert check is not None and isinstance(opened, OpenCheck)
    section = runbook_section(check.check)
    what = {"Freshness": "Freshness back", "Landing delivery": "Landing check passes"}.get(
        section, "Check passes"
    )
    title = f"{what}: {check.asset} · {check.check}"
    run_partition = describe_partition(run.tags)
    passed_on = list(check.partitions) or ([run_partition] if run_partition else [])
    fields = [
        ("Asset", check.asset),
        ("Check", check.check),
        ("Failing since", short_time(opened.since)),
    ]
    if opened.partitions:
        fields.append(("Failed on", listed(opened.partitions)))
    if passed_on:
        fields.append(("Passed on", listed(passed_on)))
    details = []
    if check.description:
        details.append(f"Now: {first_line(check.description)}")
    experiment = experiment_key(check.metadata)
    run_link, health_link = links.run(run.run_id), links.health(experiment)
    return Alert(
        kind="check_recovered",
        title=title,
        text=_text(
            ICONS["OK"],
            title,
            fields,
            details,
            f" ({run.job_name})",
            (run_link, health_link, section),
        ),
        run_id=run.run_id,
        key=f"check_recovered:{run.run_id}:{check.asset}:{check.check}",
        icon=ICONS["OK"],
        fields=tuple(fields),
        details="\n".join(details),
        run_link=run_link,
        health_link=health_link,
        runbook_section=section,
        asset=check.asset,
        check=check.check,
        partition=listed(passed_on) if passed_on else None,
    )


FORMATTERS = {
    "run_failed": format_run_failure,
    "run_recovered": format_run_recovered,
    "check_failing": format_check_failure,
    "check_escalated": format_check_failure,
    "check_recovered": format_check_recovered,
}


def alert_for(transition: Transition, links: Links) -> Alert:
    """The message for a transition of the alert state."""
    return FORMATTERS[transition.kind](transition, links)


# --- Slack --------------------------------------------------------------------------------------


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters (a `<` in an error would otherwise start a link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(alert: Alert) -> dict[str, object]:
    """The webhook body: Block Kit blocks plus the plain-text fallback `text` (one POST)."""
    blocks: list[dict[str, object]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"{alert.icon} {alert.title}", HEADER_MAX),
                "emoji": True,
            },
        }
    ]
    if alert.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": _cut(
                            f"*{escape_mrkdwn(label)}*\n{escape_mrkdwn(value)}", FIELD_MAX
                        ),
                    }
                    for label, value in alert.fields[:MAX_FIELDS]
                ],
            }
        )
    if alert.details:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(escape_mrkdwn(alert.details), SECTION_MAX)},
            }
        )
    buttons = []
    if alert.run_link:
        buttons.append(("Open run", alert.run_link, "open_run"))
    if alert.health_link:
        buttons.append(("Open health page", alert.health_link, "open_health_page"))
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": label},
                        "url": url,
                        "action_id": action_id,
                    }
                    for label, url, action_id in buttons
                ],
            }
        )
    if alert.runbook_section:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": escape_mrkdwn(f"Runbook: {RUNBOOK} → {alert.runbook_section}"),
                    }
                ],
            }
        )
    return {"text": escape_mrkdwn(alert.text), "blocks": blocks}
