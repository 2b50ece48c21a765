"""One perspective frame placed on the world ERP: the pixels it covers, cropped to its footprint.

A :class:`Placement` holds only the ERP box the frame reaches (rows ``v0:v1``, columns from
``u0``, across the seam when needed), so a backend blends a few hundred thousand pixels per frame instead of the whole
sphere. ``alpha`` is the frame's feathered weight: 255 in the interior (real pixels, exact),
falling to 0 over a band at the frame border, 0 outside the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pano360.canvas import Canvas
from pano360.project.footprint import fixed_point_maps, persp_footprint_region, remap_region

__all__ = ["Placement", "Yuv420Placement", "place_frame", "place_yuv420", "canvas_from_placement"]


@dataclass(frozen=True)
class Placement:
    """A frame on an ``erp_w x erp_w/2`` ERP, over the box of its footprint: rows ``v0:v1`` and
    columns ``(u0 + j) % erp_w`` for ``j < n_cols`` (the box may run across the +-180 deg seam).

    ``rgb (v1-v0, n_cols, 3) uint8`` (or one plane, ``(v1-v0, n_cols)``, for 4:2:0 work) and
    ``alpha (v1-v0, n_cols) uint8``. Pixels with
    ``alpha == 255`` are the frame's own pixels (bilinear samples of the frame); ``alpha == 0``
    marks ERP pixels the frame does not see (their rgb is 0).
    """

    v0: int
    v1: int
    u0: int
    rgb: np.ndarray
    alpha: np.ndarray
    erp_w: int
    time_s: float = 0.0

    @property
    def erp_h(self) -> int:
        return self.erp_w // 2

    @property
    def n_cols(self) -> int:
        return int(self.alpha.shape[1]) if self.alpha.ndim == 2 else 0

    @property
    def empty(self) -> bool:
        return self.v1 <= self.v0 or self.n_cols == 0

    def column_pieces(self) -> list[tuple[slice, slice]]:
        """``(erp_columns, box_columns)`` slice pairs: one, or two when the box crosses the seam."""
        n, w = self.n_cols, self.erp_w
        end = self.u0 + n
        if end <= w:
            return [(slice(self.u0, end), slice(0, n))]
        first = w - self.u0
        return [(slice(self.u0, w), slice(0, first)), (slice(0, end - w), slice(first, n))]


def place_frame(rgb: np.ndarray, R: np.ndarray, hfov_deg: float, erp_w: int, alpha: np.ndarray | None = None,
                time_s: float = 0.0) -> Placement:
    """Place a ``(h, w, 3) uint8`` frame (or one ``(h, w)`` plane) seen with rotation ``R`` (camera
    to world) and FOV on the ERP.

    ``alpha`` is the frame-space weight ``(h, w) uint8`` (default: all 255, no feathering); it is
    resampled with the same table as the pixels, so the interior stays exactly 255.
    """
    if not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)) or rgb.dtype != np.uint8:
        raise ValueError(f"frame must be (h, w, 3) or one plane (h, w) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    reg = persp_footprint_region(R, hfov_deg, w, h, erp_w, erp_w // 2)
    out = remap_region(rgb, reg)
    if alpha is None:
        a = reg.valid.astype(np.uint8) * np.uint8(255)
    else:
        if alpha.shape != (h, w):
            raise ValueError(f"alpha must be ({h}, {w}), got {alpha.shape}")
        a = remap_region(alpha, reg)
    return Placement(reg.v0, reg.v1, reg.u0, out, a, erp_w, time_s)


@dataclass(frozen=True)
class Yuv420Placement:
    """A 4:2:0 frame on the ERP, plane by plane: ``y`` on the ``W x W/2`` luma ERP, ``u`` and ``v``
    on the ``W/2 x W/4`` chroma ERP (each with its own box and alpha)."""

    y: Placement
    u: Placement
    v: Placement


def place_yuv420(y: np.ndarray, u: np.ndarray, v: np.ndarray, R: np.ndarray, hfov_deg: float, erp_w: int,
                 alpha_y: np.ndarray | None = None, alpha_c: np.ndarray | None = None,
                 time_s: float = 0.0) -> Yuv420Placement:
    """Place the planes of a 4:2:0 frame (``y (h, w)``, ``u, v (h/2, w/2)``) without going through RGB.

    A chroma plane is the same camera at half size (same FOV) seen on a half-size ERP: chroma
    sample ``a`` sits at full-size position ``2a + 0.5`` on both sides, so its table is
    :func:`persp_footprint_region` at half size. ``alpha_y`` / ``alpha_c`` are the frame-space
    weights at the luma / chroma size (default: no feathering). ``erp_w`` must be a multiple of 4.
    """
    h, w = y.shape
    if u.shape != (h // 2, w // 2) or v.shape != u.shape or h % 2 or w % 2 or erp_w % 4:
        raise ValueError(f"4:2:0 planes must be (h, w) and (h/2, w/2) with even sizes and erp_w % 4 == 0, "
                         f"got {y.shape}, {u.shape}, {v.shape}, erp_w {erp_w}")
    luma = place_frame(y, R, hfov_deg, erp_w, alpha_y, time_s)
    reg = persp_footprint_region(R, hfov_deg, w // 2, h // 2, erp_w // 2, erp_w // 4)
    maps = fixed_point_maps(reg)  # one conversion, three layers
    if alpha_c is None:
        a = reg.valid.astype(np.uint8) * np.uint8(255)
    else:
        if alpha_c.shape != u.shape:
            raise ValueError(f"alpha_c must be {u.shape}, got {alpha_c.shape}")
        a = remap_region(alpha_c, reg, maps=maps)
    cu = Placement(reg.v0, reg.v1, reg.u0, remap_region(u, reg, maps=maps), a, erp_w // 2, time_s)
    cv = Placement(reg.v0, reg.v1, reg.u0, remap_region(v, reg, maps=maps), a, erp_w // 2, time_s)
    return Yuv420Placement(luma, cu, cv)


def canvas_from_placement(pl: Placement) -> Canvas:
    """The full-sphere :class:`~pano360.canvas.Canvas` of a placement (mask = alpha > 0)."""
    h = pl.erp_h
    rgb = np.zeros((h, pl.erp_w, 3), np.uint8)
    mask = np.zeros((h, pl.erp_w), bool)
    for erp_cols, box_cols in pl.column_pieces():
        rgb[pl.v0:pl.v1, erp_cols] = pl.rgb[:, box_cols]
        mask[pl.v0:pl.v1, erp_cols] = pl.alpha[:, box_cols] > 0
    rgb[~mask] = 0
    return Canvas(rgb=rgb, mask=mask, time_s=pl.time_s)
