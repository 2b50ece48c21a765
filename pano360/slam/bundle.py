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
from functools import cached_property

import numpy as np
from scipy.sparse import coo_matrix, diags
from scipy.sparse.linalg import splu

from pano360.project.camera import focal_from_hfov, hfov_from_focal
from pano360.project.rotation import rotvec_to_matrix
from pano360.slam.geometry import pixels_to_rays, projection_jacobian, right_jacobian, rotation_fit_cost
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


# Points are taken this many at a time (whole links), so that the adjustment's temporaries stay
# the same size however long the clip: ~1 kB of Jacobian pieces a point.
CHUNK_POINTS = 16384


@dataclass(frozen=True)
class _Problem:
    """The adjustment's fixed data: keyframe rotations ``R0 (K, 3, 3)`` about which ``x`` (one
    rotation vector per keyframe after the first, then ``log f`` when solved) is taken; per point
    the pixels ``pa, pb`` and whitening ``U (n, 2, 2)``; the links' point ranges ``starts`` and
    keyframes ``link_a``, ``link_b``; the keyframes held near their start (``priors``)."""

    R0: np.ndarray
    pa: np.ndarray
    pb: np.ndarray
    U: np.ndarray
    width: int
    height: int
    solve_focal: bool
    logf_fixed: float
    priors: np.ndarray
    prior_w: float
    starts: np.ndarray  # (L + 1,) point ranges of the links
    link_a: np.ndarray
    link_b: np.ndarray

    @property
    def n_par(self) -> int:
        return 3 * (len(self.R0) - 1) + (1 if self.solve_focal else 0)

    @cached_property
    def chunks(self) -> list[tuple[int, int]]:
        """Runs of whole links ``(first, end)`` of about :data:`CHUNK_POINTS` points."""
        out, first = [], 0
        for l in range(1, len(self.starts)):
            if self.starts[l] - self.starts[first] >= CHUNK_POINTS or l == len(self.starts) - 1:
                out.append((first, l))
                first = l
        return out


def _pose(x: np.ndarray, prob: _Problem) -> tuple[np.ndarray, np.ndarray, float]:
    deltas = np.zeros((len(prob.R0), 3))
    deltas[1:] = x[: 3 * (len(prob.R0) - 1)].reshape(-1, 3)
    f = math.exp(x[-1] if prob.solve_focal else prob.logf_fixed)
    return deltas, prob.R0 @ rotvec_to_matrix(deltas), f


def _times(A: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``A @ M`` for stacks ``A (m, p, 3)``, ``M (m, 3, 3)``, by broadcasting (numpy's stacked matmul
    is slower on 3x3s)."""
    return A[:, :, 0, None] * M[:, None, 0, :] + A[:, :, 1, None] * M[:, None, 1, :] + A[:, :, 2, None] * M[:, None, 2, :]


def _times_skew(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``A @ skew(v)`` for ``A (m, p, 3)``, ``v (m, 3)``: each row ``a`` of ``A`` becomes ``a x v``."""
    v = v[:, None, :]
    return np.stack([A[..., 1] * v[..., 2] - A[..., 2] * v[..., 1], A[..., 2] * v[..., 0] - A[..., 0] * v[..., 2],
                     A[..., 0] * v[..., 1] - A[..., 1] * v[..., 0]], axis=-1)


def _apply(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``M @ v`` for stacks ``M (m, p, 3)``, ``v (m, 3)``."""
    return M[:, :, 0] * v[:, 0, None] + M[:, :, 1] * v[:, 1, None] + M[:, :, 2] * v[:, 2, None]


def _rows_weighted(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``A^T w`` for stacks ``A (m, 2, k)``, ``w (m, 2)``."""
    return A[:, 0] * w[:, 0, None] + A[:, 1] * w[:, 1, None]


def _point_terms(prob: _Problem, l0: int, l1: int, deltas: np.ndarray, R: np.ndarray, f: float, want_jac: bool):
    """Whitened residuals ``(m, 2)`` of the points of links ``l0:l1`` and, with ``want_jac``, their
    derivatives by keyframe a's and b's rotation ``(m, 2, 3)`` and by ``log f`` ``(m, 2)``."""
    lo, hi = prob.starts[l0], prob.starts[l1]
    sizes = np.diff(prob.starts[l0:l1 + 1])
    la, lb = prob.link_a[l0:l1], prob.link_b[l0:l1]
    U = prob.U[lo:hi]
    rb = pixels_to_rays(prob.pb[lo:hi], prob.width, prob.height, f)
    Rab = np.repeat(np.swapaxes(R[la], 1, 2) @ R[lb], sizes, axis=0)  # one product a link
    d = _apply(Rab, rb)
    z = d[:, 2]
    proj = np.stack([f * d[:, 0] / z + (prob.width / 2 - 0.5), f * d[:, 1] / z + (prob.height / 2 - 0.5)], 1)
    res = whiten(U, proj - prob.pa[lo:hi])
    if not want_jac:
        return res, None, None, None
    P = whiten(U, projection_jacobian(d, f))  # d proj / d d, whitened
    Jr = right_jacobian(deltas)
    Ja = _times(_times_skew(P, d), np.repeat(Jr[la], sizes, axis=0))  # d d / d delta_a = [d]x J_r
    Jb = -_times(_times_skew(_times(P, Rab), rb), np.repeat(Jr[lb], sizes, axis=0))  # -R_a^T R_b [r_b]x J_r
    Jf = None
    if prob.solve_focal:
        drb = np.zeros_like(rb)
        drb[:, :2] = -rb[:, :2]  # d r_b / d log f
        dproj = np.stack([d[:, 0] / z * f, d[:, 1] / z * f], 1)  # the projection's own scaling by f
        Jf = whiten(U, dproj) + _apply(P, _apply(Rab, drb))
    return res, Ja, Jb, Jf


def _residuals(x: np.ndarray, prob: _Problem) -> np.ndarray:
    """Residuals ``(2n + 3p,)``: every point's whitened pixel error, then the priors'."""
    deltas, R, f = _pose(x, prob)
    parts = [_point_terms(prob, l0, l1, deltas, R, f, False)[0].ravel() for l0, l1 in prob.chunks]
    return np.concatenate(parts + [(prob.prior_w * f * deltas[prob.priors]).ravel()])


def _huber_weights(r: np.ndarray, loss_px: float | None) -> np.ndarray:
    return np.ones_like(r) if loss_px is None else np.minimum(1.0, loss_px / np.maximum(np.abs(r), 1e-12))


def _outer_sum(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A^T B`` ``(m, 3, 3)`` for stacks of 2x3 ``A``, ``B`` (a point's two residual rows)."""
    return A[:, 0, :, None] * B[:, 0, None, :] + A[:, 1, :, None] * B[:, 1, None, :]


def _normal_equations(x: np.ndarray, prob: _Problem, loss_px: float | None):
    """Residuals ``r`` and the normal equations ``A = J^T W J`` (sparse, CSC) and ``g = J^T W r``,
    ``W`` Huber's reweighting at ``r``. Built link by link from 3x3 blocks, a chunk of points at a
    time, so that no Jacobian of the whole problem is ever held."""
    deltas, R, f = _pose(x, prob)
    K, n_par, L = len(prob.R0), prob.n_par, len(prob.link_a)
    Haa, Hab, Hbb = np.zeros((L, 3, 3)), np.zeros((L, 3, 3)), np.zeros((L, 3, 3))
    ga, gb = np.zeros((L, 3)), np.zeros((L, 3))
    haf, hbf = np.zeros((L, 3)), np.zeros((L, 3))
    hff = gf = 0.0
    parts = []
    for l0, l1 in prob.chunks:
        lo = prob.starts[l0]
        res, Ja, Jb, Jf = _point_terms(prob, l0, l1, deltas, R, f, True)
        parts.append(res.ravel())
        w = _huber_weights(res, loss_px)  # (m, 2)
        wr = w * res
        at = prob.starts[l0:l1] - lo  # each link's first point within the chunk
        wJa, wJb = w[:, :, None] * Ja, w[:, :, None] * Jb
        Haa[l0:l1] = np.add.reduceat(_outer_sum(wJa, Ja), at)
        Hab[l0:l1] = np.add.reduceat(_outer_sum(wJa, Jb), at)
        Hbb[l0:l1] = np.add.reduceat(_outer_sum(wJb, Jb), at)
        ga[l0:l1] = np.add.reduceat(_rows_weighted(Ja, wr), at)
        gb[l0:l1] = np.add.reduceat(_rows_weighted(Jb, wr), at)
        if Jf is not None:
            haf[l0:l1] = np.add.reduceat(_rows_weighted(wJa, Jf), at)
            hbf[l0:l1] = np.add.reduceat(_rows_weighted(wJb, Jf), at)
            hff += float((w * Jf * Jf).sum())
            gf += float((Jf * wr).sum())
    prior_res = (prob.prior_w * f * deltas[prob.priors]).ravel()
    r = np.concatenate(parts + [prior_res])
    # Keyframe 0 is held: its blocks drop out (column/row index -1 below).
    blk_a, blk_b = prob.link_a - 1, prob.link_b - 1
    rows, cols, vals = [], [], []
    g = np.zeros(n_par)
    e3 = np.arange(3)

    def block(bi: np.ndarray, bj: np.ndarray, H: np.ndarray) -> None:
        m = (bi >= 0) & (bj >= 0)
        rows.append(np.broadcast_to((3 * bi[m])[:, None, None] + e3[None, :, None], (m.sum(), 3, 3)).ravel())
        cols.append(np.broadcast_to((3 * bj[m])[:, None, None] + e3[None, None, :], (m.sum(), 3, 3)).ravel())
        vals.append(H[m].ravel())

    block(blk_a, blk_a, Haa)
    block(blk_b, blk_b, Hbb)
    block(blk_a, blk_b, Hab)
    block(blk_b, blk_a, np.swapaxes(Hab, 1, 2))
    for bk, gk in ((blk_a, ga), (blk_b, gb)):
        m = bk >= 0
        np.add.at(g, (3 * bk[m])[:, None] + e3[None, :], gk[m])
    if prob.solve_focal:
        for bk, hk in ((blk_a, haf), (blk_b, hbf)):
            m = bk >= 0
            idx = ((3 * bk[m])[:, None] + e3[None, :]).ravel()
            rows += [idx, np.full(len(idx), n_par - 1)]
            cols += [np.full(len(idx), n_par - 1), idx]
            vals += [hk[m].ravel(), hk[m].ravel()]
        rows.append(np.array([n_par - 1]))
        cols.append(np.array([n_par - 1]))
        vals.append(np.array([hff]))
        g[-1] = gf
    # The priors: residual prior_w f delta_k, derivative prior_w f (per component, Huber-weighted too).
    if len(prob.priors):
        wp = _huber_weights(prior_res, loss_px)
        idx = ((3 * (prob.priors - 1))[:, None] + e3[None, :]).ravel()
        pf = prob.prior_w * f
        rows.append(idx)
        cols.append(idx)
        vals.append(wp * pf * pf)
        np.add.at(g, idx, wp * pf * prior_res)
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_par, n_par)).tocsc()
    return r, A, g


def _robust_cost(r: np.ndarray, loss_px: float | None) -> float:
    """Half the sum of squares, or of Huber's loss at ``loss_px`` (quadratic inside, linear outside)."""
    if loss_px is None:
        return 0.5 * float(r @ r)
    a = np.abs(r)
    return 0.5 * float(np.where(a <= loss_px, r * r, 2.0 * loss_px * a - loss_px**2).sum())


def _levenberg_marquardt(prob: _Problem, x0: np.ndarray, loss_px: float | None, max_nfev: int,
                         xtol: float = 1e-7, ftol: float = 1e-7) -> tuple[np.ndarray, int]:
    """Minimise ``_robust_cost`` of the residuals.

    Gauss-Newton steps on the normal equations ``(J^T W J + lam D) dx = -J^T W r`` (``W`` Huber's
    reweighting, ``D`` the diagonal of ``J^T W J``), ``lam`` raised until a step lowers the cost.
    ``J^T W J`` is sparse (a keyframe meets only its neighbours and its loops) and factored as
    such: memory and time grow with the keyframes, not with their square.
    Returns the solution and the number of residual evaluations.
    """
    x = x0.copy()
    r, A, g = _normal_equations(x, prob, loss_px)
    cost = _robust_cost(r, loss_px)
    nfev, lam = 1, 1e-4
    while nfev < max_nfev:
        diag = A.diagonal()
        d = np.maximum(diag, 1e-9 * max(float(diag.max()), 1e-30))
        stepped = False
        while nfev < max_nfev:
            try:
                dx = -splu((A + lam * diags(d)).tocsc()).solve(g)
            except RuntimeError:  # exactly singular
                dx = None
            if dx is not None and np.all(np.isfinite(dx)):
                x_new = x + dx
                r_new = _residuals(x_new, prob)
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
        r, A, g = _normal_equations(x, prob, loss_px)
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
    all_links = links
    links = [lk for lk in links if len(lk.pa)]
    if K < 2 or not links:
        return BundleResult(R_init.copy(), hfov_deg, 0.0, np.zeros(len(all_links)))
    R0 = R_init[0].T[None] @ R_init
    sizes = np.array([len(lk.pa) for lk in links], np.int64)
    prob = _Problem(
        R0=R0, pa=np.concatenate([lk.pa for lk in links]), pb=np.concatenate([lk.pb for lk in links]),
        U=whitening([lk.wa for lk in links], sizes), width=width, height=height, solve_focal=solve_focal,
        logf_fixed=logf0, priors=priors, prior_w=1e-3, starts=np.concatenate([[0], np.cumsum(sizes)]),
        link_a=np.array([lk.a for lk in links], np.int64), link_b=np.array([lk.b for lk in links], np.int64))
    x0 = np.zeros(prob.n_par)
    if solve_focal:
        x0[-1] = logf0
    n = len(prob.pa)

    # Plain least squares first: it converges in a few steps from far (a loop closing a drift of
    # degrees); then the Huber loss from there, so outliers lose their pull.
    x, nfev = _levenberg_marquardt(prob, x0, None, max_nfev)
    loop = np.repeat(np.array([lk.loop for lk in links], bool), sizes)
    if loop.any() and not loop.all():
        # Loop links match corners found anew in two views far apart, not one track followed
        # between them: their noise is measured here (robustly, against the tracks') instead of
        # assumed equal, and their weights scaled to it before the robust pass.
        err = np.linalg.norm(_residuals(x, prob)[: 2 * n].reshape(-1, 2), axis=1)
        ratio = float(np.median(err[~loop])) / max(float(np.median(err[loop])), 1e-12)
        prob.U[loop] *= min(1.0, max(0.1, ratio))
    if robust:
        x, more = _levenberg_marquardt(prob, x, loss_px, max_nfev)
        nfev += more
    deltas = np.zeros((K, 3))
    deltas[1:] = x[: 3 * (K - 1)].reshape(-1, 3)
    R = R0 @ rotvec_to_matrix(deltas)
    f = math.exp(x[-1]) if solve_focal else math.exp(logf0)
    if solve_focal:
        r_all, A, _ = _normal_equations(x, prob, loss_px if robust else None)
        sigma = _hfov_sigma_deg(r_all, A, width, f)
    else:
        r_all, sigma = _residuals(x, prob), float("inf")
    err = np.linalg.norm(r_all[: 2 * n].reshape(-1, 2), axis=1)
    bounds = prob.starts
    med = iter([np.median(err[bounds[i]:bounds[i + 1]]) for i in range(len(links))])
    med = np.array([next(med) if len(lk.pa) else np.nan for lk in all_links])
    hfov = hfov_from_focal(width, f) if solve_focal else float(hfov_deg)  # a given FOV stays exact (60, not 59.99...)
    return BundleResult(R, hfov, float(np.sqrt(np.mean(err**2))), med, nfev, sigma)


def _hfov_sigma_deg(r: np.ndarray, A, width: int, f: float) -> float:
    """The FOV's standard error (degrees) at the adjustment's solution: the ``log f`` entry of
    ``noise^2 A^-1`` (``A = J^T W J``, Huber-weighted as the adjustment ended), the residuals'
    robust spread (MAD) taken as their noise. Infinite when the links do not constrain the focal
    length at all (a camera that does not turn)."""
    noise = 1.4826 * float(np.median(np.abs(r)))
    e = np.zeros(A.shape[0])
    e[-1] = 1.0
    try:
        var_logf = noise**2 * float(splu(A.tocsc()).solve(e)[-1])
    except RuntimeError:  # exactly singular
        return float("inf")
    if not 0 <= var_logf < 1.0:
        return float("inf")
    s = math.sqrt(var_logf)
    return abs(hfov_from_focal(width, f * math.exp(-s)) - hfov_from_focal(width, f * math.exp(s))) / 2
