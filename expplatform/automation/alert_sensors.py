"""The alert sensors: failed runs and failed asset checks to the team channel.

Dagster's run status sensors keep a cursor over run status events, so each
finished run is handed to a sensor exactly once, whatever the number of ticks:
that is what makes one alert per failure. Within a run, a check evaluated more
than once (a retried step) is reported once, by its last evaluation.

- `alert_on_run_failure`: the failed run (job, partition, failed steps and
  their errors), then every failed check of that run (an ERROR dbt test fails
  its step, so those runs have both);
- `alert_on_failed_checks`: the failed checks of successful runs — WARN
  checks, non-blocking ERROR checks, and missed freshness (the freshness
  sensor's runs succeed with a failed check).

Both watch every run of the instance, not only those launched from the code
location: `expplatform materialize` executes in its own process, and its runs
(the usual way to backfill) must alert too.
"""

from __future__ import annotations

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
    run_status_sensor,
)

from expplatform.automation.alerts import (
    Alert,
    deliver_all,
    format_check_failure,
    format_run_failure,
    webhook_url_from_env,
)
from expplatform.config import get_settings


def failed_check_alerts(instance: DagsterInstance, run: DagsterRun, ui_url: str) -> list[Alert]:
    """One alert per failed check of a run (last evaluation per check and partition wins)."""
    latest = {}
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if evaluation is None:
            continue
        latest[(evaluation.asset_key, evaluation.check_name, evaluation.partition)] = evaluation
    alerts = []
    for evaluation in latest.values():
        if evaluation.passed:
            continue
        alerts.append(
            format_check_failure(
                run_id=run.run_id,
                job_name=run.job_name,
                tags=run.tags,
                asset=evaluation.asset_key.to_user_string(),
                check_name=evaluation.check_name,
                severity=evaluation.severity.value,
                description=evaluation.description,
                metadata=evaluation.metadata,
                partition=evaluation.partition,
                ui_url=ui_url,
            )
        )
    return sorted(alerts, key=lambda a: a.key)


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


def root_cause_message(error) -> str:
    """The innermost error of a step failure (Dagster wraps the user's exception in its own)."""
    if error is None:
        return "failed"
    while error.cause is not None:
        error = error.cause
    return error.message


def _send(context: RunStatusSensorContext, alerts: list[Alert]) -> None:
    settings = get_settings()
    results = deliver_all(
        alerts, webhook_url=webhook_url_from_env(), alert_log=settings.alert_log, log=context.log
    )
    sent = sum(r.delivered for r in results)
    context.log.info(f"run {context.dagster_run.run_id}: {sent}/{len(alerts)} alert(s) delivered")


@run_failure_sensor(
    name="alert_on_run_failure",
    minimum_interval_seconds=30,
    monitor_all_code_locations=True,
    default_status=DefaultSensorStatus.RUNNING,
    description="Posts each failed run (and its failed checks) to the team channel "
    "(EXPPLATFORM_ALERT_WEBHOOK_URL, else the local alert log).",
)
def alert_on_run_failure(context: RunFailureSensorContext) -> None:
    run = context.dagster_run
    ui_url = get_settings().ui_url
    failed_steps = {}
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        failed_steps[event.step_key or "run"] = root_cause_message(error)
    alert = format_run_failure(
        run_id=run.run_id,
        job_name=run.job_name,
        tags=run.tags,
        failed_steps=failed_steps,
        run_error=context.failure_event.message,
        not_materialized=unmaterialized_assets(context.instance, run),
        ui_url=ui_url,
    )
    _send(context, [alert, *failed_check_alerts(context.instance, run, ui_url)])


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    name="alert_on_failed_checks",
    minimum_interval_seconds=30,
    monitor_all_code_locations=True,
    default_status=DefaultSensorStatus.RUNNING,
    description="Posts every failed asset check (dbt tests, Python checks, freshness) of a "
    "successful run to the team channel.",
)
def alert_on_failed_checks(context: RunStatusSensorContext) -> None:
    alerts = failed_check_alerts(context.instance, context.dagster_run, get_settings().ui_url)
    if alerts:
        _send(context, alerts)


alert_sensors = [alert_on_run_failure, alert_on_failed_checks]
