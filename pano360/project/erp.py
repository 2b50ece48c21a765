"""The equirectangular (ERP) mapping of ``CONVENTIONS.md``: the one place it is written down.

Convention (W = 2H, pixel centres at integer coordinates)::

    lon = atan2(x, z) in (-pi, pi],   lat = atan2(-y, hypot(x, z)) in [-pi/2, pi/2]
    u = (lon / (2 pi) + 0.5) * W - 0.5,   v = (0.5 - lat / pi) * H - 0.5

So straight ahead (+z) is the ERP centre, +x (yaw 90 deg) lands at u = 0.75 W - 0.5, straight up
(-y) at row v = -0.5, and columns 0 and W - 1 are neighbours across the +-180 deg seam.

>>> import numpy as np
>>> u, v = dirs_to_uv(np.array([1.0, 0.0, 0.0]), 2048, 1024)
>>> float(u), float(v)
(1535.5, 511.5)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "dirs_to_lonlat",
    "lonlat_to_dirs",
    "lonlat_to_uv",
    "uv_to_lonlat",
    "dirs_to_uv",
    "uv_to_dirs",
    "erp_pixel_dirs",
    "check_erp_size",
]


def check_erp_size(width: int, height: int, any_aspect: bool = False) -> None:
    """Raise ValueError unless ``width == 2 * height`` and both are positive.

    ``any_aspect`` accepts other aspects too, for an ERP stored with non-square pixels (one eye of
    a stereo video squeezed into half the frame, 1920x540): longitude still spans the width and
    latitude the height, so the formulas above hold as they are.
    """
    if height <= 0 or width <= 0 or (width != 2 * height and not any_aspect):
        raise ValueError(f"an ERP image must be W = 2H, got {width}x{height}")


def dirs_to_lonlat(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directions ``(..., 3)`` (need not be unit length) to longitude, latitude in radians ``(...)``."""
    d = np.asarray(d)
    if d.shape[-1] != 3:
        raise ValueError(f"d must be (..., 3), got {d.shape}")
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    lon = np.arctan2(x, z)
    lat = np.arctan2(-y, np.hypot(x, z))
    return lon, lat


def lonlat_to_dirs(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Longitude, latitude in radians ``(...)`` to unit directions ``(..., 3)``."""
    lon = np.asarray(lon)
    lat = np.asarray(lat)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.sin(lon), -np.sin(lat), cos_lat * np.cos(lon)], axis=-1)


def lonlat_to_uv(lon: np.ndarray, lat: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Longitude, latitude (radians) to ERP pixel coordinates ``u, v`` (pixel centres at integers)."""
    u = (np.asarray(lon) / (2 * np.pi) + 0.5) * width - 0.5
    v = (0.5 - np.asarray(lat) / np.pi) * height - 0.5
    return u, v


def uv_to_lonlat(u: np.ndarray, v: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """ERP pixel coordinates ``u, v`` to longitude, latitude in radians (inverse of lonlat_to_uv)."""
    lon = ((np.asarray(u) + 0.5) / width - 0.5) * (2 * np.pi)
    lat = (0.5 - (np.asarray(v) + 0.5) / height) * np.pi
    return lon, lat


def dirs_to_uv(d: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions ``(..., 3)`` to ERP pixel coordinates ``u, v`` ``(...)``."""
    lon, lat = dirs_to_lonlat(d)
    return lonlat_to_uv(lon, lat, width, height)


def uv_to_dirs(u: np.ndarray, v: np.ndarray, width: int, height: int) -> np.ndarray:
    """ERP pixel coordinates ``u, v`` ``(...)`` to unit directions ``(..., 3)``."""
    lon, lat = uv_to_lonlat(u, v, width, height)
    return lonlat_to_dirs(lon, lat)


@lru_cache(maxsize=8)
def erp_pixel_dirs(width: int, height: int) -> np.ndarray:
    """Unit directions of every ERP pixel centre, ``(H, W, 3)`` float32, read-only and cached."""
    check_erp_size(width, height)
    u = np.arange(width, dtype=np.float64)
    v = np.arange(height, dtype=np.float64)
    lon, lat = uv_to_lonlat(u[None, :], v[:, None], width, height)
    dirs = lonlat_to_dirs(*np.broadcast_arrays(lon, lat)).astype(np.float32)
    dirs.flags.writeable = False
    return dirs
