"""The landing zone of a scale, generated once into the bench cache and reused."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np

from expplatform.bench.options import BenchScale, Progress
from expplatform.config import PROJECT_ROOT

SAMPLE_DATA_PACKAGE = PROJECT_ROOT / "expplatform" / "sample_data"


def folder_bytes(path: Path) -> int:
    """Total size of the files under `path` (or of the file itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _sha(path: Path) -> str:
    """A short hash of a file, or of every .py file of a package (names and bytes)."""
    digest = hashlib.sha256()
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def ensure_landing(scale: BenchScale, cache_dir: Path, progress: Progress) -> tuple[Path, dict]:
    """The cached landing zone of `scale` (generated on first use); returns (path, summary).

    A marker file records the scale, a hash of the generator and the numpy
    version (numpy does not promise the same random streams across releases):
    a landing zone written by another generator or numpy is regenerated.
    """
    from expplatform.sample_data import generate_landing_zone

    folder = cache_dir / scale.key()
    marker = folder / "bench-landing.json"
    generator = _sha(SAMPLE_DATA_PACKAGE)
    if marker.exists():
        meta = json.loads(marker.read_text())
        if meta.get("generator_sha") == generator and meta.get("numpy") == np.__version__:
            progress(f"landing zone: cached in {folder}")
            return folder / "landing", meta
        progress("landing zone: generator or numpy changed since it was cached, regenerating")
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    per_day = "default" if scale.events_per_day is None else f"{scale.events_per_day:,}"
    progress(
        f"landing zone: generating {scale.days} days x {per_day} events/day, "
        f"{scale.users:,} users into {folder}"
    )
    started = time.monotonic()
    summary = generate_landing_zone(
        staging / "landing",
        start=scale.start,
        days=scale.days,
        users=scale.users,
        seed=scale.seed,
        events_per_day=scale.events_per_day,
        files_per_day=scale.files_per_day,
        compress=scale.compress,
    )
    meta = {
        "scale": {**asdict(scale), "start": scale.start.isoformat()},
        "generator_sha": generator,
        "numpy": np.__version__,
        "generated_s": round(time.monotonic() - started, 1),
        "files": summary.files,
        "launchdarkly_lines": summary.launchdarkly_lines,
        "legacy_lines": summary.legacy_lines,
        "event_lines": summary.launchdarkly_lines + summary.legacy_lines,
        "bad_lines": summary.bad_lines,
        "bytes": folder_bytes(staging / "landing"),
    }
    (staging / "bench-landing.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    progress(f"landing zone: {meta['event_lines']:,} event lines in {meta['generated_s']} s")
    return folder / "landing", meta


def day_event_lines(landing: Path, day: date) -> int:
    """LaunchDarkly + legacy lines that arrived on `day` (CSV headers not counted).

    Counted from the files, as the loaders see them (names starting with ``.`` or ``_``
    are skipped), so a figure per event does not depend on the pipeline's own metadata.
    """
    total = 0
    for source in ("launchdarkly", "legacy"):
        folder = landing / source / f"date={day.isoformat()}"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith((".", "_")):
                continue
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as fh:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
            total += lines - (1 if source == "legacy" and lines else 0)
    return total
