"""The one error type a command turns into a one-line message and an exit code."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class Pano360Error(Exception):
    """A failure the user can act on: printed as one line on stderr, exit code 1."""

    exit_code = 1


class UsageError(Pano360Error):
    """Bad flags or arguments (what click calls a usage error): exit code 2."""

    exit_code = 2


@contextmanager
def temporary_disk(what: str) -> Iterator[None]:
    """Turn an OSError from a temporary file (a full or unwritable TMPDIR) into one clear line:
    which disk, while doing what, and how to point the work elsewhere."""
    try:
        yield
    except OSError as exc:
        import tempfile

        raise Pano360Error(f"temporary disk full or unwritable while {what} ({tempfile.gettempdir()}: "
                           f"{exc.strerror or exc}); set TMPDIR to a folder with room") from None
