"""Experiment health pages: self-contained HTML per experiment, and the server that shows them.

- :func:`render_health_page` — one experiment's page (a string of HTML) from a serving copy.
- :func:`write_health_pages` — every experiment's page plus `index.html` into a folder.
- :mod:`expplatform.health.server` — serves that folder (and the dbt docs) on 127.0.0.1.
- :mod:`expplatform.health.dbt_docs` — builds the dbt docs into `<folder>/dbt-docs/`.
- ``python -m expplatform.health --help`` — the same from the shell.
"""

from expplatform.health.data import ServingCopyError, load_snapshot, serving_path_from_env
from expplatform.health.links import page_filename, page_path, page_url
from expplatform.health.page import (
    render_experiment,
    render_health_page,
    render_index,
    write_health_pages,
)

__all__ = [
    "ServingCopyError",
    "load_snapshot",
    "page_filename",
    "page_path",
    "page_url",
    "render_experiment",
    "render_health_page",
    "render_index",
    "serving_path_from_env",
    "write_health_pages",
]
