"""Direct (intensity-based) alignment of two views of a camera turning in place: a turn and a focal length.

Where corners are too few (a blank wall, sky, a grid of thin lines on a smooth gradient), two
frames can still be aligned by their intensities. A general homography has 8 parameters, and on
such pictures the intensities hold them poorly: consecutive frames of a lat/long grid aligned by
OpenCV's ECC gave homographies whose scale swung between 0.64 and 1.18 at the same correlation
(0.97). A camera turning in place has 3 (``H = K R K^-1``) plus its focal length, and those the
thin lines do pin down. The focal length is free (held near its guess by a prior): the true FOV is
not known while tracking, and a wrong one bends the correspondences at the picture's edges
(a 45 deg clip aligned at an assumed 65 deg: 1.6 deg error; with the focal free: 0.06).

Gauss-Newton on the pixels of the reference with the strongest gradient, coarse to fine (the
focal length only on the two finest levels), with a gain and offset for exposure changes and
Huber weights for what moves on its own.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pano360.project.rotation import rotvec_to_matrix

__all__ = ["direct_rotation", "rotation_homography"]

# How far (in log focal) the alignment may take the focal length from its start: a guess of
# 65 deg then covers 36-101 deg of true horizontal FOV.
MAX_LOG_FOCAL_CHANGE = 0.6


def rotation_homography(R: np.ndarray, width: int, height: int, focal: float) -> np.ndarray:
    """``H (3, 3)`` taking pixels of a view to pixels of the view turned by ``R`` (rays ``d' = R d``).

    Pixel centres are at integer coordinates, the principal point at the frame's centre, as in
    :func:`pano360.slam.geometry.pixels_to_rays`."""
    K = np.array([[focal, 0.0, width / 2.0 - 0.5], [0.0, focal, height / 2.0 - 0.5], [0.0, 0.0, 1.0]])
    H = K @ R @ np.linalg.inv(K)
    return H / H[2, 2]


def _select(gx: np.ndarray, gy: np.ndarray, max_points: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels with the strongest gradient (at most ``max_points``)."""
    mag = gx * gx + gy * gy
    mag[:margin], mag[-margin:], mag[:, :margin], mag[:, -margin:] = 0, 0, 0, 0
    flat = mag.ravel()
    nonzero = np.flatnonzero(flat > 1e-3)
    if len(nonzero) > max_points:
        nonzero = nonzero[np.argpartition(flat[nonzero], -max_points)[-max_points:]]
    return np.unravel_index(nonzero, mag.shape)


def _turned(rays: np.ndarray, R: np.ndarray, f: float, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rays ``(n, 3)`` turned by ``R`` and projected: pixel x, y, the turned rays and which lie in front."""
    d = rays @ R.T
    z = np.where(d[:, 2] > 1e-6, d[:, 2], 1e-6)
    return f * d[:, 0] / z + (w / 2.0 - 0.5), f * d[:, 1] / z + (h / 2.0 - 0.5), d, d[:, 2] > 1e-6


def _moved_px(R: np.ndarray, R_other: np.ndarray, f: float, w: int, h: int) -> float:
    """How far (pixels, the most over the frame's corners and centre) two turns put a view's points apart."""
    q = np.array([[0.0, 0.0], [-w / 2, -h / 2], [w / 2, -h / 2], [-w / 2, h / 2], [w / 2, h / 2]])
    rays = np.concatenate([q / f, np.ones((5, 1))], axis=1)
    a, b = rays @ R.T, rays @ R_other.T
    a, b = a[:, :2] / a[:, 2:], b[:, :2] / b[:, 2:]
    return float(f * np.linalg.norm(a - b, axis=1).max())


def _turned_cost(cur: np.ndarray, rays: np.ndarray, refv: np.ndarray, R: np.ndarray, f: float, sigma: float) -> float:
    """Mean robust cost of the reference pixels (rays ``(n, 3)`` at focal ``f``, values ``refv``)
    against ``cur`` turned by ``R``: squared residuals capped at Huber's threshold, after the best
    gain and offset between them (inf when too few land on ``cur``)."""
    h, w = cur.shape
    px, py, _, front = _turned(rays, R, f, w, h)
    inside = front & (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    if inside.sum() < 50:
        return math.inf
    warped = cv2.remap(cur, px.astype(np.float32).reshape(1, -1), py.astype(np.float32).reshape(1, -1),
                       cv2.INTER_LINEAR).ravel().astype(np.float64)[inside]
    M = np.stack([refv[inside], np.ones(int(inside.sum()))], axis=1)
    res = warped - M @ np.linalg.lstsq(M, warped, rcond=None)[0]
    return float(np.mean(np.minimum(res * res, (1.345 * sigma) ** 2)))


def direct_rotation(ref: np.ndarray, cur: np.ndarray, focal: float, R0: np.ndarray | None = None, levels: int = 4,
                    max_points: int = 12000, max_iter: int = 20, focal_sigma: float = 0.3,
                    max_std_px: float = 0.5, R_null: np.ndarray | None = None, min_gain: float = 0.2,
                    ) -> tuple[np.ndarray, float, float] | None:
    """The rotation ``R`` (rays of ``cur`` = ``R`` rays of ``ref``) and focal length that best align two
    gray views of a camera turning in place, and the correlation of the aligned pixels; None when
    it cannot tell.

    Args:
        ref, cur: ``(h, w) uint8`` frames of the same camera.
        focal: the focal length in pixels to start from; the alignment refines it (a turn of a few
            degrees shows it in how the picture's edges move against its centre), held near the
            start by a prior of ``focal_sigma`` (in log focal) where the picture does not show it.
        R0: the starting guess (identity when None), e.g. the camera's last motion.
        levels: pyramid levels (the coarsest is ``2**(levels - 1)`` times smaller).
        max_std_px: the alignment is refused (None) when its turn is known less precisely than this:
            the standard deviation along its least certain axis, in pixels of ``ref``, from the
            normal equations and the residuals' robust spread. A smooth gradient under sensor noise
            lines up almost as well at any turn (correlation 0.99 from 0 to 2 deg); chained, such
            alignments turned a still camera filming the sky by tens of degrees. Real weak texture
            (hills, a lat/long grid) gives mostly 0.01-0.2 px.
        R_null: the turn to hold to unless the pictures show otherwise (where the last frame was).
            An alignment that puts the picture more than ``max_std_px`` away from it must lower the
            robust cost by at least the share ``min_gain`` to be believed, else None. A camera
            turning over texture of any kind lowered it by 0.4-0.6; sensor noise on a smooth sky,
            lined up at a turn of its own, by 0.01-0.13 (it fits the noise).

    Returns:
        ``(R, focal, correlation)``.
    """
    R = np.eye(3) if R0 is None else np.asarray(R0, np.float64).copy()
    logf0 = logf = float(np.log(focal))
    gain, offset = 1.0, 0.0
    corr = 0.0
    for level in reversed(range(levels)):
        s = 0.5**level
        r = cv2.resize(ref, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if level else ref
        c = cv2.resize(cur, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if level else cur
        r = cv2.GaussianBlur(r.astype(np.float32), (0, 0), 0.8)
        c = cv2.GaussianBlur(c.astype(np.float32), (0, 0), 0.8)
        h, w = r.shape
        gx = cv2.Scharr(r, cv2.CV_32F, 1, 0) / 32.0
        gy = cv2.Scharr(r, cv2.CV_32F, 0, 1) / 32.0
        cgx = cv2.Scharr(c, cv2.CV_32F, 1, 0) / 32.0
        cgy = cv2.Scharr(c, cv2.CV_32F, 0, 1) / 32.0
        ys, xs = _select(gx, gy, max_points, 2)
        if len(xs) < 50:
            continue
        qx, qy = xs - (w / 2.0 - 0.5), ys - (h / 2.0 - 0.5)
        refv = r[ys, xs].astype(np.float64)
        free_f = level <= 1 and focal_sigma > 0  # the coarse levels only find the turn
        for _ in range(max_iter):
            f = math.exp(logf) * s
            rays = np.stack([qx / f, qy / f, np.ones_like(qx, dtype=np.float64)], axis=1)
            px, py, d, front = _turned(rays, R, f, w, h)
            inside = front & (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
            n = int(inside.sum())
            if n < 50:
                return None
            mx, my = px.astype(np.float32).reshape(1, -1), py.astype(np.float32).reshape(1, -1)
            warped = cv2.remap(c, mx, my, cv2.INTER_LINEAR).ravel().astype(np.float64)[inside]
            wgx = cv2.remap(cgx, mx, my, cv2.INTER_LINEAR).ravel().astype(np.float64)[inside]
            wgy = cv2.remap(cgy, mx, my, cv2.INTER_LINEAR).ravel().astype(np.float64)[inside]
            res = warped - gain * refv[inside] - offset
            sigma = 1.4826 * float(np.median(np.abs(res - np.median(res)))) + 1e-3
            wts = np.minimum(1.0, 1.345 * sigma / np.maximum(np.abs(res), 1e-9))  # Huber
            u, v = d[inside, 0] / d[inside, 2], d[inside, 1] / d[inside, 2]
            # d(pixel)/d(rotation vector), the turn applied on the left (in the current view).
            jx = np.stack([-u * v, 1 + u * u, -v], axis=1) * f
            jy = np.stack([-(1 + v * v), u * v, u], axis=1) * f
            cols = [wgx[:, None] * jx + wgy[:, None] * jy]
            if free_f:
                # d(pixel)/d(log f): the ray (q / f, 1) shrinks, and the projection scales with f.
                dd = -(rays[inside] * [1.0, 1.0, 0.0]) @ R.T
                z = d[inside, 2]
                dpx = f * u + f * (dd[:, 0] / z - d[inside, 0] * dd[:, 2] / z**2)
                dpy = f * v + f * (dd[:, 1] / z - d[inside, 1] * dd[:, 2] / z**2)
                cols.append((wgx * dpx + wgy * dpy)[:, None])
            J = np.concatenate(cols + [-refv[inside, None], -np.ones((n, 1))], axis=1)
            JW = J * wts[:, None]
            A = JW.T @ J
            g = JW.T @ res
            if free_f:
                prior = sigma**2 / focal_sigma**2
                A[3, 3] += prior
                g[3] += prior * (logf - logf0)
            try:
                step = -np.linalg.solve(A + 1e-9 * np.eye(len(A)), g)
            except np.linalg.LinAlgError:
                return None
            R = rotvec_to_matrix(step[:3]) @ R
            if free_f:
                # The prior holds the focal length where the picture does not show it; the bound
                # keeps a near-degenerate alignment from wandering off to absurd ones (FOV 65 -> 160 deg).
                logf = float(np.clip(logf + np.clip(step[3], -0.1, 0.1), logf0 - MAX_LOG_FOCAL_CHANGE, logf0 + MAX_LOG_FOCAL_CHANGE))
            gain += step[-2]
            offset += step[-1]
            if not 0.3 < gain < 3.0:
                return None
            if f * np.linalg.norm(step[:3]) < 0.005 and (not free_f or abs(step[3]) < 1e-4):
                break
        if level == 0:
            cov = np.linalg.pinv(A)[:3, :3] * sigma**2
            std = f * math.sqrt(max(float(np.linalg.eigvalsh(cov).max()), 0.0))
            if std > max_std_px:
                return None
            if R_null is not None and _moved_px(R, R_null, f, w, h) > max_std_px:
                rays = np.stack([qx / f, qy / f, np.ones_like(qx, dtype=np.float64)], axis=1)
                if not _turned_cost(c, rays, refv, R, f, sigma) < (1.0 - min_gain) * _turned_cost(c, rays, refv, R_null, f, sigma):
                    return None
        a, b = warped, refv[inside]
        corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    return R, math.exp(logf), corr
