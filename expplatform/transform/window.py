"""Bookkeeping around the incremental dbt build (docs/ARCHITECTURE.md).

The incremental dbt models read *what* to recompute from `ops.*` tables, instead of `--vars`
(which would force a full dbt re-parse each run):

- `ops.recompute_dates`: event dates the daily models rebuild (written here, before dbt);
- `ops.dim_changed_users`: users whose test-account flag or subscription history changed since
  the last successful daily build (here, before dbt);
- `ops.pending_users` / `ops.pending_dates`: what the marts still have to merge; filled here
  (the users of the dates about to be replaced) and by the post-hook of
  fct_experiment_exposures_daily (the users of the rebuilt rows), emptied only after the marts
  built (:func:`finish_marts`);
- `ops.assignments_before`: assignments of pending users as they were before the marts merged
  them, taken by the pre-hook of fct_experiment_assignments (kept across a failed attempt).

The SQL of the two hooks is in dbt_project/macros/incremental_windows.sql. Every function here is
a handful of statements in one transaction, so a crash between two of them leaves the queues as
they were or fully updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import duckdb

from expplatform.catalog import (
    FCT_EXPOSURES_DAILY as FCT_DAILY,
)
from expplatform.catalog import (
    INT_SUBSCRIPTION_HISTORY as INT_SUBSCRIPTIONS,
)
from expplatform.catalog import (
    STAGING,
    STG_USERS,
)
from expplatform.config import Settings
from expplatform.sources import SourceRegistry


def _exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return (
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchone()[0]
        > 0
    )


def lookback_dates(load_dates: Sequence[date], lookback_days: int) -> list[date]:
    """Event dates `[min(load_dates) - lookback, max(load_dates)]`, every day of it."""
    if not load_dates:
        return []
    first, last = min(load_dates) - timedelta(days=lookback_days), max(load_dates)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def compute_recompute_dates(
    con: duckdb.DuckDBPyConnection,
    registry: SourceRegistry,
    load_dates: Sequence[date],
    lookback_days: int,
) -> list[date]:
    """The lookback window, every event date found in the arrival partitions being run, and
    every date of an earlier copy of an event they hold.

    The second part makes a late event recompute its own date whatever its delay, so the order
    of partition runs never changes the final tables. The third does the same for copies of
    one event id with different timestamps (a re-delivery with a new time, a retraction copy):
    the date the event was counted on before is rebuilt, so the event moves or disappears.
    """
    dates = set(lookback_dates(load_dates, lookback_days))
    if load_dates and registry.flag_sources:
        union = "\nunion\n".join(
            f'select distinct cast("{s.event_time_column}" as date) from {s.raw_table} '
            "where _load_date in (select unnest($dates::date[]))"
            for s in registry.flag_sources
        )
        rows = con.execute(union, {"dates": sorted(set(load_dates))}).fetchall()
        dates.update(r[0] for r in rows if r[0] is not None)
        dates.update(earlier_copy_dates(con, registry, load_dates))
    return sorted(dates)


def earlier_copy_dates(
    con: duckdb.DuckDBPyConnection, registry: SourceRegistry, load_dates: Sequence[date]
) -> set[date]:
    """The event dates of every copy of the event ids loaded for `load_dates`, per source.

    Read through the staging views (the common shape: event_id, event_date, _load_date); before
    the first dbt build they do not exist, and then every copy is in this run anyway.
    """
    views = [
        f"{STAGING}.{s.staging_model}"
        for s in registry.flag_sources
        if _exists(con, f"{STAGING}.{s.staging_model}")
    ]
    if not views:
        return set()
    union = "\nunion\n".join(
        f"select distinct copies.event_date from {view} as copies "
        f"where copies.event_id in (select event_id from {view} "
        "where _load_date in (select unnest($dates::date[])))"
        for view in views
    )
    rows = con.execute(union, {"dates": sorted(set(load_dates))}).fetchall()
    return {r[0] for r in rows if r[0] is not None}


_CURRENT_DIM_STATE = f"""
    with users as (
        select user_id, coalesce(is_test_account, false) as is_test_account from {STG_USERS}
    ),
    subscriptions as (
        select user_id,
               string_agg(subscription_tier || '@' || strftime(valid_from, '%Y-%m-%dT%H:%M:%S.%f'), ','
                          order by valid_from, subscription_change_id) as history
        from {INT_SUBSCRIPTIONS}
        group by user_id
    )
    select coalesce(users.user_id, subscriptions.user_id) as user_id,
           md5(coalesce(users.is_test_account::varchar, 'absent') || '|' ||
               coalesce(subscriptions.history, '')) as dim_hash
    from users full join subscriptions on users.user_id = subscriptions.user_id
"""


def newest_arrival_date(con: duckdb.DuckDBPyConnection, registry: SourceRegistry) -> date | None:
    """The newest arrival date loaded into any flag source's raw table (None when empty)."""
    if not registry.flag_sources:
        return None
    union = "\nunion all\n".join(
        f"select max(_load_date) as d from {s.raw_table}" for s in registry.flag_sources
    )
    return con.execute(f"select max(d) from ({union})").fetchone()[0]


def dev_window_env(
    con: duckdb.DuckDBPyConnection, registry: SourceRegistry, settings: Settings
) -> dict[str, str]:
    """What the dev target's last-N-days window counts back from, when the settings do not say.

    The dev target keeps the `dev_days` days up to `dev_as_of` (dbt_project/macros/dev_sample.sql).
    Unset, that is the newest arrival date loaded, so the window holds the newest data however
    old it is (today would leave a replayed sample empty).
    """
    if settings.dev_days is None or settings.dev_as_of is not None:
        return {}
    newest = newest_arrival_date(con, registry)
    return {"EXPPLATFORM_DEV_AS_OF": newest.isoformat()} if newest else {}


def _dims_available(con: duckdb.DuckDBPyConnection) -> bool:
    return _exists(con, STG_USERS) and _exists(con, INT_SUBSCRIPTIONS)


def prepare_daily_run(
    con: duckdb.DuckDBPyConnection,
    registry: SourceRegistry,
    load_dates: Sequence[date],
    lookback_days: int,
) -> list[date]:
    """Write the window and the changed users for a daily dbt run; returns the event dates."""
    dates = compute_recompute_dates(con, registry, load_dates, lookback_days)
    con.execute("begin transaction")
    try:
        con.execute("delete from ops.recompute_dates")
        con.execute(
            "insert into ops.recompute_dates select unnest($dates::date[])", {"dates": dates}
        )
        con.execute("delete from ops.dim_changed_users")
        if _dims_available(con):
            con.execute(
                f"""
                insert into ops.dim_changed_users
                with current_state as ({_CURRENT_DIM_STATE})
                select coalesce(current_state.user_id, previous.user_id)
                from current_state
                full join ops.user_dim_state as previous
                    on current_state.user_id = previous.user_id
                where current_state.dim_hash is distinct from previous.dim_hash
                """
            )
        # Users whose daily rows are about to be replaced: their assignments
        # must be re-derived even if every one of those rows disappears.
        if _exists(con, FCT_DAILY):
            con.execute(
                f"""
                insert into ops.pending_users
                select distinct user_id from {FCT_DAILY}
                where exposure_date in (select recompute_date from ops.recompute_dates)
                """
            )
        con.execute("insert into ops.pending_dates select recompute_date from ops.recompute_dates")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return dates


def finish_daily_run(con: duckdb.DuckDBPyConnection) -> None:
    """After a successful daily build: advance the dim fingerprints (the hook queued the users)."""
    con.execute("begin transaction")
    try:
        if _dims_available(con):
            con.execute("delete from ops.user_dim_state")
            con.execute(f"insert into ops.user_dim_state {_CURRENT_DIM_STATE}")
        con.execute("delete from ops.dim_changed_users")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def pending_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(users, dates) the marts still have to merge."""
    counts = con.execute(
        "select (select count(distinct user_id) from ops.pending_users), "
        "(select count(distinct pending_date) from ops.pending_dates)"
    ).fetchone()
    return int(counts[0]), int(counts[1])


def finish_marts(con: duckdb.DuckDBPyConnection) -> None:
    """After the marts merged everything pending: empty the queues (never before)."""
    con.execute("begin transaction")
    try:
        con.execute("delete from ops.pending_users")
        con.execute("delete from ops.pending_dates")
        con.execute("delete from ops.assignments_before")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
