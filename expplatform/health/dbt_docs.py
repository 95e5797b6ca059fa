"""Build the dbt docs as one static page into the pages folder (`<pages>/dbt-docs/index.html`).

`dbt docs generate --static` writes `static_index.html`, a single file embedding the
manifest and the catalog (no network when viewed; test_dbt_docs.py proves it), so the
page server needs nothing more than that file. dbt runs with a throw-away target folder
(dbt leaves build output there) and the page replaces the old one by rename.

The catalog (column types) is read from the warehouse, which DuckDB lets only one
process open: build the docs when no Dagster run is writing (`make run` does it before
starting Dagster). Without a warehouse yet, the docs are built without a catalog (against a
scratch database: dbt connects even then).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from expplatform.config import get_settings
from expplatform.sources import DEFAULT_REGISTRY
from expplatform.transform.project import dbt_command
from expplatform.warehouse import LOCK_MARKERS


def build_dbt_docs(pages_dir: Path, *, timeout_seconds: float = 600.0) -> Path:
    """Run `dbt docs generate --static` and install the page as `<pages_dir>/dbt-docs/index.html`.

    Returns the page's path. Raises RuntimeError with the end of dbt's output when dbt fails
    (for instance while a run holds the warehouse).
    """
    settings = get_settings()
    out = Path(pages_dir) / "dbt-docs"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="expplatform-dbt-docs-") as tmp:
        command = dbt_command(
            settings, DEFAULT_REGISTRY, "docs", "generate", "--static",
            "--target-path", str(Path(tmp) / "target"), "--log-path", str(Path(tmp) / "logs"),
        )  # fmt: skip
        env = {**os.environ, **settings.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        if not settings.duckdb_path.exists():
            # dbt needs a database to connect to even for an empty catalog; give it a scratch
            # one rather than creating an empty warehouse where the real one will be.
            env["EXPPLATFORM_DUCKDB_PATH"] = str(Path(tmp) / "empty.duckdb")
            command.append("--empty-catalog")
        result = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
        page = Path(tmp) / "target" / "static_index.html"
        if result.returncode != 0 or not page.is_file():
            output = result.stdout + result.stderr
            hint = (
                f" (a Dagster run holds the warehouse {settings.duckdb_path}: retry after it)"
                if any(marker in output.lower() for marker in LOCK_MARKERS)
                else ""
            )
            raise RuntimeError(
                f"dbt docs generate failed (exit {result.returncode}){hint}:\n{output[-3000:]}"
            )
        staged = out / f".index.html.{os.getpid()}.tmp"
        shutil.copyfile(page, staged)
        os.replace(staged, out / "index.html")
    return out / "index.html"
