"""Rolling shutter: rows of a phone frame are exposed one after another, so a turning camera bends them.

Row ``y`` of a frame taken at ``t`` is seen at ``t + (y / (h - 1) - 0.5) * readout``, i.e. with the
rotation ``R(t) @ exp([omega] dt)`` (``omega`` the body-frame angular velocity), so the ray a
global shutter at ``t`` (mid-readout, the frame's timestamp) would have recorded is
``exp([omega] dt) @ ray``. The readout time is unknown: :func:`search_readout` picks the one that
makes the keyframe links most rotation-like, as Gyroflow models a rotation per row
(``frame_readout_time``) and NOTES.md suggests.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pano360.project.rotation import matrix_to_rotvec
from pano360.slam.geometry import pixels_to_rays, rays_to_pixels, rotation_fit_cost
from pano360.slam.links import Link

__all__ = ["angular_velocity", "unroll_pixels", "search_readout", "unroll_links"]


def angular_velocity(times: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Body-frame angular velocity ``(N, 3)`` rad/s by central differences (one-sided at the ends)."""
    n = len(times)
    if n < 2:
        return np.zeros((n, 3))
    lo = np.clip(np.arange(n) - 1, 0, n - 1)
    hi = np.clip(np.arange(n) + 1, 0, n - 1)
    dt = np.maximum(times[hi] - times[lo], 1e-6)
    return matrix_to_rotvec(np.swapaxes(R[lo], 1, 2) @ R[hi]) / dt[:, None]


def _rotate_small(v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``exp([v]) @ r`` for small rotation vectors ``v (n, 3)``: second-order Rodrigues, whose error
    (|v|^3 / 6) is under 2e-5 rad for the |v| < 0.05 rad a readout sees even at 100 deg/s."""
    vr = np.cross(v, r)
    return r + vr + 0.5 * np.cross(v, vr)


def unroll_pixels(px: np.ndarray, omega: np.ndarray, readout_s: float, width: int, height: int, focal: float) -> np.ndarray:
    """Pixels ``(n, 2)`` of one frame (angular velocity ``omega (3,)`` or per pixel ``(n, 3)``) as a
    global shutter at mid-readout would have seen them."""
    if readout_s == 0 or len(px) == 0:
        return px
    dt = (px[:, 1] / max(height - 1, 1) - 0.5) * readout_s
    rays = pixels_to_rays(px, width, height, focal)
    return rays_to_pixels(_rotate_small(np.broadcast_to(omega, (len(px), 3)) * dt[:, None], rays), width, height, focal)


def unroll_links(links: list[Link], kf_omega: np.ndarray, readout_s: float, width: int, height: int, focal: float) -> list[Link]:
    """Links with both sides' pixels unrolled (``kf_omega (K, 3)`` per keyframe)."""
    if not links or readout_s == 0:
        return list(links)
    sizes = [len(lk.pa) for lk in links]
    pa = unroll_pixels(np.concatenate([lk.pa for lk in links]), np.repeat(kf_omega[[lk.a for lk in links]], sizes, axis=0),
                       readout_s, width, height, focal)
    pb = unroll_pixels(np.concatenate([lk.pb for lk in links]), np.repeat(kf_omega[[lk.b for lk in links]], sizes, axis=0),
                       readout_s, width, height, focal)
    cuts = np.cumsum(sizes)[:-1]
    return [replace(lk, pa=a, pb=b) for lk, a, b in zip(links, np.split(pa, cuts), np.split(pb, cuts))]


def _link_cost(links: list[Link], width: int, height: int, focal: float, trunc_px: float = 2.0) -> float:
    starts = np.cumsum([0] + [len(lk.pa) for lk in links])[:-1]
    pa = np.concatenate([lk.pa for lk in links])
    pb = np.concatenate([lk.pb for lk in links])
    return rotation_fit_cost(pa, pb, starts, width, height, focal, trunc_px)


def search_readout(links: list[Link], kf_omega: np.ndarray, width: int, height: int, focal: float,
                   max_s: float = 0.04, step_s: float = 0.0025) -> tuple[float, float]:
    """The readout time in ``[0, max_s]`` that leaves the least link residual after per-link best rotations.

    Returns ``(readout_s, gain)``: gain is the relative drop of the cost against a global shutter
    (a camera that hardly turns, or a global shutter, gives a gain near 0 and readout 0).
    """
    links = [lk for lk in links if not lk.loop]
    if not links:
        return 0.0, 0.0
    def cost(t: float) -> float:
        return _link_cost(unroll_links(links, kf_omega, t, width, height, focal), width, height, focal)

    c0 = cost(0.0)
    coarse = np.arange(4 * step_s, max_s + 1e-9, 4 * step_s)
    costs = [cost(float(t)) for t in coarse]
    centre = float(coarse[int(np.argmin(costs))])
    fine = np.arange(max(step_s, centre - 3 * step_s), min(max_s, centre + 3 * step_s) + 1e-9, step_s)
    fine_costs = [cost(float(t)) for t in fine]
    best = int(np.argmin(fine_costs))
    if fine_costs[best] >= c0:
        return 0.0, 0.0
    return float(fine[best]), float((c0 - fine_costs[best]) / max(c0, 1e-12))
