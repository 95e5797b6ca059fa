"""Schedules, sensors and freshness checks: what runs by itself and what tells the team.

All of them are on by default (the daemon of `dagster dev` runs them):

- `materialize_all_daily` (schedules.py): 06:00 UTC, yesterday's partition;
- `landing_zone_sensor` (landing_sensor.py): new or changed landing files and missed days →
  one run per contiguous range of arrival dates;
- `freshness_checks_sensor` (freshness.py): evaluates the 09:00 UTC freshness checks;
- `alert_on_run_failure`, `alert_on_failed_checks` (alert_sensors.py, alerts.py): the team channel.

The sensors and the schedule are built by factories from the job and the registry
(expplatform/definitions.py), so no module here imports the jobs.
"""

from __future__ import annotations

from expplatform.automation.alert_sensors import alert_sensors
from expplatform.automation.freshness import freshness_checks, freshness_checks_sensor

__all__ = ["alert_sensors", "freshness_checks", "freshness_checks_sensor"]
