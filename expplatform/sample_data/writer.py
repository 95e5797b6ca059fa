"""Writing the event files: part files per folder, rendered in chunks, compressed by threads."""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expplatform.sample_data.batches import Batch, size, take
from expplatform.sample_data.formats import LineFormat
from expplatform.sample_data.story import DAY_MS, Plan

SOURCE_FOLDERS = ("launchdarkly", "legacy", "users", "subscriptions")

ROWS_PER_CHUNK = 1 << 16  # rendering chunk: ~25 MB of template bytes, cache- and memory-friendly
GZIP_LEVEL = 1  # the lines are very repetitive: level 1 is ~25x smaller and several times faster


def _write_file(
    path: Path,
    fmt: LineFormat,
    fields: Callable[[Batch], dict[str, np.ndarray]],
    rows: Batch,
    inserts: Sequence[tuple[int, bytes]],
    header: bytes,
    compress: bool,
) -> None:
    n = size(rows)
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
                sink(fmt.render(fields(take(rows, slice(prev, cut))), cut - prev))
            for line in by_pos.get(cut, ()):
                sink(line)
            prev = cut
        if comp is not None:
            fh.write(comp.flush())


@dataclass(frozen=True)
class Source:
    """How one event source is rendered and which of its quirks apply."""

    name: str  # landing folder and progress label
    days: range  # arrival days on which the source delivers
    suffix: str
    header: bytes
    fmt: LineFormat
    fields: Callable[[Batch], dict[str, np.ndarray]]
    bad_kinds: Sequence[str]
    bad_line: Callable[[str, int, np.random.Generator, Plan, int, int], str]
    retractions: bool  # only LaunchDarkly has is_active
    compress: bool


def submit_files(
    pool: ThreadPoolExecutor,
    source: Source,
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
    bounds[0], bounds[-1] = 0, size(lines)
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
                take(lines, slice(lo, hi)),
                inserts,
                source.header,
                source.compress,
            )
        )
    return futures


def reset_sources(landing: Path) -> None:
    """Remove the previous sample: only the four source folders, nothing else in landing_dir."""
    for name in SOURCE_FOLDERS:
        path = landing / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        path.mkdir(parents=True)
