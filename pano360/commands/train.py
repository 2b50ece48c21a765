"""`pano360 train` (not implemented yet)."""

from __future__ import annotations

from pano360.errors import Pano360Error


def command() -> None:
    """Not implemented yet."""
    raise Pano360Error("pano360 train is not implemented yet")
