"""Focal self-calibration and the rotation-only bundle adjustment over keyframes.

Model: pixel ``pb`` of keyframe ``b`` and pixel ``pa`` of keyframe ``a`` show one direction, so
``pa = pi(K R_a^T R_b K^-1 pb)`` with ``K`` the pinhole of ``CONVENTIONS.md`` (one focal for the
clip, principal point at the centre); each residual is weighted by how precisely KLT placed its
point (:mod:`pano360.slam.precision`: an edge counts across itself, not along). The adjustment
solves every keyframe rotation (keyframe 0 fixed at I) plus ``log f`` by Levenberg-Marquardt on
the normal equations (an analytic sparse Jacobian; the unknowns are few, so ``J^T J`` is a small
dense matrix), plain least squares first, then a Huber loss at 1 px by reweighting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.sparse import coo_matrix, csr_matrix, diags

from pano360.project.camera import focal_from_hfov, hfov_from_focal
from pano360.project.rotation import rotvec_to_matrix
from pano360.slam.geometry import pixels_to_rays, projection_jacobian, right_jacobian, rotation_fit_cost, skew
from pano360.slam.links import Link
from pano360.slam.precision import whiten, whitening

__all__ = ["search_hfov", "BundleResult", "adjust"]


def search_hfov(links: list[Link], width: int, height: int, lo: float = 20.0, hi: float = 150.0, trunc_px: float = 2.0) -> tuple[float, float]:
    """The FOV (degrees) whose best per-link rotations leave the least truncated squared residual.

    A 1-D search over ``[lo, hi]`` (2 degree steps, then 0.2 degree steps around the best); the
    bundle adjustment refines it.
    Returns ``(hfov_deg, contrast)``: contrast is how much worse the cost is 15% away in focal
    (near 0 means the FOV is not observable from these links, e.g. a static camera; 0 when the
    best FOV is at the end of the range, which is no minimum).
    """
    if not links:
        return float("nan"), 0.0
    # The longest links see the most rotation; 30 points each are plenty for a seed.
    longest = [lk for lk in links if lk.b - lk.a >= 2] or links
    subs = [np.linspace(0, len(lk.pa) - 1, min(len(lk.pa), 30)).round().astype(int) for lk in longest]
    pa = np.concatenate([lk.pa[s] for lk, s in zip(longest, subs)])
    pb = np.concatenate([lk.pb[s] for lk, s in zip(longest, subs)])
    starts = np.cumsum([0] + [len(s) for s in subs])[:-1]

    def cost(hfov: float) -> float:
        return rotation_fit_cost(pa, pb, starts, width, height, focal_from_hfov(width, hfov), trunc_px)

    grid = np.arange(lo, hi + 1e-9, 2.0)
    costs = np.array([cost(h) for h in grid])
    best = float(grid[int(np.argmin(costs))])
    fine = np.arange(max(lo, best - 2.0), min(hi, best + 2.0) + 1e-9, 0.2)
    fine_costs = np.array([cost(h) for h in fine])
    best = float(fine[int(np.argmin(fine_costs))])
    if best <= lo + 1e-6 or best >= hi - 1e-6:
        return best, 0.0  # no minimum inside the range: nothing was measured
    f = focal_from_hfov(width, best)
    c0 = float(fine_costs.min())
    far = [cost(hfov_from_focal(width, f * s)) for s in (0.85, 1.15)]
    contrast = (min(far) - c0) / max(c0, 1e-9)
    return best, contrast


@dataclass(frozen=True)
class BundleResult:
    """Adjusted keyframe rotations ``R (K, 3, 3)``, FOV, final RMS residual (px), per-link medians
    and, when the FOV was solved for, its standard error in degrees."""

    R: np.ndarray
    hfov_deg: float
    rms_px: float
    link_median_px: np.ndarray
    nfev: int = 0
    hfov_sigma_deg: float = float("inf")


def _residuals_and_jac(x: np.ndarray, R0: np.ndarray, ia: np.ndarray, ib: np.ndarray, pa: np.ndarray, pb: np.ndarray,
                       U: np.ndarray, width: int, height: int, solve_focal: bool, logf_fixed: float, priors: np.ndarray,
                       prior_w: float, pattern: dict, want_jac: bool):
    """Residuals ``(2n + 3p,)`` and, with ``want_jac``, the sparse Jacobian. ``U (n, 2, 2)`` whitens
    each point's pixel residual (:func:`precision.whitening`). ``pattern`` caches the Jacobian's
    sparsity (the same at every ``x``) after the first call."""
    K = len(R0)
    deltas = np.zeros((K, 3))
    deltas[1:] = x[: 3 * (K - 1)].reshape(-1, 3)
    logf = x[-1] if solve_focal else logf_fixed
    f = math.exp(logf)
    R = R0 @ rotvec_to_matrix(deltas)
    rb = pixels_to_rays(pb, width, height, f)
    Rab = np.swapaxes(R[ia], 1, 2) @ R[ib]
    d = np.einsum("nij,nj->ni", Rab, rb)
    z = d[:, 2]
    proj = np.stack([f * d[:, 0] / z + (width / 2 - 0.5), f * d[:, 1] / z + (height / 2 - 0.5)], 1)
    res = whiten(U, proj - pa).ravel()
    prior_res = (prior_w * f * deltas[priors]).ravel()
    res = np.concatenate([res, prior_res])
    if not want_jac:
        return res
    n = len(pa)
    P = whiten(U, projection_jacobian(d, f))  # d proj / d d, whitened
    Jr = right_jacobian(deltas)
    Ja = P @ skew(d) @ Jr[ia]  # d d / d delta_a = [d]x J_r
    Jb = -P @ (Rab @ skew(rb)) @ Jr[ib]  # d d / d delta_b = -R_a^T R_b [r_b]x J_r
    rows, cols, vals = [], [], []
    r_idx = np.arange(2 * n).reshape(n, 2)
    for J, kf in ((Ja, ia), (Jb, ib)):
        m = kf > 0
        rr = np.broadcast_to(r_idx[m][:, :, None], (m.sum(), 2, 3))
        cc = np.broadcast_to((3 * (kf[m] - 1))[:, None, None] + np.arange(3)[None, None, :], (m.sum(), 2, 3))
        rows.append(rr.ravel())
        cols.append(cc.ravel())
        vals.append(J[m].ravel())
    n_par = 3 * (K - 1) + (1 if solve_focal else 0)
    if solve_focal:
        drb = np.zeros_like(rb)
        drb[:, :2] = -rb[:, :2]  # d r_b / d log f
        dproj = np.stack([d[:, 0] / z * f, d[:, 1] / z * f], 1)  # the projection's own scaling by f
        Jf = whiten(U, dproj) + np.einsum("nij,nj->ni", P, np.einsum("nij,nj->ni", Rab, drb))
        rows.append(r_idx.ravel())
        cols.append(np.full(2 * n, n_par - 1))
        vals.append(Jf.ravel())
    for j, k in enumerate(priors):
        rows.append(2 * n + 3 * j + np.arange(3))
        cols.append(3 * (k - 1) + np.arange(3))
        vals.append(np.full(3, prior_w * f))
    vals = np.concatenate(vals)
    if "perm" not in pattern:  # CSR order of the entries, found once by sorting their slot numbers
        slots = coo_matrix((np.arange(1.0, len(vals) + 1.0), (np.concatenate(rows), np.concatenate(cols))), shape=(len(res), n_par)).tocsr()
        pattern.update(perm=slots.data.astype(np.int64) - 1, indices=slots.indices, indptr=slots.indptr)
    J = csr_matrix((vals[pattern["perm"]], pattern["indices"], pattern["indptr"]), shape=(len(res), n_par))
    return res, J


def _robust_cost(r: np.ndarray, loss_px: float | None) -> float:
    """Half the sum of squares, or of Huber's loss at ``loss_px`` (quadratic inside, linear outside)."""
    if loss_px is None:
        return 0.5 * float(r @ r)
    a = np.abs(r)
    return 0.5 * float(np.where(a <= loss_px, r * r, 2.0 * loss_px * a - loss_px**2).sum())


def _levenberg_marquardt(fun, x0: np.ndarray, loss_px: float | None, max_nfev: int,
                         xtol: float = 1e-7, ftol: float = 1e-7) -> tuple[np.ndarray, int]:
    """Minimise ``_robust_cost(fun(x))``; ``fun(x, want_jac)`` gives residuals (and a sparse Jacobian).

    Gauss-Newton steps on the normal equations ``(J^T W J + lam D) dx = -J^T W r`` (``W`` Huber's
    reweighting, ``D`` the diagonal of ``J^T W J``), ``lam`` raised until a step lowers the cost.
    Returns the solution and the number of residual evaluations.
    """
    x = x0.copy()
    r, J = fun(x, True)
    cost = _robust_cost(r, loss_px)
    nfev, lam = 1, 1e-4
    while nfev < max_nfev:
        w = np.ones_like(r) if loss_px is None else np.minimum(1.0, loss_px / np.maximum(np.abs(r), 1e-12))
        A = (J.T @ diags(w) @ J).toarray()
        g = J.T @ (w * r)
        d = np.maximum(np.diag(A), 1e-9 * max(float(np.diag(A).max()), 1e-30))
        stepped = False
        while nfev < max_nfev:
            try:
                dx = -cho_solve(cho_factor(A + lam * np.diag(d)), g)
            except LinAlgError:
                dx = None
            if dx is not None:
                x_new = x + dx
                r_new = fun(x_new, False)
                nfev += 1
                cost_new = _robust_cost(r_new, loss_px)
                if cost_new < cost:
                    stepped = True
                    break
            lam *= 4.0
            if lam > 1e12:
                break
        if not stepped:
            break
        small_step = np.linalg.norm(dx) < xtol * (xtol + np.linalg.norm(x))
        small_gain = cost - cost_new < ftol * cost
        x, cost, lam = x_new, cost_new, max(lam / 3.0, 1e-9)
        if small_step or small_gain:
            break
        r, J = fun(x, True)
    return x, nfev


def adjust(links: list[Link], R_init: np.ndarray, width: int, height: int, hfov_deg: float, solve_focal: bool = True,
           priors: np.ndarray | None = None, loss_px: float = 1.0, max_nfev: int = 50, robust: bool = True) -> BundleResult:
    """Rotation-only bundle adjustment of keyframe rotations ``R_init (K, 3, 3)`` (``R[0]`` held) and the FOV.

    ``priors`` lists keyframes (other than 0) that open a new segment: a weak pull to their initial
    rotation fixes what no link observes. ``robust=False`` stops after the plain least squares.
    """
    K = len(R_init)
    priors = np.zeros(0, np.int64) if priors is None else np.asarray([p for p in priors if p > 0], np.int64)
    logf0 = math.log(focal_from_hfov(width, hfov_deg))
    if K < 2 or not links:
        return BundleResult(R_init.copy(), hfov_deg, 0.0, np.zeros(len(links)))
    R0 = R_init[0].T[None] @ R_init
    ia = np.concatenate([np.full(len(lk.pa), lk.a) for lk in links])
    ib = np.concatenate([np.full(len(lk.pa), lk.b) for lk in links])
    pa = np.concatenate([lk.pa for lk in links])
    pb = np.concatenate([lk.pb for lk in links])
    U = whitening([lk.wa for lk in links], [len(lk.pa) for lk in links])
    x0 = np.zeros(3 * (K - 1) + (1 if solve_focal else 0))
    if solve_focal:
        x0[-1] = logf0
    args = (R0, ia, ib, pa, pb, U, width, height, solve_focal, logf0, priors, 1e-3, {})

    def fun(x: np.ndarray, want_jac: bool):
        return _residuals_and_jac(x, *args, want_jac=want_jac)

    # Plain least squares first: it converges in a few steps from far (a loop closing a drift of
    # degrees); then the Huber loss from there, so outliers lose their pull.
    x, nfev = _levenberg_marquardt(fun, x0, None, max_nfev)
    loop = np.concatenate([np.full(len(lk.pa), lk.loop) for lk in links])
    if loop.any() and not loop.all():
        # Loop links match corners found anew in two views far apart, not one track followed
        # between them: their noise is measured here (robustly, against the tracks') instead of
        # assumed equal, and their weights scaled to it before the robust pass.
        err = np.linalg.norm(fun(x, False)[: 2 * len(pa)].reshape(-1, 2), axis=1)
        ratio = float(np.median(err[~loop])) / max(float(np.median(err[loop])), 1e-12)
        U[loop] *= min(1.0, max(0.1, ratio))
    if robust:
        x, more = _levenberg_marquardt(fun, x, loss_px, max_nfev)
        nfev += more
    deltas = np.zeros((K, 3))
    deltas[1:] = x[: 3 * (K - 1)].reshape(-1, 3)
    R = R0 @ rotvec_to_matrix(deltas)
    f = math.exp(x[-1]) if solve_focal else math.exp(logf0)
    if solve_focal:
        r_all, J = _residuals_and_jac(x, *args, want_jac=True)
        sigma = _hfov_sigma_deg(r_all, J, width, f, loss_px if robust else None)
    else:
        r_all, sigma = _residuals_and_jac(x, *args, want_jac=False), float("inf")
    err = np.linalg.norm(r_all[: 2 * len(pa)].reshape(-1, 2), axis=1)
    bounds = np.cumsum([0] + [len(lk.pa) for lk in links])
    med = np.array([np.median(err[bounds[i]:bounds[i + 1]]) for i in range(len(links))])
    return BundleResult(R, hfov_from_focal(width, f), float(np.sqrt(np.mean(err**2))), med, nfev, sigma)


def _hfov_sigma_deg(r: np.ndarray, J, width: int, f: float, loss_px: float | None) -> float:
    """The FOV's standard error (degrees) at the adjustment's solution: the ``log f`` entry of
    ``noise^2 (J^T W J)^-1``, the residuals' robust spread (MAD) taken as their noise. Infinite
    when the links do not constrain the focal length at all (a camera that does not turn)."""
    w = np.ones_like(r) if loss_px is None else np.minimum(1.0, loss_px / np.maximum(np.abs(r), 1e-12))
    noise = 1.4826 * float(np.median(np.abs(r)))
    try:
        var_logf = noise**2 * float(np.linalg.inv((J.T @ diags(w) @ J).toarray())[-1, -1])
    except np.linalg.LinAlgError:
        return float("inf")
    if not 0 <= var_logf < 1.0:
        return float("inf")
    s = math.sqrt(var_logf)
    return abs(hfov_from_focal(width, f * math.exp(-s)) - hfov_from_focal(width, f * math.exp(s))) / 2
