"""Fill the never-seen part of an ERP image smoothly on the sphere (push-pull pyramid fill).

The pyramid is built on the ERP with spherical padding, so the fill is continuous across the
+-180 deg seam (columns wrap) and over the poles (the row above row 0 is row 0 rolled by W/2,
as py360convert's ``_pad`` does). Near the poles, where an ERP row is a small circle, the fill is
averaged along the row over a width growing as 1/cos(latitude), so a pole is one colour, not
a fan of stripes.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["pad_sphere", "spherical_fill"]


def pad_sphere(img: np.ndarray, p: int) -> np.ndarray:
    """Pad an ERP ``(H, W, ...)`` by ``p`` pixels: columns wrap, rows continue over the poles.

    >>> import numpy as np
    >>> e = np.arange(8.0).reshape(2, 4)
    >>> pad_sphere(e, 1)[0].tolist()   # above row 0: row 0 seen from the other side, wrapped
    [1.0, 2.0, 3.0, 0.0, 1.0, 2.0]
    """
    if p <= 0:
        return img
    h, w = img.shape[:2]
    if p > h or p > w:
        raise ValueError(f"pad {p} too large for a {w}x{h} ERP")
    half = w // 2
    top = np.roll(img[:p][::-1], half, axis=1)
    bottom = np.roll(img[h - p:][::-1], half, axis=1)
    tall = np.concatenate([top, img, bottom], axis=0)
    return np.concatenate([tall[:, w - p:], tall, tall[:, :p]], axis=1)


def _down(img: np.ndarray) -> np.ndarray:
    """Gaussian 2x reduction with spherical borders (``img`` H and W even)."""
    out = cv2.pyrDown(pad_sphere(img, 2))
    return out[1:-1, 1:-1]


def _up(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Gaussian 2x expansion with spherical borders to ``shape`` = (H, W)."""
    out = cv2.pyrUp(pad_sphere(img, 1))
    return out[2:2 + shape[0], 2:2 + shape[1]]


def _polar_row_blur(img: np.ndarray, base_px: float) -> np.ndarray:
    """Average each row circularly over ``base_px / cos(latitude)`` pixels (the whole row at a pole)."""
    h, w = img.shape[:2]
    lat = (0.5 - (np.arange(h) + 0.5) / h) * np.pi
    widths = np.minimum(w, np.round(base_px / np.maximum(np.cos(lat), 1e-6))).astype(int)
    out = img.copy()
    for v in np.flatnonzero(widths > 2):
        k = int(widths[v])
        row = img[v]
        if k >= w:
            out[v] = row.mean(axis=0)
            continue
        ext = np.concatenate([row[w - k // 2:], row, row[:k - k // 2]], axis=0)
        c = np.cumsum(np.concatenate([np.zeros((1,) + row.shape[1:], row.dtype), ext], axis=0), axis=0)
        out[v] = (c[k:k + w] - c[:w]) / k
    return out


def spherical_fill(rgb: np.ndarray, weight: np.ndarray, polar_px: float | None = None) -> np.ndarray:
    """Fill where ``weight`` is 0 from where it is positive; returns ``(H, W, 3) float32``.

    ``rgb (H, W, 3)`` (any numeric dtype) is an ERP image, ``weight (H, W)`` in [0, 1] says how
    much each pixel is known (1 = keep exactly). H and W should be divisible by a power of two
    (ERP sizes like 512x1024 are); the pyramid stops when the height is odd or below 4. Pixels with
    weight 1 are returned unchanged; with nothing known at all, a mid grey.
    """
    if rgb.shape[:2] != weight.shape:
        raise ValueError(f"weight must be {rgb.shape[:2]}, got {weight.shape}")
    w_full = np.clip(weight.astype(np.float32), 0.0, 1.0)
    if not w_full.any():
        return np.full(rgb.shape, 128.0, np.float32)
    # 1. Push: normalised colour and a confidence (clipped weight sum) down the pyramid.
    levels = [(rgb.astype(np.float32), w_full)]
    while levels[-1][1].shape[0] >= 8 and levels[-1][1].shape[0] % 2 == 0 and levels[-1][1].shape[1] % 2 == 0:
        col, w = levels[-1]
        cw = _down(col * w[..., None])
        ww = _down(w)
        col_next = cw / np.maximum(ww, 1e-8)[..., None]
        levels.append((col_next, np.minimum(1.0, 4.0 * ww)))
    # 2. Pull: each level keeps what it knows and takes the rest from the coarser fill.
    col, w = levels[-1]
    filled = col.copy()
    unknown = w <= 1e-6
    if unknown.any():
        filled[unknown] = (col * w[..., None]).reshape(-1, 3).sum(0) / max(float(w.sum()), 1e-8)
    for col, w in reversed(levels[:-1]):
        up = _up(filled, w.shape)
        filled = w[..., None] * col + (1.0 - w[..., None]) * up
    # 3. Near the poles an ERP row is a small circle: average the fill along rows over a width
    # growing as 1/cos(lat), fading in with the distance from what is known so edges still meet.
    if polar_px is None:
        polar_px = rgb.shape[1] / 16.0
    smooth = _polar_row_blur(_polar_row_blur(filled, polar_px), polar_px)
    unknown = (w_full < 1.0).astype(np.uint8)
    pad = rgb.shape[1] // 4  # distances wrap across the seam
    dist = cv2.distanceTransform(np.concatenate([unknown[:, -pad:], unknown, unknown[:, :pad]], axis=1), cv2.DIST_L2, 3)[:, pad:-pad]
    t = np.clip(dist / (rgb.shape[1] / 32.0), 0.0, 1.0)[..., None]
    filled = (1.0 - t) * filled + t * smooth
    return w_full[..., None] * rgb.astype(np.float32) + (1.0 - w_full[..., None]) * filled
