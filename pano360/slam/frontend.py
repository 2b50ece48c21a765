"""The tracking front end: KLT tracks spread on a grid, homography RANSAC, keyframes, no frames kept.

One :class:`Tracker` is fed downscaled gray frames in order. It keeps only the previous frame,
the current keyframe and the live tracks; what the back end needs survives as small arrays: per keyframe the
live track ids and positions (plus ORB descriptors for loop closure), per frame a sample of its
inlier correspondences with its reference keyframe. Memory therefore grows by about 3 kB a
frame, never by a frame.

When the corners die (flat-shaded hills, sky, a blank wall), tracking does not simply start again
with the turn since the last keyframe lost: each frame is aligned directly, by its intensities
(a turn and a focal length: :mod:`pano360.slam.direct`), to the last keyframe before the break,
and the restart is tied to that keyframe the same way (:class:`Bridge`). When the view moves on
while the corners stay away, an aligned frame becomes the next reference, so the alignment
follows the camera across the whole stretch. Those frames are marked low confidence. A keyframe
reached on few tracks is aligned directly to the one before as well, which holds the chain
across weak texture (sky, water) where a few corners alone let it drift.

Outliers (moving objects, bad tracks) found by the RANSAC are dropped for good: a track is never
re-admitted, which is what keeps a large textured object moving with the camera from pulling
the estimate (NOTES.md, "Rotation and focal estimation on a CPU").
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from pano360.project.camera import focal_from_hfov
from pano360.project.rotation import best_rotation, rotation_angle_deg
from pano360.slam.direct import direct_rotation, rotation_homography
from pano360.slam.framelog import FrameLog, FrameObs
from pano360.slam.geometry import pixels_to_rays
from pano360.slam.precision import point_information

# Below this many pixels on the short side, aligning whole frames finds nothing to trust (a 64x36
# pan over a lat/long grid: 3-5 deg median error), so such clips keep to corners.
DIRECT_MIN_SIDE = 90

__all__ = ["TrackerConfig", "Keyframe", "FrameObs", "Bridge", "Tracker"]


@dataclass(frozen=True)
class TrackerConfig:
    """Front-end settings, in pixels of the downscaled frame."""

    grid: tuple[int, int] = (8, 6)  # cells across the longer, shorter side
    per_cell: int = 6
    min_distance: float = 10.0
    quality: float = 0.001  # corner strength relative to the frame's strongest, below which a cell stays empty
    min_eig: float = 1e-4  # absolute corner strength floor (about 5x what sensor noise gives at 640 px)
    win: int = 21  # KLT window (OpenCV's default): on weak texture 15 px windows hold too little gradient
    levels: int = 3
    # Frame-to-frame tracking (the seed) on frames this many times smaller, with this window there.
    # 2 with a 15 px window costs ~30 % less tracking time but moved 3 borderline clips of 34 across
    # their goals (docs/bench_track.md, "Session 9"), so full size stays the default.
    seed_scale: int = 1
    seed_win: int = 21
    fb_max_px: float = 0.7  # forward-backward disagreement allowed, in the seed's pixels
    agree_px: float = 1.0  # how far the precise position may lie from the seed's
    ransac_px: float = 2.5
    kf_inlier_ratio: float = 0.6
    kf_disp_frac: float = 0.12
    # A keyframe is also made this many frames after the last one (0: never) once the view moved
    # kf_gap_disp_frac: a camera swaying a few degrees then has links in several directions, from
    # which the FOV is measurable (one keyframe left it "hardly rotating", 65 deg assumed).
    kf_max_gap: int = 15
    kf_gap_disp_frac: float = 0.02
    # A keyframe reached with fewer inliers than this (weak texture) is also aligned directly
    # (intensities, :mod:`pano360.slam.direct`) to the one before: a link of the whole picture's
    # gradients beside the few tracks' (0: never).
    weak_link_direct: int = 40
    min_inliers: int = 12
    min_corners: int = 36  # corners a keyframe needs to (re)start tracking
    max_obs: int = 96
    orb_features: int = 600
    bridge_frames: int = 15  # the longest break a direct alignment may bridge
    bridge_min_cc: float = 0.9  # the alignment's least correlation to be trusted
    reanchor_overlap: float = 0.8  # a directly aligned frame showing less of its reference than this,
    reanchor_cc: float = 0.97  # or matching it less well than this, becomes the next reference
    voter_min_age: int = 3  # frames a track must have passed the RANSAC before it votes (when 8 cells have one)


@dataclass
class Keyframe:
    """A keyframe: frame index, segment, live track ids ``(n,)`` and positions ``(n, 2)``, ORB data,
    and how precisely each position is known (``info (n, 3)``, :func:`precision.point_information`).

    The ORB data (for loop closure only) is computed on a worker thread while tracking goes on:
    ``orb_pts``/``orb_desc`` wait for it on first use.
    """

    frame: int
    segment: int
    ids: np.ndarray
    pts: np.ndarray
    orb: Future
    info: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))

    @property
    def orb_pts(self) -> np.ndarray:
        return self.orb.result()[0]

    @property
    def orb_desc(self) -> np.ndarray | None:
        return self.orb.result()[1]


@dataclass(frozen=True)
class Bridge:
    """A direct alignment of keyframe ``a`` to keyframe ``b``: across a break in tracking (``b`` the
    restart), or beside the few tracks that joined a weak keyframe to the one before; as points
    ``pa``/``pb (k, 2)`` that the aligning homography maps onto each other."""

    a: int
    b: int
    pa: np.ndarray
    pb: np.ndarray
    cc: float


def _match_exposure(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``src`` scaled to ``ref``'s brightness where ``src`` has content.

    KLT compares raw intensities, so an auto-exposure step between a keyframe and a frame biases every
    position (0.1 deg of rotation error for a 25% exposure swing). Exposure in gamma-coded 8-bit is a
    gain: the ratio of the sums of the pixels whose own ratio lies near the median ratio, so that a
    moving object takes no part. Sums, not medians: in a dark picture (a dusk lake, medians near 15)
    medians move in whole grey levels, and 15 / 14 is a 7 % "gain" that a sub-pixel shift turns on
    and off. Clipped pixels (they hide the gain) take no part either.
    """
    s, r = src[::4, ::4].astype(np.float32), ref[::4, ::4].astype(np.float32)
    valid = (s >= 8) & (s < 250) & (r > 0) & (r < 250)
    if valid.sum() < 100:
        return src
    s, r = s[valid], r[valid]
    ratio = r / s
    typical = np.median(ratio)
    agree = np.abs(ratio - typical) < 0.1 * typical + 2.0 / s
    gain = float(r[agree].sum() / max(float(s[agree].sum()), 1.0))
    if not 0.5 < gain < 2.0 or abs(gain - 1.0) < 0.005:
        return src
    return cv2.convertScaleAbs(src, alpha=gain)


def _orb_features(orb: cv2.ORB, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB corners ``(m, 2)`` refined to sub-pixel, and their descriptors."""
    kps, desc = orb.detectAndCompute(gray, None)
    pts = np.array([kp.pt for kp in kps], np.float32).reshape(-1, 2)
    if len(pts):
        # ORB's corners sit on its pyramid's grid; the sub-pixel corner is what two views share.
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 0.01)
        pts = cv2.cornerSubPix(gray, pts.reshape(-1, 1, 2).copy(), (3, 3), (-1, -1), crit).reshape(-1, 2)
    return pts, desc


def _empty2() -> np.ndarray:
    return np.zeros((0, 2), np.float32)


@dataclass
class Tracker:
    """Streaming KLT tracker; call :meth:`push` with each ``(h, w) uint8`` gray frame in order."""

    width: int
    height: int
    config: TrackerConfig = field(default_factory=TrackerConfig)
    hfov_guess_deg: float = 65.0  # where direct alignment starts its focal length (the FOV is measured later, on the tracks)
    keyframes: list[Keyframe] = field(default_factory=list)
    frames: FrameLog = field(default_factory=FrameLog)  # every frame's evidence, on disk
    bridges: list[Bridge] = field(default_factory=list)

    def __post_init__(self) -> None:
        cfg = self.config
        # The grid, turned with the frame: (cells across, cells down), and its cells' centres.
        self._grid = cols, rows = cfg.grid if self.width >= self.height else cfg.grid[::-1]
        gx, gy = np.meshgrid((np.arange(cols) + 0.5) * self.width / cols, (np.arange(rows) + 0.5) * self.height / rows)
        self._cell_centres = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        self._cells = [(int(self.width * c / cols), int(self.width * (c + 1) / cols), int(self.height * r / rows), int(self.height * (r + 1) / rows))
                       for r in range(rows) for c in range(cols)]
        self._orb = cv2.ORB_create(cfg.orb_features)
        # One worker: keyframes' ORB features are for the back end, so they need not hold up tracking.
        self._orb_pool = ThreadPoolExecutor(1, thread_name_prefix="pano360-orb")
        self._prev = None  # the previous frame at the seed's scale
        self._kf_img = None
        self._pts = _empty2()  # live tracks in the previous frame
        self._ids = np.zeros(0, np.int64)
        self._age = np.zeros(0, np.int64)  # frames each live track has passed the RANSAC
        self._kf_pts = _empty2()  # positions of the live tracks at the current keyframe
        self._kf_info = np.zeros((0, 3), np.float32)  # and how precisely KLT places them there
        self._kf_count = 0
        self._next_id = 0
        self._segment = -1
        self._lost = True
        self._streak = 0  # frames tracked in a row since the last (re)start
        self._have_motion = False  # whether _H_step comes from a tracked frame (not at the clip's start)
        self._jerk_px = 1.0  # running typical deviation of the background from the predicted motion
        self._last_steady = -10**9  # last frame that ended a run of 3 tracked frames
        self._H_step = np.eye(3)
        self._H_prev = np.eye(3)
        self._before_break = None  # (keyframe, its image, R keyframe -> last aligned frame, R_step, that frame)
        self._direct_focal = focal_from_hfov(self.width, self.hfov_guess_deg)
        self._prev_ref = None  # (keyframe, its image, R it -> the current reference) while direct alignment chains

    def finish(self) -> None:
        """Wait for the keyframes' ORB features and stop the worker; call once all frames are pushed."""
        self._orb_pool.shutdown(wait=True)

    # -- detection -------------------------------------------------------------------------
    def _detect(self, gray: np.ndarray, existing: np.ndarray) -> np.ndarray:
        """New corners ``(m, 2)`` float32, at most ``per_cell`` per grid cell counting ``existing``."""
        cfg = self.config
        eig = cv2.cornerMinEigenVal(gray, 5, 3)
        floor = max(float(eig.max()) * cfg.quality, cfg.min_eig)
        mask = np.full(gray.shape, 255, np.uint8)
        margin = cfg.win // 2 + 2
        mask[:margin], mask[-margin:], mask[:, :margin], mask[:, -margin:] = 0, 0, 0, 0
        for x, y in existing:
            cv2.circle(mask, (int(x), int(y)), int(cfg.min_distance), 0, -1)
        counts = np.bincount(self._cell_of(existing), minlength=len(self._cells)) if len(existing) else np.zeros(len(self._cells), np.int64)
        found = []
        for k, (x0, x1, y0, y1) in enumerate(self._cells):
            want = cfg.per_cell - counts[k]
            if want <= 0:
                continue
            cell_max = float(eig[y0:y1, x0:x1].max())
            if cell_max < floor:
                continue  # no texture here (sky, a white wall): better no corner than a noise corner
            pts = cv2.goodFeaturesToTrack(gray[y0:y1, x0:x1], int(want), min(0.99, max(0.02, floor / cell_max)), cfg.min_distance,
                                          mask=mask[y0:y1, x0:x1], blockSize=5)
            if pts is not None:
                found.append(pts.reshape(-1, 2) + np.array([x0, y0], np.float32))
        return np.concatenate(found).astype(np.float32) if found else _empty2()

    def _make_keyframe(self, index: int, gray: np.ndarray, new_segment: bool) -> None:
        new = self._detect(gray, self._pts)
        self._pts = np.concatenate([self._pts, new])
        self._ids = np.concatenate([self._ids, np.arange(self._next_id, self._next_id + len(new))])
        self._age = np.concatenate([self._age, np.zeros(len(new), np.int64)])
        self._next_id += len(new)
        self._kf_pts = self._pts.copy()
        self._kf_info = point_information(gray, self._pts, self.config.win)
        self._kf_img = gray
        self._kf_count = -1  # set by the first tracked frame: many fresh corners never survive one
        if new_segment:
            self._segment += 1
        orb = self._orb_pool.submit(_orb_features, self._orb, gray)
        self.keyframes.append(Keyframe(index, self._segment, self._ids.copy(), self._pts.copy(), orb, self._kf_info))
        self._H_prev = np.eye(3)

    # -- tracking --------------------------------------------------------------------------
    def push(self, gray: np.ndarray) -> FrameObs:
        """Track one frame; returns (and records) its :class:`FrameObs`."""
        cfg = self.config
        index = len(self.frames)
        small = self._seed_image(gray)
        obs = None if self._lost else self._track(index, gray, small)
        self._streak = self._streak + 1 if obs is not None else 0
        if self._streak >= 3:
            self._last_steady = index
        if obs is None:
            was_tracking = not self._lost and index > 0
            if was_tracking:
                self._before_break = (len(self.keyframes) - 1, self._kf_img, self._turn_of(self._H_prev), self._turn_of(self._H_step), index - 1)
                self._prev_ref = None
            self._pts, self._ids, self._age = _empty2(), np.zeros(0, np.int64), np.zeros(0, np.int64)
            aligned = self._align_to_break(index, gray)
            self._make_keyframe(index, gray, new_segment=True)
            # The clip's first keyframe anchors everything after it, so it is kept on fewer corners;
            # so is a restart whose direct alignment is losing sight of the keyframe before the break.
            fading = aligned is not None and aligned[4] < 0.5
            need = cfg.min_corners if len(self.keyframes) > 1 and not fading else cfg.min_inliers
            if len(self._pts) >= need:
                self._lost = False
                obs = FrameObs(len(self.keyframes) - 1, _empty2(), _empty2(), len(self._pts), "restart" if was_tracking or index > 0 else "")
                if aligned is not None:  # the new segment hangs on the old one
                    self.bridges.append(Bridge(aligned[0], len(self.keyframes) - 1, aligned[1], aligned[2], aligned[3]))
                self._before_break = None
                self._prev_ref = None
            else:
                self.keyframes.pop().orb.cancel()
                self._segment -= 1
                self._lost = True
                self._pts, self._ids, self._age = _empty2(), np.zeros(0, np.int64), np.zeros(0, np.int64)
                if aligned is not None:
                    # Too few corners to track, but the picture still lines up with the keyframe
                    # before the break: the frame's rotation comes from that (low confidence).
                    obs = FrameObs(aligned[0], aligned[1], aligned[2], 0, "direct")
                    if aligned[4] < cfg.reanchor_overlap or aligned[3] < cfg.reanchor_cc:
                        self._direct_keyframe(index, gray, aligned)
                else:
                    obs = FrameObs(-1, _empty2(), _empty2(), 0, "no texture")
                if not self.keyframes and self._before_break is None:
                    # The clip opens on too few corners (sky, a blank wall): the frames after it are
                    # aligned directly to this one, which becomes a keyframe once one of them lines up.
                    self._before_break = (None, gray, np.eye(3), np.eye(3), index)
        self._prev = small
        self.frames.append(obs)
        return obs

    def _seed_image(self, gray: np.ndarray) -> np.ndarray:
        """The frame at the seed's scale (area filter: pixel ``x`` there covers ``s x .. s x + s - 1`` here)."""
        s = self.config.seed_scale
        if s == 1:
            return gray
        return cv2.resize(gray, (self.width // s, self.height // s), interpolation=cv2.INTER_AREA)

    def _align_to_break(self, index: int, gray: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, float, float] | None:
        """Align a frame after a break in tracking directly (intensities, not corners) to the last
        keyframe before it, starting where the camera's last motion puts it. Returns
        ``(keyframe, pa, pb, correlation, overlap)``: grid points and where the alignment maps them in
        this frame, and the share of the grid still in view; None when the break is too old or the
        alignment is not to be trusted."""
        if self._before_break is None or min(self.width, self.height) < DIRECT_MIN_SIDE:
            return None
        kf, img, R_last, R_step, last = self._before_break
        gap = index - last
        if gap > self.config.bridge_frames:
            self._before_break = None
            self._prev_ref = None
            return None
        R0 = np.linalg.matrix_power(R_step, gap) @ R_last
        found = direct_rotation(img, gray, self._direct_focal, R0, R_null=R_last)
        still = False
        if found is None or found[2] < self.config.bridge_min_cc or rotation_angle_deg(R0, R_last) > 0.05:
            # The last motion may be a poor guess (a jerk, or itself a poor alignment): from where
            # the last aligned frame was too. On smooth pictures both starts line up almost equally
            # well, and extrapolating a wrong motion alone turned a still camera round and round.
            again = direct_rotation(img, gray, self._direct_focal, R_last, R_null=R_last)
            if again is not None and (found is None or again[2] >= found[2]):
                found, still = again, True
        if found is None or found[2] < self.config.bridge_min_cc:
            return None
        R, focal, cc = found
        H = rotation_homography(R, self.width, self.height, focal)
        H0 = rotation_homography(R0, self.width, self.height, self._direct_focal)
        pa, pb, pred = self._cell_centres, self._grid_moved(H), self._grid_moved(H0)
        inside = self._in_frame(pb)
        # A hand cannot have swung the camera far from its last motion in a few frames.
        if inside.sum() < self.config.min_inliers or np.median(np.linalg.norm(pb - pred, axis=1)) > 0.25 * max(self.width, self.height):
            return None
        if kf is None:  # the clip's opening frame
            kf = self._trackless_keyframe(last, img)
        # The next frame continues from this one.
        step = R @ R_last.T if gap == 1 else (np.eye(3) if still else R_step)
        self._before_break = (kf, img, R, step, index)
        return kf, pa[inside], pb[inside], cc, float(inside.mean())

    def _aligned_grid(self, ref: np.ndarray, gray: np.ndarray, R0: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Grid points of ``ref`` in view, where a direct alignment to ``gray`` from ``R0`` puts them,
        and its correlation; None when the alignment is not to be trusted or leaves too few in view.
        ``kwargs`` go to :func:`~pano360.slam.direct.direct_rotation`."""
        found = direct_rotation(ref, gray, self._direct_focal, R0, **kwargs)
        if found is None or found[2] < self.config.bridge_min_cc:
            return None
        R, focal, cc = found
        pb = self._grid_moved(rotation_homography(R, self.width, self.height, focal))
        inside = self._in_frame(pb)
        if inside.sum() < self.config.min_inliers:
            return None
        return self._cell_centres[inside], pb[inside], cc

    def _direct_link(self, ref: np.ndarray, gray: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
        """:meth:`_aligned_grid` started from the tracks' homography ``H`` between two keyframes."""
        # Two levels suffice from the tracks' estimate; on 3000 gradient pixels or fewer the links
        # erred more than they helped, from 4000 to 12000 alike (docs/bench_track.md, session 10).
        link = self._aligned_grid(ref, gray, self._turn_of(H), levels=2, max_points=8000)
        if link is None:
            return None
        # It refines the tracks' estimate (by up to ~1.5 px on weak texture); one that lands further
        # away than the tracks' own outlier threshold aligned smooth shading wrongly.
        pa, pb, _ = link
        by_tracks = cv2.perspectiveTransform(pa.reshape(-1, 1, 2), H).reshape(-1, 2)
        if np.median(np.linalg.norm(pb - by_tracks, axis=1)) > self.config.ransac_px:
            return None
        return link

    def _turn_of(self, H: np.ndarray) -> np.ndarray:
        """The camera rotation (at the guessed FOV) nearest to a homography ``H`` between two views."""
        f = self._direct_focal
        # best_rotation(a, b) fits a = R b; the rays here go the other way (b = R a).
        return best_rotation(pixels_to_rays(self._cell_centres, self.width, self.height, f),
                             pixels_to_rays(self._grid_moved(H), self.width, self.height, f)).T

    def _grid_moved(self, H: np.ndarray) -> np.ndarray:
        """Where the homography ``H`` puts the grid's cell centres ``(cells, 2)``."""
        return cv2.perspectiveTransform(self._cell_centres.reshape(-1, 1, 2), H).reshape(-1, 2)

    def _trackless_keyframe(self, index: int, gray: np.ndarray) -> int:
        """Add a keyframe without tracks, in a segment of its own (its ORB features still serve loop
        closure, should the view come back); returns its index."""
        self._segment += 1
        orb = self._orb_pool.submit(_orb_features, self._orb, gray)
        self.keyframes.append(Keyframe(index, self._segment, np.zeros(0, np.int64), _empty2(), orb))
        return len(self.keyframes) - 1

    def _direct_keyframe(self, index: int, gray: np.ndarray, aligned: tuple[int, np.ndarray, np.ndarray, float, float]) -> None:
        """Make a directly aligned frame the reference of the frames after it: a keyframe without
        tracks, in a segment of its own, tied by a :class:`Bridge` to the reference it was aligned to.

        A camera panning over a blank wall soon turns away from the last keyframe it could track;
        chained this way, direct alignment follows it across the whole stretch instead of giving up
        once the old reference leaves the view (after which only interpolation was left)."""
        kf = self._trackless_keyframe(index, gray)
        self.bridges.append(Bridge(aligned[0], kf, aligned[1], aligned[2], aligned[3]))
        ref, ref_img, R_ref, R_step, _ = self._before_break
        if self._prev_ref is not None:
            # A second link, to the reference before last when it is still in view: a chain of
            # single links drifts like a random walk.
            kf0, img0, R_01 = self._prev_ref
            link = self._aligned_grid(img0, gray, R_ref @ R_01)
            if link is not None:
                self.bridges.append(Bridge(kf0, kf, *link))
        self._prev_ref = (ref, ref_img, R_ref)
        self._before_break = (kf, gray, np.eye(3), R_step, index)

    def _in_frame(self, pts: np.ndarray) -> np.ndarray:
        """Which points ``(n, 2)`` lie on the frame (pixel centres 0 .. size - 1)."""
        return (pts[:, 0] >= 0) & (pts[:, 0] <= self.width - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= self.height - 1)

    def _cell_of(self, pts: np.ndarray) -> np.ndarray:
        cols, rows = self._grid
        cx = np.clip((pts[:, 0] * cols / self.width).astype(int), 0, cols - 1)
        cy = np.clip((pts[:, 1] * rows / self.height).astype(int), 0, rows - 1)
        return cy * cols + cx

    def _robust_homography(self, src: np.ndarray, dst: np.ndarray, age: np.ndarray, thresh: float,
                           plausible: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
        """Homography RANSAC with one vote per grid cell; every track is then classified by it.

        The vote goes to the cell's oldest track, so the model is the one that explains the most
        of the picture's area, not the most corners: a textured object filling a few cells (many
        fresh corners) cannot outvote a weakly textured background spread over the frame. Only
        tracks that have passed ``voter_min_age`` RANSACs vote, when at least 8 cells have one: the
        corners a new keyframe finds on an object that moves on its own cannot take over the vote
        before the camera's model has judged them (the lat/long grid stress clip: 5.6 -> 0.24 deg max). Only
        ``plausible`` tracks (near where the camera's recent motion predicts them) vote, when
        there are at least 8; with fewer, after a steady stretch of tracking, the frame is refused
        (a lost frame) rather than explained by what is left.
        """
        if plausible is not None and plausible.sum() < 8 and self._trusted:
            return None, np.zeros(len(src), bool)  # only implausible motion left: refuse rather than follow it
        if plausible is not None and 8 <= plausible.sum() < len(src):
            keep = np.flatnonzero(plausible)
            H, _ = self._robust_homography(src[keep], dst[keep], age[keep], thresh)
            if H is None:
                return None, np.zeros(len(src), bool)
            err = np.linalg.norm(cv2.perspectiveTransform(src.reshape(-1, 1, 2), H).reshape(-1, 2) - dst, axis=1)
            return H, err < thresh
        cell = self._cell_of(dst)
        order = np.lexsort((-age, cell))
        cells = cell[order]
        first = order[np.r_[True, cells[1:] != cells[:-1]]]
        mature = first[age[first] >= self.config.voter_min_age]
        voters = mature if len(mature) >= 8 else first if len(first) >= 8 else np.arange(len(src))
        H, _ = cv2.findHomography(src[voters], dst[voters], cv2.RANSAC, thresh, maxIters=2000, confidence=0.999)
        if H is None:
            return None, np.zeros(len(src), bool)
        err = np.linalg.norm(cv2.perspectiveTransform(src.reshape(-1, 1, 2), H).reshape(-1, 2) - dst, axis=1)
        return H, err < thresh

    def _track(self, index: int, gray: np.ndarray, small: np.ndarray) -> FrameObs | None:
        cfg = self.config
        # The last motion still predicts this one if tracking was steady within the last 10 frames.
        self._trusted = index - self._last_steady <= 10
        if len(self._pts) < cfg.min_inliers:
            return None
        p0 = self._pts.reshape(-1, 1, 2)
        pred = cv2.perspectiveTransform(p0, self._H_step)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)
        # The seed: frame to frame on smaller frames (the precise position comes from the keyframe
        # below, so this only has to land within KLT's reach of it, and to flag tracks that slip).
        s = float(cfg.seed_scale)
        off = 0.5 / s - 0.5  # pixel centres: x here is (x + 0.5) / s - 0.5 there
        win = (cfg.seed_win, cfg.seed_win)
        q0 = p0 / s + off
        q1, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, small, q0, pred / s + off, winSize=win,
                                             maxLevel=max(0, cfg.levels - int(round(math.log2(s)))),
                                             criteria=crit, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        # The backward check starts where the forward track began, so it needs no deep pyramid.
        qb, st2, _ = cv2.calcOpticalFlowPyrLK(small, self._prev, q1, q0.copy(), winSize=win, maxLevel=1,
                                              criteria=crit, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        p1 = ((q1 - off) * s).reshape(-1, 2)
        fb = np.linalg.norm((qb - q0).reshape(-1, 2), axis=1)
        inside = self._in_frame(p1)
        good = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < cfg.fb_max_px) & inside
        if good.sum() < cfg.min_inliers:
            return None
        # A hand cannot change the camera's motion by much from one frame to the next: tracks far from
        # where the last motion puts them (an object moving on its own) get no vote.
        pred = pred.reshape(-1, 2)
        step = float(np.median(np.linalg.norm(pred - self._pts, axis=1)))
        dev = np.linalg.norm(p1 - pred, axis=1)
        gate = 4.0 + 0.25 * step + 3.0 * self._jerk_px
        plausible = (dev < gate)[good] if self._have_motion else None
        kf_pts, cur = self._kf_pts[good], p1[good]
        H, mask = self._robust_homography(kf_pts, cur, self._age[good], 2.0 * cfg.ransac_px, plausible)
        if H is None or mask.sum() < cfg.min_inliers:
            return None
        # Re-track from the keyframe warped by that homography, seeded by the frame-to-frame result.
        # A rotation IS a homography, so the warped keyframe looks like this frame and KLT's
        # translation model holds: positions carry one small KLT error instead of a random walk over
        # every frame since the keyframe, and no bias from the patch's perspective stretch.
        warped = _match_exposure(cv2.warpPerspective(self._kf_img, H, (self.width, self.height), flags=cv2.INTER_LINEAR), gray)
        q = cv2.perspectiveTransform(kf_pts.reshape(-1, 1, 2), H)
        pk, stk, _ = cv2.calcOpticalFlowPyrLK(warped, gray, q, cur.reshape(-1, 1, 2).copy(), winSize=(cfg.win, cfg.win), maxLevel=0,
                                              criteria=crit, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        pk = pk.reshape(-1, 2)
        idx = np.flatnonzero(good)
        agree = (stk.ravel() == 1) & (np.linalg.norm(pk - cur, axis=1) < cfg.agree_px) & mask
        good[idx[~agree]] = False
        p1[idx[agree]] = pk[agree]
        if good.sum() < cfg.min_inliers:
            return None
        kf_pts, cur = self._kf_pts[good], p1[good]
        H, inl = self._robust_homography(kf_pts, cur, self._age[good], cfg.ransac_px)
        if H is None or inl.sum() < cfg.min_inliers:
            return None
        keep = np.flatnonzero(good)[inl]
        # How far the camera's motion usually strays from the prediction (hand shake): widens the gate.
        self._jerk_px = 0.8 * self._jerk_px + 0.2 * float(np.median(dev[keep]))
        self._pts, self._ids, self._kf_pts, self._age = p1[keep], self._ids[keep], self._kf_pts[keep], self._age[keep] + 1
        self._kf_info = self._kf_info[keep]
        self._H_step = H @ np.linalg.inv(self._H_prev)
        self._have_motion = True
        self._H_prev = H
        n = len(keep)
        sel = np.linspace(0, n - 1, min(n, cfg.max_obs)).round().astype(int)
        obs = FrameObs(len(self.keyframes) - 1, self._kf_pts[sel].copy(), self._pts[sel].copy(), n, kf_info=self._kf_info[sel])
        disp = float(np.median(np.linalg.norm(self._pts - self._kf_pts, axis=1)))
        if self._kf_count < 0:
            self._kf_count = n
        side = max(self.width, self.height)
        overdue = (cfg.kf_max_gap > 0 and index - self.keyframes[-1].frame >= cfg.kf_max_gap
                   and disp > cfg.kf_gap_disp_frac * side)
        if n < cfg.kf_inlier_ratio * self._kf_count or disp > cfg.kf_disp_frac * side or overdue:
            prev, prev_img = len(self.keyframes) - 1, self._kf_img
            self._make_keyframe(index, gray, new_segment=False)
            if n < cfg.weak_link_direct and min(self.width, self.height) >= DIRECT_MIN_SIDE:
                link = self._direct_link(prev_img, gray, H)
                if link is not None:
                    self.bridges.append(Bridge(prev, len(self.keyframes) - 1, *link))
        return obs
