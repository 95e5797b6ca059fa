"""A small static web server for the health pages and the dbt docs, on 127.0.0.1 by default.

It serves one folder (EXPPLATFORM_PAGES_DIR, default `data/pages`): `index.html` and
`experiments/<key>.html` written by :func:`expplatform.health.write_health_pages`, and
`dbt-docs/index.html` written by :mod:`expplatform.health.dbt_docs`. The port is
EXPPLATFORM_PAGES_PORT (default 3001, next to the Dagster UI's 3000).

The standard library's http.server is enough: the pages are static files read by a
handful of people, and it adds no dependency. Pages are replaced by rename, so a
request never sees half a file; responses say `no-cache` so a reload shows the
newest build.
"""

from __future__ import annotations

import functools
import html
import os
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from expplatform.config import ConfigError, get_settings

DEFAULT_HOST = "127.0.0.1"


def pages_dir_from_env() -> Path:
    """EXPPLATFORM_PAGES_DIR (expplatform.config), relative paths resolved from the project root."""
    return get_settings().pages


def pages_port_from_env() -> int:
    """EXPPLATFORM_PAGES_PORT (default 3001); a ConfigError names a bad value."""
    port = get_settings().pages_port
    if not 0 <= port <= 65535:
        raise ConfigError(f"EXPPLATFORM_PAGES_PORT must be between 0 and 65535, got {port}")
    return port


NO_PAGES_YET = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Experiment health</title></head><body style="font-family: sans-serif; margin: 2em">
<h1>Experiment health</h1>
<p>No health pages yet in <code>{folder}</code>. They are written after each successful run;
materialize a partition (<code>expplatform materialize</code>) or write them by hand with
<code>python -m expplatform.health render</code>.</p>
<p><a href="dbt-docs/">dbt docs</a> (if built: <code>make docs</code>)</p></body></html>
"""


class PagesHandler(SimpleHTTPRequestHandler):
    """Static files of the pages folder; a helpful page at `/` before any page exists."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def list_directory(self, path: str) -> None:
        # A directory without index.html: explain at the root, refuse listings elsewhere.
        if Path(path).resolve() == Path(self.directory).resolve():
            body = NO_PAGES_YET.format(folder=html.escape(str(self.directory))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        self.send_error(404, "No index.html in this folder")
        return None

    def log_message(self, format: str, *args: object) -> None:
        # One short line per request on stderr; quiet enough next to Dagster's own output.
        sys.stderr.write(f"pages: {self.address_string()} {format % args}\n")


class PagesServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a reader hangs up early."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # reset, broken pipe: the reader left
            return
        super().handle_error(request, client_address)


def make_server(directory: Path, port: int = 3001, host: str = DEFAULT_HOST) -> PagesServer:
    """A server for `directory` bound to host:port (port 0 picks a free one; see server_port).

    Creates the folder if needed. Raises OSError with an actionable message when the
    port is taken.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(PagesHandler, directory=str(directory))
    try:
        server = PagesServer((host, port), handler)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot serve the health pages on {host}:{port} ({exc.strerror}); "
            "is another server running? Choose another port with EXPPLATFORM_PAGES_PORT "
            "or --port",
        ) from None
    return server


def _exit_with_parent(parent_pid: int) -> None:
    # `make run` starts the server in the background: if the shell that started it dies
    # without killing it (SIGKILL, closed terminal), do not linger on the port.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def serve(
    directory: Path | None = None,
    port: int | None = None,
    host: str = DEFAULT_HOST,
    *,
    exit_with_parent: bool = False,
) -> None:
    """Serve the pages folder until interrupted, printing where (defaults from the environment)."""
    directory = Path(directory) if directory is not None else pages_dir_from_env()
    port = pages_port_from_env() if port is None else port
    server = make_server(directory, port, host)
    base = f"http://{host}:{server.server_port}"
    print(f"Health pages: {base}/  (folder {directory})", flush=True)
    print(f"dbt docs:     {base}/dbt-docs/", flush=True)
    if exit_with_parent:
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
