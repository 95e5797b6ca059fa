"""Runs of `expplatform materialize` whose process died are marked failed, so the queue moves on.

`expplatform materialize` executes its run in its own process. If that process is killed
(SIGKILL, OOM, reboot), the run stays "started" in the instance, and the run queue — one writer
at a time (config/dagster.yaml) — would wait for it forever. This sensor, like the next
`materialize`, marks such a run failed once its process is gone from this machine.
"""

from __future__ import annotations

import socket

from dagster import (
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from expplatform.cli.materialize import release_dead_runs


def build_run_reaper() -> SensorDefinition:
    """The `reap_dead_cli_runs` sensor (every 60 s)."""

    @sensor(
        name="reap_dead_cli_runs",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Marks failed the `expplatform materialize` runs on this machine whose "
        "process is gone (killed, crashed), so the one-writer run queue does not wait for them.",
    )
    def reap_dead_cli_runs(context: SensorEvaluationContext) -> SkipReason:
        released = release_dead_runs(context.instance, context.log.info)
        if released:
            return SkipReason(
                f"marked {len(released)} dead CLI run(s) failed on {socket.gethostname()}"
            )
        return SkipReason("no dead CLI run")

    return reap_dead_cli_runs
