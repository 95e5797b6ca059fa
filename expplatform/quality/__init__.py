"""Data-quality asset checks written in Python (dbt tests arrive as checks through dagster-dbt)."""

from __future__ import annotations

#: Every Python asset check of the platform; wired into the Definitions.
asset_checks: list = []
