"""The one error type a command turns into a one-line message and an exit code."""

from __future__ import annotations


class Pano360Error(Exception):
    """A failure the user can act on: printed as one line on stderr, exit code 1."""

    exit_code = 1


class UsageError(Pano360Error):
    """Bad flags or arguments (what click calls a usage error): exit code 2."""

    exit_code = 2
