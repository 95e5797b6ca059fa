"""Data-quality asset checks written in Python (dbt tests arrive as checks through dagster-dbt).

The checks are in :mod:`expplatform.quality.checks`, their SQL and thresholds in
:mod:`expplatform.quality.queries`.
"""

from __future__ import annotations

from expplatform.quality.checks import asset_checks

__all__ = ["asset_checks"]
