"""The rotation of every frame of a 360 video, estimated on the sphere (no field of view to guess).

Each frame is looked at through the six 90 deg faces of a cube fixed in the WORLD: rendered from
the frame's ERP with the predicted rotation, they match the reference frame's faces up to the
prediction's error. Corners of the reference faces are tracked into them (pyramidal KLT with a
forward-backward check), turned into unit bearing vectors (the reference's in the world, the
frame's in its own camera axes) and the rotation comes from Wahba's problem (Kabsch/SVD) inside
a 2-point RANSAC on the angle between vectors, pooled over all faces. A large correction is
refined once more from faces re-rendered with it. Measuring every frame against a reference
rather than its neighbour keeps the path free of drift; the reference moves on when too few of
its corners survive (the scene changed).

When a frame cannot be followed (black or blank frames, a fade, a turn too fast for the flow),
it is matched against the reference from scratch: ORB features of the six faces, any rotation
(a 360 frame always shows the reference's scene somewhere). Frames that match nothing are
``lost`` (the caller interpolates their rotations); after ``patience`` textured frames that still
match nothing (a cut to another scene), tracking restarts from the last known rotation.

Convention: ``R_i`` maps camera-i directions to the world (``CONVENTIONS.md``), the world being
frame 0's camera, so ``R_0 = I``; the ERP of frame i shows directions in camera-i axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from pano360.project.camera import focal_from_hfov
from pano360.project.remap import erp_to_persp
from pano360.project.rotation import euler_to_matrix, rotation_angle_deg
from pano360.slam.geometry import ransac_rotation, unit_rays

__all__ = ["CUBE_FACES", "SphereTracker", "estimate_sphere_rotations"]

# World rotations of the six cube faces: front, right, back, left, up, down.
CUBE_FACES = euler_to_matrix([0.0, 90.0, 180.0, -90.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 90.0, -90.0], 0.0)


# A measurement on fewer agreeing corners is not trusted (2-ray RANSAC on noise finds a few).
MIN_INLIERS = 15


@dataclass
class _Reference:
    index: int
    faces: list  # gray face images
    points: list  # per face (n, 1, 2) float32 corners
    world: list  # per face (n, 3) world bearing vectors
    count: int
    support: int  # inliers of the measurement that placed it (its corner count for a first reference)
    orb: tuple[np.ndarray, np.ndarray] | None = None  # world bearings, descriptors: made when first needed


class SphereTracker:
    """Frame-by-frame rotation estimation on gray ERP frames of one size (see the module docstring).

    ``face_size`` defaults to W / 4 (the ERP's angular resolution at the equator).
    """

    def __init__(self, erp_w: int, erp_h: int, face_size: int | None = None, corners_per_face: int = 120,
                 threshold_px: float = 1.5, generator: np.random.Generator | None = None, patience: int = 15) -> None:
        self.erp_w, self.erp_h = erp_w, erp_h
        self.size = int(face_size or max(64, erp_w // 4))
        self.corners = corners_per_face
        self.f = focal_from_hfov(self.size, 90.0)
        self.threshold = threshold_px / self.f  # radians
        self.rng = generator if generator is not None else np.random.default_rng(0)
        self.patience = patience
        self.ref: _Reference | None = None  # what frames are measured against
        self.anchor: _Reference | None = None  # the last reference from a well-measured frame
        self.history: list[np.ndarray] = []  # every frame's rotation (a lost frame: the last known one)
        self.lost: list[int] = []  # frames not measured
        self.found: list[int] = []  # frames matched from scratch after tracking failed
        self.restarts: list[int] = []  # frames where tracking began again from the last known rotation
        self._measured = 0  # frames measured in a row (two give a velocity to predict with)
        self._strangers = 0  # textured frames in a row that matched nothing
        self._orb = cv2.ORB_create(300)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    # -- geometry ---------------------------------------------------------------------------

    def _rays(self, pts: np.ndarray) -> np.ndarray:
        return unit_rays(pts.reshape(-1, 2), self.size, self.size, self.f)

    def _faces(self, gray: np.ndarray, R: np.ndarray) -> list[np.ndarray]:
        """The world-fixed cube faces as seen in a frame whose rotation is ``R``."""
        return [erp_to_persp(gray, R.T @ F, 90.0, self.size, self.size) for F in CUBE_FACES]

    def _reference(self, index: int, gray: np.ndarray, R: np.ndarray, support: int | None) -> _Reference:
        """A reference made of frame ``index`` seen at ``R``; ``support``: the inliers that placed
        it (None: it defines its own rotation; its corner count stands for it)."""
        faces = self._faces(gray, R)
        points, world = [], []
        for F, face in zip(CUBE_FACES, faces):
            p = None
            if face.max() - face.min() > 8:  # goodFeaturesToTrack's threshold is relative: a black face has "corners"
                p = cv2.goodFeaturesToTrack(face, self.corners, 0.01, max(4.0, self.size / 40.0), blockSize=5)
            p = np.zeros((0, 1, 2), np.float32) if p is None else p.astype(np.float32)
            points.append(p)
            world.append(self._rays(p) @ F.T)
        count = sum(len(p) for p in points)
        return _Reference(index, faces, points, world, count, count if support is None else support)

    def _orb_rays(self, faces: list[np.ndarray], R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ORB bearings ``(m, 3)`` of faces rendered with rotation ``R`` (world ones for a
        reference's faces, camera ones for a frame's faces rendered with ``R = I``) and descriptors."""
        rays, descs = [np.zeros((0, 3))], [np.zeros((0, 32), np.uint8)]
        for F, face in zip(CUBE_FACES, faces):
            kps, d = self._orb.detectAndCompute(face, None)
            if d is not None and len(kps):
                pts = np.array([k.pt for k in kps], np.float32)
                rays.append(self._rays(pts) @ (R.T @ F).T)
                descs.append(d)
        return np.concatenate(rays), np.concatenate(descs)

    def _match_anew(self, ref: _Reference, gray: np.ndarray) -> tuple[np.ndarray | None, int]:
        """Frame rotation from ORB matches against ``ref``, whatever the turn since; None when
        fewer than MIN_INLIERS agree (nothing to see, or another scene)."""
        if ref.orb is None:
            ref.orb = self._orb_rays(ref.faces, np.eye(3))
        world, wd = ref.orb
        cam, cd = self._orb_rays(self._faces(gray, np.eye(3)), np.eye(3))
        if len(wd) < MIN_INLIERS or len(cd) < MIN_INLIERS:
            return None, 0
        pairs = self._matcher.knnMatch(cd, wd, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < MIN_INLIERS:
            return None, 0
        a = cam[[m.queryIdx for m in good]]
        b = world[[m.trainIdx for m in good]]
        # ORB places corners on its pyramid's grid: a looser bound than the flow's, refined after.
        R, inl = ransac_rotation(b, a, 3.0 * self.threshold, self.rng, hypotheses=400, refits=2)
        n = int(inl.sum())
        return (R, n) if n >= MIN_INLIERS else (None, n)

    # -- one frame --------------------------------------------------------------------------

    def _measure(self, ref: _Reference, gray: np.ndarray, R_pred: np.ndarray) -> tuple[np.ndarray, int, int]:
        faces = self._faces(gray, R_pred)
        # The flow assumes constant brightness: a fade or an exposure change is undone first.
        ref_mean = sum(float(f.mean()) for f in ref.faces)
        gain = ref_mean / max(sum(float(f.mean()) for f in faces), 1.0)
        if abs(gain - 1.0) > 0.03:
            faces = [cv2.convertScaleAbs(f, alpha=gain) for f in faces]
        cam, world = [], []
        lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        for F, rf, cf, p0, w0 in zip(CUBE_FACES, ref.faces, faces, ref.points, ref.world):
            if len(p0) == 0:
                continue
            p1, st, _ = cv2.calcOpticalFlowPyrLK(rf, cf, p0, p0.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk)
            pb, st2, _ = cv2.calcOpticalFlowPyrLK(cf, rf, p1, p0.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk)
            ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm((pb - p0).reshape(-1, 2), axis=1) < 0.5)
            inside = np.all((p1.reshape(-1, 2) > -0.5) & (p1.reshape(-1, 2) < self.size - 0.5), axis=1)
            ok &= inside
            if ok.any():
                # The face was rendered with R_pred: its rays are camera directions R_pred^T F r.
                cam.append(self._rays(p1[ok]) @ (R_pred.T @ F).T)
                world.append(w0[ok])
        if not cam:
            return R_pred, 0, 0
        a, b = np.concatenate(cam), np.concatenate(world)
        if len(a) < 6:
            return R_pred, 0, len(a)
        R, inl = ransac_rotation(b, a, self.threshold, self.rng, hypotheses=96, refits=2)  # world ~ R cam
        return R, int(inl.sum()), len(a)

    def _follow(self, ref: _Reference, gray: np.ndarray, R_pred: np.ndarray) -> tuple[np.ndarray, int]:
        """The flow measurement against ``ref`` from ``R_pred``, refined from faces re-rendered with its result."""
        R, inliers, _ = self._measure(ref, gray, R_pred)
        for _ in range(2):
            if inliers < MIN_INLIERS or rotation_angle_deg(R, R_pred) < 0.2:
                break
            R_pred = R
            R, inliers, _ = self._measure(ref, gray, R_pred)
        return R, inliers

    def update(self, index: int, gray: np.ndarray) -> tuple[np.ndarray, int]:
        """Estimate frame ``index``'s rotation from its gray ERP ``(H, W) uint8``; returns ``(R, inliers)``.

        A frame that cannot be measured returns the last known rotation with 0 inliers and is
        listed in ``lost``."""
        if gray.shape != (self.erp_h, self.erp_w):
            raise ValueError(f"frame must be ({self.erp_h}, {self.erp_w}), got {gray.shape}")
        h = self.history
        last = h[-1] if h else np.eye(3)
        if self.ref is None:  # the first frame with something to track defines the world
            ref = self._reference(index, gray, last, support=None)
            if ref.count < MIN_INLIERS:
                return self._lose(index, last)
            self.ref = self.anchor = ref
            self._measured = 1
            h.append(last)
            return last, ref.count
        # Constant angular velocity from the last two frames, when both were measured.
        R_pred = (h[-1] @ h[-2].T) @ h[-1] if self._measured >= 2 else last
        R, inliers = self._follow(self.ref, gray, R_pred)
        if inliers < MIN_INLIERS and R_pred is not last:
            R, inliers = self._follow(self.ref, gray, last)  # the prediction overshot: from the last pose
        if inliers < MIN_INLIERS:
            R_new, n = self._match_anew(self.anchor, gray)
            if R_new is None:
                return self._stranger(index, gray, last)
            self.ref = self.anchor
            R, inliers = self._follow(self.ref, gray, R_new)
            if inliers < MIN_INLIERS:
                R, inliers = R_new, n
            self.found.append(index)
        h.append(R)
        self._measured, self._strangers = self._measured + 1, 0
        if inliers < max(30, 0.4 * self.ref.count):
            R, inliers = self._rereference(index, gray, R, inliers)
            h[-1] = R
        return R, inliers

    def _rereference(self, index: int, gray: np.ndarray, R: np.ndarray, inliers: int) -> tuple[np.ndarray, int]:
        """Too few of the reference's corners are left: go back to the anchor (the last reference
        made from a well-measured frame) when this frame still matches it, so that a dim or
        blurred stretch leaves no offset behind; else this frame becomes the reference (and the
        anchor, when it was measured about as well as the anchor was)."""
        anchor = self.anchor
        if anchor is not self.ref:
            R_a, n_a = self._follow(anchor, gray, R)
            if n_a >= max(30, 0.4 * anchor.count):
                self.ref = anchor
                return R_a, n_a
        ref = self._reference(index, gray, R, support=inliers)
        if ref.count >= MIN_INLIERS:
            self.ref = ref
            if inliers >= 0.7 * anchor.support:
                self.anchor = ref
        return R, inliers

    def _lose(self, index: int, last: np.ndarray) -> tuple[np.ndarray, int]:
        self.lost.append(index)
        self.history.append(last)
        self._measured = 0
        return last, 0

    def _stranger(self, index: int, gray: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, int]:
        """A frame that matches nothing of the anchor: lost, unless it is the ``patience``-th
        textured one in a row (another scene): then tracking restarts from it at ``last``."""
        ref = self._reference(index, gray, last, support=None)
        self._strangers = self._strangers + 1 if ref.count >= 4 * MIN_INLIERS else 0
        if self._strangers < self.patience:
            return self._lose(index, last)
        self.ref = self.anchor = ref
        self._strangers, self._measured = 0, 1
        self.restarts.append(index)
        self.history.append(last)
        return last, ref.count


def estimate_sphere_rotations(grays: Iterable[np.ndarray], generator: np.random.Generator | None = None,
                              face_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rotations ``(N, 3, 3)`` and inlier counts ``(N,)`` of a sequence of gray ERP frames."""
    tracker = None
    Rs, inl = [], []
    for i, g in enumerate(grays):
        if tracker is None:
            tracker = SphereTracker(g.shape[1], g.shape[0], face_size=face_size, generator=generator)
        R, n = tracker.update(i, g)
        Rs.append(R)
        inl.append(n)
    if not Rs:
        raise ValueError("no frames")
    return np.stack(Rs), np.array(inl, dtype=np.int64)
