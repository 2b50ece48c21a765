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


@dataclass
class _Reference:
    index: int
    faces: list  # gray face images
    points: list  # per face (n, 1, 2) float32 corners
    world: list  # per face (n, 3) world bearing vectors
    count: int


class SphereTracker:
    """Frame-by-frame rotation estimation on gray ERP frames of one size (see the module docstring).

    ``face_size`` defaults to W / 4 (the ERP's angular resolution at the equator).
    """

    def __init__(self, erp_w: int, erp_h: int, face_size: int | None = None, corners_per_face: int = 120,
                 threshold_px: float = 1.5, generator: np.random.Generator | None = None) -> None:
        self.erp_w, self.erp_h = erp_w, erp_h
        self.size = int(face_size or max(64, erp_w // 4))
        self.corners = corners_per_face
        self.f = focal_from_hfov(self.size, 90.0)
        self.threshold = threshold_px / self.f  # radians
        self.rng = generator if generator is not None else np.random.default_rng(0)
        self.ref: _Reference | None = None
        self.history: list[np.ndarray] = []

    # -- geometry ---------------------------------------------------------------------------

    def _rays(self, pts: np.ndarray) -> np.ndarray:
        return unit_rays(pts.reshape(-1, 2), self.size, self.size, self.f)

    def _faces(self, gray: np.ndarray, R: np.ndarray) -> list[np.ndarray]:
        """The world-fixed cube faces as seen in a frame whose rotation is ``R``."""
        return [erp_to_persp(gray, R.T @ F, 90.0, self.size, self.size) for F in CUBE_FACES]

    def _make_reference(self, index: int, gray: np.ndarray, R: np.ndarray) -> None:
        faces = self._faces(gray, R)
        points, world = [], []
        for F, face in zip(CUBE_FACES, faces):
            p = cv2.goodFeaturesToTrack(face, self.corners, 0.01, max(4.0, self.size / 40.0), blockSize=5)
            p = np.zeros((0, 1, 2), np.float32) if p is None else p.astype(np.float32)
            points.append(p)
            world.append(self._rays(p) @ F.T)
        self.ref = _Reference(index, faces, points, world, sum(len(p) for p in points))

    # -- one frame --------------------------------------------------------------------------

    def _measure(self, gray: np.ndarray, R_pred: np.ndarray) -> tuple[np.ndarray, int, int]:
        ref = self.ref
        faces = self._faces(gray, R_pred)
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

    def update(self, index: int, gray: np.ndarray) -> tuple[np.ndarray, int]:
        """Estimate frame ``index``'s rotation from its gray ERP ``(H, W) uint8``; returns ``(R, inliers)``."""
        if gray.shape != (self.erp_h, self.erp_w):
            raise ValueError(f"frame must be ({self.erp_h}, {self.erp_w}), got {gray.shape}")
        if self.ref is None:
            R = np.eye(3)
            self._make_reference(index, gray, R)
            self.history.append(R)
            return R, self.ref.count
        h = self.history
        R_pred = h[-1] if len(h) < 2 else (h[-1] @ h[-2].T) @ h[-1]  # constant angular velocity
        R, inliers, tracked = self._measure(gray, R_pred)
        for _ in range(2):  # refine from faces re-rendered with the new estimate
            step = rotation_angle_deg(R, R_pred)
            if step < 0.2 or inliers == 0:
                break
            R_pred = R
            R, inliers, tracked = self._measure(gray, R_pred)
        if inliers == 0 and len(h) >= 1:
            R_pred = h[-1]  # prediction overshot: start again from the last pose
            R, inliers, tracked = self._measure(gray, R_pred)
        self.history.append(R)
        if inliers < max(30, 0.4 * self.ref.count):
            self._make_reference(index, gray, R)
        return R, inliers


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
