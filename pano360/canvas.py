"""The Canvas: one world-aligned ERP frame and the mask of its real (seen) pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Canvas"]


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
