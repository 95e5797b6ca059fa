"""Read what a health page shows from the serving copy, in one short read-only visit.

The serving copy (EXPPLATFORM_SERVING_PATH) is the readers' DuckDB file: schema `marts`
(the contract's §5 tables and the health marts), `meta.check_results` (the latest
evaluation of every data-quality check) and `meta.build_info` (one row). It is
published by replacing the file; on DuckDB 2.0 a process holding it open, even
read-only, would make a writer of that same file fail. So :func:`load_snapshot` opens it
read-only, runs a handful of aggregating queries (results are per experiment, date,
variation and tier: small whatever the number of users), and closes it before any
rendering starts.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import accumulate
from pathlib import Path

import duckdb

from expplatform import catalog
from expplatform.config import get_settings
from expplatform.warehouse import open_connection

#: Every relation the page reads, with the columns it reads (a missing one is named in the error).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "marts.dim_experiments": (
        "experiment_key", "description", "owner", "start_date", "end_date",
    ),
    "marts.dim_experiment_variations": (
        "experiment_key", "variation_name", "is_treatment", "expected_weight",
    ),
    "marts.fct_experiment_assignments": (
        "experiment_key", "variation_name", "subscription_tier", "assignment_date",
        "has_multiple_variations",
    ),
    "marts.mart_experiment_allocation_daily": (
        "experiment_key", "date", "variation_name", "is_treatment", "new_users",
        "cumulative_users",
    ),
    "marts.mart_experiment_health_daily": (
        "experiment_key", "date", "assigned_users", "multiple_variation_users",
        "srm_chi_square", "srm_p_value", "srm_status",
    ),
    "marts.mart_experiment_health_by_tier_daily": (
        "experiment_key", "date", "subscription_tier", "assigned_users", "test_users",
        "srm_chi_square", "srm_p_value", "srm_p_value_bonferroni", "srm_status",
    ),
    catalog.SERVING_CHECK_RESULTS: (
        "asset_key", "check_name", "partition", "passed", "severity", "description",
        "evaluated_at",
    ),
    catalog.SERVING_BUILD_INFO: ("built_at", "data_through", "run_id"),
}  # fmt: skip

#: Tiers in the order readers expect them (contract §2.4), then anything else alphabetically.
TIER_ORDER = ("standard", "plus", "premium", "unknown")


class ServingCopyError(ValueError):
    """The serving copy is missing or lacks what the page needs; the message names the file."""


def serving_path_from_env() -> Path:
    """EXPPLATFORM_SERVING_PATH (contract §1), relative paths resolved from the project root."""
    return get_settings().serving


@dataclass(frozen=True)
class Arm:
    """A registered variation of an experiment."""

    name: str
    is_treatment: bool | None
    expected_weight: float


@dataclass(frozen=True)
class DayHealth:
    """One row of mart_experiment_health_daily."""

    date: date
    assigned_users: int
    multiple_variation_users: int
    chi_square: float | None
    p_value: float | None
    status: str


@dataclass(frozen=True)
class VariationSeries:
    """Users of one assigned variation per date (all tiers), aligned to ExperimentHealth.dates."""

    name: str
    registered: bool
    new_users: list[int]
    cumulative_users: list[int]


@dataclass(frozen=True)
class TierHealth:
    """One row of mart_experiment_health_by_tier_daily, plus the tier's test users per arm."""

    date: date
    tier: str
    assigned_users: int
    test_users: int
    chi_square: float | None
    p_value: float | None
    p_value_bonferroni: float | None
    status: str
    arm_users: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """The latest evaluation of one data-quality check."""

    asset_key: str
    check_name: str
    partition: str | None
    passed: bool
    severity: str
    description: str | None
    evaluated_at: datetime | None


@dataclass(frozen=True)
class BuildInfo:
    """When the serving copy was built and how far its data goes."""

    built_at: datetime | None
    data_through: date | None
    run_id: str | None


@dataclass(frozen=True)
class ExperimentHealth:
    """Everything one experiment's page shows, read from the serving copy."""

    key: str
    description: str | None
    owner: str | None
    start_date: date | None
    end_date: date | None
    arms: list[Arm]
    #: The dates of the marts' span (first assignment date to last exposure date).
    dates: list[date]
    days: list[DayHealth]
    variations: list[VariationSeries]
    #: Cumulative users in the sample-ratio test per registered arm, aligned to `dates`.
    test_users: dict[str, list[int]]
    #: Users assigned to a variation that is not registered (and not in several variations).
    unregistered_users: int
    #: The per-tier tests of the latest date, tiers in TIER_ORDER.
    tiers: list[TierHealth]
    #: Every per-tier row (date, tier, status, Bonferroni p) for the status-by-tier chart.
    tier_days: list[TierHealth]

    @property
    def latest(self) -> DayHealth | None:
        """The newest health row: the banner's status."""
        return self.days[-1] if self.days else None

    @property
    def status(self) -> str:
        """The latest sample-ratio status, or 'no_data' before any assignment."""
        return self.latest.status if self.latest else "no_data"


@dataclass(frozen=True)
class ServingSnapshot:
    """What was read from one serving copy: the build, the checks and the experiments."""

    path: Path
    build: BuildInfo
    checks: list[CheckResult]
    experiments: dict[str, ExperimentHealth]


def tier_sort_key(tier: str) -> tuple[int, str]:
    """Sort tiers standard, plus, premium, unknown, then any other alphabetically."""
    return (TIER_ORDER.index(tier), "") if tier in TIER_ORDER else (len(TIER_ORDER), tier)


def _check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    present: dict[str, set[str]] = defaultdict(set)
    for schema, table, column in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = current_database()"
    ).fetchall():
        present[f"{schema}.{table}"].add(column)
    problems = []
    for relation, columns in REQUIRED_COLUMNS.items():
        if relation not in present:
            problems.append(f"table {relation} is missing")
            continue
        missing = [c for c in columns if c not in present[relation]]
        if missing:
            problems.append(f"{relation} lacks column(s) {', '.join(missing)}")
    if problems:
        raise ServingCopyError(
            f"serving copy {path} cannot feed the health pages: {'; '.join(problems)}"
        )


def _cumulative_on(dates: Sequence[date], new_by_date: dict[date, int]) -> list[int]:
    """Cumulative sum of `new_by_date` at each of `dates` (dates before the first count 0)."""
    days = sorted(new_by_date)
    running = list(accumulate(new_by_date[d] for d in days))
    return [running[i - 1] if (i := bisect_right(days, d)) else 0 for d in dates]


def load_snapshot(
    serving_db: Path, experiment_keys: Sequence[str] | None = None, *, wait_seconds: float = 30.0
) -> ServingSnapshot:
    """Read the build info, the checks and the named experiments (all when None).

    Raises ServingCopyError when the file does not exist, lacks a table or column,
    or an asked-for experiment is not registered in it.
    """
    path = Path(serving_db)
    if not path.is_file():
        raise ServingCopyError(
            f"serving copy {path} does not exist: it is published after each successful run "
            "(`expplatform materialize`), or set EXPPLATFORM_SERVING_PATH"
        )
    con = open_connection(path, read_only=True, wait_seconds=wait_seconds)
    try:
        _check_schema(con, path)
        return _read(con, path, experiment_keys)
    finally:
        con.close()


def _read(
    con: duckdb.DuckDBPyConnection, path: Path, experiment_keys: Sequence[str] | None
) -> ServingSnapshot:
    # Names are qualified with the file's catalog (DuckDB names it after the file), so that a
    # schema and a file of the same name can never make a reference ambiguous.
    (database,) = con.execute("select current_database()").fetchone()
    db = '"' + database.replace('"', '""') + '"'

    def query(sql: str, params: dict | None = None) -> list[tuple]:
        return con.execute(sql.replace("{db}", db), params).fetchall()

    build_rows = query(
        f"select built_at, data_through, run_id from {{db}}.{catalog.SERVING_BUILD_INFO}"
    )
    if len(build_rows) != 1:
        raise ServingCopyError(
            f"serving copy {path}: {catalog.SERVING_BUILD_INFO} must hold one row, "
            f"it holds {len(build_rows)}"
        )
    build = BuildInfo(*build_rows[0])

    checks = [
        CheckResult(*row)
        for row in query(
            f"""
            select asset_key, check_name, partition, passed, severity, description, evaluated_at
            from {{db}}.{catalog.SERVING_CHECK_RESULTS}
            order by passed, severity, asset_key, check_name, partition
            """
        )
    ]

    registry = {
        row[0]: row
        for row in query(
            "select experiment_key, description, owner, start_date, end_date "
            "from {db}.marts.dim_experiments order by experiment_key"
        )
    }
    keys = list(registry) if experiment_keys is None else list(experiment_keys)
    unknown = [k for k in keys if k not in registry]
    if unknown:
        raise ServingCopyError(
            f"experiment(s) {', '.join(map(repr, unknown))} not in marts.dim_experiments of "
            f"serving copy {path}; registered: {', '.join(registry) or 'none'}"
        )

    def rows(sql: str) -> list[tuple]:
        return query(sql, {"keys": keys})

    arms: dict[str, list[Arm]] = defaultdict(list)
    # control (not a treatment) first, then the treatments by name
    for key, name, is_treatment, weight in rows(
        """
        select experiment_key, variation_name, is_treatment, expected_weight
        from {db}.marts.dim_experiment_variations
        where experiment_key in (select unnest($keys))
        order by experiment_key, coalesce(is_treatment, true), variation_name
        """
    ):
        arms[key].append(Arm(name, is_treatment, float(weight)))

    days: dict[str, list[DayHealth]] = defaultdict(list)
    for key, *values in rows(
        """
        select experiment_key, date, assigned_users, multiple_variation_users,
               srm_chi_square, srm_p_value, srm_status
        from {db}.marts.mart_experiment_health_daily
        where experiment_key in (select unnest($keys))
        order by experiment_key, date
        """
    ):
        days[key].append(DayHealth(*values))

    allocation: dict[str, dict[tuple[str, bool], dict[date, tuple[int, int]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for key, variation, registered, day, new, cumulative in rows(
        """
        select a.experiment_key, coalesce(a.variation_name, '(none)'),
               v.variation_name is not null, a.date,
               sum(a.new_users)::bigint, sum(a.cumulative_users)::bigint
        from {db}.marts.mart_experiment_allocation_daily as a
        left join {db}.marts.dim_experiment_variations as v
            on a.experiment_key = v.experiment_key and a.variation_name = v.variation_name
        where a.experiment_key in (select unnest($keys))
        group by all
        """
    ):
        allocation[key][(variation, registered)][day] = (new, cumulative)

    # users in the sample-ratio test: registered arm, not seen in several variations (rule 7)
    tested: dict[str, dict[str, dict[date, int]]] = defaultdict(lambda: defaultdict(dict))
    for key, variation, day, users in rows(
        """
        select f.experiment_key, f.variation_name, f.assignment_date, count(*)
        from {db}.marts.fct_experiment_assignments as f
        inner join {db}.marts.dim_experiment_variations as v
            on f.experiment_key = v.experiment_key and f.variation_name = v.variation_name
        where f.experiment_key in (select unnest($keys)) and not f.has_multiple_variations
        group by all
        """
    ):
        tested[key][variation][day] = users
    tested_by_tier: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for key, tier, variation, users in rows(
        """
        select f.experiment_key, f.subscription_tier, f.variation_name, count(*)
        from {db}.marts.fct_experiment_assignments as f
        inner join {db}.marts.dim_experiment_variations as v
            on f.experiment_key = v.experiment_key and f.variation_name = v.variation_name
        where f.experiment_key in (select unnest($keys)) and not f.has_multiple_variations
        group by all
        """
    ):
        tested_by_tier[key][tier][variation] = users
    unregistered = dict(
        rows(
            """
            select f.experiment_key, count(*)
            from {db}.marts.fct_experiment_assignments as f
            left join {db}.marts.dim_experiment_variations as v
                on f.experiment_key = v.experiment_key and f.variation_name = v.variation_name
            where f.experiment_key in (select unnest($keys))
                and v.variation_name is null and not f.has_multiple_variations
            group by all
            """
        )
    )

    tier_days: dict[str, list[TierHealth]] = defaultdict(list)
    for key, *values in rows(
        """
        select experiment_key, date, subscription_tier, assigned_users, test_users,
               srm_chi_square, srm_p_value, srm_p_value_bonferroni, srm_status
        from {db}.marts.mart_experiment_health_by_tier_daily
        where experiment_key in (select unnest($keys))
        order by experiment_key, date, subscription_tier
        """
    ):
        tier_days[key].append(TierHealth(*values))

    experiments = {}
    for key in keys:
        _, description, owner, start, end = registry[key]
        series = allocation[key]
        dates = sorted({d.date for d in days[key]} | {d for s in series.values() for d in s})
        variations = []
        for (name, registered), by_date in sorted(
            series.items(), key=lambda item: (not item[0][1], item[0][0])
        ):
            new = {d: n for d, (n, _) in by_date.items()}
            variations.append(
                VariationSeries(
                    name=name,
                    registered=registered,
                    new_users=[new.get(d, 0) for d in dates],
                    # from the mart, not re-summed: carry the last value over a missing date
                    cumulative_users=[
                        by_date[d][1] if d in by_date else _carry(by_date, d) for d in dates
                    ],
                )
            )
        order = {arm.name: i for i, arm in enumerate(arms[key])}
        variations.sort(key=lambda v: (order.get(v.name, len(order)), v.name))
        latest_date = days[key][-1].date if days[key] else None
        tiers = [
            TierHealth(**{**t.__dict__, "arm_users": dict(tested_by_tier[key].get(t.tier, {}))})
            for t in tier_days[key]
            if t.date == latest_date
        ]
        tiers.sort(key=lambda t: tier_sort_key(t.tier))
        experiments[key] = ExperimentHealth(
            key=key,
            description=description,
            owner=owner,
            start_date=start,
            end_date=end,
            arms=arms[key],
            dates=dates,
            days=days[key],
            variations=variations,
            test_users={
                arm.name: _cumulative_on(dates, tested[key].get(arm.name, {})) for arm in arms[key]
            },
            unregistered_users=int(unregistered.get(key, 0)),
            tiers=tiers,
            tier_days=tier_days[key],
        )
    return ServingSnapshot(path=path, build=build, checks=checks, experiments=experiments)


def _carry(by_date: dict[date, tuple[int, int]], day: date) -> int:
    """The cumulative count of the last date before `day` (0 before the first)."""
    earlier = [d for d in by_date if d < day]
    return by_date[max(earlier)][1] if earlier else 0
