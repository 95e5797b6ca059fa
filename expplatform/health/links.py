"""Where the health pages are: file names and URLs (no rendering here, so alerts and asset
metadata can link to a page without importing the page builder and plotly)."""

from __future__ import annotations

import hashlib
import re


def page_filename(experiment_key: str) -> str:
    """A safe file name for an experiment's page; distinct keys never share a name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", experiment_key).lstrip(".") or "_"
    if safe != experiment_key:
        safe += "-" + hashlib.sha1(experiment_key.encode()).hexdigest()[:8]
    return f"{safe}.html"


def page_path(experiment_key: str | None = None) -> str:
    """An experiment's page under the pages folder (what :func:`write_health_pages` writes);
    the index for none."""
    return f"experiments/{page_filename(experiment_key)}" if experiment_key else "index.html"


def page_url(pages_url: str, experiment_key: str | None = None) -> str:
    """The address of an experiment's page (or of the index) on the page server."""
    return f"{pages_url.rstrip('/')}/{page_path(experiment_key)}"
