"""Python asset checks: experiment health, data quality of the facts, and the raw loads.

The checks run in the step that built what they check, right after it:

- the mart checks (sample-ratio mismatch overall and per tier, users in several variations,
  exposures to unregistered variations, reconciliation with staging, volume anomalies) in the
  dbt step, after `dbt build` (expplatform.transform.assets);
- the raw checks of a daily source (rejected-record rate, late events) in its raw asset's step,
  on the arrival partitions it just loaded (expplatform.ingestion.assets).

So every result of a run is recorded (in `ops.check_results`, and published with the marts to
the serving copy) before the run publishes. Each `evaluate_*` function takes an open connection
and explicit parameters and returns the check's result; the SQL it runs comes from
:mod:`expplatform.quality.queries` and is attached to the result's metadata (`reproduce_sql`) so
a finding can be reproduced against the warehouse.
"""

import warnings
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
)

from expplatform import catalog
from expplatform.catalog import OPS_CHECK_RESULTS
from expplatform.quality import queries as q
from expplatform.sources import DEFAULT_REGISTRY, Source, SourceRegistry

#: Findings listed in the metadata of one result (the SQL returns them all).
MAX_LISTED_FINDINGS = 50

HEALTH_KEY = catalog.MART_HEALTH_KEY
HEALTH_BY_TIER_KEY = catalog.MART_HEALTH_BY_TIER_KEY
ASSIGNMENTS_KEY = catalog.FCT_ASSIGNMENTS_KEY
EXPOSURES_KEY = catalog.FCT_EXPOSURES_DAILY_KEY

SRM = "sample_ratio_mismatch"
SRM_BY_TIER = "sample_ratio_mismatch_by_tier"
MULTIPLE_VARIATIONS = "multiple_variation_users"
UNREGISTERED_VARIATIONS = "unregistered_variations"
RECONCILIATION = "exposure_reconciliation"
VOLUME = "exposure_volume_anomaly"
REJECTED_RATE = "rejected_record_rate"
LATE_EVENTS = "late_events_beyond_lookback"

_SRM = q.srm_thresholds()
_SRM_RULES = (
    f"Findings are rows whose srm_status is `unhealthy` (p < {_SRM['srm_unhealthy_p_value']:g} "
    "and a variation's share off its expected share by at least "
    f"{100 * _SRM['srm_min_share_difference']:g} points: ERROR) or `warning` "
    f"(p < {_SRM['srm_warning_p_value']:g}: WARN), on each experiment's latest date and on every "
    "event date recomputed by the last daily run (ops.recompute_dates); `not_enough_traffic` "
    f"(a variation under {_SRM['srm_min_users_per_variation']} users) is not a finding. The "
    "thresholds are the dbt vars of dbt_project.yml. Metadata: the experiment, date, chi-square, "
    "p-value, test users per variation against the expected shares, and the SQL that lists the "
    "findings."
)
_LATE_EVENTS_DESCRIPTION = (
    "Raw events (lines) of the run's arrival partitions dated more than EXPPLATFORM_LOOKBACK_DAYS "
    "before their arrival date (WARN), per arrival date and event date. Nothing is lost: the run "
    "of an arrival folder recomputes every event date found in it (docs/ARCHITECTURE.md), so "
    "those dates were recomputed automatically. The WARN says the source delivers late and lists "
    "the event dates affected; `expplatform materialize --start D --end D` (D = the arrival date) "
    "re-runs them if needed."
)


# --- findings and their metadata ----------------------------------------------------------------------


@dataclass(frozen=True)
class Findings:
    """The rows a check's SQL returned (each one a finding) and the SQL itself."""

    sql: str
    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run_findings(con: duckdb.DuckDBPyConnection, sql: str) -> Findings:
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description]
    return Findings(sql=sql, columns=columns, rows=cursor.fetchall())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|")


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def findings_table(findings: Findings, limit: int = MAX_LISTED_FINDINGS) -> str:
    """The findings as a Markdown table (at most `limit` rows, the rest counted)."""
    if not findings.rows:
        return "no findings"
    header = "| " + " | ".join(findings.columns) + " |"
    rule = "|" + "---|" * len(findings.columns)
    lines = [header, rule]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in findings.rows[:limit]]
    if len(findings.rows) > limit:
        lines.append(f"\n… and {len(findings.rows) - limit} more (run reproduce_sql)")
    return "\n".join(lines)


def findings_metadata(findings: Findings, **extra: Any) -> dict[str, Any]:
    """Metadata of a result: the findings (table and JSON), their count and the SQL."""
    return {
        "finding_count": MetadataValue.int(len(findings.rows)),
        "findings": MetadataValue.md(findings_table(findings)),
        "findings_json": MetadataValue.json(
            [
                {k: _jsonable(v) for k, v in record.items()}
                for record in findings.records()[:MAX_LISTED_FINDINGS]
            ]
        ),
        "reproduce_sql": MetadataValue.md(f"```sql\n{findings.sql}\n```"),
        **extra,
    }


def _dates_text(dates: Sequence[date]) -> str:
    if not dates:
        return "none"
    dates = sorted(set(dates))
    contiguous = (dates[-1] - dates[0]).days + 1 == len(dates)
    if contiguous and len(dates) > 2:
        return f"{dates[0]} .. {dates[-1]}"
    return ", ".join(d.isoformat() for d in dates)


def _summary(parts: Sequence[str], limit: int = 3) -> str:
    text = "; ".join(parts[:limit])
    return text + (f"; and {len(parts) - limit} more" if len(parts) > limit else "")


def read_recompute_dates(con: duckdb.DuckDBPyConnection) -> list[date]:
    """The event dates the last daily run recomputed (ops.recompute_dates)."""
    return [row[0] for row in con.execute(q.recompute_dates_sql()).fetchall()]


# --- evaluations -----------------------------------------------------------------------------------------


def evaluate_srm(
    con: duckdb.DuckDBPyConnection, dates: Sequence[date], *, by_tier: bool = False
) -> AssetCheckResult:
    """Sample-ratio mismatch: ERROR on an unhealthy row, WARN on a warning row."""
    findings = run_findings(con, q.srm_findings_sql(dates, by_tier=by_tier))
    records = findings.records()
    statuses = {r["srm_status"] for r in records}
    severity = (
        AssetCheckSeverity.ERROR
        if q.SRM_UNHEALTHY in statuses or not records
        else AssetCheckSeverity.WARN
    )
    p_column = "srm_p_value_bonferroni" if by_tier else "srm_p_value"
    parts = []
    for r in sorted(records, key=lambda r: (r["srm_status"] != q.SRM_UNHEALTHY, r["date"])):
        tier = f" tier {r['subscription_tier']}" if by_tier else ""
        parts.append(
            f"{r['experiment_key']}{tier} on {r['date']}: {r['srm_status']} "
            f"(chi-square {_cell(r['srm_chi_square'])}, {p_column} {_cell(r[p_column])}; "
            f"{r['users_by_variation']})"
        )
    extra: dict[str, Any] = {
        "evaluated": MetadataValue.text(
            f"latest date of each experiment and recomputed dates {_dates_text(dates)}"
        )
    }
    if records:
        worst = min(records, key=lambda r: (r["srm_status"] != q.SRM_UNHEALTHY, r["date"]))
        extra |= {
            "experiment_key": MetadataValue.text(worst["experiment_key"]),
            "date": MetadataValue.text(worst["date"].isoformat()),
            "srm_chi_square": MetadataValue.float(float(worst["srm_chi_square"])),
            p_column: MetadataValue.float(float(worst[p_column])),
            "users_by_variation": MetadataValue.text(worst["users_by_variation"] or ""),
        }
        if by_tier:
            extra["subscription_tier"] = MetadataValue.text(worst["subscription_tier"])
    return AssetCheckResult(
        asset_key=HEALTH_BY_TIER_KEY if by_tier else HEALTH_KEY,
        check_name=SRM_BY_TIER if by_tier else SRM,
        passed=not records,
        severity=severity,
        description=_summary(parts) if parts else "no sample-ratio mismatch",
        metadata=findings_metadata(findings, **extra),
    )


def evaluate_multiple_variations(con: duckdb.DuckDBPyConnection) -> AssetCheckResult:
    """WARN when over 1% of an experiment's (at least 10) users were seen in several variations."""
    findings = run_findings(con, q.multiple_variation_findings_sql())
    parts = [
        f"{r['experiment_key']}: {r['multiple_variation_users']} of {r['assigned_users']} users "
        f"({100 * r['multiple_variation_share']:.2f}%) in several variations"
        for r in findings.records()
    ]
    return AssetCheckResult(
        asset_key=ASSIGNMENTS_KEY,
        check_name=MULTIPLE_VARIATIONS,
        passed=not findings.rows,
        severity=AssetCheckSeverity.WARN,
        description=_summary(parts) if parts else "no experiment above the limit",
        metadata=findings_metadata(
            findings,
            max_share=MetadataValue.float(q.MULTIPLE_VARIATION_MAX_SHARE),
            min_users=MetadataValue.int(q.MULTIPLE_VARIATION_MIN_USERS),
        ),
    )


def evaluate_unregistered_variations(con: duckdb.DuckDBPyConnection) -> AssetCheckResult:
    """WARN when daily exposures carry a variation the registry does not know."""
    findings = run_findings(con, q.unregistered_variation_findings_sql())
    parts = [
        f"{r['experiment_key']} variation {r['variation_name']!r}: {r['users']} users, "
        f"{r['exposures']} exposures, {r['first_date']} .. {r['last_date']}"
        for r in findings.records()
    ]
    return AssetCheckResult(
        asset_key=EXPOSURES_KEY,
        check_name=UNREGISTERED_VARIATIONS,
        passed=not findings.rows,
        severity=AssetCheckSeverity.WARN,
        description=_summary(parts) if parts else "every exposed variation is registered",
        metadata=findings_metadata(findings),
    )


def evaluate_reconciliation(
    con: duckdb.DuckDBPyConnection,
    dates: Sequence[date],
    registry: SourceRegistry = DEFAULT_REGISTRY,
) -> AssetCheckResult:
    """ERROR when the exposed users recomputed from staging differ from the daily fact's."""
    findings = run_findings(con, q.reconciliation_findings_sql(dates, registry.flag_sources))
    parts = [
        f"{r['experiment_key']} on {r['exposure_date']}: staging {r['staging_users']} users, "
        f"fct {r['fct_users']} ({r['missing_from_fct']} missing from fct, "
        f"{r['not_in_staging']} not in staging, e.g. {_cell(r['sample_differing_users'][:3])})"
        for r in findings.records()
    ]
    return AssetCheckResult(
        asset_key=EXPOSURES_KEY,
        check_name=RECONCILIATION,
        passed=not findings.rows,
        severity=AssetCheckSeverity.ERROR,
        description=_summary(parts)
        if parts
        else f"staging and fct agree on every recomputed date ({_dates_text(dates)})",
        metadata=findings_metadata(
            findings, recomputed_dates=MetadataValue.text(_dates_text(dates))
        ),
    )


def evaluate_volume_anomaly(
    con: duckdb.DuckDBPyConnection, dates: Sequence[date]
) -> AssetCheckResult:
    """WARN when a recomputed day's exposures are outside ±50% of the trailing 7-day median."""
    findings = run_findings(con, q.volume_anomaly_findings_sql(dates))
    parts = [
        f"{r['experiment_key']} on {r['date']}: {r['exposures']} exposures vs trailing "
        f"median {_cell(r['trailing_median'])}"
        + (f" ({100 * r['relative_change']:+.0f}%)" if r["relative_change"] is not None else "")
        for r in findings.records()
    ]
    return AssetCheckResult(
        asset_key=EXPOSURES_KEY,
        check_name=VOLUME,
        passed=not findings.rows,
        severity=AssetCheckSeverity.WARN,
        description=_summary(parts) if parts else "exposure volumes within the usual range",
        metadata=findings_metadata(
            findings,
            recomputed_dates=MetadataValue.text(_dates_text(dates)),
            max_relative_change=MetadataValue.float(q.VOLUME_MAX_RELATIVE_CHANGE),
            trailing_days=MetadataValue.int(q.VOLUME_TRAILING_DAYS),
        ),
    )


def evaluate_rejected_rate(
    con: duckdb.DuckDBPyConnection, source: Source, load_dates: Sequence[date]
) -> AssetCheckResult:
    """Rejected share of a source's lines per arrival partition: WARN above 0.1%, ERROR above 5%."""
    asset_key = source.asset_key
    findings = run_findings(
        con, q.rejected_rate_findings_sql(source.name, source.table, load_dates)
    )
    records = findings.records()
    errors = [r for r in records if r["rejected_rate"] > q.REJECTED_RATE_ERROR]
    parts = [
        f"{source.name} {r['load_date']}: {r['rejected']} of {r['lines']} lines rejected "
        f"({100 * r['rejected_rate']:.2f}%: {r['reasons']})"
        for r in sorted(records, key=lambda r: -r["rejected_rate"])
    ]
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=REJECTED_RATE,
        passed=not records,
        severity=AssetCheckSeverity.ERROR if errors or not records else AssetCheckSeverity.WARN,
        description=_summary(parts)
        if parts
        else f"rejected rate at most {100 * q.REJECTED_RATE_WARN:g}% on {_dates_text(load_dates)}",
        metadata=findings_metadata(
            findings,
            source=MetadataValue.text(source.name),
            arrival_dates=MetadataValue.text(_dates_text(load_dates)),
            warn_above=MetadataValue.float(q.REJECTED_RATE_WARN),
            error_above=MetadataValue.float(q.REJECTED_RATE_ERROR),
        ),
    )


def evaluate_late_events(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    load_dates: Sequence[date],
    lookback_days: int,
) -> AssetCheckResult:
    """WARN when raw events arrived more than the lookback after their event date."""
    asset_key = source.asset_key
    findings = run_findings(
        con,
        q.late_events_findings_sql(
            source.raw_table, source.event_time_column or "", load_dates, lookback_days
        ),
    )
    records = findings.records()
    event_dates = sorted({r["event_date"] for r in records})
    parts = [
        f"{r['events']} {source.name} events of {r['event_date']} arrived on "
        f"{r['arrival_date']} ({r['days_late']} days late)"
        for r in records
    ]
    rerun = sorted({r["arrival_date"] for r in records})
    note = (
        "These event dates were recomputed automatically by this run (a run recomputes every "
        "event date found in its arrival folders). To re-run them: "
        + "; ".join(f"expplatform materialize --start {d} --end {d}" for d in rerun)
        if rerun
        else "nothing late"
    )
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=LATE_EVENTS,
        passed=not records,
        severity=AssetCheckSeverity.WARN,
        description=_summary(parts)
        if parts
        else f"no event older than {lookback_days} days before arrival on "
        f"{_dates_text(load_dates)}",
        metadata=findings_metadata(
            findings,
            source=MetadataValue.text(source.name),
            arrival_dates=MetadataValue.text(_dates_text(load_dates)),
            lookback_days=MetadataValue.int(lookback_days),
            affected_event_dates=MetadataValue.text(_dates_text(event_dates)),
            note=MetadataValue.text(note),
        ),
    )


# --- the Dagster checks --------------------------------------------------------------------------------------


def _spec(name: str, asset: AssetKey, description: str, **kwargs: Any) -> AssetCheckSpec:
    with warnings.catch_warnings():
        # Partitioned check specs are a Dagster preview; they are what lets the raw checks be
        # recorded per arrival partition in the UI, so the preview warning is expected here.
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(name=name, asset=asset, description=description, **kwargs)


#: The checks evaluated after the dbt build, on the marts and the daily fact.
MART_CHECK_SPECS = [
    _spec(
        SRM,
        HEALTH_KEY,
        "Sample-ratio mismatch of each experiment's cumulative assignments (contract §5). "
        + _SRM_RULES,
    ),
    _spec(
        SRM_BY_TIER,
        HEALTH_BY_TIER_KEY,
        "Sample-ratio mismatch per subscription tier at assignment, p-values Bonferroni-"
        "corrected over the tiers present that date. " + _SRM_RULES,
    ),
    _spec(
        MULTIPLE_VARIATIONS,
        ASSIGNMENTS_KEY,
        f"WARN when more than {100 * q.MULTIPLE_VARIATION_MAX_SHARE:g}% of an experiment's "
        "assigned users were seen in several variations (flag misconfiguration, migration), "
        f"once it has at least {q.MULTIPLE_VARIATION_MIN_USERS} users. They stay in their first "
        "variation and are left out of the sample-ratio test. Metadata: the experiment, users, "
        "share and the SQL.",
    ),
    _spec(
        UNREGISTERED_VARIATIONS,
        EXPOSURES_KEY,
        "WARN when daily exposures are to a variation missing from the registry "
        "(is_treatment is null): a new arm not registered yet, or a misspelt variation. "
        "Metadata: experiment, variation, users, exposures, dates and the SQL.",
    ),
    _spec(
        RECONCILIATION,
        EXPOSURES_KEY,
        "ERROR when, on an event date recomputed by the last daily run (ops.recompute_dates), "
        "the exposed users per experiment re-derived independently from the staging views "
        "(active feature evaluations that are not prerequisites, registered flag, within the "
        "experiment's dates, test accounts left out, retracted event ids dropped, earliest copy "
        "per event id) are missing from fct_experiment_exposures_daily, or a user of the fact "
        "has no event those rules count. Metadata: the experiment, date, both counts, sample "
        "users and the SQL.",
    ),
    _spec(
        VOLUME,
        EXPOSURES_KEY,
        "WARN when an experiment's exposures on a recomputed date are outside "
        f"±{100 * q.VOLUME_MAX_RELATIVE_CHANGE:g}% of the median of the "
        f"{q.VOLUME_TRAILING_DAYS} days before it (days without exposures count 0); dates with "
        f"fewer than {q.VOLUME_TRAILING_DAYS} days of the experiment before them are skipped. "
        "Metadata: experiment, date, exposures, median and the SQL.",
    ),
]
MART_CHECK_KEYS = {spec.key for spec in MART_CHECK_SPECS}


def raw_check_specs(source: Source, partitions_def: PartitionsDefinition) -> list[AssetCheckSpec]:
    """The checks of a daily source's arrival partitions (evaluated in its raw asset's step)."""
    if not source.is_flag_source:
        return []
    return [
        _spec(
            REJECTED_RATE,
            source.asset_key,
            f"Share of the {source.name} lines of each arrival partition that went to "
            "raw.rejected_records: WARN above "
            f"{100 * q.REJECTED_RATE_WARN:g}%, ERROR above {100 * q.REJECTED_RATE_ERROR:g}%. "
            "Metadata: the partition, lines, rejected lines by reason and the SQL.",
            partitions_def=partitions_def,
        ),
        _spec(
            LATE_EVENTS, source.asset_key, _LATE_EVENTS_DESCRIPTION, partitions_def=partitions_def
        ),
    ]


def evaluate_mart_checks(
    con: duckdb.DuckDBPyConnection,
    selected: AbstractSet[AssetCheckKey],
    registry: SourceRegistry = DEFAULT_REGISTRY,
) -> list[AssetCheckResult]:
    """The selected mart checks, on the event dates the last daily build recomputed."""
    dates = read_recompute_dates(con)
    evaluations = {
        AssetCheckKey(HEALTH_KEY, SRM): lambda: evaluate_srm(con, dates),
        AssetCheckKey(HEALTH_BY_TIER_KEY, SRM_BY_TIER): lambda: evaluate_srm(
            con, dates, by_tier=True
        ),
        AssetCheckKey(ASSIGNMENTS_KEY, MULTIPLE_VARIATIONS): lambda: evaluate_multiple_variations(
            con
        ),
        AssetCheckKey(EXPOSURES_KEY, UNREGISTERED_VARIATIONS): lambda: (
            evaluate_unregistered_variations(con)
        ),
        AssetCheckKey(EXPOSURES_KEY, RECONCILIATION): lambda: evaluate_reconciliation(
            con, dates, registry
        ),
        AssetCheckKey(EXPOSURES_KEY, VOLUME): lambda: evaluate_volume_anomaly(con, dates),
    }
    return [evaluate() for key, evaluate in evaluations.items() if key in selected]


def evaluate_raw_checks(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    selected: AbstractSet[AssetCheckKey],
    load_dates: Sequence[date],
    lookback_days: int,
) -> list[AssetCheckResult]:
    """The selected checks of a daily source on the arrival partitions `load_dates`."""
    results = []
    if AssetCheckKey(source.asset_key, REJECTED_RATE) in selected:
        results.append(evaluate_rejected_rate(con, source, load_dates))
    if AssetCheckKey(source.asset_key, LATE_EVENTS) in selected:
        results.append(evaluate_late_events(con, source, load_dates, lookback_days))
    return results


def partition_label(dates: Sequence[date]) -> str | None:
    """How a set of arrival dates is recorded: the date, or `first..last` for a range."""
    if not dates:
        return None
    first, last = min(dates), max(dates)
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


def record_results(
    con: duckdb.DuckDBPyConnection,
    results: Sequence[AssetCheckResult],
    run_id: str,
    *,
    partition_of: Sequence[date] = (),
) -> None:
    """Keep the latest evaluation of each check (and partition) in ops.check_results."""
    partition = partition_label(partition_of)
    rows = [
        (
            r.asset_key.to_user_string() if r.asset_key else "",
            r.check_name or "",
            partition,
            bool(r.passed),
            (r.severity or AssetCheckSeverity.ERROR).value,
            (r.description or "")[:500],
            run_id,
        )
        for r in results
    ]
    if not rows:
        return
    con.execute("begin transaction")
    try:
        for row in rows:
            con.execute(
                f"delete from {OPS_CHECK_RESULTS} where asset_key = ? and check_name = ? "
                "and partition is not distinct from ?",
                list(row[:3]),
            )
        con.executemany(
            f"insert into {OPS_CHECK_RESULTS} values (?, ?, ?, ?, ?, ?, now()::timestamp, ?)",
            rows,
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
