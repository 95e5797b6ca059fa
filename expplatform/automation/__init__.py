"""Schedules, sensors and freshness checks: what runs by itself and what tells the team.

All of them are on by default (the daemon of `dagster dev` runs them):

- `materialize_all_daily` (schedules.py): 06:00 UTC, yesterday's partition;
- `landing_zone_sensor` (landing_sensor.py): new or changed landing files and missed days →
  one run per contiguous range of arrival dates;
- `freshness_checks_sensor` (freshness.py): evaluates the 09:00 UTC freshness checks;
- `landing_delivery_sensor` (freshness.py): did each daily source deliver yesterday's folder;
- `reap_dead_cli_runs` (run_reaper.py): runs of `expplatform materialize` whose process died;
- `alert_on_failures` (alert_sensors.py, alerts/): failures and recoveries to the team channel.

The landing sensor, the reaper and the schedule are built by factories from the job and the
registry (expplatform/definitions.py), so no module here imports the jobs; the landing and
alert sensors take their intervals from the settings.
"""

from __future__ import annotations

from expplatform.automation.alert_sensors import build_alert_sensor
from expplatform.automation.freshness import freshness_checks, freshness_sensors

__all__ = ["build_alert_sensor", "freshness_checks", "freshness_sensors"]
