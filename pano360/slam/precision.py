"""How precisely KLT places each tracked point: its window's structure tensor, as residual weights.

KLT solves ``G d = e`` with ``G = sum [gx gx, gx gy; gx gy, gy gy]`` over its window, so with image
noise its position error has a covariance proportional to ``G^-1``. A point on an edge (a
shoreline, a horizon, ripples on water) is pinned across the edge and hardly along it, and a faint
corner less than a contrasty one. Counted alike, the along-edge errors (0.3-0.5 px, in the
direction the camera pans) tilt and scale the rotation fitted to a few dozen such points.
Weighting each residual by ``G`` (least squares on ``r^T G r``) lets every point count as much as
it knows, in the directions it knows: against the true rotations, the keyframe links' mean error
drops 1.3-1.9x on five of six rendered clean clips (docs/bench_track.md, "Session 7").

The weights are scaled by their median (a typical point weighs as the identity), so residuals stay
in about pixels for the robust losses; the smaller eigenvalue is kept at least 1 % of the larger,
so that an edge still says a little along itself and no weight matrix is singular.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = ["point_information", "whitening", "whiten"]

MIN_EIG_RATIO = 0.01
ROUND = np.array([1.0, 0.0, 1.0])  # the identity, as (wxx, wxy, wyy)


def point_information(gray: np.ndarray, pts: np.ndarray, win: int) -> np.ndarray:
    """Structure tensors ``(n, 3)`` as ``(gxx, gxy, gyy)`` (intensity^2 units) of the ``win x win``
    windows of an 8-bit image ``gray`` centred on ``pts (n, 2)`` (3x3 Sobel gradients / 8)."""
    pts = np.asarray(pts, np.float32).reshape(-1, 2)
    if not len(pts):
        return np.zeros((0, 3), np.float32)
    h, w = gray.shape
    r = win // 2 + 1  # the window and the Sobel kernel's reach
    # Only the points' own patches: a whole-frame Sobel and box filter cost 7 ms, these 0.2 ms.
    padded = cv2.copyMakeBorder(gray, r, r, r, r, cv2.BORDER_REFLECT_101).astype(np.float32)
    x = np.clip(np.rint(pts[:, 0]).astype(np.int64), 0, w - 1)
    y = np.clip(np.rint(pts[:, 1]).astype(np.int64), 0, h - 1)
    offs = np.arange(2 * r + 1)
    P = padded[y[:, None, None] + offs[None, :, None], x[:, None, None] + offs[None, None, :]]
    dx = P[:, :, 2:] - P[:, :, :-2]
    dy = P[:, 2:, :] - P[:, :-2, :]
    gx = (dx[:, :-2] + 2.0 * dx[:, 1:-1] + dx[:, 2:]) * 0.125
    gy = (dy[:, :, :-2] + 2.0 * dy[:, :, 1:-1] + dy[:, :, 2:]) * 0.125
    g = np.stack([(gx * gx).sum((1, 2)), (gx * gy).sum((1, 2)), (gy * gy).sum((1, 2))], 1).astype(np.float64)
    # Eigenvalues are half +- rad; lift both so that the smaller is at least the ratio of the larger.
    half = 0.5 * (g[:, 0] + g[:, 2])
    rad = np.sqrt((0.5 * (g[:, 0] - g[:, 2])) ** 2 + g[:, 1] ** 2)
    lift = np.maximum(1e-3, (MIN_EIG_RATIO * (half + rad) - (half - rad)) / (1.0 - MIN_EIG_RATIO))
    g[:, 0] += lift
    g[:, 2] += lift
    return g.astype(np.float32)


def whitening(infos: Sequence[np.ndarray | None], sizes: Sequence[int]) -> np.ndarray:
    """Upper-triangular ``U (n, 2, 2)``, ``U^T U = W``, for the groups of ``sizes`` points whose
    tensors ``(k, 3)`` are in ``infos`` (None: not known, weighed as a typical point): ``U r`` is
    a residual ``r`` whose squared norm is ``r^T W r``, ``W`` the tensor over the median of all
    known tensors' mean eigenvalue."""
    known = [i for i in infos if i is not None and len(i)]
    if known:
        g = np.concatenate(known)
        scale = float(np.median(0.5 * (g[:, 0] + g[:, 2])))
    else:
        scale = 1.0
    info = np.concatenate([np.broadcast_to(ROUND * scale, (k, 3)) if i is None else np.asarray(i, np.float64).reshape(-1, 3)
                           for i, k in zip(infos, sizes)] + [np.zeros((0, 3))]) / max(scale, 1e-12)
    a, b, c = info[:, 0], info[:, 1], info[:, 2]
    sa = np.sqrt(a)
    U = np.zeros((len(info), 2, 2))
    U[:, 0, 0] = sa
    U[:, 0, 1] = b / sa
    U[:, 1, 1] = np.sqrt(np.maximum(c - b * b / a, 0.0))
    return U


def whiten(U: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``U @ v`` for :func:`whitening`'s ``U (n, 2, 2)`` and ``v (n, 2)`` or ``(n, 2, k)``, elementwise
    (numpy's batched 2x2 products cost more than the rest of a residual evaluation)."""
    u00, u01, u11 = (U[:, 0, 0], U[:, 0, 1], U[:, 1, 1]) if v.ndim == 2 else (U[:, 0, 0, None], U[:, 0, 1, None], U[:, 1, 1, None])
    return np.stack([u00 * v[:, 0] + u01 * v[:, 1], u11 * v[:, 1]], axis=1)
