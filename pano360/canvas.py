"""The Canvas: one world-aligned ERP frame and the mask of its real (seen) pixels; the layout of a
packed 4:2:0 frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Canvas", "yuv420_planes"]


@dataclass
class Canvas:
    """An ERP frame ``rgb (H, 2H, 3) uint8`` and ``mask (H, 2H) bool`` (True marks a real pixel).

    ``time_s`` is the presentation time of the input frame it came from.
    """

    rgb: np.ndarray
    mask: np.ndarray
    time_s: float = 0.0

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.shape[1] != 2 * self.rgb.shape[0]:
            raise ValueError(f"Canvas rgb must be (H, 2H, 3), got {self.rgb.shape}")
        if self.mask.shape != self.rgb.shape[:2]:
            raise ValueError(f"Canvas mask must be {self.rgb.shape[:2]}, got {self.mask.shape}")

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def yuv420_planes(packed: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views ``y (H, W)``, ``u, v (H/2, W/2)`` of a packed yuv420p frame ``(H * 3 / 2, W)``
    (Y, then U, then V, as ``VideoWriter.write_yuv420`` takes it); writing a view writes the frame."""
    w = packed.shape[1]
    if packed.shape != (height * 3 // 2, w) or height % 2 or w % 2 or not packed.flags.c_contiguous:
        raise ValueError(f"packed 4:2:0 frame must be contiguous ({height * 3 // 2}, W) with even sizes, got {packed.shape}")
    flat = packed.reshape(-1)
    n, c = w * height, (w // 2) * (height // 2)
    return packed[:height], flat[n:n + c].reshape(height // 2, w // 2), flat[n + c:].reshape(height // 2, w // 2)
