"""Where a perspective frame lands on the world ERP, computed only over the frame's footprint.

A moving camera needs a new table every frame, so the table covers only the bounding box of the
frame's footprint on the ERP (rows AND columns, the column range possibly running across the
+-180 deg seam) and is built from separable terms: for ERP row ``i`` (latitude ``phi``) and column
``j`` (longitude ``lam``), the camera-frame direction divided by ``cos(phi) > 0`` is
``b(lam_j) - R[1] tan(phi_i)`` with ``b(lam) = R[0] sin(lam) + R[2] cos(lam)`` (rows of ``R``
because ``d_cam = R^T d_world``), so each component costs one broadcast add per pixel.

Region columns are ERP columns ``(u0 + j) % W``: one table, no split at the seam;
:func:`paste_region` and :func:`take_region` do the (at most two-piece) scatter and gather.

Conventions: ``CONVENTIONS.md`` (R maps camera to world; pinhole ``x = f X / Z + w / 2 - 0.5``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from pano360.project.camera import focal_from_hfov
from pano360.project.erp import check_erp_size
from pano360.project.rotation import check_rotations

__all__ = [
    "FootprintRegion",
    "footprint_box",
    "persp_footprint_region",
    "fixed_point_maps",
    "remap_region",
    "paste_region",
    "take_region",
    "feather_alpha",
    "INVALID",
]

INVALID = -1.0e4
"""Frame coordinate stored in a region table where the ERP pixel does not see the frame."""


@dataclass(frozen=True)
class FootprintRegion:
    """A frame's table over the bounding box of its footprint on an ``erp_w``-wide ERP.

    Rows ``v0:v1`` of the ERP; columns ``(u0 + j) % erp_w`` for ``j < n_cols`` (``0 <= u0 < erp_w``,
    ``n_cols <= erp_w``). ``map_x, map_y`` float32 ``(v1 - v0, n_cols)`` are the frame pixel each
    ERP pixel samples: where ``valid``, clamped to ``[0, w - 1] x [0, h - 1]`` (the same samples as
    ``BORDER_REPLICATE`` for linear and nearest interpolation; unless built with ``clamp=False``),
    and :data:`INVALID` elsewhere, so
    ``cv2.remap(..., borderMode=cv2.BORDER_CONSTANT)`` gives exactly 0 outside the footprint.
    ``valid`` (bool, same shape) marks the ERP pixels whose centre sees the frame's area
    ``[-0.5, w - 0.5] x [-0.5, h - 0.5]`` in front of the camera."""

    v0: int
    v1: int
    u0: int
    map_x: np.ndarray
    map_y: np.ndarray
    valid: np.ndarray
    erp_w: int

    @property
    def n_cols(self) -> int:
        return int(self.map_x.shape[1])

    @property
    def erp_h(self) -> int:
        return self.erp_w // 2

    def column_pieces(self) -> list[tuple[slice, slice]]:
        """``(erp_columns, region_columns)`` slice pairs: one piece, or two when the box crosses the seam."""
        end = self.u0 + self.n_cols
        if end <= self.erp_w:
            return [(slice(self.u0, end), slice(0, self.n_cols))]
        first = self.erp_w - self.u0
        return [(slice(self.u0, self.erp_w), slice(0, first)), (slice(0, end - self.erp_w), slice(first, self.n_cols))]


def _border_samples(frame_w: int, frame_h: int, step_px: float) -> np.ndarray:
    """Points ``(n, 2)`` on the boundary of the frame's area, as a closed loop (clockwise on screen)."""
    nx = max(2, int(math.ceil(frame_w / step_px)) + 1)
    ny = max(2, int(math.ceil(frame_h / step_px)) + 1)
    x0, x1, y0, y1 = -0.5, frame_w - 0.5, -0.5, frame_h - 0.5
    xs = np.linspace(x0, x1, nx)
    ys = np.linspace(y0, y1, ny)
    return np.concatenate([
        np.stack([xs, np.full(nx, y0)], 1),
        np.stack([np.full(ny, x1), ys], 1)[1:],
        np.stack([xs[::-1], np.full(nx, y1)], 1)[1:],
        np.stack([np.full(ny, x0), ys[::-1]], 1)[1:-1],
    ])


def footprint_box(R: np.ndarray, hfov_deg: float, frame_w: int, frame_h: int, erp_w: int, erp_h: int,
                  margin_px: int = 2) -> tuple[int, int, int, int]:
    """The ERP box ``(v0, v1, u0, n_cols)`` holding every pixel that sees a frame (rotation ``R``, FOV).

    The footprint is the sphere's image of the frame's rectangle: bounded by four great-circle
    arcs. Its border is traced (every 4 frame pixels) with its longitude unwrapped along the loop:
    a winding of +-360 deg means a pole lies inside (full width; rows to the pole). Longitude is
    monotonic along a great circle, so the column range is exact at the corners; latitude can
    peak between samples by < 1 ERP pixel, covered by ``margin_px``.
    """
    R = check_rotations(R)
    check_erp_size(erp_w, erp_h)
    f = focal_from_hfov(frame_w, hfov_deg)
    pts = _border_samples(frame_w, frame_h, 4.0)
    rays = np.stack([(pts[:, 0] - (frame_w / 2 - 0.5)) / f, (pts[:, 1] - (frame_h / 2 - 0.5)) / f, np.ones(len(pts))], 1)
    d = rays @ R.T
    lon = np.arctan2(d[:, 0], d[:, 2])
    lat = np.arctan2(-d[:, 1], np.hypot(d[:, 0], d[:, 2]))
    v = (0.5 - lat / np.pi) * erp_h - 0.5
    steps = np.diff(np.append(lon, lon[0]))
    steps = (steps + np.pi) % (2 * np.pi) - np.pi
    winding = float(steps.sum())
    v_lo, v_hi = float(v.min()), float(v.max())
    near_pole = v_lo < margin_px or v_hi > erp_h - 1 - margin_px
    if abs(winding) > np.pi or near_pole:
        if abs(winding) > np.pi:  # the pole the loop winds around is inside the frame
            up = (R.T @ np.array([0.0, -1.0, 0.0]))[2] > (R.T @ np.array([0.0, 1.0, 0.0]))[2]
            v_lo, v_hi = (-0.5, v_hi) if up else (v_lo, erp_h - 0.5)
        u0, n_cols = 0, erp_w
    else:
        unwrapped = lon[0] + np.concatenate([[0.0], np.cumsum(steps[:-1])])
        u_lo = (unwrapped.min() / (2 * np.pi) + 0.5) * erp_w - 0.5
        u_hi = (unwrapped.max() / (2 * np.pi) + 0.5) * erp_w - 0.5
        first = int(math.floor(u_lo)) - margin_px
        n_cols = int(math.ceil(u_hi)) + margin_px + 1 - first
        u0, n_cols = (0, erp_w) if n_cols >= erp_w else (first % erp_w, n_cols)
    v0 = max(0, int(math.floor(v_lo)) - margin_px)
    v1 = min(erp_h, int(math.ceil(v_hi)) + margin_px + 1)
    return v0, v1, u0, n_cols


_TIE_PX = 2e-3


def _inside(x: np.ndarray, y: np.ndarray, w: int, h: int, grow: float) -> np.ndarray:
    """``x, y`` inside the frame's area ``[-0.5, w - 0.5] x [-0.5, h - 0.5]`` grown by ``grow`` px."""
    lo = -0.5 - grow
    return (x >= lo) & (x <= w - 0.5 + grow) & (y >= lo) & (y <= h - 0.5 + grow)


def persp_footprint_region(R: np.ndarray, hfov_deg: float, frame_w: int, frame_h: int, erp_w: int, erp_h: int,
                           *, clamp: bool = True) -> FootprintRegion:
    """Table placing a ``frame_w x frame_h`` frame (rotation ``R`` camera->world, FOV) on the world ERP.

    Only the footprint's bounding box is computed (:func:`footprint_box`). Apply it with
    :func:`remap_region` (several layers can share one fixed-point table) and write the result
    into a canvas with :func:`paste_region`. ``clamp=False`` leaves valid coordinates unclamped in
    ``[-0.5, w - 0.5]`` (for sources padded by the caller, e.g. cube faces).
    """
    R = check_rotations(R)
    v0, v1, u0, n = footprint_box(R, hfov_deg, frame_w, frame_h, erp_w, erp_h)
    f = focal_from_hfov(frame_w, hfov_deg)
    cols = (u0 + np.arange(n)) % erp_w
    lon = ((cols + 0.5) / erp_w - 0.5) * (2 * np.pi)
    lat = (0.5 - (np.arange(v0, v1) + 0.5) / erp_h) * np.pi
    # camera-frame direction / cos(lat): b_k(lon) + t_k(lat), k = x, y, z; x and y pre-scaled by f.
    b = np.outer(R[0], np.sin(lon)) + np.outer(R[2], np.cos(lon))  # (3, n)
    t = -np.outer(R[1], np.tan(lat))  # (3, rows)
    b[:2] *= f
    t[:2] *= f
    b, t = b.astype(np.float32), t.astype(np.float32)
    cx, cy, cz = (np.add(t[k][:, None], b[k][None, :]) for k in range(3))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.maximum(cz, 0.0, out=cz)  # behind the camera: 1/0 = inf, so x, y become +-inf or nan: invalid
        np.divide(1.0, cz, out=cz)
        map_x = np.multiply(cx, cz, out=cx)
        map_y = np.multiply(cy, cz, out=cy)
        map_x += np.float32(frame_w / 2 - 0.5)
        map_y += np.float32(frame_h / 2 - 0.5)
        valid = _inside(map_x, map_y, frame_w, frame_h, -_TIE_PX)
        unsure = _inside(map_x, map_y, frame_w, frame_h, _TIE_PX)
    # float32 coordinates are good to ~3e-4 px: decide the pixels that close to the edge in float64.
    np.logical_xor(unsure, valid, out=unsure)
    ii, jj = np.nonzero(unsure)
    if len(ii):
        d = np.stack([np.cos(lat[ii]) * np.sin(lon[jj]), -np.sin(lat[ii]), np.cos(lat[ii]) * np.cos(lon[jj])], 1) @ R
        with np.errstate(divide="ignore", invalid="ignore"):
            x = f * d[:, 0] / d[:, 2] + (frame_w / 2 - 0.5)
            y = f * d[:, 1] / d[:, 2] + (frame_h / 2 - 0.5)
            valid[ii, jj] = (d[:, 2] > 0) & _inside(x, y, frame_w, frame_h, 0.0)
    invalid = ~valid
    if clamp:
        np.clip(map_x, 0.0, frame_w - 1.0, out=map_x)
        np.clip(map_y, 0.0, frame_h - 1.0, out=map_y)
    np.copyto(map_x, np.float32(INVALID), where=invalid)
    np.copyto(map_y, np.float32(INVALID), where=invalid)
    return FootprintRegion(v0, v1, u0, map_x, map_y, valid, erp_w)


def fixed_point_maps(region: FootprintRegion) -> tuple[np.ndarray, np.ndarray]:
    """The region's table as OpenCV fixed-point maps (``CV_16SC2`` + ``CV_16UC1``, positions
    rounded to 1/32 px): convert once (~0.3 ms), then each layer remaps ~1.5x faster than with the
    float maps (which OpenCV 5 interpolates with exact weights)."""
    return cv2.convertMaps(region.map_x, region.map_y, cv2.CV_16SC2)


def remap_region(image: np.ndarray, region: FootprintRegion, interpolation: int = cv2.INTER_LINEAR,
                 maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A frame-space layer ``(h, w[, C])`` (RGB, alpha, ...) resampled onto the region ``(rows, n_cols[, C])``.

    Pixels outside the footprint are exactly 0. ``maps`` from :func:`fixed_point_maps` skips the
    per-call conversion when several layers share the table.
    """
    m1, m2 = maps if maps is not None else (region.map_x, region.map_y)
    return cv2.remap(image, m1, m2, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def paste_region(canvas: np.ndarray, patch: np.ndarray, region: FootprintRegion, where: np.ndarray | None = None) -> np.ndarray:
    """Write ``patch`` (``(rows, n_cols[, C])``) into ``canvas`` (``(H, W[, C])``) at the region, in place.

    Only pixels where ``where`` (default ``region.valid``) is True are written; returns ``canvas``.
    """
    mask = region.valid if where is None else where
    if canvas.shape[1] != region.erp_w or patch.shape[:2] != region.valid.shape:
        raise ValueError(f"canvas {canvas.shape} / patch {patch.shape} do not fit the region {region.valid.shape} of W={region.erp_w}")
    rows = slice(region.v0, region.v1)
    for erp_cols, reg_cols in region.column_pieces():
        m = mask[:, reg_cols]
        if patch.ndim == 3:
            m = m[..., None]
        np.copyto(canvas[rows, erp_cols], patch[:, reg_cols], where=m)
    return canvas


def take_region(canvas: np.ndarray, region: FootprintRegion) -> np.ndarray:
    """The canvas pixels under the region's box, ``(rows, n_cols[, C])`` (a copy, wrap handled)."""
    rows = slice(region.v0, region.v1)
    pieces = region.column_pieces()
    if len(pieces) == 1:
        return canvas[rows, pieces[0][0]].copy()
    return np.concatenate([canvas[rows, c] for c, _ in pieces], axis=1)


@lru_cache(maxsize=8)
def feather_alpha(frame_w: int, frame_h: int, width_px: float, dtype: type = np.float32) -> np.ndarray:
    """Blending weight ``(h, w)`` in (0, 1]: distance of each pixel centre to the frame's edge (the
    area boundary at -0.5 / w - 0.5) over ``width_px``, clipped to 1. Read-only, cached.
    ``dtype=np.uint8`` scales it to 1..255 (stack it with the RGB as a 4th channel: one remap).

    Resample it with the frame's table (:func:`remap_region`) to get the ERP-space alpha.

    >>> float(feather_alpha(8, 4, 2.0)[0, 0]), float(feather_alpha(8, 4, 2.0)[1, 3])
    (0.25, 0.75)
    """
    if width_px <= 0:
        raise ValueError(f"feather width must be > 0 px, got {width_px}")
    dx = np.minimum(np.arange(frame_w) + 0.5, frame_w - 0.5 - np.arange(frame_w))
    dy = np.minimum(np.arange(frame_h) + 0.5, frame_h - 0.5 - np.arange(frame_h))
    a = np.clip(np.minimum(dx[None, :], dy[:, None]) / width_px, 0.0, 1.0)
    a = np.maximum(np.round(a * 255.0), 1).astype(np.uint8) if dtype == np.uint8 else a.astype(dtype)
    a.flags.writeable = False
    return a
