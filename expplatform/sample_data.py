"""Deterministic sample landing zone: the money-vaults story, with every quirk of the contract.

:func:`generate_landing_zone` writes the four source folders of the data
contract (§2) for ``days`` arrival days from ``start``. Same arguments, same
bytes: all randomness comes from numpy generators seeded with ``seed`` (one
stream per arrival day), and files are rendered in a fixed order.

The story (offsets are days after ``start``; dates for the default start
2025-12-01 and ``days=30``):

* ``vault-launch`` (LaunchDarkly key ``vault-launch``, legacy key
  ``vault_launch``): variations ``control`` / ``treatment``, 50/50 by a hash of
  the user id. Runs from ``start`` for the whole sample (registry: start_date
  2025-12-01, empty end_date). The flag version is 7, then 8 from the
  LaunchDarkly-only cut-over.
* ``vault-onboarding-copy`` (LaunchDarkly ``vault-onboarding-copy``, legacy
  ``vault_onboarding_copy``): variations ``control`` / ``treatment_a`` /
  ``treatment_b``, 1/3 each by a hash of the user id. Runs from ``start`` to
  ``start + 19`` inclusive, whatever ``days`` is: **registry start_date
  2025-12-01, end_date 2025-12-20**. A few straggler evaluations (stale
  clients) still arrive on the two days after the end; they are no exposures.
* ``dark-mode`` / ``dark_mode``: an unregistered flag (variations ``off`` / ``on``).
* Migration (thirds of ``days``, floor): days ``[0, days//3)`` legacy only,
  ``[days//3, 2*days//3)`` both systems (each user moves to LaunchDarkly on their
  own day; 5% of users emit through both on the same day, always with the same
  variation), then LaunchDarkly only. Default: legacy 12-01..12-10, both
  12-11..12-20, LaunchDarkly only 12-21..12-30. Legacy folders exist only for
  the days the legacy system exported, LaunchDarkly folders from its first day.
* Users ``u-000001``..; snapshots ``users_<start-1>.csv`` (older) and
  ``users_<start+days-1>.csv`` (newest = truth). Subscription change logs
  ``subscription_changes_<date>.csv`` at ``start``, every 7 days, and the last day.

Quirks, in small proportions: retried LaunchDarkly and legacy event ids (same
file and re-delivered in the next arrival folder), retracted copies
(``is_active = "N"``; some before the original in the file, some in the next
folder), ``debug`` events, prerequisite evaluations (``prereqOf``), late
events (event time 1 or 2 days before the folder date, never more), about 1.5%
of users switching ``vault-launch`` variation once, odd variation spellings
(``" Treatment "``), tier changes during days with exposures, users without
subscription, test accounts spelled ``true``/``1``/``t`` (some only in the newest
snapshot, a few un-flagged in it), users missing from the newest snapshot, legacy
timestamps with ``Z``, ``+01:00``, ``+00:00`` or no offset, legacy booleans spelled
true/false/t/f/1/0/TRUE/True, and about 0.02% bad lines of every kind listed
in §2.5 (each kind at least once in a sample).

``events_per_day`` fixes the number of LaunchDarkly + legacy lines of every
arrival day (quirk lines included, within ~1%); by default it is about ten per
active user. Lines are rendered column-wise into byte templates with numpy
(no per-event Python), and files are compressed and written by two threads.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

__all__ = ["SampleSummary", "generate_landing_zone", "ONBOARDING_END_OFFSET_DAYS"]

SOURCE_FOLDERS = ("launchdarkly", "legacy", "users", "subscriptions")

DAY_MS = 86_400_000
DAY_S = 86_400
HOUR_MS = 3_600_000

LAUNCH, ONBOARDING, DARK = 0, 1, 2
LD_KEYS = ("vault-launch", "vault-onboarding-copy", "dark-mode")
LEGACY_KEYS = ("vault_launch", "vault_onboarding_copy", "dark_mode")
# Index 0 is the "off" variation of every flag: the legacy `value` is true for the others.
VARIATIONS = (("control", "treatment"), ("control", "treatment_a", "treatment_b"), ("off", "on"))
# The served LaunchDarkly value (raw JSON) per flag and variation.
LD_VALUES = (
    ("false", "true"),
    ('"Start saving"', '"Build your safety net"', '"Your money, vaulted"'),
    ("false", "true"),
)
LD_VERSIONS = (
    ("7", "8"),
    ("3", "3"),
    ("12", "12"),
)  # before / after the LaunchDarkly-only cut-over
LD_REASONS = (
    '{"kind": "RULE_MATCH", "inExperiment": true}',
    '{"kind": "FALLTHROUGH", "inExperiment": false}',
)
PREREQ_OF = ', "prereqOf": "vault-onboarding-copy"'

#: vault-onboarding-copy's last day is start + 19 days (2025-12-20 for the default start).
ONBOARDING_END_OFFSET_DAYS = 19
ONBOARDING_STRAGGLER_DAYS = 2

EVENTS_PER_ACTIVE_USER = 10
# Share of lines that are quirk copies (retries, retractions, debug, prerequisites):
# the base event count is scaled down by it so that events_per_day counts lines.
EXTRA_LINE_RATE = 0.015
LATE_1_DAY = 0.010
LATE_2_DAYS = 0.004
FLAG_SHARE_DARK = 0.10
FLAG_SHARE_ONBOARDING = 0.18
FLAG_SHARE_ONBOARDING_STRAGGLER = 0.004
PREREQ_RATE = 0.06  # of LaunchDarkly onboarding-copy evaluations
DEBUG_RATE = 0.003
RETRY_SAME_FOLDER = 0.004
RETRY_NEXT_FOLDER = 0.0015
RETRACT_SAME_FOLDER = 0.0015
RETRACT_NEXT_FOLDER = 0.0005
RETRACT_BEFORE_ORIGINAL = 0.2
ODD_NAME_RATE_LEGACY = 0.01
ODD_NAME_RATE_LD = 0.003
DUAL_SOURCE_USERS = 0.05
SWITCHER_USERS = 0.004
BAD_LINE_RATE = 0.0002
TEST_ACCOUNT_SHARE = 0.015
DELETED_USER_SHARE = 0.003
NO_SUBSCRIPTION_SHARE = 0.04
WINDOW_TIER_CHANGE_SHARE = 0.07

# UTC traffic by hour: quiet nights, a morning and a bigger evening peak.
_HOURLY = np.array(
    [1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 3.6, 3.3, 3.2]
    + [3.4, 3.2, 3.0, 3.0, 3.2, 3.6, 4.2, 4.6, 4.4, 3.6, 2.6, 1.6]
)
HOUR_P = _HOURLY / _HOURLY.sum()

LEGACY_TZ = ("Z", "+01:00", "", "+00:00")
LEGACY_TZ_P = (0.80, 0.10, 0.08, 0.02)
LEGACY_TZ_OFFSET_S = np.array([0, 3600, 0, 0], dtype=np.int64)
BOOL_SPELLINGS = (("false", "true"), ("f", "t"), ("0", "1"), ("FALSE", "TRUE"), ("False", "True"))
BOOL_SPELLING_P = (0.75, 0.10, 0.07, 0.05, 0.03)
DATE_PAD = 3  # legacy local dates may fall a day after the folder; late events up to 2 before

TIERS = ("standard", "plus", "premium")
TIER_P = (0.60, 0.28, 0.12)
COUNTRIES = ("GB", "DE", "FR", "ES", "IT", "NL", "IE", "PT", "PL", "SE")
COUNTRY_P = (0.30, 0.20, 0.14, 0.10, 0.08, 0.07, 0.04, 0.03, 0.02, 0.02)

LD_BAD_KINDS = (
    "not_json",
    "no_event_object",
    "missing_event_id",
    "missing_user",
    "creation_date_string",
    "creation_date_seconds",
    "creation_date_future",
)
LEGACY_BAD_KINDS = ("missing_id", "date_only_timestamp", "garbage_timestamp", "empty_user")
LEGACY_HEADER = b"id,user,timestamp,key,variation_name,value\n"

ROWS_PER_CHUNK = 1 << 16  # rendering chunk: ~25 MB of template bytes, cache- and memory-friendly
GZIP_LEVEL = 1  # the lines are very repetitive: level 1 is ~25x smaller and several times faster

Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class SampleSummary:
    """Counts of what :func:`generate_landing_zone` wrote (lines exclude CSV headers)."""

    landing_dir: Path
    start: date
    days: int
    users: int
    files: int
    launchdarkly_lines: int
    legacy_lines: int
    bad_lines: int

    def as_text(self) -> str:
        """A few human-readable lines for the CLI."""
        end = self.start + timedelta(days=self.days - 1)
        total = self.launchdarkly_lines + self.legacy_lines
        return "\n".join(
            [
                f"Sample landing zone in {self.landing_dir}",
                f"  arrival days : {self.start} .. {end} ({self.days} days), {self.users:,} users",
                f"  files        : {self.files:,}",
                f"  launchdarkly : {self.launchdarkly_lines:,} lines",
                f"  legacy       : {self.legacy_lines:,} lines",
                f"  bad lines    : {self.bad_lines:,} ({self.bad_lines / max(total, 1):.3%},"
                " rejected on load by design)",
            ]
        )


# --------------------------------------------------------------------------- rendering


_DIGITS4 = (((np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1])) % 10) + 48).astype(
    np.uint8
)


def _put_digits(out: np.ndarray, col: int, width: int, values: np.ndarray) -> None:
    """Write zero-padded decimal `values` into columns [col, col+width) of `out`, 4 digits a step."""
    v = values.astype(np.int64)
    end = col + width
    while width > 0:
        k = min(4, width)
        out[:, end - k : end] = _DIGITS4[v % 10_000][:, 4 - k :]
        v = v // 10_000
        end -= k
        width -= k


def _variant_table(strings: Sequence[str]) -> np.ndarray:
    """Strings as rows of a uint8 table, NUL-padded to the longest (NULs are dropped on render)."""
    encoded = [s.encode("ascii") for s in strings]
    table = np.zeros((len(encoded), max(1, max(len(b) for b in encoded))), dtype=np.uint8)
    for i, b in enumerate(encoded):
        table[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    return table


class _LineFormat:
    """A line layout rendered for many rows at once.

    Parts are constant text, ``("d", field, width)`` zero-padded numbers or
    ``("v", field, strings)`` picked per row by an index. Every row is first
    rendered at the maximum width (variants NUL-padded), then the NULs are
    squeezed out: the whole line set is built with a handful of vectorised
    numpy operations instead of per-row string formatting.
    """

    def __init__(self, parts: Iterable[str | tuple]) -> None:
        template = bytearray()
        self._digits: list[tuple[str, int, int]] = []
        self._variants: list[tuple[str, int, np.ndarray]] = []
        for part in parts:
            if isinstance(part, str):
                template += part.encode("ascii")
            elif part[0] == "d":
                _, name, width = part
                self._digits.append((name, len(template), width))
                template += b"0" * width
            else:
                _, name, strings = part
                table = _variant_table(strings)
                self._variants.append((name, len(template), table))
                template += bytes(table.shape[1])
        self._template = np.frombuffer(bytes(template), dtype=np.uint8)

    def render(self, fields: dict[str, np.ndarray], rows: int) -> np.ndarray:
        out = np.empty((rows, self._template.size), dtype=np.uint8)
        out[:] = self._template
        for name, col, width in self._digits:
            _put_digits(out, col, width, fields[name])
        for name, col, table in self._variants:
            out[:, col : col + table.shape[1]] = table[fields[name]]
        flat = out.reshape(-1)
        return flat[flat != 0]


def _csv_field(value: str) -> str:
    # Quote what a CSV reader could otherwise trim or split (the odd " Treatment ").
    if value != value.strip() or "," in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _name_spellings(name: str) -> list[str]:
    """The canonical name first, then odd spellings (index = the `odd` code 1..4)."""
    cap = name.capitalize()
    if "_" in name:  # treatment_a -> Treatment_A
        cap = cap[:-1] + cap[-1].upper()
    return [name, cap, f" {cap} ", name.upper(), f"{name} "]


def _variation_name_table(csv: bool) -> list[str]:
    # Index = (flag * 3 + variation) * 5 + odd.
    table: list[str] = []
    for names in VARIATIONS:
        for var in range(3):
            for odd in range(5):
                s = _name_spellings(names[var])[odd] if var < len(names) else ""
                table.append(_csv_field(s) if csv else s)
    return table


@dataclass(frozen=True)
class _Plan:
    """Derived constants of one generation run."""

    start: date
    days: int
    users: int
    legacy_end: int  # first day without legacy export (exclusive)
    ld_start: int  # first day with LaunchDarkly events
    epoch_day0: int
    user_width: int

    @property
    def ld_days(self) -> range:
        return range(self.ld_start, self.days)

    @property
    def legacy_days(self) -> range:
        return range(0, self.legacy_end)

    def day(self, d: int) -> date:
        return self.start + timedelta(days=d)


def _ld_format(plan: _Plan) -> _LineFormat:
    vnames = _variation_name_table(csv=False)
    values = [LD_VALUES[f][v] if v < len(LD_VALUES[f]) else "" for f in range(3) for v in range(3)]
    versions = [ver for pair in LD_VERSIONS for ver in pair]
    return _LineFormat(
        [
            '{"event_id": "ld-',
            ("d", "id", 10),
            '", "is_active": "',
            ("v", "active", ["Y", "N"]),
            '", "project": "default", "environment": "production", "event": {"kind": "',
            ("v", "kind", ["feature", "debug"]),
            '", "creationDate": ',
            ("d", "creation", 13),
            ', "key": "',
            ("v", "flag", LD_KEYS),
            '", "version": ',
            ("v", "version", versions),
            ', "contextKeys": {"user": "u-',
            ("d", "user", plan.user_width),
            '"}, "variation": ',
            ("d", "var", 1),
            ', "variationName": "',
            ("v", "vname", vnames),
            '", "value": ',
            ("v", "value", values),
            ', "default": false, "reason": ',
            ("v", "reason", LD_REASONS),
            ("v", "prereq", ["", PREREQ_OF]),
            "}}\n",
        ]
    )


def _ld_fields(rows: Batch, plan: _Plan) -> dict[str, np.ndarray]:
    ev_day = rows["ev_day"].astype(np.int64)
    flag = rows["flag"].astype(np.intp)
    var = rows["var"].astype(np.intp)
    return {
        "id": rows["id"],
        "active": rows["active"],
        "kind": rows["kind"],
        "creation": (plan.epoch_day0 + ev_day) * DAY_MS + rows["ms"],
        "flag": flag,
        "version": flag * 2 + (ev_day >= plan.legacy_end),
        "user": rows["user"].astype(np.int64) + 1,
        "var": var,
        "vname": (flag * 3 + var) * 5 + rows["odd"],
        "value": flag * 3 + var,
        "reason": (flag == DARK).astype(np.intp),
        "prereq": rows["prereq"],
    }


def _legacy_format(plan: _Plan) -> _LineFormat:
    dates = [
        (plan.start + timedelta(days=k - DATE_PAD)).isoformat()
        for k in range(plan.days + 2 * DATE_PAD)
    ]
    spellings = [pair[0] for pair in BOOL_SPELLINGS] + [pair[1] for pair in BOOL_SPELLINGS]
    return _LineFormat(
        [
            "lg-",
            ("d", "id", 10),
            ",u-",
            ("d", "user", plan.user_width),
            ",",
            ("v", "date", dates),
            "T",
            ("d", "hh", 2),
            ":",
            ("d", "mi", 2),
            ":",
            ("d", "ss", 2),
            ("v", "tz", LEGACY_TZ),
            ",",
            ("v", "flag", LEGACY_KEYS),
            ",",
            ("v", "vname", _variation_name_table(csv=True)),
            ",",
            ("v", "value", spellings),
            "\n",
        ]
    )


def _legacy_fields(rows: Batch, plan: _Plan) -> dict[str, np.ndarray]:
    # The clock written is local time for the row's offset (+01:00 shows UTC + 1 h).
    tz = rows["tz"].astype(np.intp)
    local = rows["ms"] // 1000 + LEGACY_TZ_OFFSET_S[tz]
    flag = rows["flag"].astype(np.intp)
    var = rows["var"].astype(np.intp)
    sod = local % DAY_S
    return {
        "id": rows["id"],
        "user": rows["user"].astype(np.int64) + 1,
        "date": rows["ev_day"].astype(np.int64) + local // DAY_S + DATE_PAD,
        "hh": sod // 3600,
        "mi": sod // 60 % 60,
        "ss": sod % 60,
        "tz": tz,
        "flag": flag,
        "vname": (flag * 3 + var) * 5 + rows["odd"],
        "value": (var != 0) * len(BOOL_SPELLINGS) + rows["spell"],
    }


# --------------------------------------------------------------------------- batches


def _take(batch: Batch, index: np.ndarray | slice) -> Batch:
    if isinstance(index, np.ndarray) and index.dtype == bool and index.all():
        return dict(batch)  # nothing filtered out: skip copying millions of rows
    return {k: v[index] for k, v in batch.items()}


def _concat(batches: Sequence[Batch]) -> Batch:
    keys = batches[0].keys()
    return {k: np.concatenate([b[k] for b in batches]) for k in keys}


def _size(batch: Batch) -> int:
    return len(batch["order"])


def _pick(rng: np.random.Generator, rate: float, eligible: np.ndarray) -> np.ndarray:
    """Eligible rows selected with probability `rate`, but at least one when any is eligible.

    The floor makes every quirk appear in every folder even at test scale; at
    real scale it changes nothing.
    """
    mask = eligible & (rng.random(len(eligible)) < rate)
    if not mask.any() and eligible.any():
        candidates = np.flatnonzero(eligible)
        mask[candidates[rng.integers(0, len(candidates))]] = True
    return mask


def _merge_sorted(base: Batch, extra: Batch) -> Batch:
    """`base` (sorted by order) merged with a few `extra` rows; on ties base rows come first.

    Equal to a stable sort of the concatenation, without sorting the millions of base rows.
    """
    extra = _take(extra, np.argsort(extra["order"], kind="stable"))
    n, k = _size(base), _size(extra)
    at = np.searchsorted(base["order"], extra["order"], side="right") + np.arange(k)
    is_extra = np.zeros(n + k, dtype=bool)
    is_extra[at] = True
    out: Batch = {}
    for key, col in base.items():
        merged = np.empty(n + k, dtype=col.dtype)
        merged[at] = extra[key]
        merged[~is_extra] = col
        out[key] = merged
    return out


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


# --------------------------------------------------------------------------- users


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


class _World:
    """Per-user facts fixed for the whole sample (activity, assignment, migration, flags)."""

    def __init__(self, rng: np.random.Generator, plan: _Plan) -> None:
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
        base = self.var[LAUNCH][users]
        return np.where(ev_day >= self.switch_day[users], 1 - base, base).astype(np.int8)


def _iso_seconds(seconds: np.ndarray) -> list[str]:
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    return [f"{t}Z" for t in text]


def _write_users(landing: Path, plan: _Plan, world: _World, rng: np.random.Generator) -> list[str]:
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


def _write_subscriptions(
    landing: Path, plan: _Plan, world: _World, rng: np.random.Generator
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


# --------------------------------------------------------------------------- events


def _simulate_day(
    d: int, rng: np.random.Generator, plan: _Plan, world: _World, events_per_day: int | None
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
    ld = _take(base, ~legacy)
    m = _size(ld)
    ld["active"] = np.zeros(m, np.int8)
    ld["kind"] = np.zeros(m, np.int8)
    ld["prereq"] = np.zeros(m, np.int8)
    # onboarding-copy has vault-launch as a prerequisite: LD also reports that evaluation.
    pre = _take(ld, _pick(rng, PREREQ_RATE, ld["flag"] == ONBOARDING))
    pre["flag"] = np.full(_size(pre), LAUNCH, np.int8)
    pre["var"] = world.launch_var(pre["user"], pre["ev_day"])
    pre["odd"] = np.zeros(_size(pre), np.int8)
    pre["prereq"] = np.ones(_size(pre), np.int8)
    debug = _take(ld, _pick(rng, DEBUG_RATE, np.ones(m, bool)))
    debug["kind"] = np.ones(_size(debug), np.int8)
    ld = _merge_sorted(ld, _concat([pre, debug]))

    lg = _take(base, legacy)
    k = _size(lg)
    lg["tz"] = rng.choice(len(LEGACY_TZ), k, p=LEGACY_TZ_P).astype(np.int8)
    lg["spell"] = rng.choice(len(BOOL_SPELLINGS), k, p=BOOL_SPELLING_P).astype(np.int8)
    return ld, lg


def _finalize(
    new: Batch,
    rng: np.random.Generator,
    d: int,
    first_id: int,
    carry_in: Batch | None,
    carry_next: bool,
    retractions: bool,
) -> tuple[Batch, Batch | None, int]:
    """Give ids, add retried/retracted copies and last day's re-deliveries, order by arrival."""
    uniq = new  # already in arrival order
    n = _size(uniq)
    uniq["id"] = first_id + np.arange(n, dtype=np.int64)
    parts = []

    dup = _take(uniq, _pick(rng, RETRY_SAME_FOLDER, np.ones(n, bool)))
    dup["order"] = np.minimum(dup["order"] + rng.integers(1_000, 600_000, _size(dup)), DAY_MS - 1)
    parts.append(dup)
    if retractions:
        ret = _take(uniq, _pick(rng, RETRACT_SAME_FOLDER, uniq["kind"] == 0))
        k = _size(ret)
        ret["active"] = np.ones(k, np.int8)
        delay = rng.integers(60_000, 6 * HOUR_MS, k)
        before = rng.random(k) < RETRACT_BEFORE_ORIGINAL
        ret["order"] = np.clip(
            np.where(before, ret["order"] - delay, ret["order"] + delay), 0, DAY_MS - 1
        )
        parts.append(ret)

    carry_out = None
    if carry_next:
        # Re-deliveries go to the next folder only for on-time events: one day late at most.
        on_time = uniq["ev_day"] == d
        carried = [_take(uniq, _pick(rng, RETRY_NEXT_FOLDER, on_time))]
        if retractions:
            ret = _take(uniq, _pick(rng, RETRACT_NEXT_FOLDER, on_time & (uniq["kind"] == 0)))
            ret["active"] = np.ones(_size(ret), np.int8)
            carried.append(ret)
        carry_out = _concat(carried)
        carry_out["order"] = rng.integers(0, 4 * HOUR_MS, _size(carry_out))
    if carry_in is not None:
        parts.append(carry_in)
    return _merge_sorted(uniq, _concat(parts)), carry_out, first_id + n


def _ld_bad_line(
    kind: str, variant: int, rng: np.random.Generator, plan: _Plan, d: int, eid: int
) -> str:
    user = int(rng.integers(0, plan.users))
    created = (plan.epoch_day0 + d) * DAY_MS + int(rng.integers(0, DAY_MS))
    var = int(rng.integers(0, 2))
    event: dict[str, object] = {
        "kind": "feature",
        "creationDate": created,
        "key": "vault-launch",
        "version": 7,
        "contextKeys": {"user": f"u-{user + 1:0{plan.user_width}d}"},
        "variation": var,
        "variationName": VARIATIONS[LAUNCH][var],
        "value": bool(var),
        "default": False,
        "reason": {"kind": "RULE_MATCH", "inExperiment": True},
    }
    obj: dict[str, object] = {
        "event_id": f"ld-{eid:010d}",
        "is_active": "Y",
        "project": "default",
        "environment": "production",
        "event": event,
    }
    if kind == "not_json":
        text = json.dumps(obj)
        return text[: int(rng.integers(20, len(text) - 20))]  # a truncated write
    if kind == "no_event_object":
        del obj["event"]
    elif kind == "missing_event_id":
        if variant % 3 == 0:
            del obj["event_id"]
        else:
            obj["event_id"] = None if variant % 3 == 1 else ""
    elif kind == "missing_user":
        event["contextKeys"] = [{}, {"user": None}, {"user": ""}][variant % 3]
    elif kind == "creation_date_string":
        event["creationDate"] = np.datetime_as_string(np.datetime64(created, "ms"), unit="s") + "Z"
    elif kind == "creation_date_seconds":
        event["creationDate"] = created // 1000
    elif kind == "creation_date_future":
        event["creationDate"] = created + 3653 * DAY_MS  # a device clock ten years ahead
    return json.dumps(obj)


def _legacy_bad_line(
    kind: str, variant: int, rng: np.random.Generator, plan: _Plan, d: int, eid: int
) -> str:
    user = int(rng.integers(0, plan.users))
    secs = (plan.epoch_day0 + d) * DAY_S + int(rng.integers(0, DAY_S))
    ts = np.datetime_as_string(np.datetime64(secs, "s"), unit="s") + "Z"
    var = int(rng.integers(0, 2))
    row = [
        f"lg-{eid:010d}",
        f"u-{user + 1:0{plan.user_width}d}",
        ts,
        "vault_launch",
        VARIATIONS[LAUNCH][var],
        "true" if var else "false",
    ]
    if kind == "missing_id":
        row[0] = ""
    elif kind == "date_only_timestamp":
        row[2] = ts[:10]
    elif kind == "garbage_timestamp":
        row[2] = ["N/A", "2025-13-45T25:61:00Z", "#VALUE!", "tomorrow"][variant % 4]
    elif kind == "empty_user":
        row[1] = ""
    return ",".join(row)


def _bad_lines(
    kinds: Sequence[str],
    forced: Sequence[str],
    make: Callable[[str, int, np.random.Generator, _Plan, int, int], str],
    rng: np.random.Generator,
    plan: _Plan,
    d: int,
    n_lines: int,
    first_id: int,
    variants: dict[str, int],
) -> list[tuple[int, bytes]]:
    """(position, line) pairs: Poisson-many random kinds plus the kinds forced on this day."""
    picked = [kinds[i] for i in rng.integers(0, len(kinds), rng.poisson(n_lines * BAD_LINE_RATE))]
    picked += list(forced)
    positions = np.sort(rng.integers(0, n_lines + 1, len(picked)))
    out = []
    for i, (pos, kind) in enumerate(zip(positions.tolist(), picked, strict=True)):
        variants[kind] = variants.get(kind, -1) + 1
        line = make(kind, variants[kind], rng, plan, d, first_id + i)
        out.append((pos, (line + "\n").encode("ascii")))
    return out


def _forced_kinds(kinds: Sequence[str], days: range) -> dict[int, list[str]]:
    """Spread one line of every bad kind over the source's days (so each kind always exists)."""
    forced: dict[int, list[str]] = {}
    if len(days):
        for i, kind in enumerate(kinds):
            forced.setdefault(days[i * len(days) // len(kinds)], []).append(kind)
    return forced


def _write_file(
    path: Path,
    fmt: _LineFormat,
    fields: Callable[[Batch], dict[str, np.ndarray]],
    rows: Batch,
    inserts: Sequence[tuple[int, bytes]],
    header: bytes,
    compress: bool,
) -> None:
    n = _size(rows)
    by_pos: dict[int, list[bytes]] = {}
    for pos, line in inserts:
        by_pos.setdefault(pos, []).append(line)
    cuts = sorted({*range(0, n, ROWS_PER_CHUNK), n, *by_pos})
    with open(path, "wb") as fh:
        comp = (
            zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if compress else None
        )  # 31: gzip, mtime 0

        def sink(data: bytes | np.ndarray) -> None:
            fh.write(comp.compress(data) if comp is not None else data)

        if header:
            sink(header)
        prev = 0
        for cut in cuts:
            if cut > prev:
                sink(fmt.render(fields(_take(rows, slice(prev, cut))), cut - prev))
            for line in by_pos.get(cut, ()):
                sink(line)
            prev = cut
        if comp is not None:
            fh.write(comp.flush())


@dataclass(frozen=True)
class _Source:
    """How one event source is rendered and which of its quirks apply."""

    name: str  # landing folder and progress label
    days: range  # arrival days on which the source delivers
    suffix: str
    header: bytes
    fmt: _LineFormat
    fields: Callable[[Batch], dict[str, np.ndarray]]
    bad_kinds: Sequence[str]
    bad_line: Callable[[str, int, np.random.Generator, _Plan, int, int], str]
    retractions: bool  # only LaunchDarkly has is_active
    compress: bool


def _submit_files(
    pool: ThreadPoolExecutor,
    source: _Source,
    folder: Path,
    files_per_day: int,
    lines: Batch,
    bad: Sequence[tuple[int, bytes]],
) -> list[Future]:
    """Split a folder's lines into part files and queue them for writing."""
    folder.mkdir(parents=True, exist_ok=True)
    f = files_per_day
    # Parts are consecutive slices of the arrival day (like the exporter's batches).
    bounds = np.searchsorted(lines["order"], [k * DAY_MS // f for k in range(f)] + [DAY_MS])
    bounds[0], bounds[-1] = 0, _size(lines)
    owner = np.searchsorted(bounds[1:-1], [p for p, _ in bad], side="right")
    futures = []
    for k in range(f):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        inserts = [(p - lo, line) for (p, line), o in zip(bad, owner, strict=True) if o == k]
        futures.append(
            pool.submit(
                _write_file,
                folder / f"part-{k:03d}{source.suffix}",
                source.fmt,
                source.fields,
                _take(lines, slice(lo, hi)),
                inserts,
                source.header,
                source.compress,
            )
        )
    return futures


def _reset_sources(landing: Path) -> None:
    """Remove the previous sample: only the four source folders, nothing else in landing_dir."""
    for name in SOURCE_FOLDERS:
        path = landing / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        path.mkdir(parents=True)


def generate_landing_zone(
    landing_dir: Path,
    *,
    start: date,
    days: int = 30,
    users: int = 20_000,
    seed: int = 42,
    events_per_day: int | None = None,
    files_per_day: int = 1,
    compress: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SampleSummary:
    """Write a deterministic sample landing zone (contract §2) and return what was written.

    The four source folders under `landing_dir` are replaced; nothing else is
    touched. `events_per_day` (LaunchDarkly + legacy lines per arrival day)
    overrides the default of about ten events per active user and day;
    `files_per_day` splits each daily folder into that many parts;
    `compress` writes LaunchDarkly parts as ``.jsonl.gz``.
    """
    if days < 1 or users < 1 or files_per_day < 1:
        raise ValueError("days, users and files_per_day must be at least 1")
    if events_per_day is not None and events_per_day < 0:
        raise ValueError("events_per_day must be >= 0")
    report = progress or (lambda _line: None)
    landing = Path(landing_dir)
    plan = _Plan(
        start=start,
        days=days,
        users=users,
        legacy_end=2 * days // 3,
        ld_start=days // 3,
        epoch_day0=(start - date(1970, 1, 1)).days,
        user_width=max(6, len(str(users))),
    )
    _reset_sources(landing)
    world = _World(np.random.default_rng([seed, 1]), plan)
    for line in _write_users(landing, plan, world, np.random.default_rng([seed, 2])):
        report(line)
    for line in _write_subscriptions(landing, plan, world, np.random.default_rng([seed, 3])):
        report(line)
    files = 2 + len(list((landing / "subscriptions").iterdir()))

    sources = (
        _Source(
            name="launchdarkly",
            days=plan.ld_days,
            suffix=".jsonl.gz" if compress else ".jsonl",
            header=b"",
            fmt=_ld_format(plan),
            fields=lambda rows: _ld_fields(rows, plan),
            bad_kinds=LD_BAD_KINDS,
            bad_line=_ld_bad_line,
            retractions=True,
            compress=compress,
        ),
        _Source(
            name="legacy",
            days=plan.legacy_days,
            suffix=".csv",  # the contract's legacy export is plain CSV
            header=LEGACY_HEADER,
            fmt=_legacy_format(plan),
            fields=lambda rows: _legacy_fields(rows, plan),
            bad_kinds=LEGACY_BAD_KINDS,
            bad_line=_legacy_bad_line,
            retractions=False,
            compress=False,
        ),
    )
    forced = [_forced_kinds(src.bad_kinds, src.days) for src in sources]
    variants: dict[str, int] = {}
    next_id = [1, 1]
    carry: list[Batch | None] = [None, None]
    lines_written = [0, 0]
    bad_written = 0

    with ThreadPoolExecutor(max_workers=2) as pool:
        inflight: list[tuple[int, str, list[Future]]] = []

        def drain(before_day: int) -> None:
            # Waiting for older days bounds memory: at most ~two days of rows are alive.
            while inflight and inflight[0][0] < before_day:
                _, message, futures = inflight.pop(0)
                for fut in futures:
                    fut.result()
                report(message)

        for d in range(days):
            rng = np.random.default_rng([seed, 4, d])
            new_rows = _simulate_day(d, rng, plan, world, events_per_day)
            for i, src in enumerate(sources):
                if d not in src.days:
                    continue
                lines, carry[i], next_id[i] = _finalize(
                    new_rows[i], rng, d, next_id[i], carry[i], d + 1 in src.days, src.retractions
                )
                n = _size(lines)
                bad = _bad_lines(
                    src.bad_kinds, forced[i].get(d, []), src.bad_line, rng, plan, d, n,
                    next_id[i], variants,
                )  # fmt: skip
                next_id[i] += len(bad)
                folder = landing / src.name / f"date={plan.day(d)}"
                futures = _submit_files(pool, src, folder, files_per_day, lines, bad)
                lines_written[i] += n + len(bad)
                bad_written += len(bad)
                files += files_per_day
                message = (
                    f"{src.name} {folder.name}: {n + len(bad):,} lines in {files_per_day} file(s)"
                )
                inflight.append((d, message, futures))
            drain(before_day=d - 1)
        drain(before_day=days)

    return SampleSummary(
        landing_dir=landing,
        start=start,
        days=days,
        users=users,
        files=files,
        launchdarkly_lines=lines_written[0],
        legacy_lines=lines_written[1],
        bad_lines=bad_written,
    )
