"""What every command shares: exit codes, error output, argument types, progress on stderr.

Results go to stdout (tables, CSV, JSON, summaries a script may parse); progress, waits and
errors go to stderr. Exit codes (README, "The command"):

- 0: done;
- 1: the work ran and failed (a run failed, the soak found differences, a comparison differed);
- 2: the command could not start (bad arguments, configuration, missing input);
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date

from expplatform.config import ConfigError, parse_date

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def err(message: str) -> int:
    """Print an error on stderr; returns the usage/configuration exit code."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def note(message: str) -> None:
    """A progress or status line on stderr."""
    print(message, file=sys.stderr, flush=True)


def date_arg(what: str) -> Callable[[str], date]:
    def parse(value: str) -> date:
        try:
            return parse_date(value, what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {n}")
    return n


class ProgressBar:
    """A progress bar on stderr: redrawn in place on a terminal, a line per step otherwise.

    `update(done, label)` moves it; `close()` ends the line. On a pipe or a log file (CI) it
    prints a line only when the label changes, so logs stay readable.
    """

    def __init__(self, total: int, what: str, *, width: int = 28, stream=None) -> None:
        self.total = max(total, 1)
        self.what = what
        self.width = width
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_label: str | None = None

    def update(self, done: int, label: str = "") -> None:
        done = min(max(done, 0), self.total)
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = round(self.width * done / self.total)
            bar = "█" * filled + "·" * (self.width - filled)
            line = f"\r{self.what} [{bar}] {done}/{self.total} {elapsed:5.1f}s {label[:40]:<40}"
            self.stream.write(line)
            self.stream.flush()
        elif label != self._last_label:
            self.stream.write(f"{self.what} {done}/{self.total} {elapsed:.1f}s {label}\n")
            self.stream.flush()
        self._last_label = label

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
