"""Schedules, sensors and freshness checks: what runs by itself and what tells the team.

All of them are on by default (the daemon of `dagster dev` runs them):

- `materialize_all_daily` (schedules.py): 06:00 UTC, yesterday's partition;
- `landing_zone_sensor` (landing_sensor.py): new or changed landing files → their partition;
- `freshness_checks_sensor` (freshness.py): evaluates the 09:00 UTC freshness checks;
- `landing_delivery_sensor` (freshness.py): did each daily source deliver yesterday's folder;
- `alert_on_failures` (alert_sensors.py, alerts/): failures and recoveries to the team channel.
"""

from __future__ import annotations

from expplatform.automation.alert_sensors import alert_sensors
from expplatform.automation.freshness import freshness_checks, freshness_sensors
from expplatform.automation.landing_sensor import landing_zone_sensor
from expplatform.automation.schedules import materialize_all_daily

schedules = [materialize_all_daily]
sensors = [landing_zone_sensor, *freshness_sensors, *alert_sensors]

__all__ = ["freshness_checks", "schedules", "sensors"]
