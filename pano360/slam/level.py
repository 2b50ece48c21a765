"""Horizon levelling without a gyro: where is "up" in the trajectory's world?

Every straight line segment in a frame spans a plane through the camera centre; for a vertical
line in the world (door frames, poles, walls, trees) that plane contains the vertical, so its
normal ``n`` (rotated into the world with the frame's ``R``) is perpendicular to up. Up is the
direction most perpendicular to those normals: the eigenvector of the smallest eigenvalue of
``sum w n n^T`` over the lines near vertical, re-estimated with a shrinking threshold (the phone
held roughly upright gives the start). When too few lines say anything, two weaker cues follow:
a panning camera's x axes lie roughly level (OpenCV's wave correction), else the mean camera up.

Up here is the world direction that should become ``-y`` (the ERP's top row); gravity points the
other way. ``level_rotation(up)`` is the smallest rotation ``L`` with ``L @ up = (0, -1, 0)``, so
``L @ R_i`` is the levelled trajectory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from pano360.project.camera import focal_from_hfov
from pano360.trajectory import Trajectory

__all__ = ["line_normals", "up_from_normals", "up_from_camera_axes", "estimate_up_from_frames", "estimate_up",
           "level_rotation"]

UP0 = np.array([0.0, -1.0, 0.0])


def line_normals(gray: np.ndarray, hfov_deg: float, min_len_frac: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame unit normals ``(n, 3)`` of the planes through the camera and each long straight
    segment of a ``(h, w) uint8`` frame, and the segments' lengths in pixels ``(n,)``."""
    h, w = gray.shape
    lsd = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
    lines = lsd.detect(gray)[0]
    if lines is None or len(lines) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    seg = lines.reshape(-1, 4).astype(np.float64)
    length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
    keep = length >= min_len_frac * np.hypot(w, h)
    seg, length = seg[keep], length[keep]
    f = focal_from_hfov(w, hfov_deg)
    cx, cy = w / 2 - 0.5, h / 2 - 0.5
    p1 = np.stack([(seg[:, 0] - cx) / f, (seg[:, 1] - cy) / f, np.ones(len(seg))], 1)
    p2 = np.stack([(seg[:, 2] - cx) / f, (seg[:, 3] - cy) / f, np.ones(len(seg))], 1)
    n = np.cross(p1, p2)
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-9
    return n[ok] / norm[ok, None], length[ok]


def up_from_normals(normals: np.ndarray, weights: np.ndarray, start: np.ndarray = UP0,
                    thresholds_deg: tuple[float, ...] = (25.0, 12.0, 6.0, 3.0)) -> tuple[np.ndarray, float, float]:
    """Up from world-frame line-plane normals ``(n, 3)``: returns ``(up, support, conditioning)``.

    ``support`` is the inlier weight at the last threshold, ``conditioning`` the ratio of the middle
    to the largest eigenvalue (near 0 when the vertical lines all lie in one plane: up is then only
    known within that plane).
    """
    up = start / np.linalg.norm(start)
    support, cond = 0.0, 0.0
    for thr in thresholds_deg:
        inl = np.abs(normals @ up) < np.sin(np.radians(thr))
        if inl.sum() < 3:
            break
        n, w = normals[inl], weights[inl]
        M = (n * w[:, None]).T @ n
        vals, vecs = np.linalg.eigh(M)
        cand = vecs[:, 0]
        up = cand if cand @ up >= 0 else -cand
        support = float(w.sum())
        cond = float(vals[1] / max(vals[2], 1e-12))
    return up, support, cond


def up_from_camera_axes(R: np.ndarray) -> tuple[np.ndarray, str]:
    """Up from the cameras alone: the normal of the plane the x axes sweep when the camera pans at
    least 30 degrees (wave correction), else the mean camera up."""
    x = R[:, :, 0]
    M = x.T @ x
    vals, vecs = np.linalg.eigh(M)
    mean_up = (R @ UP0).mean(axis=0)
    mean_up /= np.linalg.norm(mean_up)
    spread = np.degrees(np.arcsin(np.sqrt(np.clip(vals[1] / max(vals.sum(), 1e-12), 0, 1))))
    if spread > 10.0:  # x axes spread over a plane (a pan of ~30 deg or more)
        up = vecs[:, 0]
        return (up if up @ mean_up >= 0 else -up), "camera x axes (wave correction)"
    return mean_up, "mean camera up"


def estimate_up_from_frames(frames: Iterable[tuple[np.ndarray, np.ndarray]], hfov_deg: float, R_all: np.ndarray,
                            min_vertical_share: float = 0.2) -> tuple[np.ndarray, str]:
    """Up in the world from ``(R, rgb)`` samples of a clip (``R`` camera to world) and all rotations
    ``R_all (N, 3, 3)`` (for the fallbacks). Returns ``(up (3,), method)``."""
    normals, weights = [], []
    for R, rgb in frames:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        n, w = line_normals(gray, hfov_deg)
        if len(n):
            normals.append(n @ np.asarray(R).T)
            weights.append(w)
    fallback_up, fallback_how = up_from_camera_axes(np.asarray(R_all))
    if not normals:
        return fallback_up, fallback_how
    n = np.concatenate(normals)
    w = np.concatenate(weights)
    up, support, cond = up_from_normals(n, w, start=fallback_up)
    # Trust the lines when a good share of all line length is vertical at the estimate (measured:
    # 50% in a room, 8% for a night landscape whose "verticals" were noise), the verticals are
    # seen in more than one direction, and the tilt is one a hand could hold.
    share = float(w[np.abs(n @ up) < np.sin(np.radians(3.0))].sum() / max(w.sum(), 1e-9))
    tilt_vs_fallback = float(np.degrees(np.arccos(np.clip(up @ fallback_up, -1.0, 1.0))))
    if share >= min_vertical_share and cond > 0.05 and tilt_vs_fallback < 30.0:
        return up, "vertical lines"
    return fallback_up, fallback_how


def estimate_up(path: str | Path, traj: Trajectory, samples: int = 24, max_width: int = 640) -> tuple[np.ndarray, str]:
    """Up in the trajectory's world for a video file (``samples`` frames spread over the clip)."""
    from pano360.io.reader import iter_frames

    n = len(traj)
    pick = set(np.linspace(0, n - 1, min(samples, n)).round().astype(int).tolist())

    def gen():
        for fr in iter_frames(path, max_width=max_width):
            if fr.index in pick and fr.index < n:
                yield traj.R[fr.index], fr.rgb

    return estimate_up_from_frames(gen(), traj.hfov_deg, traj.R)


def level_rotation(up: np.ndarray) -> np.ndarray:
    """The smallest rotation ``L (3, 3)`` with ``L @ up = (0, -1, 0)``.

    >>> import numpy as np
    >>> np.round(level_rotation(np.array([0.0, -1.0, 0.0])), 6).tolist()[0]
    [1.0, 0.0, 0.0]
    """
    from pano360.project.rotation import rotvec_to_matrix

    u = np.asarray(up, dtype=np.float64)
    u = u / np.linalg.norm(u)
    axis = np.cross(u, UP0)
    s = np.linalg.norm(axis)
    c = float(u @ UP0)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    return rotvec_to_matrix(axis / s * np.arctan2(s, c))
