"""The alert sensor: each finished run, once, against the alert state → the team channel.

`alert_on_failures` reads the instance's run history (successes and failures,
in the order they were stored) after its cursor. Each run becomes a
:class:`RunOutcome` — its failed steps, its checks (last evaluation per check
and partition), its place in a retry chain — which the alert state turns into
messages (see alerts/state.py): a failure when it starts, a recovery when it
ends, one message per retry chain.

Why one plain sensor rather than Dagster's run-status sensors: the alert
state must survive a restart, and a sensor's cursor is stored by Dagster in
the instance at the end of each tick (public API; schedule storage, PostgreSQL
in production). Keeping the state in the same cursor as the position in the
run history commits both together, so a restart between ticks can neither
repeat nor lose a transition; and one sensor sees a check fail in run 1 and
pass in run 2 in that order, where two sensors (failed runs, successful runs)
could see them the other way round.

The run history is the whole instance's: runs launched from the UI, the
schedule and sensors, and by `expplatform materialize` (which executes in its
own process) all alert.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, date, datetime

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    RunStatusChangeRecordsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from expplatform.automation.alerts import (
    AlertState,
    CheckOutcome,
    Links,
    RunOutcome,
    alert_for,
    deliver_all,
    describe_partition,
    webhook_url_from_env,
)
from expplatform.automation.freshness import freshness_missing_partitions
from expplatform.config import default
from expplatform.resources import AlertsResource, ServingResource

#: Dagster's run tags for retries (dagster/_core/storage/tags.py; read, not imported).
ROOT_RUN_ID_TAG = "dagster/root_run_id"
RETRY_NUMBER_TAG = "dagster/retry_number"
WILL_RETRY_TAG = "dagster/will_retry"
MAX_RETRIES_TAG = "dagster/max_retries"

#: Run-status events read per event type and tick.
FETCH_LIMIT = 50
#: No new run is taken after this many seconds of a tick: a sensor evaluation is cut at 60 s,
#: and a cut evaluation keeps its old cursor (its alerts would be posted again).
TICK_BUDGET_SECONDS = 30.0

SEVERITY_RANK = {"WARN": 1, "ERROR": 2}


# --- the run history ----------------------------------------------------------------------------


def latest_status_event_id(instance: DagsterInstance) -> int:
    """Storage id of the newest run success or failure (0 for an empty instance)."""
    ids = [
        record.storage_id
        for event_type in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)
        for record in instance.fetch_run_status_changes(records_filter=event_type, limit=1).records
    ]
    return max(ids, default=0)


def finished_runs_after(
    instance: DagsterInstance, after: int, limit: int = FETCH_LIMIT
) -> list[tuple[int, str, bool]]:
    """(storage id, run id, succeeded) of the run successes and failures after `after`, in order.

    Each type is read up to `limit`; when one batch is full, only events up to
    its last id are returned, so no event of the other type is skipped.
    """
    batches = {}
    for event_type in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
        batches[event_type] = instance.fetch_run_status_changes(
            records_filter=RunStatusChangeRecordsFilter(
                event_type=event_type, after_storage_id=after
            ),
            ascending=True,
            limit=limit,
        ).records
    full = [records[-1].storage_id for records in batches.values() if len(records) >= limit]
    bound = min(full, default=None)
    merged = sorted(
        (
            record.storage_id,
            record.event_log_entry.run_id,
            event_type == DagsterEventType.RUN_SUCCESS,
        )
        for event_type, records in batches.items()
        for record in records
    )
    return [m for m in merged if bound is None or m[0] <= bound]


# --- a run's outcome ----------------------------------------------------------------------------


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def root_cause_message(error) -> str:
    """The innermost error of a step failure (Dagster wraps the user's exception in its own)."""
    if error is None:
        return "failed"
    while error.cause is not None:
        error = error.cause
    return error.message


def failed_steps(instance: DagsterInstance, run: DagsterRun) -> dict[str, str]:
    """Failed step → its innermost error message."""
    out = {}
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None:
            continue
        error = event.step_failure_data.error if event.step_failure_data else None
        out[event.step_key or "run"] = root_cause_message(error)
    return out


def run_error(instance: DagsterInstance, run: DagsterRun) -> str | None:
    """The message of the run's failure event."""
    entries = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    for entry in reversed(entries):
        if entry.dagster_event is not None:
            return entry.dagster_event.message
    return None


def unmaterialized_assets(instance: DagsterInstance, run: DagsterRun) -> list[str]:
    """Assets the run planned but did not materialize (those of the failed and skipped steps)."""
    planned, done = set(), set()
    for entry in instance.all_logs(
        run.run_id,
        of_type={
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
            DagsterEventType.ASSET_MATERIALIZATION,
        },
    ):
        event = entry.dagster_event
        if event is None or event.asset_key is None:
            continue
        target = (
            planned if event.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED else done
        )
        target.add(event.asset_key.to_user_string())
    return sorted(planned - done)


def check_outcomes(
    instance: DagsterInstance, run: DagsterRun, first_date: date
) -> tuple[CheckOutcome, ...]:
    """One outcome per check of the run: failed if its last evaluation of any partition failed.

    A check evaluated more than once for a partition (a retried step) counts by
    its last evaluation. A failed freshness check of a daily asset lists the
    partitions that are missing.
    """
    latest = {}
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if evaluation is None:
            continue
        latest[(evaluation.asset_key, evaluation.check_name, evaluation.partition)] = evaluation
    by_check = defaultdict(list)
    for (asset_key, check_name, _), evaluation in latest.items():
        by_check[(asset_key, check_name)].append(evaluation)

    # an unpartitioned check judges the run's partition(s), and so do checks in a range run
    run_partition = describe_partition(run.tags)
    outcomes = []
    for (asset_key, check_name), evaluations in by_check.items():
        failed = [e for e in evaluations if not e.passed]
        shown = failed or evaluations
        worst = max(shown, key=lambda e: SEVERITY_RANK.get(e.severity.value, 0))
        partitions = tuple(sorted({e.partition or run_partition for e in shown} - {None}))
        if failed:
            missing = freshness_missing_partitions(
                instance, asset_key, check_name, worst.metadata, first_date
            )
            partitions = tuple(missing) if missing is not None else partitions
        outcomes.append(
            CheckOutcome(
                asset=asset_key.to_user_string(),
                check=check_name,
                passed=not failed,
                severity=worst.severity.value,
                partitions=partitions,
                description=worst.description,
                metadata=worst.metadata,
            )
        )
    return tuple(sorted(outcomes, key=lambda c: (c.asset, c.check)))


def run_outcome(
    instance: DagsterInstance, run: DagsterRun, succeeded: bool, first_date: date
) -> RunOutcome:
    """What a finished run tells the alerts (its retry chain from Dagster's run tags)."""
    tags = dict(run.tags)
    retry_number = _int(tags.get(RETRY_NUMBER_TAG))
    # Dagster tags every failed run will_retry=true when run retries are on, but the daemon
    # can only re-launch runs it can find again: a run executed in its own process
    # (`expplatform materialize`, execute_in_process) has no job origin and is never retried.
    will_retry = (
        not succeeded and tags.get(WILL_RETRY_TAG) == "true" and run.remote_job_origin is not None
    )
    retries_left = 0
    if will_retry:
        default_max = getattr(instance, "run_retries_max_retries", 0) or 0
        max_retries = _int(tags.get(MAX_RETRIES_TAG), default_max)
        retries_left = max(max_retries - retry_number, 1)
    return RunOutcome(
        run_id=run.run_id,
        job_name=run.job_name,
        succeeded=succeeded,
        tags=tags,
        chain_id=tags.get(ROOT_RUN_ID_TAG) or run.root_run_id or run.run_id,
        retry_number=retry_number,
        will_retry=will_retry,
        retries_left=retries_left,
        failed_steps={} if succeeded else failed_steps(instance, run),
        error=None if succeeded else run_error(instance, run),
        not_materialized=() if succeeded else tuple(unmaterialized_assets(instance, run)),
        checks=check_outcomes(instance, run, first_date),
    )


# --- the sensor ---------------------------------------------------------------------------------


def evaluate_alerts(
    context: SensorEvaluationContext,
    alerts: AlertsResource,
    serving: ServingResource,
    budget_seconds: float = TICK_BUDGET_SECONDS,
) -> SkipReason:
    """One tick: every run finished since the cursor, in order; the cursor carries the state."""
    instance = context.instance
    state = AlertState.from_cursor(context.cursor)
    if state.after is None:
        # First tick (or a cursor reset in the UI): runs that finished before are not alerted.
        state.after = latest_status_event_id(instance)
        context.update_cursor(state.to_cursor())
        return SkipReason(f"started: runs finishing after event {state.after} will be alerted")

    links = Links(alerts.ui_url, serving.pages_url)
    webhook_url = webhook_url_from_env()
    started = time.monotonic()
    handled = sent = 0
    for storage_id, run_id, succeeded in finished_runs_after(instance, state.after):
        if time.monotonic() - started > budget_seconds:
            context.log.warning(f"time budget used after {handled} run(s); the rest next tick")
            break
        run = instance.get_run_by_id(run_id)
        if run is not None:
            try:
                outcome = run_outcome(instance, run, succeeded, alerts.first_date)
                transitions = state.record(outcome, datetime.now(UTC))
                messages = [alert_for(t, links) for t in transitions]
            except Exception:  # one unreadable run must not stop the alerts of the others
                context.log.exception(f"run {run_id}: could not build its alerts; skipped")
                messages = []
            if messages:
                results = deliver_all(
                    messages, webhook_url=webhook_url, alert_log=alerts.log_path, log=context.log
                )
                sent += sum(r.delivered for r in results)
        state.after = storage_id
        handled += 1
    for chain_id in state.expire(datetime.now(UTC)):
        context.log.info(f"run chain {chain_id}: open failure older than 7 days forgotten")
    context.update_cursor(state.to_cursor())
    return SkipReason(
        f"{handled} finished run(s) handled, {sent} alert(s) delivered; "
        f"open: {len(state.checks)} failing check(s), {len(state.chains)} failed run chain(s)"
    )


def build_alert_sensor(interval_seconds: int) -> SensorDefinition:
    """The `alert_on_failures` sensor, looking at the finished runs every `interval_seconds`
    (EXPPLATFORM_ALERT_SENSOR_INTERVAL)."""

    @sensor(
        name="alert_on_failures",
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Posts failed runs (once per retry chain) and checks that start failing, and "
        "their recoveries, to the team channel (EXPPLATFORM_ALERT_WEBHOOK_URL, else the local "
        "alert log). The cursor holds the open failures.",
    )
    def alert_on_failures(
        context: SensorEvaluationContext, alerts: AlertsResource, serving: ServingResource
    ) -> SkipReason:
        return evaluate_alerts(context, alerts, serving)

    return alert_on_failures


#: The sensor with the shipped interval (the definitions build theirs from the settings).
alert_on_failures = build_alert_sensor(int(default("EXPPLATFORM_ALERT_SENSOR_INTERVAL")))

__all__ = [
    "alert_on_failures",
    "build_alert_sensor",
    "check_outcomes",
    "evaluate_alerts",
    "finished_runs_after",
    "run_outcome",
]
