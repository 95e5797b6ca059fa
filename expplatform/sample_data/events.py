"""A day's new events: who is active, when events arrive, which flag, source and variation.

The clean events only, without ids: the quirk copies are added by
:mod:`~expplatform.sample_data.quirks`.
"""

from __future__ import annotations

import numpy as np

from expplatform.sample_data.batches import Batch, concat, merge_sorted, pick, size, take
from expplatform.sample_data.population import World
from expplatform.sample_data.story import (
    BOOL_SPELLING_P,
    BOOL_SPELLINGS,
    DARK,
    DAY_MS,
    DEBUG_RATE,
    EVENTS_PER_ACTIVE_USER,
    EXTRA_LINE_RATE,
    FLAG_SHARE_DARK,
    FLAG_SHARE_ONBOARDING,
    FLAG_SHARE_ONBOARDING_STRAGGLER,
    HOUR_MS,
    HOUR_P,
    LATE_1_DAY,
    LATE_2_DAYS,
    LAUNCH,
    LEGACY_TZ,
    LEGACY_TZ_P,
    ODD_NAME_RATE_LD,
    ODD_NAME_RATE_LEGACY,
    ONBOARDING,
    ONBOARDING_END_OFFSET_DAYS,
    ONBOARDING_STRAGGLER_DAYS,
    PREREQ_RATE,
    Plan,
)


def _sorted_arrivals(rng: np.random.Generator, n: int) -> np.ndarray:
    """n arrival times (ms of day) in increasing order, following the hourly traffic curve.

    Within an hour, normalised cumulative sums of exponential gaps are the order
    statistics of uniform times: sorted without sorting.
    """
    out = np.empty(n, dtype=np.int64)
    pos = 0
    for hour, count in enumerate(rng.multinomial(n, HOUR_P).tolist()):
        gaps = np.cumsum(rng.exponential(1.0, count + 1))
        out[pos : pos + count] = hour * HOUR_MS + (gaps[:-1] * (HOUR_MS / gaps[-1])).astype(
            np.int64
        )
        pos += count
    return out


def simulate_day(
    d: int, rng: np.random.Generator, plan: Plan, world: World, events_per_day: int | None
) -> tuple[Batch, Batch]:
    """The new (unique) events that arrive on day d: (LaunchDarkly rows, legacy rows), no ids yet."""
    active = np.flatnonzero(world.active[:, d])
    if events_per_day is None:
        n_base = EVENTS_PER_ACTIVE_USER * len(active)
    else:
        n_base = round(events_per_day / (1 + EXTRA_LINE_RATE))
    if len(active) == 0:
        n_base = 0
    w = world.weight[active]
    # Multinomial counts per user, then shuffled into the (sorted) arrival times:
    # much faster than drawing n weighted choices.
    counts = rng.multinomial(n_base, w / w.sum()) if n_base else np.zeros(len(active), np.int64)
    user = np.repeat(active, counts).astype(np.int32)
    rng.shuffle(user)
    n = len(user)
    arrival = _sorted_arrivals(rng, n)
    r = rng.random(n)
    late = np.minimum(np.where(r < LATE_1_DAY, 1, np.where(r < LATE_1_DAY + LATE_2_DAYS, 2, 0)), d)
    ev_day = d - late
    ms = np.where(late > 0, rng.integers(0, DAY_MS, n), arrival)

    legacy = ev_day < world.migrate_day[user]
    dual = world.dual[user] & (ev_day >= plan.ld_start) & (ev_day < plan.legacy_end)
    legacy = np.where(dual, rng.random(n) < 0.5, legacy)
    if d >= plan.legacy_end:
        # The legacy system no longer exports: its would-be late events become on-time LD events.
        fix = legacy
        ev_day = np.where(fix, d, ev_day)
        ms = np.where(fix, arrival, ms)
        legacy = np.zeros(n, dtype=bool)

    onb_p = np.where(
        ev_day <= ONBOARDING_END_OFFSET_DAYS,
        FLAG_SHARE_ONBOARDING,
        np.where(
            ev_day <= ONBOARDING_END_OFFSET_DAYS + ONBOARDING_STRAGGLER_DAYS,
            FLAG_SHARE_ONBOARDING_STRAGGLER,
            0.0,
        ),
    )
    r = rng.random(n)
    flag = np.where(
        r < FLAG_SHARE_DARK, DARK, np.where(r < FLAG_SHARE_DARK + onb_p, ONBOARDING, LAUNCH)
    ).astype(np.int8)
    var = world.var[flag, user]
    var = np.where(flag == LAUNCH, world.launch_var(user, ev_day), var).astype(np.int8)
    odd_rate = np.where(legacy, ODD_NAME_RATE_LEGACY, ODD_NAME_RATE_LD)
    odd = np.where((rng.random(n) < odd_rate) & (flag != DARK), rng.integers(1, 5, n), 0).astype(
        np.int8
    )

    base: Batch = {
        "order": arrival,
        "user": user,
        "ev_day": ev_day.astype(np.int16),
        "ms": ms,
        "flag": flag,
        "var": var,
        "odd": odd,
    }
    ld = take(base, ~legacy)
    m = size(ld)
    ld["active"] = np.zeros(m, np.int8)
    ld["kind"] = np.zeros(m, np.int8)
    ld["prereq"] = np.zeros(m, np.int8)
    # onboarding-copy has vault-launch as a prerequisite: LD also reports that evaluation.
    pre = take(ld, pick(rng, PREREQ_RATE, ld["flag"] == ONBOARDING))
    pre["flag"] = np.full(size(pre), LAUNCH, np.int8)
    pre["var"] = world.launch_var(pre["user"], pre["ev_day"])
    pre["odd"] = np.zeros(size(pre), np.int8)
    pre["prereq"] = np.ones(size(pre), np.int8)
    debug = take(ld, pick(rng, DEBUG_RATE, np.ones(m, bool)))
    debug["kind"] = np.ones(size(debug), np.int8)
    ld = merge_sorted(ld, concat([pre, debug]))

    lg = take(base, legacy)
    k = size(lg)
    lg["tz"] = rng.choice(len(LEGACY_TZ), k, p=LEGACY_TZ_P).astype(np.int8)
    lg["spell"] = rng.choice(len(BOOL_SPELLINGS), k, p=BOOL_SPELLING_P).astype(np.int8)
    return ld, lg
