"""Data-quality checks written in Python (dbt tests arrive as checks of the dbt step).

The checks, their specs and evaluation are in :mod:`expplatform.quality.checks`, their SQL and
thresholds in :mod:`expplatform.quality.queries`. They run inside the steps that build what they
check (the raw assets and the dbt step), not as separate steps.
"""
