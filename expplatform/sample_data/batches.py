"""Column batches: a day's events as a dict of equally long numpy arrays, and their helpers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Batch = dict[str, np.ndarray]


def take(batch: Batch, index: np.ndarray | slice) -> Batch:
    """The rows of `batch` selected by `index` (a mask, indices or a slice)."""
    if isinstance(index, np.ndarray) and index.dtype == bool and index.all():
        return dict(batch)  # nothing filtered out: skip copying millions of rows
    return {k: v[index] for k, v in batch.items()}


def concat(batches: Sequence[Batch]) -> Batch:
    """The batches one after the other (same columns)."""
    keys = batches[0].keys()
    return {k: np.concatenate([b[k] for b in batches]) for k in keys}


def size(batch: Batch) -> int:
    """Number of rows of `batch`."""
    return len(batch["order"])


def pick(rng: np.random.Generator, rate: float, eligible: np.ndarray) -> np.ndarray:
    """Eligible rows selected with probability `rate`, but at least one when any is eligible.

    The floor makes every quirk appear in every folder even at test scale; at
    real scale it changes nothing.
    """
    mask = eligible & (rng.random(len(eligible)) < rate)
    if not mask.any() and eligible.any():
        candidates = np.flatnonzero(eligible)
        mask[candidates[rng.integers(0, len(candidates))]] = True
    return mask


def merge_sorted(base: Batch, extra: Batch) -> Batch:
    """`base` (sorted by order) merged with a few `extra` rows; on ties base rows come first.

    Equal to a stable sort of the concatenation, without sorting the millions of base rows.
    """
    extra = take(extra, np.argsort(extra["order"], kind="stable"))
    n, k = size(base), size(extra)
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
