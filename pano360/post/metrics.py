"""Quality measures of 360 video: seam closure, motion, and how much of the sphere real pixels saw.

- **Left-right consistency** (PanoLora, ``research/panolora-summary.md``): the cosine similarity of
  the 2-pixel strips at the ERP's left and right edges, paired as mirror images about the seam
  (columns ``0, 1`` against ``W-1, W-2``, values in [0, 1] per channel). 1 for identical strips; it stays high for any bright picture, so
  read it together with the seam ratio.
- **Seam ratio**: ``mean |col 0 - col W-1|`` over the mean ``|col j - col j+1|`` of the neighbouring
  column pairs inside the picture within ``W / 64`` columns (5.6 deg) of the seam on either side.
  About 1 for a seamless panorama (the seam is just one more pair of neighbours), well above 1 for
  a visible seam. The baseline is local because texture is not: against the whole picture's mean,
  a seamless panorama rolled to 146 positions scored 0.3-5.5 (sechelt.jpg), locally 0.5-2.5, and
  puydesancy.jpg 0.9-1.3.
- **Motion magnitude** (PanoLora): mean Farneback optical-flow length between consecutive frames in
  the front / right / back / left 90 deg views, in pixels per frame of a view whose width is W / 4
  (the ERP's own resolution at the equator).
- **Coverage**: the solid-angle-weighted share of the sphere seen by real pixels, from a mask or
  from the union of a trajectory's frame footprints.

Convention check: a seamless panorama gives a seam ratio within a few percent of 1, whatever
column the seam happens to fall on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache

import cv2
import numpy as np

from pano360.project.remap import erp_to_persp, persp_footprint_map
from pano360.project.rotation import euler_to_matrix

__all__ = ["lr_consistency", "seam_ratio", "VIEWS", "view_grays", "flow_magnitude", "sphere_share",
           "trajectory_coverage", "MotionMeter"]

# Yaw of the four views PanoLora reports motion in.
VIEWS = {"front": 0.0, "right": 90.0, "back": 180.0, "left": -90.0}


def _check_erp(img: np.ndarray) -> None:
    if img.ndim not in (2, 3) or img.shape[1] != 2 * img.shape[0]:
        raise ValueError(f"an ERP image must be (H, 2H[, C]), got {img.shape}")


def lr_consistency(erp: np.ndarray) -> float:
    """Cosine similarity of the left and right 2-pixel edge strips of an ERP ``(H, 2H[, C])``.

    >>> img = np.full((4, 8, 3), 100, np.uint8)
    >>> round(lr_consistency(img), 6)
    1.0
    """
    _check_erp(erp)
    a = erp[:, :2].astype(np.float64).ravel() / 255.0
    b = erp[:, :-3:-1].astype(np.float64).ravel() / 255.0  # columns W-1, W-2
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / den) if den > 0 else 1.0


def seam_step(erp: np.ndarray) -> float:
    """Mean absolute difference across the +-180 deg seam (``|col 0 - col W-1|``), in the picture's
    own levels (0-255 for 8 bits): how big the seam is, where :func:`seam_ratio` says how big against
    the picture's texture (on a flat sky a step of half a level gives a large ratio, yet shows nothing)."""
    _check_erp(erp)
    return float(np.abs(erp[:, 0].astype(np.float32) - erp[:, -1]).mean())


def seam_ratio(erp: np.ndarray, band: int | None = 0) -> float:
    """Mean absolute difference across the +-180 deg seam over that of neighbouring column pairs.

    ``band=None`` compares with every neighbouring column pair of the picture: the definition of
    the issues and of PanoLora. It swings with where texture happens to be (0.3 to 5.5 on seamless
    panoramas rolled to different seams), so ``band=0`` (default) compares only with the pairs within
    ``max(4, W / 64)`` columns of the seam on both sides (``band=k``: within ``k``), where the
    texture is the seam's own. Returns 1.0 when nothing changes from column to column.
    """
    seam = seam_step(erp)
    if band is None:
        if erp.dtype == np.uint8:  # |col j+1 - col j| is exact in 8 bits: OpenCV does the frame ~10x faster
            d = cv2.absdiff(erp[:, 1:], erp[:, :-1])
            inner = float(sum(cv2.sumElems(d))) / d.size
        else:
            inner = float(np.abs(np.diff(erp.astype(np.float32), axis=1)).mean())
    else:
        k = band or max(4, erp.shape[1] // 64)
        near = np.concatenate([erp[:, : k + 1], erp[:, -(k + 1):]], axis=1).astype(np.float32)
        d = np.abs(np.diff(near, axis=1))
        inner = float(np.concatenate([d[:, :k], d[:, -k:]], axis=1).mean())  # skip the seam pair itself
    return seam / inner if inner > 0 else 1.0


def view_grays(rgb_erp: np.ndarray, size: int | None = None) -> dict[str, np.ndarray]:
    """The front/right/back/left 90 deg gray views ``(size, size)`` of an RGB ERP (size: W / 4)."""
    _check_erp(rgb_erp)
    size = int(size or max(16, rgb_erp.shape[1] // 4))
    gray = cv2.cvtColor(rgb_erp, cv2.COLOR_RGB2GRAY) if rgb_erp.ndim == 3 else rgb_erp
    return {name: erp_to_persp(gray, euler_to_matrix(yaw, 0.0, 0.0), 90.0, size, size) for name, yaw in VIEWS.items()}


def flow_magnitude(prev: np.ndarray, cur: np.ndarray) -> float:
    """Mean Farneback optical-flow length in pixels between two gray images of one size."""
    flow = cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return float(np.linalg.norm(flow, axis=2).mean())


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=len(VIEWS), thread_name_prefix="pano360-flow")


class MotionMeter:
    """Accumulates per-view motion magnitude over a stream of RGB ERP frames."""

    def __init__(self, view_size: int | None = None) -> None:
        self.view_size = view_size
        self.prev: dict[str, np.ndarray] | None = None
        self.sums = {k: 0.0 for k in VIEWS}
        self.pairs = 0

    def add(self, rgb_erp: np.ndarray) -> None:
        views = view_grays(rgb_erp, self.view_size)
        if self.prev is not None:
            prev = self.prev
            # The four views' flows run side by side (OpenCV releases the GIL): ~2x on two cores.
            for k, m in zip(VIEWS, _pool().map(lambda k: flow_magnitude(prev[k], views[k]), VIEWS)):
                self.sums[k] += m
            self.pairs += 1
        self.prev = views

    def means(self) -> dict[str, float | None]:
        """Mean magnitude per view and over the four (None before two frames)."""
        if not self.pairs:
            return {**{k: None for k in VIEWS}, "mean": None}
        out = {k: v / self.pairs for k, v in self.sums.items()}
        out["mean"] = float(np.mean(list(out.values())))
        return out


def _row_weights(h: int) -> np.ndarray:
    """Solid angle of each ERP row (proportional to cos(latitude) of its centre), summing to 1."""
    lat = (0.5 - (np.arange(h) + 0.5) / h) * np.pi
    w = np.cos(lat)
    return w / w.sum()


def sphere_share(mask: np.ndarray) -> float:
    """Solid-angle-weighted share of an ERP mask ``(H, 2H)`` (True: seen) in [0, 1]."""
    _check_erp(mask)
    return float(_row_weights(mask.shape[0]) @ np.asarray(mask, dtype=np.float64).mean(axis=1))


def trajectory_coverage(traj, erp_w: int = 512) -> tuple[float, np.ndarray]:
    """Share of the sphere covered by the union of a trajectory's frames, and that mask ``(W/2, W)``.

    Every frame's footprint comes from ``project.remap.persp_footprint_map`` at the trajectory's
    picture size and FOV; raises ValueError for a trajectory that is not of a perspective clip.
    """
    if not 0.0 < traj.hfov_deg < 180.0:
        raise ValueError(f"coverage needs a perspective clip's trajectory (hfov < 180), got hfov {traj.hfov_deg}")
    erp_h = erp_w // 2
    mask = np.zeros((erp_h, erp_w), dtype=bool)
    # Footprints at a fraction of the picture size: only the outline matters at this resolution.
    scale = min(1.0, 256.0 / max(traj.width, traj.height))
    fw, fh = max(2, int(round(traj.width * scale))), max(2, int(round(traj.height * scale)))
    for R in traj.R:
        fp = persp_footprint_map(R, traj.hfov_deg, fw, fh, erp_w, erp_h)
        mask[fp.v0:fp.v1] |= fp.valid
    return sphere_share(mask), mask
