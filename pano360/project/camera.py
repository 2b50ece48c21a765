"""The pinhole camera of ``CONVENTIONS.md``: square pixels, principal point at the centre.

``f = (w / 2) / tan(hfov / 2)`` and ``x_pix = f * x / z + w / 2 - 0.5`` (pixel centres at integers).

>>> round(focal_from_hfov(1280, 90.0), 6)
640.0
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from pano360.errors import UsageError

__all__ = [
    "check_clip_hfov",
    "focal_from_hfov",
    "hfov_from_focal",
    "vfov_from_hfov",
    "intrinsics",
    "pixel_rays",
    "project_to_pixels",
]


def check_clip_hfov(hfov_deg: float | None) -> None:
    """Raise UsageError unless ``hfov_deg`` (the user's ``--hfov``, when given) is a horizontal FOV a
    flat clip can have: from 1 to 179 degrees."""
    if hfov_deg is not None and not 1.0 <= hfov_deg <= 179.0:
        raise UsageError(f"--hfov must be from 1 to 179 degrees, got {hfov_deg:g}")


def focal_from_hfov(width: int, hfov_deg: float) -> float:
    """Focal length in pixels of a ``width``-pixel picture with horizontal FOV ``hfov_deg``."""
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"hfov must be in (0, 180) degrees, got {hfov_deg}")
    return (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)


def hfov_from_focal(width: int, focal_px: float) -> float:
    """Horizontal FOV in degrees of a ``width``-pixel picture with focal length ``focal_px``."""
    return math.degrees(2.0 * math.atan2(width / 2.0, focal_px))


def vfov_from_hfov(width: int, height: int, hfov_deg: float) -> float:
    """Vertical FOV in degrees for a ``width x height`` picture of horizontal FOV ``hfov_deg``."""
    f = focal_from_hfov(width, hfov_deg)
    return math.degrees(2.0 * math.atan2(height / 2.0, f))


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """The 3x3 camera matrix ``K`` (float64); the principal point is ``(w/2 - 0.5, h/2 - 0.5)``."""
    f = focal_from_hfov(width, hfov_deg)
    return np.array([[f, 0.0, width / 2.0 - 0.5], [0.0, f, height / 2.0 - 0.5], [0.0, 0.0, 1.0]])


@lru_cache(maxsize=16)
def pixel_rays(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Camera-frame rays ``(h, w, 3)`` float32 of every pixel centre, with z = 1; read-only, cached."""
    f = focal_from_hfov(width, hfov_deg)
    x = (np.arange(width, dtype=np.float64) - (width / 2.0 - 0.5)) / f
    y = (np.arange(height, dtype=np.float64) - (height / 2.0 - 0.5)) / f
    rays = np.empty((height, width, 3), dtype=np.float32)
    rays[..., 0] = x[None, :]
    rays[..., 1] = y[:, None]
    rays[..., 2] = 1.0
    rays.flags.writeable = False
    return rays


def project_to_pixels(d_cam: np.ndarray, width: int, height: int, hfov_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame directions ``(..., 3)`` to pixel coordinates ``x, y`` and ``in_front`` (z > 0).

    Points behind the camera get NaN coordinates.
    """
    d_cam = np.asarray(d_cam)
    if d_cam.shape[-1] != 3:
        raise ValueError(f"d_cam must be (..., 3), got {d_cam.shape}")
    f = focal_from_hfov(width, hfov_deg)
    z = d_cam[..., 2]
    in_front = z > 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(in_front, f * d_cam[..., 0] / z + (width / 2.0 - 0.5), np.nan)
        y = np.where(in_front, f * d_cam[..., 1] / z + (height / 2.0 - 0.5), np.nan)
    return x, y, in_front
