"""Which way is up in a 360 frame: the common direction of the scene's vertical lines.

A straight 3-D line seen from the centre of the sphere spans a plane through it; its normal
``n = r1 x r2`` (the bearings of two of its points) is perpendicular to the line. Vertical lines
(walls, posts, trunks) all have normals perpendicular to up, so up is the direction most normals
are perpendicular to. Segments come from :func:`pano360.slam.level.line_normals` (OpenCV's line
segment detector) on the six cube faces (where straight lines stay straight); a 2-normal RANSAC
restricted to ``max_tilt_deg`` around the frame's own -y keeps horizontal vanishing directions
out, and :func:`pano360.slam.level.up_from_normals`'s weighted least-squares fit (the smallest
eigenvector of ``sum w n n^T``) finishes, as it does for a perspective clip.
"""

from __future__ import annotations

import numpy as np

from pano360.post.sphere_motion import CUBE_FACES
from pano360.project.remap import erp_to_persp
from pano360.slam.level import line_normals as frame_line_normals
from pano360.slam.level import up_from_normals

__all__ = ["line_normals", "ransac_up", "estimate_up"]


def line_normals(gray: np.ndarray, face_size: int | None = None, min_len_frac: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Plane normals ``(N, 3)`` (camera axes of the ERP frame) and lengths ``(N,)`` in face pixels of
    the straight segments (at least ``min_len_frac`` of a face side) of a gray ERP ``(H, 2H) uint8``."""
    size = int(face_size or max(64, gray.shape[1] // 4))
    normals, lengths = [], []
    for F in CUBE_FACES:
        # slam.level measures the length against the picture's diagonal; a face's is size * sqrt(2)
        n, length = frame_line_normals(erp_to_persp(gray, F, 90.0, size, size), 90.0, min_len_frac / np.sqrt(2.0))
        if len(n):
            normals.append(n @ F.T)
            lengths.append(length)
    if not normals:
        return np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(normals), np.concatenate(lengths)


def ransac_up(normals: np.ndarray, weights: np.ndarray, generator: np.random.Generator,
                    max_tilt_deg: float = 40.0, threshold_deg: float = 1.0, hypotheses: int = 2000) -> tuple[np.ndarray, float]:
    """The up direction ``(3,)`` (unit, ``y < 0``) most normals are perpendicular to, and the share
    of the weight that agrees with it. Raises ValueError with too few candidate lines."""
    prior = np.array([0.0, -1.0, 0.0])
    # Only lines that could be vertical under a tilt of at most max_tilt_deg.
    cand = np.abs(normals @ prior) < np.sin(np.radians(max_tilt_deg)) + 1e-9
    n, w = normals[cand], weights[cand]
    if len(n) < 4:
        raise ValueError(f"too few straight lines to find the vertical ({len(n)})")
    idx = generator.integers(0, len(n), size=(hypotheses, 2))
    u = np.cross(n[idx[:, 0]], n[idx[:, 1]])
    norm = np.linalg.norm(u, axis=1)
    ok = norm > np.sin(np.radians(5.0))  # the two planes must not be nearly the same
    u = u[ok] / norm[ok, None]
    u *= np.where(u @ prior < 0, -1.0, 1.0)[:, None]
    u = u[u @ prior >= np.cos(np.radians(max_tilt_deg))]
    if not len(u):
        raise ValueError("no consistent vertical direction among the lines")
    sin_t = np.sin(np.radians(threshold_deg))
    score = (np.abs(u @ n.T) < sin_t) @ w
    best = up_from_normals(n, w, start=u[np.argmax(score)], thresholds_deg=(threshold_deg, threshold_deg / 2))[0]
    share = float(w[np.abs(n @ best) < sin_t].sum() / w.sum())
    return best, share


def estimate_up(gray: np.ndarray, generator: np.random.Generator | None = None, max_tilt_deg: float = 40.0) -> tuple[np.ndarray, float]:
    """Up ``(3,)`` in the camera axes of one gray ERP frame, and the agreeing share of line weight."""
    normals, lengths = line_normals(gray)
    return ransac_up(normals, lengths, generator if generator is not None else np.random.default_rng(0), max_tilt_deg)
