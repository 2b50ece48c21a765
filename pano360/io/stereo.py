"""Stereo 360 layouts: which part of a frame holds the left eye."""

from __future__ import annotations

import numpy as np

__all__ = ["STEREO_MODES", "split_eye", "split_eye_yuv420"]

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


def split_eye_yuv420(y: np.ndarray, u: np.ndarray, v: np.ndarray, stereo: str,
                     eye: str = "left") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One eye of a stereo frame's 4:2:0 planes (views, so an output frame's eyes can be written
    through them): luma and chroma cut at the same place, the eye's size kept even so that its
    chroma is exactly half its luma. The left eye is the top (top-bottom) or left (left-right) half.

    >>> [p.shape for p in split_eye_yuv420(np.zeros((1080, 1920)), np.zeros((540, 960)), np.zeros((540, 960)), "top-bottom")]
    [(540, 1920), (270, 960), (270, 960)]
    """
    if eye not in ("left", "right"):
        raise ValueError(f"eye must be 'left' or 'right', got {eye!r}")
    if stereo == "none":
        return y, u, v
    if stereo == "top-bottom":
        h = (y.shape[0] // 2) & ~1
        rows, crows = (slice(0, h), slice(0, h // 2)) if eye == "left" else (slice(h, 2 * h), slice(h // 2, h))
        return y[rows], u[crows], v[crows]
    if stereo == "left-right":
        w = (y.shape[1] // 2) & ~1
        cols, ccols = (slice(0, w), slice(0, w // 2)) if eye == "left" else (slice(w, 2 * w), slice(w // 2, w))
        return y[:, cols], u[:, ccols], v[:, ccols]
    raise ValueError(f"stereo must be one of {', '.join(STEREO_MODES)}, got {stereo!r}")
