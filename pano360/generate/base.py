"""The interface both fill backends implement."""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol

import numpy as np

from pano360.canvas import Canvas

__all__ = ["FillBackend"]


class FillBackend(Protocol):
    """Turns a stream of world-aligned masked ERP canvases into full ERP frames.

    ``fill`` takes canvases in presentation order and yields one ``(H, 2H, 3) uint8`` RGB frame
    per canvas, in the same order, with every masked-True pixel unchanged. A backend may read
    ahead (the Wan backend works in windows of frames), but memory must not grow with clip length.
    """

    name: str

    def fill(self, canvases: Iterable[Canvas]) -> Iterator[np.ndarray]:
        ...
