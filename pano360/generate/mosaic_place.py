"""One perspective frame placed on the world ERP: the pixels it covers, cropped to its footprint.

A :class:`Placement` holds only the ERP window the frame reaches (rows ``v0:v1``, columns
``c0:c1``), so a backend blends a few hundred thousand pixels per frame instead of the whole
sphere. ``alpha`` is the frame's feathered weight: 255 in the interior (real pixels, exact),
falling to 0 over a band at the frame border, 0 outside the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from pano360.canvas import Canvas
from pano360.project.remap import persp_footprint_map

__all__ = ["Placement", "place_frame", "feather_alpha", "canvas_from_placement"]


@dataclass(frozen=True)
class Placement:
    """A frame on an ``erp_w x erp_w/2`` ERP: ``rgb (v1-v0, c1-c0, 3) uint8`` and ``alpha (v1-v0, c1-c0) uint8``.

    Pixels with ``alpha == 255`` are the frame's own pixels (bilinear samples of the frame);
    ``alpha == 0`` marks ERP pixels the frame does not see.
    """

    v0: int
    v1: int
    c0: int
    c1: int
    rgb: np.ndarray
    alpha: np.ndarray
    erp_w: int
    time_s: float = 0.0

    @property
    def erp_h(self) -> int:
        return self.erp_w // 2


@lru_cache(maxsize=8)
def feather_alpha(width: int, height: int, band_px: float) -> np.ndarray:
    """Frame-space weight ``(height, width) uint8``: 255 farther than ``band_px`` from the border, a
    linear ramp to 0 at the outer pixel edge. Read-only, cached."""
    x = np.arange(width, dtype=np.float32) + 0.5
    y = np.arange(height, dtype=np.float32) + 0.5
    dx = np.minimum(x, width - x)
    dy = np.minimum(y, height - y)
    d = np.minimum(dx[None, :], dy[:, None])
    a = np.clip(d / max(band_px, 1e-3), 0.0, 1.0) if band_px > 0 else np.ones_like(d)
    out = np.round(a * 255.0).astype(np.uint8)
    out.flags.writeable = False
    return out


def _column_window(valid: np.ndarray, erp_w: int) -> tuple[int, int]:
    """Columns ``c0:c1`` holding every valid pixel; the whole width when the footprint crosses the seam."""
    cols = np.flatnonzero(valid.any(axis=0))
    if len(cols) == 0:
        return 0, 0
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    if c0 == 0 and c1 == erp_w:
        return 0, erp_w
    return c0, c1


def place_frame(rgb: np.ndarray, R: np.ndarray, hfov_deg: float, erp_w: int, alpha: np.ndarray | None = None,
                time_s: float = 0.0) -> Placement:
    """Place a ``(h, w, 3) uint8`` frame seen with rotation ``R`` (camera to world) and FOV on the ERP.

    ``alpha`` is the frame-space weight ``(h, w) uint8`` (default: all 255, no feathering); it is
    resampled with the same table as the pixels, so the interior stays exactly 255.
    """
    h, w = rgb.shape[:2]
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"frame must be (h, w, 3), got {rgb.shape}")
    fp = persp_footprint_map(R, hfov_deg, w, h, erp_w, erp_w // 2)
    c0, c1 = _column_window(fp.valid, erp_w)
    if c1 <= c0:
        empty = np.zeros((0, 0), np.uint8)
        return Placement(fp.v0, fp.v0, 0, 0, np.zeros((0, 0, 3), np.uint8), empty, erp_w, time_s)
    a = np.full((h, w), 255, np.uint8) if alpha is None else alpha
    rgba = np.dstack([rgb, a]) if rgb.dtype == np.uint8 else None
    if rgba is None:
        raise ValueError(f"frame must be uint8, got {rgb.dtype}")
    mx = fp.map_x[:, c0:c1]
    my = fp.map_y[:, c0:c1]
    out = cv2.remap(rgba, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out_alpha = out[..., 3]
    out_alpha[~fp.valid[:, c0:c1]] = 0
    return Placement(fp.v0, fp.v1, c0, c1, np.ascontiguousarray(out[..., :3]), np.ascontiguousarray(out_alpha), erp_w, time_s)


def canvas_from_placement(pl: Placement) -> Canvas:
    """The full-sphere :class:`~pano360.canvas.Canvas` of a placement (mask = alpha > 0)."""
    h = pl.erp_h
    rgb = np.zeros((h, pl.erp_w, 3), np.uint8)
    mask = np.zeros((h, pl.erp_w), bool)
    rgb[pl.v0:pl.v1, pl.c0:pl.c1] = pl.rgb
    mask[pl.v0:pl.v1, pl.c0:pl.c1] = pl.alpha > 0
    rgb[~mask] = 0
    return Canvas(rgb=rgb, mask=mask, time_s=pl.time_s)
