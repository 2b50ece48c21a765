"""Rotation-only camera geometry for tracking: pixels to rays, robust rotations between ray sets, SO(3) Jacobians.

Pixels follow ``CONVENTIONS.md``: principal point ``(w/2 - 0.5, h/2 - 0.5)``, so with focal ``f``
the pixel ``(w/2 - 0.5 + f, h/2 - 0.5)`` is the ray ``(1, 0, 1)``.

>>> import numpy as np
>>> pixels_to_rays(np.array([[10.5 + 20.0, 5.5]]), 22, 12, 20.0).round(6).tolist()
[[1.0, 0.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

from pano360.project.rotation import best_rotation, orthonormalize, rotvec_to_matrix
from pano360.slam.precision import whiten

__all__ = ["pixels_to_rays", "rays_to_pixels", "unit_rays", "grouped_best_rotations", "grouped_weighted_rotations",
           "grouped_rotation_residuals", "projection_jacobian", "rotation_fit_cost", "ransac_rotation", "skew", "right_jacobian"]


def pixels_to_rays(px: np.ndarray, width: int, height: int, focal: float) -> np.ndarray:
    """Pixels ``(..., 2)`` to camera rays ``(..., 3)`` with z = 1."""
    px = np.asarray(px, dtype=np.float64)
    out = np.ones(px.shape[:-1] + (3,))
    out[..., 0] = (px[..., 0] - (width / 2.0 - 0.5)) / focal
    out[..., 1] = (px[..., 1] - (height / 2.0 - 0.5)) / focal
    return out


def rays_to_pixels(d: np.ndarray, width: int, height: int, focal: float) -> np.ndarray:
    """Camera rays ``(..., 3)`` (z > 0) to pixels ``(..., 2)``."""
    d = np.asarray(d, dtype=np.float64)
    z = d[..., 2]
    return np.stack([focal * d[..., 0] / z + (width / 2.0 - 0.5), focal * d[..., 1] / z + (height / 2.0 - 0.5)], axis=-1)


def unit_rays(px: np.ndarray, width: int, height: int, focal: float) -> np.ndarray:
    """Pixels ``(..., 2)`` to unit camera rays ``(..., 3)``."""
    r = pixels_to_rays(px, width, height, focal)
    return r / np.linalg.norm(r, axis=-1, keepdims=True)


def grouped_best_rotations(ua: np.ndarray, ub: np.ndarray, starts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Best rotations ``(L, 3, 3)`` with ``ua ~ R ub`` for the unit-ray groups ``(n, 3)`` beginning at
    ``starts`` (non-empty, increasing); ``weights (n,)`` optional."""
    outer = ua[:, :, None] * ub[:, None, :]
    if weights is not None:
        outer = outer * np.asarray(weights, dtype=np.float64)[:, None, None]
    return orthonormalize(np.add.reduceat(outer, starts, axis=0))


def grouped_rotation_residuals(ua: np.ndarray, ub: np.ndarray, starts: np.ndarray, focal: float) -> tuple[np.ndarray, np.ndarray]:
    """Each unit-ray group's best rotation ``(L, 3, 3)`` (see :func:`grouped_best_rotations`) and every
    pair's residual under it ``(n,)``, in pixels at ``focal``."""
    R = grouped_best_rotations(ua, ub, starts)
    owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(ua))))
    return R, focal * np.linalg.norm(np.einsum("nij,nj->ni", R[owner], ub) - ua, axis=1)


def projection_jacobian(d: np.ndarray, focal: float) -> np.ndarray:
    """``d pixel / d ray`` ``(n, 2, 3)`` of the pinhole projection at rays ``d (n, 3)``:
    ``f/z [[1, 0, -x/z], [0, 1, -y/z]]``."""
    z = d[:, 2]
    P = np.zeros((len(d), 2, 3))
    P[:, 0, 0] = P[:, 1, 1] = focal / z
    P[:, 0, 2] = -focal * d[:, 0] / z**2
    P[:, 1, 2] = -focal * d[:, 1] / z**2
    return P


def grouped_weighted_rotations(R: np.ndarray, pa: np.ndarray, pb: np.ndarray, starts: np.ndarray, U: np.ndarray,
                               width: int, height: int, focal: float, iterations: int = 2) -> np.ndarray:
    """Rotations ``R (L, 3, 3)`` (``pa ~ pi(R ray(pb))``) of the pixel-pair groups beginning at
    ``starts``, refined by Gauss-Newton on whitened pixel residuals ``U (n, 2, 2) @ r`` (see
    :func:`pano360.slam.precision.whitening`; zero rows drop a pair). Groups whose normal equations
    are singular keep their rotation."""
    R = np.array(R, dtype=np.float64)
    owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(pa))))
    rb = pixels_to_rays(pb, width, height, focal)
    for _ in range(iterations):
        d = np.einsum("nij,nj->ni", R[owner], rb)
        r = rays_to_pixels(d, width, height, focal) - pa
        J = whiten(U, projection_jacobian(d, focal)) @ -skew(d)  # d (exp(delta) R rb) / d delta = -[R rb]x
        wr = whiten(U, r)
        A = np.add.reduceat(np.einsum("nki,nkj->nij", J, J), starts, axis=0)
        g = np.add.reduceat(np.einsum("nki,nk->ni", J, wr), starts, axis=0)
        ok = np.linalg.det(A) > 1e-12 * np.einsum("nii->n", A) ** 3
        delta = np.zeros((len(starts), 3))
        delta[ok] = -np.linalg.solve(A[ok], g[ok][:, :, None])[:, :, 0]
        R = rotvec_to_matrix(delta) @ R
    return R


def rotation_fit_cost(pa: np.ndarray, pb: np.ndarray, starts: np.ndarray, width: int, height: int, focal: float,
                      trunc_px: float = 2.0) -> float:
    """How badly pure rotations explain pixel pairs: each group of ``pa, pb (n, 2)`` (beginning at
    ``starts``) gets its best rotation, and the residuals in pixels, truncated at ``trunc_px``, are
    summed squared. Low at the right focal length and readout, so searches minimise it."""
    _, err = grouped_rotation_residuals(unit_rays(pa, width, height, focal), unit_rays(pb, width, height, focal), starts, focal)
    return float((np.minimum(err, trunc_px) ** 2).sum())


def ransac_rotation(a: np.ndarray, b: np.ndarray, threshold: float, generator: np.random.Generator,
                    hypotheses: int = 256, refits: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Robust ``R`` with ``a ~ R b`` from unit rays ``a, b (n, 3)``; returns ``(R, inliers (n,) bool)``.

    2-ray hypotheses, all scored at once; a pair agrees when ``|R b - a| < threshold`` (a chord,
    about the angle in radians). The best hypothesis is refitted on its inliers ``refits`` times.
    ``R`` is the identity when fewer than 3 rays agree.
    """
    if len(a) < 3:
        raise ValueError(f"need at least 3 ray pairs, got {len(a)}")
    i = generator.integers(0, len(a), (hypotheses, 2))
    i = i[i[:, 0] != i[:, 1]]
    Rs = best_rotation(a[i], b[i])
    # |R b - a| < t on unit rays is a . (R b) > 1 - t^2 / 2: one (k, 9) x (9, n) product for all.
    cos_t = 1.0 - 0.5 * threshold**2
    dots = Rs.reshape(len(Rs), 9) @ (a[:, :, None] * b[:, None, :]).reshape(-1, 9).T
    inl = dots[int(np.argmax((dots > cos_t).sum(axis=1)))] > cos_t
    R = np.eye(3)
    for _ in range(refits):
        if inl.sum() < 3:
            break
        R = best_rotation(a[inl], b[inl])
        inl = np.einsum("ni,ij,nj->n", a, R, b) > cos_t
    return R, inl


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices ``(..., 3, 3)`` of vectors ``(..., 3)``: ``skew(v) @ x = v x x``."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def right_jacobian(phi: np.ndarray) -> np.ndarray:
    """SO(3) right Jacobians ``(..., 3, 3)`` of rotation vectors ``(..., 3)``:
    ``exp(phi + dphi) ~ exp(phi) exp(J_r(phi) dphi)``."""
    phi = np.asarray(phi, dtype=np.float64)
    theta = np.linalg.norm(phi, axis=-1)[..., None, None]
    K = skew(phi)
    small = theta < 1e-6
    t = np.where(small, 1.0, theta)
    c1 = np.where(small, 0.5, (1.0 - np.cos(t)) / t**2)
    c2 = np.where(small, 1.0 / 6.0, (t - np.sin(t)) / t**3)
    return np.eye(3) - c1 * K + c2 * (K @ K)
