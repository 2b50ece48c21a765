"""Rotation-only camera geometry for tracking: pixels to rays, best rotation between ray sets, SO(3) Jacobians.

Pixels follow ``CONVENTIONS.md``: principal point ``(w/2 - 0.5, h/2 - 0.5)``, so with focal ``f``
the pixel ``(w/2 - 0.5 + f, h/2 - 0.5)`` is the ray ``(1, 0, 1)``.

>>> import numpy as np
>>> pixels_to_rays(np.array([[10.5 + 20.0, 5.5]]), 22, 12, 20.0).round(6).tolist()
[[1.0, 0.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["pixels_to_rays", "rays_to_pixels", "best_rotation", "skew", "right_jacobian"]


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


def best_rotation(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The rotation ``R (3, 3)`` that best maps rays ``b (n, 3)`` onto rays ``a (n, 3)``: ``a ~ R @ b``.

    Wahba's problem on unit rays (Kabsch via SVD); ``weights (n,)`` optional.
    """
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
    M = (a * w[:, None]).T @ b
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


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
