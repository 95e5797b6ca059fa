"""Schedules, sensors and freshness checks: what runs by itself and what tells the team."""

from __future__ import annotations

schedules: list = []
sensors: list = []
#: Partition-aware freshness checks (asset checks) and their sensor's inputs.
freshness_checks: list = []
