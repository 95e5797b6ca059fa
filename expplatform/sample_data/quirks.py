"""The quirks added on top of the clean events: retried and retracted copies, bad lines.

:func:`finalize` gives a day's events their ids and adds the retries (same
folder and re-delivered in the next one) and retractions (``is_active = "N"``,
LaunchDarkly only); :func:`bad_lines` adds the malformed lines of contract
§2.5, each kind at least once in a sample (:func:`forced_kinds`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from expplatform.sample_data.batches import Batch, concat, merge_sorted, pick, size, take
from expplatform.sample_data.story import (
    BAD_LINE_RATE,
    DAY_MS,
    DAY_S,
    HOUR_MS,
    LAUNCH,
    RETRACT_BEFORE_ORIGINAL,
    RETRACT_NEXT_FOLDER,
    RETRACT_SAME_FOLDER,
    RETRY_NEXT_FOLDER,
    RETRY_SAME_FOLDER,
    VARIATIONS,
    Plan,
)

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


def finalize(
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
    n = size(uniq)
    uniq["id"] = first_id + np.arange(n, dtype=np.int64)
    parts = []

    dup = take(uniq, pick(rng, RETRY_SAME_FOLDER, np.ones(n, bool)))
    dup["order"] = np.minimum(dup["order"] + rng.integers(1_000, 600_000, size(dup)), DAY_MS - 1)
    parts.append(dup)
    if retractions:
        ret = take(uniq, pick(rng, RETRACT_SAME_FOLDER, uniq["kind"] == 0))
        k = size(ret)
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
        carried = [take(uniq, pick(rng, RETRY_NEXT_FOLDER, on_time))]
        if retractions:
            ret = take(uniq, pick(rng, RETRACT_NEXT_FOLDER, on_time & (uniq["kind"] == 0)))
            ret["active"] = np.ones(size(ret), np.int8)
            carried.append(ret)
        carry_out = concat(carried)
        carry_out["order"] = rng.integers(0, 4 * HOUR_MS, size(carry_out))
    if carry_in is not None:
        parts.append(carry_in)
    return merge_sorted(uniq, concat(parts)), carry_out, first_id + n


def ld_bad_line(
    kind: str, variant: int, rng: np.random.Generator, plan: Plan, d: int, eid: int
) -> str:
    """One malformed LaunchDarkly line of `kind` (`variant` cycles through its spellings)."""
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


def legacy_bad_line(
    kind: str, variant: int, rng: np.random.Generator, plan: Plan, d: int, eid: int
) -> str:
    """One malformed legacy CSV row of `kind` (`variant` cycles through its spellings)."""
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


def bad_lines(
    kinds: Sequence[str],
    forced: Sequence[str],
    make: Callable[[str, int, np.random.Generator, Plan, int, int], str],
    rng: np.random.Generator,
    plan: Plan,
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


def forced_kinds(kinds: Sequence[str], days: range) -> dict[int, list[str]]:
    """Spread one line of every bad kind over the source's days (so each kind always exists)."""
    forced: dict[int, list[str]] = {}
    if len(days):
        for i, kind in enumerate(kinds):
            forced.setdefault(days[i * len(days) // len(kinds)], []).append(kind)
    return forced
