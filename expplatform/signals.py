"""Interrupt signals a process must not inherit as ignored.

A shell without job control starts a background command (`cmd &` in a script, some CI
runners) with SIGINT ignored. Dagster maps SIGTERM to SIGINT's handler when it runs a job
(``dagster._utils.interrupts``), so SIGTERM becomes ignored as well, and every process the run
starts inherits both: the compute-log ``tail -F`` of each step then survives Dagster's
``terminate()`` at the step's end and keeps the command's stdout open forever (a caller reading
it to its end waits for ever; seen in CI). Entry points call :func:`restore_interrupts` first.
"""

from __future__ import annotations

import signal
import threading


def restore_interrupts() -> None:
    """Give SIGINT (KeyboardInterrupt) and SIGTERM their defaults back if they were ignored.

    Only the main thread may set handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
