"""The population: per-user facts fixed for the whole sample, the users snapshots and the
subscription change log (test accounts, deleted users, tier changes on active days)."""

from __future__ import annotations

import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np

from expplatform.sample_data.story import (
    COUNTRIES,
    COUNTRY_P,
    DARK,
    DAY_S,
    DELETED_USER_SHARE,
    DUAL_SOURCE_USERS,
    LAUNCH,
    LD_KEYS,
    NO_SUBSCRIPTION_SHARE,
    ONBOARDING,
    SWITCHER_USERS,
    TEST_ACCOUNT_SHARE,
    TIER_P,
    TIERS,
    WINDOW_TIER_CHANGE_SHARE,
    Plan,
)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash (vectorised; uint64 arithmetic wraps by design)."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _flag_hash(users: np.ndarray, flag_key: str) -> np.ndarray:
    # Like a flag system's bucketing: a hash of (flag salt, user id), independent of the seed.
    salt = np.uint64(zlib.crc32(flag_key.encode()) << 32)
    return _splitmix64(users.astype(np.uint64) ^ salt)


class World:
    """Per-user facts fixed for the whole sample (activity, assignment, migration, flags)."""

    def __init__(self, rng: np.random.Generator, plan: Plan) -> None:
        n, days = plan.users, plan.days
        start_s = plan.epoch_day0 * DAY_S
        self.pre = rng.random(n) >= 0.10  # 90% of users existed before the experiment
        self.created_day = np.where(self.pre, -1, rng.integers(0, days, n))
        self.created_s = np.where(
            self.pre,
            start_s - rng.integers(3 * DAY_S, 730 * DAY_S, n),
            start_s + self.created_day * DAY_S + rng.integers(0, DAY_S, n),
        )
        activity = rng.beta(1.6, 3.6, n)
        self.weight = rng.lognormal(0.0, 0.6, n)

        pre_idx = np.flatnonzero(self.pre)
        n_test = min(len(pre_idx), max(3, round(TEST_ACCOUNT_SHARE * n)))
        self.test = rng.permutation(pre_idx)[:n_test]  # order matters: spellings cycle over it
        # QA accounts click through the app almost daily: excluding them visibly matters.
        activity[self.test] = 0.8
        self.weight[self.test] *= 1.5
        others = np.setdiff1d(pre_idx, self.test)
        n_del = min(len(others), max(1, round(DELETED_USER_SHARE * n)))
        self.deleted = np.sort(rng.choice(others, n_del, replace=False))

        # Users are active from the day after sign-up; the matrix is drawn up front
        # so that switch days and tier changes can be put on days with exposures.
        self.active = np.empty((n, days), dtype=bool)
        for d in range(days):
            self.active[:, d] = (rng.random(n) < activity) & (self.created_day < d)

        self.var = np.stack(
            [
                (_flag_hash(np.arange(1, n + 1), LD_KEYS[LAUNCH]) % 100 >= 50),
                _flag_hash(np.arange(1, n + 1), LD_KEYS[ONBOARDING]) % 3,
                (_flag_hash(np.arange(1, n + 1), LD_KEYS[DARK]) % 100 < 40),
            ]
        ).astype(np.int8)

        # A few users switch vault-launch variation once (e.g. a targeting fix), on a
        # day between two of their active days so both variations are really seen.
        any_active = self.active.any(axis=1)
        first = np.argmax(self.active, axis=1)
        last = days - 1 - np.argmax(self.active[:, ::-1], axis=1)
        cand = rng.integers(1, max(days, 2), n)
        eligible = np.flatnonzero(any_active & (first < cand) & (cand <= last))
        n_sw = min(len(eligible), max(1, round(SWITCHER_USERS * n)))
        switchers = rng.choice(eligible, n_sw, replace=False) if n_sw else eligible
        self.switch_day = np.full(n, days + 10, dtype=np.int64)
        self.switch_day[switchers] = cand[switchers]

        self.migrate_day = rng.integers(plan.ld_start, plan.legacy_end + 1, n)
        self.dual = rng.random(n) < DUAL_SOURCE_USERS

    def launch_var(self, users: np.ndarray, ev_day: np.ndarray) -> np.ndarray:
        """The vault-launch variation of each (user, event day): switchers flip on their day."""
        base = self.var[LAUNCH][users]
        return np.where(ev_day >= self.switch_day[users], 1 - base, base).astype(np.int8)


def _iso_seconds(seconds: np.ndarray) -> list[str]:
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    return [f"{t}Z" for t in text]


def write_users(landing: Path, plan: Plan, world: World, rng: np.random.Generator) -> list[str]:
    """Two snapshots; the newest flags more test accounts and lacks deleted users."""
    n = plan.users
    created = _iso_seconds(world.created_s)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_P)
    old_country = np.where(rng.random(n) < 0.005, rng.choice(len(COUNTRIES), n), country)

    new_test = np.zeros(n, dtype=bool)
    new_test[world.test] = True
    old_test = new_test & (rng.random(n) < 0.67)
    if len(world.test):
        old_test[world.test[0]] = False  # at least one account flagged only in the newest snapshot
    unflag_pool = np.setdiff1d(
        np.flatnonzero(world.pre), np.concatenate([world.test, world.deleted])
    )
    if len(unflag_pool):
        n_unflag = min(len(unflag_pool), max(1, round(0.002 * n)))
        old_test[rng.choice(unflag_pool, n_unflag, replace=False)] = True

    # Spellings: true as true/1/t (the first three test accounts get one each), false mostly "false".
    true_spell = np.array(["true", "1", "t"])[rng.choice(3, n)]
    true_spell[world.test[:3]] = ["true", "1", "t"][: min(3, len(world.test))]
    false_spell = np.array(["false", "0", "f"])[rng.choice(3, n, p=(0.85, 0.08, 0.07))]

    def snapshot(users: np.ndarray, countries: np.ndarray, test: np.ndarray) -> str:
        rows = ["user_id,created_at,country,is_test_account"]
        w = plan.user_width
        for u in users.tolist():
            flag = true_spell[u] if test[u] else false_spell[u]
            rows.append(f"u-{u + 1:0{w}d},{created[u]},{COUNTRIES[countries[u]]},{flag}")
        return "\n".join(rows) + "\n"

    folder = landing / "users"
    old_name = f"users_{plan.start - timedelta(days=1)}.csv"
    new_name = f"users_{plan.day(plan.days - 1)}.csv"
    old_users = np.flatnonzero(world.pre)
    new_users = np.setdiff1d(np.arange(n), world.deleted)
    (folder / old_name).write_text(snapshot(old_users, old_country, old_test), encoding="ascii")
    (folder / new_name).write_text(snapshot(new_users, country, new_test), encoding="ascii")
    return [f"users: {old_name} ({len(old_users):,} users), {new_name} ({len(new_users):,} users)"]


def _random_active_day(rng: np.random.Generator, active: np.ndarray) -> np.ndarray:
    """For each row of a boolean (users x days) matrix with any True, one True column at random."""
    counts = active.sum(axis=1)
    k = (rng.random(len(active)) * counts).astype(np.int64)
    return np.argmax(np.cumsum(active, axis=1) > k[:, None], axis=1)


def write_subscriptions(
    landing: Path, plan: Plan, world: World, rng: np.random.Generator
) -> list[str]:
    """An append-only change log in several files, with re-exported (repeated) change ids."""
    n = plan.users
    start_s = plan.epoch_day0 * DAY_S
    has_sub = rng.random(n) >= NO_SUBSCRIPTION_SHARE
    has_sub[world.test] = True
    users, tiers, eff, late = [], [], [], []

    def add(idx: np.ndarray, tier: np.ndarray, when: np.ndarray, is_late: np.ndarray) -> None:
        users.append(idx)
        tiers.append(tier)
        eff.append(when)
        late.append(is_late)

    subs = np.flatnonzero(has_sub)
    tier = rng.choice(3, n, p=TIER_P)
    first = np.where(
        world.pre,
        np.minimum(world.created_s + rng.integers(60, 3 * DAY_S, n), start_s - 3600),
        world.created_s + rng.integers(60, 3600, n),
    )
    add(subs, tier[subs], first[subs], np.zeros(len(subs), bool))

    # Some changed tier before the experiment started.
    prior = subs[world.pre[subs] & (rng.random(len(subs)) < 0.2)]
    tier[prior] = (tier[prior] + rng.integers(1, 3, len(prior))) % 3
    when = first[prior] + (rng.random(len(prior)) * (start_s - DAY_S - first[prior])).astype(
        np.int64
    )
    add(prior, tier[prior], np.maximum(when, first[prior] + 60), np.zeros(len(prior), bool))

    # Changes during the experiment land on one of the user's active days, in the
    # daytime: exposures that day fall both before and after the change.
    movers_pool = subs[world.active[subs].any(axis=1)]
    movers = movers_pool[rng.random(len(movers_pool)) < WINDOW_TIER_CHANGE_SHARE]
    if len(movers) == 0 and len(movers_pool):
        movers = movers_pool[:1]
    day = _random_active_day(rng, world.active[movers])
    tier[movers] = (tier[movers] + rng.integers(1, 3, len(movers))) % 3
    when = start_s + day * DAY_S + rng.integers(6 * 3600, 22 * 3600, len(movers))
    add(movers, tier[movers], when, rng.random(len(movers)) < 0.05)
    again = (rng.random(len(movers)) < 0.15) & (day < plan.days - 1)
    m2, d2 = movers[again], day[again]
    d2 = d2 + 1 + (rng.random(len(m2)) * (plan.days - 1 - d2)).astype(np.int64)
    tier[m2] = (tier[m2] + rng.integers(1, 3, len(m2))) % 3
    add(
        m2,
        tier[m2],
        start_s + d2 * DAY_S + rng.integers(0, DAY_S, len(m2)),
        np.zeros(len(m2), bool),
    )

    u_all = np.concatenate(users)
    t_all = np.concatenate(tiers)
    e_all = np.concatenate(eff)
    l_all = np.concatenate(late)
    order = np.lexsort((u_all, e_all))
    u_all, t_all, e_all, l_all = u_all[order], t_all[order], e_all[order], l_all[order]
    when_text = _iso_seconds(e_all)
    w = plan.user_width
    rows = [
        f"sc-{i + 1:07d},u-{u + 1:0{w}d},{TIERS[t]},{when_text[i]}"
        for i, (u, t) in enumerate(zip(u_all.tolist(), t_all.tolist(), strict=True))
    ]

    # File k (dated F_k) holds changes effective after F_{k-1} up to the end of day F_k;
    # 5% of in-experiment changes arrive one file late.
    offsets = sorted({*range(0, plan.days, 7), plan.days - 1})
    eff_day = (e_all - start_s) // DAY_S
    file_idx = np.searchsorted(np.array(offsets), eff_day, side="left")
    file_idx = np.minimum(file_idx + l_all, len(offsets) - 1)
    folder = landing / "subscriptions"
    lines = []
    previous: list[str] = []
    for k, off in enumerate(offsets):
        own = [rows[i] for i in np.flatnonzero(file_idx == k).tolist()]
        # The exporter re-sends the tail of the previous file: repeated change ids.
        repeat = previous[-max(1, len(previous) // 100) :] if previous else []
        name = f"subscription_changes_{plan.day(off)}.csv"
        body = ["subscription_change_id,user_id,tier,effective_at", *repeat, *own]
        (folder / name).write_text("\n".join(body) + "\n", encoding="ascii")
        lines.append(f"subscriptions: {name} ({len(repeat) + len(own):,} changes)")
        previous = own or previous
    return lines
