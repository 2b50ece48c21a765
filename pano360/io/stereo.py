"""Stereo 360 layouts: which part of a frame holds the left eye."""

from __future__ import annotations

import numpy as np

__all__ = ["STEREO_MODES", "split_eye"]

STEREO_MODES = ("none", "top-bottom", "left-right")


def split_eye(rgb: np.ndarray, stereo: str) -> np.ndarray:
    """The left eye of a stereo frame ``(h, w, ...)``: the top half (top-bottom), the left half
    (left-right), or the frame itself (``"none"``). A view, not a copy.

    >>> split_eye(np.zeros((4, 8, 3), np.uint8), "top-bottom").shape
    (2, 8, 3)
    """
    if stereo == "none":
        return rgb
    if stereo == "top-bottom":
        return rgb[: rgb.shape[0] // 2]
    if stereo == "left-right":
        return rgb[:, : rgb.shape[1] // 2]
    raise ValueError(f"stereo must be one of {', '.join(STEREO_MODES)}, got {stereo!r}")
