"""The embedded CPU fill backend: a feathered, exposure-compensated mosaic of the whole clip.

Two passes, as the output is offline:

1. :meth:`MosaicBackend.prepare` reads the clip once at reduced cost (every ``step``-th frame,
   downscaled, onto an ERP of ``bg_width``): a centre-weighted average of everything the clip ever
   sees, each frame's exposure gain measured on its overlap with the mosaic so far, and the
   never-seen rest of the sphere filled by :func:`~pano360.generate.mosaic_fill.spherical_fill`.
   That background is what a frame shows where its own camera has not looked yet.
2. :meth:`MosaicBackend.fill_placed` (or the generic :meth:`fill`) streams the frames: a running
   full-resolution mosaic starts as the background and takes every frame's pixels as they arrive,
   so a region keeps what it last showed; the current frame sits on top exactly (only a feathered
   band at its border blends), and the rest of the sphere is shown at the current frame's exposure.
   Only the current frame's window changes from one output frame to the next: no flicker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from pano360.canvas import Canvas, yuv420_planes
from pano360.generate.mosaic_fill import pad_sphere, spherical_fill
from pano360.generate.mosaic_place import Placement, Yuv420Placement, place_frame
from pano360.project.camera import focal_from_hfov
from pano360.project.footprint import feather_alpha

__all__ = ["Background", "MosaicBackend", "background_sample_width", "build_background", "upsample_erp", "gain_lut", "composite"]


@dataclass(frozen=True)
class Background:
    """The full-clip mosaic: ``rgb (h, 2h, 3) uint8`` at the first frame's exposure, with every
    never-seen pixel filled; ``seen (h, 2h) bool``; ``gains (N,)`` each frame's exposure relative to
    the first frame (``frame ~= gain * mosaic``), smoothed over time."""

    rgb: np.ndarray
    seen: np.ndarray
    gains: np.ndarray

    @property
    def coverage(self) -> float:
        """Fraction of the sphere's area the clip saw (rows weighted by cos(latitude))."""
        h = self.seen.shape[0]
        lat = (0.5 - (np.arange(h) + 0.5) / h) * np.pi
        wts = np.cos(lat)
        return float((self.seen.mean(axis=1) * wts).sum() / wts.sum())


def gain_lut(gain: float, pivot: float = 0.0) -> np.ndarray:
    """A 256-entry uint8 table ``pivot + gain * (x - pivot)`` (rounded, saturated).

    Scaling R'G'B' by ``gain`` scales Y' - 16 and Cb, Cr - 128 by the same ``gain`` (the matrix is
    linear), so pivots 16 and 128 apply an exposure gain to 4:2:0 planes exactly as to RGB.
    """
    x = np.arange(256, dtype=np.float64)
    return np.clip(np.round(pivot + (x - pivot) * gain), 0, 255).astype(np.uint8)


def upsample_erp(rgb: np.ndarray, width: int) -> np.ndarray:
    """Resize an ERP to ``width x width/2`` bilinearly, continuous across the +-180 deg seam."""
    h, w = rgb.shape[:2]
    if w == width:
        return rgb.copy()
    p = 2
    padded = pad_sphere(rgb, p)
    s = width / w
    big = cv2.resize(padded, (int(round((w + 2 * p) * s)), int(round((h + 2 * p) * s))), interpolation=cv2.INTER_LINEAR)
    o = int(round(p * s))
    return np.ascontiguousarray(big[o:o + width // 2, o:o + width])


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _centre_weight(width: int, height: int) -> np.ndarray:
    """Frame-space weight for averaging: 255 at the centre falling to 0 at the border (a tent)."""
    return feather_alpha(width, height, min(width, height) / 2.0, np.uint8)


def background_sample_width(frame_w: int, hfov_deg: float, bg_width: int) -> int:
    """The width pass 1 wants frames at: centre resolution about 1.5x the background's (never
    wider than the frame). Decode at this size (``iter_frames(max_width=...)``) to skip a resize."""
    px_per_rad = focal_from_hfov(frame_w, hfov_deg)
    scale = min(1.0, (bg_width / (2 * np.pi)) / px_per_rad * 1.5)
    return frame_w if scale >= 1.0 else max(8, int(round(frame_w * scale)))


def build_background(frames: Iterable[tuple[int, float, np.ndarray]], rotation_at: Callable[[int, float], np.ndarray],
                     hfov_deg: float, bg_width: int = 1024, step: int = 3,
                     progress: Callable[[int], None] | None = None, times: np.ndarray | None = None) -> Background:
    """Pass 1: the full-clip background mosaic, exposure gains and what was seen.

    ``frames`` yields ``(index, time_s, rgb)`` in order: every frame (those between samples are only
    counted), or only every ``step``-th one when ``times`` gives every frame's time (the
    trajectory's), which spares converting the frames in between. ``rotation_at(index, time_s)``
    gives the camera-to-world ``R``. ``bg_width`` should be a power of two times 16 (1024, 2048)
    for the pyramid fill.
    """
    bh = bg_width // 2
    acc = np.zeros((bh, bg_width, 3), np.float32)
    accw = np.zeros((bh, bg_width), np.float32)
    samples_t: list[float] = []
    samples_g: list[float] = []
    seen_index: list[int] = []
    seen_time: list[float] = []
    last_gain = 1.0
    count = 0
    weight = None
    for index, time_s, rgb in frames:
        seen_index.append(index)
        seen_time.append(time_s)
        if progress is not None:
            progress(index + 1 - count)
        count = index + 1
        if index % step:
            continue
        h, w = rgb.shape[:2]
        sw = background_sample_width(w, hfov_deg, bg_width)
        small = rgb
        if sw < w:  # frames not already decoded at that size
            small = cv2.resize(rgb, (sw, max(8, int(round(h * sw / w)))), interpolation=cv2.INTER_AREA)
        if weight is None or weight.shape != small.shape[:2]:
            weight = _centre_weight(small.shape[1], small.shape[0])
        pl = place_frame(small, rotation_at(index, time_s), hfov_deg, bg_width, alpha=weight, time_s=time_s)
        if pl.empty:
            continue
        rows = slice(pl.v0, pl.v1)
        pieces = pl.column_pieces()
        a = pl.alpha.astype(np.float32) / 255.0
        f = pl.rgb.astype(np.float32)
        # Exposure: this frame against the mosaic so far, on pixels both see well (not clipped).
        aw = np.concatenate([accw[rows, c] for c, _ in pieces], axis=1)
        both = (a > 0.2) & (aw > 0.2)
        gain = last_gain
        if samples_g and both.sum() > max(64, 0.05 * both.size):
            ac = np.concatenate([acc[rows, c] for c, _ in pieces], axis=1)
            m_l = _luma(ac[both] / aw[both][:, None])
            f_l = _luma(f[both])
            ok = (m_l > 16) & (m_l < 240) & (f_l > 16) & (f_l < 240)
            if ok.sum() > 64:
                gain = float(np.clip(np.median(f_l[ok] / m_l[ok]), 0.25, 4.0))
        if not samples_g:
            gain = 1.0  # the first frame defines the exposure
        samples_t.append(time_s)
        samples_g.append(gain)
        last_gain = gain
        contrib = f * (a / gain)[..., None]
        for erp_cols, box_cols in pieces:
            acc[rows, erp_cols] += contrib[:, box_cols]
            accw[rows, erp_cols] += a[:, box_cols]
    if times is None:
        times = np.interp(np.arange(count), seen_index, seen_time) if count else np.zeros(0)
    times = np.asarray(times, dtype=np.float64)
    seen = accw > 1e-3
    mean = acc / np.maximum(accw, 1e-6)[..., None]
    # Known pixels keep their average; the edge of what was seen (where the centre-weighted
    # tent weights fade) blends into the fill, so no hard edge shows, the seam included.
    conf = np.clip(accw / 0.3, 0.0, 1.0)
    filled = spherical_fill(mean, conf)
    gains = _smooth_gains(times, np.array(samples_t), np.array(samples_g))
    return Background(rgb=np.clip(np.round(filled), 0, 255).astype(np.uint8), seen=seen, gains=gains)


def _smooth_gains(times: np.ndarray, t: np.ndarray, g: np.ndarray, sigma_s: float = 0.3, tol: float = 0.01) -> np.ndarray:
    """Per-frame gains from the sampled ones: interpolated, smoothed over ``sigma_s``; all 1 when
    they never leave ``1 +- tol`` (no exposure change worth a per-frame table)."""
    if len(times) == 0:
        return np.ones(0)
    if len(t) == 0:
        return np.ones(len(times))
    gains = np.interp(times, t, g)
    if len(times) > 2:
        dt = float(np.median(np.diff(times))) or 1.0 / 30
        gains = gaussian_filter1d(gains, sigma=max(sigma_s / dt, 1e-3), mode="nearest")
    if np.all(np.abs(gains - 1.0) <= tol):
        return np.ones(len(times))
    return gains


def composite(mosaic: np.ndarray, pl: Placement, gain: float, out: np.ndarray | None = None,
              pivot: float = 0.0) -> np.ndarray:
    """One output frame: ``mosaic`` (at the first frame's exposure) times ``gain`` with the placed
    frame on top, feathered by its alpha; the mosaic takes the new pixels (back at unit gain).

    ``mosaic`` is RGB ``(H, W, 3)`` or one plane ``(H, W)``; ``pivot`` is the value the gain
    scales around (0 for RGB, 16 for Y', 128 for Cb/Cr: see :func:`gain_lut`). Where
    ``alpha == 255`` the output is the frame's pixel exactly. Returns the output frame, which is
    ``mosaic`` itself (updated in place) when ``gain`` is 1 and ``out`` is None.
    """
    apply_gain = abs(gain - 1.0) > 1e-3
    if apply_gain:
        out = cv2.LUT(mosaic, gain_lut(gain, pivot), dst=out)
    elif out is not None:
        np.copyto(out, mosaic)
    else:
        out = mosaic
    if pl.empty:
        return out
    rows = slice(pl.v0, pl.v1)
    w1 = pl.alpha.astype(np.float32) * np.float32(1.0 / 255.0)
    w2 = 1.0 - w1
    for erp_cols, box_cols in pl.column_pieces():
        win = (rows, erp_cols)
        blended = cv2.blendLinear(pl.rgb[:, box_cols], out[win], w1[:, box_cols], w2[:, box_cols])
        out[win] = blended
        if apply_gain:
            mosaic[win] = cv2.LUT(blended, gain_lut(1.0 / gain, pivot))
        elif out is not mosaic:
            mosaic[win] = blended
    return out


class MosaicBackend:
    """The ``mosaic`` fill backend (see the module docstring). Implements ``FillBackend``.

    Call :meth:`prepare` with the clip first for the full-clip background (frames before a region
    is first seen then show what it will show); without it the background is the first canvas
    filled on the sphere.
    """

    name = "mosaic"

    def __init__(self, feather: float = 0.025, bg_width: int = 1024, step: int = 3) -> None:
        self.feather = float(feather)
        self.bg_width = int(bg_width)
        self.step = int(step)
        self.background: Background | None = None

    def prepare(self, frames: Iterable[tuple[int, float, np.ndarray]], rotation_at: Callable[[int, float], np.ndarray],
                hfov_deg: float, progress: Callable[[int], None] | None = None,
                times: np.ndarray | None = None) -> Background:
        """Pass 1 over the clip (see :func:`build_background`); keeps and returns the background."""
        self.background = build_background(frames, rotation_at, hfov_deg, self.bg_width, self.step, progress,
                                           times)
        return self.background

    def sample_width(self, frame_w: int, hfov_deg: float) -> int:
        """The frame width :meth:`prepare` works at (decode at it to spare a resize per frame)."""
        return background_sample_width(frame_w, hfov_deg, self.bg_width)

    def frame_alpha(self, width: int, height: int) -> np.ndarray:
        """The frame-space feather weight this backend wants placements made with."""
        return feather_alpha(width, height, max(1.0, self.feather * max(width, height)), np.uint8)

    def _start(self, width: int) -> np.ndarray:
        if self.background is None:
            raise RuntimeError("prepare() must run before fill_placed()")
        return upsample_erp(self.background.rgb, width)

    def _gain(self, i: int) -> float:
        g = self.background.gains if self.background is not None else None
        return float(g[min(i, len(g) - 1)]) if g is not None and len(g) else 1.0

    def fill_placed(self, placements: Iterable[Placement], reuse_buffer: bool = False) -> Iterator[np.ndarray]:
        """Pass 2 on placed frames (the fast path): one ``(H, 2H, 3) uint8`` frame per placement.

        With ``reuse_buffer`` the same array may come back every time (valid until the next one is
        asked for), saving a 25 MB copy per 4K frame.
        """
        mosaic = None
        for i, pl in enumerate(placements):
            if mosaic is None:
                mosaic = self._start(pl.erp_w)
            out = composite(mosaic, pl, self._gain(i))
            yield out if reuse_buffer else out.copy()

    def fill_placed_yuv420(self, placements: Iterable[Yuv420Placement],
                           to_yuv420: Callable[[np.ndarray], np.ndarray]) -> Iterator[np.ndarray]:
        """Pass 2 in the decoder's 4:2:0 planes (the fastest path: no RGB at full size, in or out).

        Yields one packed yuv420p frame ``(H * 3 / 2, W)`` per placement, the same array each time
        (valid until the next one is asked for). The background crosses to 4:2:0 once through
        ``to_yuv420(rgb) -> packed``, which must use the input's Y'CbCr matrix so that it meets the
        frame's own pixels in the same colours; an exposure gain scales each plane around its
        pivot (16, 128, 128).
        """
        mosaic = out = None
        pivots = (16.0, 128.0, 128.0)
        for i, pl in enumerate(placements):
            if mosaic is None:
                mosaic = np.ascontiguousarray(to_yuv420(self._start(pl.y.erp_w)))
                m_planes = yuv420_planes(mosaic, pl.y.erp_h)
            gain = self._gain(i)
            if abs(gain - 1.0) > 1e-3:
                if out is None:
                    out = np.empty_like(mosaic)
                    o_planes = yuv420_planes(out, pl.y.erp_h)
                for m, o, p, pivot in zip(m_planes, o_planes, (pl.y, pl.u, pl.v), pivots):
                    composite(m, p, gain, out=o, pivot=pivot)
                yield out
            else:
                for m, p in zip(m_planes, (pl.y, pl.u, pl.v)):
                    composite(m, p, 1.0)
                yield mosaic

    def fill(self, canvases: Iterable[Canvas]) -> Iterator[np.ndarray]:
        """The generic FillBackend path on full canvases: the same compositing, with the feather band
        grown inward from the mask's edge (a distance transform) instead of the frame's border."""
        mosaic = None
        for i, canvas in enumerate(canvases):
            h, w = canvas.height, canvas.width
            if mosaic is None:
                if self.background is None:
                    small_w = min(self.bg_width, w)
                    small = cv2.resize(canvas.rgb, (small_w, small_w // 2), interpolation=cv2.INTER_AREA)
                    sm = cv2.resize(canvas.mask.astype(np.float32), (small_w, small_w // 2), interpolation=cv2.INTER_AREA)
                    bg = np.clip(np.round(spherical_fill(small, (sm >= 0.999).astype(np.float32))), 0, 255).astype(np.uint8)
                    self.background = Background(bg, sm > 0, np.ones(0))
                mosaic = upsample_erp(self.background.rgb, w)
            band = max(1.0, self.feather * h / 2)
            dist = cv2.distanceTransform(np.pad(canvas.mask, ((0, 0), (1, 1)), mode="wrap").astype(np.uint8), cv2.DIST_L2, 3)[:, 1:-1]
            alpha = np.round(np.clip(dist / band, 0.0, 1.0) * 255).astype(np.uint8)
            pl = Placement(0, h, 0, canvas.rgb, alpha, w, canvas.time_s)
            out = composite(mosaic, pl, self._gain(i))
            yield out.copy()
