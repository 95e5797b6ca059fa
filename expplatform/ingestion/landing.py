"""The landing zone (contract §2): where each source's files are and which ones count.

A daily source has one folder per arrival date, `date=YYYY-MM-DD`. Files whose
name starts with `.` or `_` are ignored: writers use such names for files
still being written (`.part-0.jsonl.tmp`) and markers (`_SUCCESS`).
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

from expplatform.sources import (  # noqa: F401 - re-exported for the loaders
    DEFAULT_REGISTRY,
    LAUNCHDARKLY,
    LEGACY,
    SUBSCRIPTIONS,
    USERS,
    Source,
)

DATE_FOLDER_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


# The sources themselves are declared once, in the registry (expplatform/sources.py).
SourceSpec = Source
SOURCES = DEFAULT_REGISTRY.sources


class LandingZoneError(RuntimeError):
    """The landing zone itself is missing or unusable; the message says what to do."""


def check_landing_dir(landing_dir: Path) -> None:
    """Fail with an actionable message when the landing zone does not exist."""
    if not landing_dir.is_dir():
        raise LandingZoneError(
            f"landing zone {landing_dir} does not exist. Point EXPPLATFORM_LANDING_DIR at the "
            "folder holding launchdarkly/, legacy/, users/ and subscriptions/, or create a sample "
            "with `expplatform sample-data`."
        )


def is_data_file(path: Path, spec: SourceSpec) -> bool:
    """Whether `path` is a file of `spec` that a load reads."""
    name = path.name
    return (
        path.is_file()
        and not name.startswith((".", "_"))
        and any(name.endswith(suffix) for suffix in spec.suffixes)
    )


def partition_folder(landing_dir: Path, spec: SourceSpec, load_date: date) -> Path:
    """The arrival folder of a daily source for `load_date`."""
    return landing_dir / spec.folder / f"date={load_date.isoformat()}"


def list_files(folder: Path, spec: SourceSpec) -> list[Path]:
    """The data files of a folder, sorted by name so every load reads them in the same order."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if is_data_file(p, spec)), key=lambda p: p.name)


def arrival_dates(landing_dir: Path, spec: SourceSpec) -> list[date]:
    """Every arrival date that has a folder for a daily source, sorted."""
    root = landing_dir / spec.folder
    if not root.is_dir():
        return []
    found = []
    for entry in os.scandir(root):
        match = DATE_FOLDER_RE.match(entry.name)
        if match and entry.is_dir():
            try:
                found.append(date.fromisoformat(match.group(1)))
            except ValueError:
                continue  # date=2025-13-45 is not a partition; ignored like any stray folder
    return sorted(found)


def relative_name(path: Path, landing_dir: Path) -> str:
    """A file's name relative to the landing zone (what `_source_file` records)."""
    try:
        return path.relative_to(landing_dir).as_posix()
    except ValueError:
        return path.as_posix()
