"""One result from the parts of a run made separately (``--sections`` then ``--merge``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from expplatform.bench.options import SECTIONS
from expplatform.bench.report import markdown_report
from expplatform.bench.split import daily_split
from expplatform.bench.targets import evaluate_targets

#: Which keys of a result each part writes.
SECTION_KEYS = {
    "bare": ("bare",),
    "backfill": ("backfill", "dashboard", "storage"),
    "daily": ("daily",),
    "single": ("single", "single_landing"),
}


def merge_results(paths: Sequence[Path], results_dir: Path) -> tuple[dict[str, Any], Path]:
    """Combine results of one scale run in parts (``--sections``) into one result and report.

    Later files win for a part they both hold; the equivalence check is kept
    only from a file that ran C and A together. Writes
    ``<results_dir>/<timestamp>-merged.json`` (and ``.md``).
    """
    parts = [json.loads(Path(p).read_text()) for p in paths]
    scales = {json.dumps(p["scale"], sort_keys=True) for p in parts}
    if len(scales) != 1:
        raise ValueError("these results are of different scales: they cannot be merged")
    merged: dict[str, Any] = {}
    for key in ("quick", "scale", "settings", "machine", "landing"):
        # the last part that has it (a part that ran only E has no main landing zone)
        holders = [part[key] for part in parts if key in part]
        if holders:
            merged[key] = holders[-1]
    merged["timestamp"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    merged["merged_from"] = [str(p) for p in paths]
    merged["errors"] = {}
    for part in parts:
        for section in part.get("sections", SECTIONS):
            for key in SECTION_KEYS[section]:
                if key in part:
                    merged[key] = part[key]
            if section in part.get("errors", {}):
                merged["errors"][section] = part["errors"][section]
        if "equivalence" in part:
            merged["equivalence"] = part["equivalence"]
    merged["complete"] = all(p.get("complete") for p in parts)
    merged["daily_split"] = daily_split(merged)
    merged["targets"] = evaluate_targets(merged)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{merged['timestamp']}-merged.json"
    path.write_text(json.dumps(merged, indent=2, default=str))
    path.with_suffix(".md").write_text(markdown_report(merged))
    return merged, path
