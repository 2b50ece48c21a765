"""Stop signals that unwind like Ctrl-C, so that every half-written output is removed on the way out."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["STOP_SIGNALS", "Terminated", "held_stop_signals", "install_signal_handlers"]

# The signals that stop a command: Ctrl-C, kill (SIGTERM), a closed terminal (SIGHUP).
STOP_SIGNALS = frozenset(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so every half-written output is removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """Make SIGTERM (``kill``, a render farm's stop) and SIGHUP (a closed terminal) unwind the
    command as Ctrl-C does, instead of ending the process where it stands with its temp files."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _raise_terminated)


@contextmanager
def held_stop_signals() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP back meanwhile; one that arrives is handled on the way out.

    Around making a temporary file and taking charge of it: a stop in between (a test sends it the
    moment the file appears, and a loaded machine may pause the process right there) left the file
    behind, since nothing was yet there to remove it. Python handlers run in the main thread only,
    so elsewhere this holds nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def hold(signum: int, _frame) -> None:
        arrived.append(signum)

    old = {s: signal.signal(s, hold) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if arrived:  # handled now, inside the caller's cleanup
            handler = old[arrived[0]]
            if callable(handler):
                handler(arrived[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(arrived[0])
