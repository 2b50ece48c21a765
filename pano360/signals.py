"""Stop signals that unwind like Ctrl-C, so that every half-written output is removed on the way out."""

from __future__ import annotations

import signal

__all__ = ["Terminated", "install_signal_handlers"]


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
