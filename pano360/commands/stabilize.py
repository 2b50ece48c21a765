"""`pano360 stabilize` (not implemented yet)."""

from __future__ import annotations

from pano360.errors import Pano360Error


def command() -> None:
    """Not implemented yet."""
    raise Pano360Error("pano360 stabilize is not implemented yet")
