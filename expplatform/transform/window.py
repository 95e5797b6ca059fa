"""Bookkeeping around the incremental dbt runs (docs/ARCHITECTURE.md).

The daily dbt models read *what* to recompute from `ops.*` tables written
here, instead of `--vars` (which would force a full dbt re-parse each run):

- `ops.recompute_dates`: event dates the daily models rebuild;
- `ops.dim_changed_users`: users whose test-account flag or subscription
  history changed since the last successful daily run;
- `ops.pending_users` / `ops.pending_dates`: what the marts still have to
  merge, accumulated by daily runs and emptied only after the marts built;
- `ops.assignments_before`: assignments of pending users as they were before
  the marts started merging them (kept across a failed attempt).

Every function is a handful of SQL statements in one transaction, so a crash
between two of them leaves the queues as they were or fully updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import duckdb

FCT_DAILY = "marts.fct_experiment_exposures_daily"
FCT_ASSIGNMENTS = "marts.fct_experiment_assignments"
STG_USERS = "staging.stg_app__users"
INT_SUBSCRIPTIONS = "intermediate.int_subscription_history"


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
    con: duckdb.DuckDBPyConnection, load_dates: Sequence[date], lookback_days: int
) -> list[date]:
    """The lookback window plus every event date found in the arrival partitions being run.

    The second part makes a late event recompute its own date whatever its
    delay, so the order of partition runs never changes the final tables.
    """
    dates = set(lookback_dates(load_dates, lookback_days))
    if load_dates:
        rows = con.execute(
            """
            select distinct cast(event_creationdate as date)
            from raw.partner_directpush_launchdarkly_events
            where _load_date in (select unnest($dates::date[]))
            union
            select distinct cast("timestamp" as date)
            from raw.legacy_feature_flag_events
            where _load_date in (select unnest($dates::date[]))
            """,
            {"dates": sorted(set(load_dates))},
        ).fetchall()
        dates.update(r[0] for r in rows if r[0] is not None)
    return sorted(dates)


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


def _dims_available(con: duckdb.DuckDBPyConnection) -> bool:
    return _exists(con, STG_USERS) and _exists(con, INT_SUBSCRIPTIONS)


def prepare_daily_run(
    con: duckdb.DuckDBPyConnection, load_dates: Sequence[date], lookback_days: int
) -> list[date]:
    """Write the window and the changed users for a daily dbt run; returns the event dates."""
    dates = compute_recompute_dates(con, load_dates, lookback_days)
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
    """After a successful daily dbt run: queue the new rows' users, advance the dim fingerprints."""
    con.execute("begin transaction")
    try:
        if _exists(con, FCT_DAILY):
            con.execute(
                f"""
                insert into ops.pending_users
                select distinct user_id from {FCT_DAILY}
                where exposure_date in (select recompute_date from ops.recompute_dates)
                """
            )
        con.execute("insert into ops.pending_users select user_id from ops.dim_changed_users")
        if _dims_available(con):
            con.execute("delete from ops.user_dim_state")
            con.execute(f"insert into ops.user_dim_state {_CURRENT_DIM_STATE}")
        con.execute("delete from ops.dim_changed_users")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def prepare_marts_run(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Snapshot the assignments of pending users not snapshotted yet; returns (users, dates) pending.

    A snapshot left by a failed attempt is kept: it still holds the state
    before that attempt merged anything.
    """
    con.execute("begin transaction")
    try:
        if _exists(con, FCT_ASSIGNMENTS):
            con.execute(
                f"""
                insert into ops.assignments_before
                select experiment_key, user_id, assignment_date, variation_name, subscription_tier,
                       last_exposure_date
                from {FCT_ASSIGNMENTS}
                where user_id in (select user_id from ops.pending_users)
                  and user_id not in (select user_id from ops.assignments_before)
                """
            )
        counts = con.execute(
            "select (select count(distinct user_id) from ops.pending_users), "
            "(select count(distinct pending_date) from ops.pending_dates)"
        ).fetchone()
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return int(counts[0]), int(counts[1])


def finish_marts_run(con: duckdb.DuckDBPyConnection) -> None:
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
