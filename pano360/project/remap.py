"""Remap tables between perspective views and the ERP sphere, built vectorised and applied with cv2.remap.

A table is built from the geometry (rotation, FOV, sizes) and applied separately, as
py360convert's ``EquirecSampler`` does. ERP sampling wraps exactly across the +-180 deg seam
(``BORDER_WRAP`` on columns) and never mixes the top and bottom rows at the poles.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pano360.project.camera import focal_from_hfov, pixel_rays
from pano360.project.erp import check_erp_size, dirs_to_uv, erp_pixel_dirs, lonlat_to_dirs, uv_to_lonlat
from pano360.project.rotation import check_rotations

__all__ = [
    "erp_to_persp_map",
    "sample_erp",
    "erp_to_persp",
    "Footprint",
    "persp_footprint_map",
    "persp_to_erp",
    "rotate_erp_map",
    "rotate_erp",
]


def erp_to_persp_map(R: np.ndarray, hfov_deg: float, out_w: int, out_h: int, erp_w: int, erp_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Table sampling an ERP ``erp_w x erp_h`` into an ``out_w x out_h`` view of rotation ``R`` and FOV.

    Returns ``map_x, map_y`` float32 ``(out_h, out_w)`` in ERP pixel coordinates.
    """
    R = check_rotations(R).astype(np.float32)
    check_erp_size(erp_w, erp_h)
    rays = pixel_rays(out_w, out_h, float(hfov_deg))
    world = rays @ R.T  # (h, w, 3): d_world = R @ d_cam
    u, v = dirs_to_uv(world, erp_w, erp_h)
    return u.astype(np.float32), v.astype(np.float32)


def sample_erp(erp: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Sample an ERP image at ERP coordinates, wrapping columns across the seam.

    Rows are clamped to ``[0, H - 1]``: within half a pixel of a pole every sample of a row is the
    same point of the sphere, so replicating it is exact enough and never mixes top with bottom.
    """
    h = erp.shape[0]
    map_y = np.clip(map_y, 0.0, h - 1.0)
    return cv2.remap(erp, map_x, map_y, interpolation, borderMode=cv2.BORDER_WRAP)


def erp_to_persp(erp: np.ndarray, R: np.ndarray, hfov_deg: float, out_w: int, out_h: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Render the perspective view ``(out_h, out_w, C)`` of rotation ``R`` and FOV from an ERP image."""
    mx, my = erp_to_persp_map(R, hfov_deg, out_w, out_h, erp.shape[1], erp.shape[0])
    return sample_erp(erp, mx, my, interpolation)


@dataclass(frozen=True)
class Footprint:
    """Where a perspective frame lands on the ERP: rows ``v0:v1`` of the ERP and, for those rows,
    the frame pixel each ERP pixel samples (``map_x, map_y`` float32 ``(v1 - v0, W)``) and whether
    it lies inside the frame (``valid``)."""

    v0: int
    v1: int
    map_x: np.ndarray
    map_y: np.ndarray
    valid: np.ndarray


def _footprint_rows(R: np.ndarray, hfov_deg: float, frame_w: int, frame_h: int, erp_h: int) -> tuple[int, int]:
    """ERP rows ``v0:v1`` that can see the frame: its border's latitude range, poles included when inside."""
    f = focal_from_hfov(frame_w, hfov_deg)
    n = 64
    xs = np.linspace(-0.5, frame_w - 0.5, n)
    ys = np.linspace(-0.5, frame_h - 0.5, n)
    border = np.concatenate([
        np.stack([xs, np.full(n, -0.5)], 1), np.stack([xs, np.full(n, frame_h - 0.5)], 1),
        np.stack([np.full(n, -0.5), ys], 1), np.stack([np.full(n, frame_w - 0.5), ys], 1),
    ])
    rays = np.stack([(border[:, 0] - (frame_w / 2 - 0.5)) / f, (border[:, 1] - (frame_h / 2 - 0.5)) / f, np.ones(len(border))], 1)
    world = rays @ R.T
    _, v = dirs_to_uv(world, 2 * erp_h, erp_h)
    lo, hi = float(v.min()), float(v.max())
    for pole, row in (((0.0, -1.0, 0.0), -0.5), ((0.0, 1.0, 0.0), erp_h - 0.5)):
        cam = R.T @ np.array(pole)
        if cam[2] > 0:
            x = f * cam[0] / cam[2] + frame_w / 2 - 0.5
            y = f * cam[1] / cam[2] + frame_h / 2 - 0.5
            if -0.5 <= x <= frame_w - 0.5 and -0.5 <= y <= frame_h - 0.5:
                lo, hi = min(lo, row), max(hi, row)
    v0 = max(0, int(np.floor(lo)) - 1)
    v1 = min(erp_h, int(np.ceil(hi)) + 2)
    return v0, v1


def persp_footprint_map(R: np.ndarray, hfov_deg: float, frame_w: int, frame_h: int, erp_w: int, erp_h: int) -> Footprint:
    """Table placing a perspective frame (rotation ``R``, FOV) on the world ERP: view-based alignment.

    Only the ERP rows the frame can reach are computed (the frame's footprint), since a moving
    camera needs a new table every frame.
    """
    R = check_rotations(R)
    check_erp_size(erp_w, erp_h)
    v0, v1 = _footprint_rows(R, hfov_deg, frame_w, frame_h, erp_h)
    dirs = erp_pixel_dirs(erp_w, erp_h)[v0:v1]
    cam = dirs @ R.astype(np.float32)  # d_cam = R^T d_world, row-vector form
    f = np.float32(focal_from_hfov(frame_w, hfov_deg))
    z = cam[..., 2]
    in_front = z > 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = np.where(in_front, f / z, np.float32(0))
    map_x = cam[..., 0] * inv_z + np.float32(frame_w / 2 - 0.5)
    map_y = cam[..., 1] * inv_z + np.float32(frame_h / 2 - 0.5)
    valid = in_front & (map_x >= -0.5) & (map_x <= frame_w - 0.5) & (map_y >= -0.5) & (map_y <= frame_h - 0.5)
    map_x = np.where(valid, map_x, np.float32(-1e4)).astype(np.float32)
    map_y = np.where(valid, map_y, np.float32(-1e4)).astype(np.float32)
    return Footprint(v0, v1, map_x, map_y, valid)


def persp_to_erp(frame: np.ndarray, R: np.ndarray, hfov_deg: float, erp_w: int, erp_h: int, interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, np.ndarray]:
    """Place a perspective frame on a black ``erp_h x erp_w`` ERP; returns ``(rgb, mask)``."""
    fp = persp_footprint_map(R, hfov_deg, frame.shape[1], frame.shape[0], erp_w, erp_h)
    out = np.zeros((erp_h, erp_w) + frame.shape[2:], dtype=frame.dtype)
    mask = np.zeros((erp_h, erp_w), dtype=bool)
    out[fp.v0:fp.v1] = cv2.remap(frame, fp.map_x, fp.map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    out[fp.v0:fp.v1][~fp.valid] = 0
    mask[fp.v0:fp.v1] = fp.valid
    return out, mask


def rotate_erp_map(R: np.ndarray, erp_w: int, erp_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Table re-orienting an ERP: the output's direction ``d`` shows the input's direction ``R @ d``.

    So with ``R`` a camera's rotation, the output is the sphere as seen from that camera's axes.
    """
    R = check_rotations(R).astype(np.float32)
    dirs = erp_pixel_dirs(erp_w, erp_h)
    u, v = dirs_to_uv(dirs @ R.T, erp_w, erp_h)
    return u.astype(np.float32), v.astype(np.float32)


def rotate_erp(erp: np.ndarray, R: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Re-orient an ERP image (see :func:`rotate_erp_map`)."""
    mx, my = rotate_erp_map(R, erp.shape[1], erp.shape[0])
    return sample_erp(erp, mx, my, interpolation)
