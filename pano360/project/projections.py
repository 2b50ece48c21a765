"""Output projections of a virtual camera: rectilinear, stereographic ("tiny planet") and fisheye.

Each projection is a cached grid of camera-frame rays (OpenCV axes, ``CONVENTIONS.md``), one per
output pixel centre; turning rays into ERP coordinates is :mod:`pano360.project.viewmap`'s job. The FOV is the
horizontal angle across the picture's width:

- rectilinear: ``r = f tan(theta)``, ``f = (w / 2) / tan(hfov / 2)`` (``project.camera``), hfov < 180;
- stereographic: ``r = 2 f tan(theta / 2)``, ``f = (w / 2) / (2 tan(hfov / 4))``, hfov < 360;
- fisheye (equidistant): ``r = f theta``, ``f = (w / 2) / (hfov / 2)``, hfov <= 360; pixels with
  ``theta > 180`` deg see nothing (``valid`` False).

Convention: a centred pixel sees +z; the pixel at the right edge's centre row sees the direction
``hfov / 2`` to the right of the axis in every projection.

>>> rays, valid = projection_rays("fisheye", 4, 2, 180.0)
>>> bool(valid.all())
True
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from pano360.project.camera import focal_from_hfov, pixel_rays

__all__ = ["PROJECTIONS", "projection_rays", "rays_at", "max_hfov"]

PROJECTIONS = ("rectilinear", "stereographic", "fisheye")


def max_hfov(projection: str) -> float:
    """The largest horizontal FOV (degrees, exclusive) a projection can show."""
    return {"rectilinear": 180.0, "stereographic": 360.0, "fisheye": 360.0 + 1e-9}[projection]


def _check(projection: str, hfov_deg: float) -> None:
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}")
    if not 0.0 < hfov_deg < max_hfov(projection):
        raise ValueError(f"{projection} hfov must be in (0, {max_hfov(projection):.0f}) degrees, got {hfov_deg}")


def rays_at(projection: str, x: np.ndarray, y: np.ndarray, width: int, height: int, hfov_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame rays ``(..., 3)`` float64 at output pixel coordinates ``x, y`` (any shape, broadcast).

    Returns ``(rays, valid)``; rectilinear rays have z = 1, the others are unit vectors.
    """
    _check(projection, hfov_deg)
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64) - (width / 2.0 - 0.5),
                               np.asarray(y, dtype=np.float64) - (height / 2.0 - 0.5))
    half = math.radians(hfov_deg) / 2.0
    if projection == "rectilinear":
        f = focal_from_hfov(width, hfov_deg)
        return np.stack([x / f, y / f, np.ones_like(x)], axis=-1), np.ones(x.shape, dtype=bool)
    r = np.hypot(x, y)
    if projection == "stereographic":
        f = (width / 2.0) / (2.0 * math.tan(half / 2.0))
        theta = 2.0 * np.arctan(r / (2.0 * f))
    else:
        theta = r / ((width / 2.0) / half)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(r > 0, np.sin(theta) / np.where(r > 0, r, 1.0), 0.0)
    rays = np.stack([x * s, y * s, np.cos(theta)], axis=-1)
    return rays, theta <= math.pi + 1e-9


@lru_cache(maxsize=16)
def projection_rays(projection: str, width: int, height: int, hfov_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame rays ``(h, w, 3)`` float32 of every output pixel, and ``valid (h, w)`` bool.

    Rectilinear rays have z = 1 (``project.camera.pixel_rays``); the others are unit vectors.
    Both arrays are read-only and cached.
    """
    _check(projection, hfov_deg)
    if projection == "rectilinear":
        rays = pixel_rays(width, height, float(hfov_deg))
        valid = np.ones((height, width), dtype=bool)
    else:
        rays64, valid = rays_at(projection, np.arange(width)[None, :], np.arange(height)[:, None], width, height, hfov_deg)
        rays = rays64.astype(np.float32)
    valid = np.ascontiguousarray(valid)
    valid.flags.writeable = False
    rays.flags.writeable = False
    return rays, valid
