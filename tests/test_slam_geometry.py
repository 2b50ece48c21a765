"""Closed-form and seeded checks of the tracking geometry: rays, best rotation, Jacobians, rolling shutter, metadata FOV."""

from __future__ import annotations

import numpy as np
import pytest

from pano360.project.rotation import best_rotation, euler_to_matrix, rotation_angle_deg, rotvec_to_matrix
from pano360.slam.bundle import adjust, search_hfov
from pano360.slam.geometry import pixels_to_rays, ransac_rotation, rays_to_pixels, right_jacobian, rotation_fit_cost
from pano360.slam.links import Link
from pano360.slam.metadata import focal_35mm_from_tags, hfov_from_35mm
from pano360.slam.rolling import unroll_pixels


def test_pixel_ray_round_trip_and_centre():
    px = np.array([[319.5, 179.5], [0.0, 0.0], [639.0, 359.0]])
    rays = pixels_to_rays(px, 640, 360, 500.0)
    assert np.allclose(rays[0], [0, 0, 1])
    assert np.allclose(rays_to_pixels(rays, 640, 360, 500.0), px)


def test_best_rotation_recovers_a_rotation_exactly():
    gen = np.random.default_rng(6)
    R = euler_to_matrix(20.0, -7.0, 3.0)
    b = gen.normal(size=(50, 3))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    assert rotation_angle_deg(best_rotation(b @ R.T, b), R) < 1e-9


def test_right_jacobian_matches_finite_differences():
    phi = np.array([0.3, -0.2, 0.5])
    J = right_jacobian(phi)
    eps = 1e-6
    for i in range(3):
        d = np.zeros(3)
        d[i] = eps
        # exp(phi + d) = exp(phi) exp(J d)  ->  log(exp(phi)^T exp(phi + d)) / eps = J[:, i]
        rel = rotvec_to_matrix(phi).T @ rotvec_to_matrix(phi + d)
        w = np.array([rel[2, 1], rel[0, 2], rel[1, 0]]) / eps
        assert np.allclose(w, J[:, i], atol=1e-5)


def _synthetic_links(hfov: float, w: int = 640, h: int = 360, seed: int = 0, noise_px: float = 0.05,
                     step_deg: float = 8.0, n_kf: int = 6, points: int = 80) -> tuple[list[Link], np.ndarray]:
    """Correspondences (``noise_px`` of noise) between keyframes of a known pan (``step_deg`` a keyframe) at a known FOV."""
    gen = np.random.default_rng(seed)
    k = step_deg / 8.0
    i = np.arange(n_kf)
    R = euler_to_matrix(i * 8.0 * k, np.sin(i) * 3.0 * k, i * 0.5 * k)
    f = w / 2 / np.tan(np.radians(hfov) / 2)
    links = []
    for a in range(n_kf):
        for b in range(a + 1, min(a + 4, n_kf)):
            pb = np.stack([gen.uniform(0, w - 1, 300), gen.uniform(0, h - 1, 300)], 1)
            d = (R[a].T @ R[b] @ pixels_to_rays(pb, w, h, f).T).T
            pa = rays_to_pixels(d, w, h, f)
            inside = (pa[:, 0] > 0) & (pa[:, 0] < w - 1) & (pa[:, 1] > 0) & (pa[:, 1] < h - 1)
            m = min(points, int(inside.sum()))
            links.append(Link(a, b, pa[inside][:m] + gen.normal(0, noise_px, (inside.sum(), 2))[:m], pb[inside][:m]))
    return links, R


def test_fov_search_and_adjustment_recover_a_known_fov_and_rotations():
    links, R = _synthetic_links(57.0)
    seed, contrast = search_hfov(links, 640, 360)
    assert abs(seed - 57.0) < 0.5 and contrast > 1.0
    init = R @ rotvec_to_matrix(np.random.default_rng(2).normal(0, 0.01, (6, 3)))
    ba = adjust(links, init, 640, 360, seed)
    # 0.05 px noise on 80 points a link: the FOV within 0.05 deg, rotations within 0.01 deg.
    assert abs(ba.hfov_deg - 57.0) < 0.05
    assert rotation_angle_deg(ba.R, R[0].T[None] @ R).max() < 0.01


def test_adjustment_of_a_long_clip_stays_small():
    # 1500 keyframes (a long clip): J^T J is block-banded and solved as sparse, and the Jacobian is
    # built a chunk of points at a time. A dense J^T J alone would be 4500^2 doubles (162 MB).
    import tracemalloc

    links, R = _synthetic_links(60.0, step_deg=2.0, n_kf=1500, points=12)
    init = R @ rotvec_to_matrix(np.random.default_rng(3).normal(0, 0.002, (len(R), 3)))
    tracemalloc.start()
    ba = adjust(links, init, 640, 360, 60.5, max_nfev=8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 60e6, peak / 1e6
    assert abs(ba.hfov_deg - 60.0) < 0.05
    # Neighbours placed right (the chain as a whole random-walks: 12 points a link, no loop).
    rel = np.swapaxes(ba.R[:-1], 1, 2) @ ba.R[1:]
    true = np.swapaxes(R[:-1], 1, 2) @ R[1:]
    before = np.swapaxes(init[:-1], 1, 2) @ init[1:]
    assert np.median(rotation_angle_deg(rel, true)) < 0.01 < np.median(rotation_angle_deg(before, true))


def test_fov_standard_error_matches_the_scatter_of_estimates():
    # The adjustment's standard error on the FOV is what decides whether a shallow search minimum
    # counts as measured: over noisy repeats it must match the estimates' actual scatter.
    fovs, sigmas = [], []
    for seed in range(12):
        links, R = _synthetic_links(50.0, seed=seed, noise_px=1.0, step_deg=2.0)
        ba = adjust(links, R, 640, 360, 50.0)
        fovs.append(ba.hfov_deg)
        sigmas.append(ba.hfov_sigma_deg)
    scatter, sigma = float(np.std(fovs)), float(np.mean(sigmas))
    assert 0.05 < sigma < 1.0 and 0.6 < scatter / sigma < 1.6, (scatter, sigma)
    # A camera that hardly turns leaves the FOV free: a standard error of many percent.
    links, R = _synthetic_links(50.0, noise_px=1.0, step_deg=0.1)
    assert adjust(links, R, 640, 360, 50.0).hfov_sigma_deg > 0.03 * 50.0
    # Not solved for, not reported.
    assert adjust(links, R, 640, 360, 50.0, solve_focal=False).hfov_sigma_deg == float("inf")


def test_unrolling_undoes_a_known_rolling_shutter():
    w, h, f, readout = 640, 360, 500.0, 0.02
    omega = np.array([0.1, 0.8, -0.05])  # rad/s, mostly a pan
    gen = np.random.default_rng(1)
    gs = np.stack([gen.uniform(0, w - 1, 100), gen.uniform(0, h - 1, 100)], 1)  # what a global shutter sees
    # A row is read at dt = (y / (h - 1) - 0.5) * readout, seeing exp(-[omega] dt) of the global ray; solve by iteration.
    rs = gs.copy()
    for _ in range(10):
        dt = (rs[:, 1] / (h - 1) - 0.5) * readout
        rot = rotvec_to_matrix(-omega[None] * dt[:, None])
        rs = rays_to_pixels(np.einsum("nij,nj->ni", rot, pixels_to_rays(gs, w, h, f)), w, h, f)
    assert np.abs(unroll_pixels(rs, omega, readout, w, h, f) - gs).max() < 1e-3


@pytest.mark.parametrize("tags, mm", [
    ({"com.apple.quicktime.camera.focal_length.35mm_equivalent": "26"}, 26.0),
    ({"FocalLengthIn35mmFormat": "28 mm"}, 28.0),
    ({"com.apple.quicktime.make": "Apple"}, None),
    ({"focal_length_35mm": "1000"}, None),
])
def test_focal_from_tags(tags, mm):
    assert focal_35mm_from_tags(tags) == mm


def test_35mm_equivalent_fov_of_a_16_9_video():
    # 26 mm on the 43.27 mm diagonal: diagonal FOV 79.5 deg, f = 1323.7 px on a 1920x1080 picture's
    # 2202.9 px diagonal, so 2 atan(960 / 1323.7) = 71.9 deg across, 2 atan(540 / 1323.7) = 44.4 in portrait.
    assert abs(hfov_from_35mm(26.0, 1920, 1080) - 71.9) < 0.05
    assert abs(hfov_from_35mm(26.0, 1080, 1920) - 44.4) < 0.05


@pytest.mark.parametrize("name", ["pano360.slam.geometry", "pano360.slam.metadata", "pano360.synth.camera_path"])
def test_docstring_examples(name):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(name)).failed == 0


def test_ransac_rotation_recovers_a_rotation_among_outliers():
    rng = np.random.default_rng(5)
    R = rotvec_to_matrix(np.array([0.3, -0.2, 0.5]))
    b = rng.normal(size=(200, 3))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    a = b @ R.T
    a[:60] = rng.normal(size=(60, 3))  # 30% outliers
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    for refits in (1, 2):
        est, inl = ransac_rotation(a, b, np.radians(0.1), rng, hypotheses=96, refits=refits)
        assert rotation_angle_deg(est, R) < 1e-6 and inl[60:].all() and inl[:60].sum() < 3
    assert rotation_angle_deg(best_rotation(a[60:], b[60:]), R) < 1e-6


def test_best_rotation_is_batched_and_weighted():
    rng = np.random.default_rng(6)
    R = rotvec_to_matrix(rng.normal(size=(4, 3)))
    b = rng.normal(size=(4, 30, 3))
    a = np.einsum("kij,knj->kni", R, b) * rng.uniform(0.5, 2.0, size=(4, 30, 1))  # lengths do not matter
    assert np.all(rotation_angle_deg(best_rotation(a, b), R) < 1e-9)
    a[:, :5] = rng.normal(size=(4, 5, 3))  # outliers that weight zero ignores
    w = np.ones((4, 30))
    w[:, :5] = 0.0
    assert np.all(rotation_angle_deg(best_rotation(a, b, w), R) < 1e-9)


def test_rotation_fit_cost_is_lowest_at_the_true_focal():
    rng = np.random.default_rng(7)
    w, h, f = 640, 360, 500.0
    pb = rng.uniform([0, 0], [w, h], size=(60, 2))
    pa = np.concatenate([rays_to_pixels(pixels_to_rays(pb[i:i + 30], w, h, f) @ rotvec_to_matrix(rv).T, w, h, f)
                         for i, rv in ((0, [0.0, 0.1, 0.0]), (30, [0.05, -0.08, 0.02]))])
    starts = np.array([0, 30])
    costs = [rotation_fit_cost(pa, pb, starts, w, h, ff) for ff in (400.0, 500.0, 600.0)]
    assert costs[1] < 1e-12 < min(costs[0], costs[2])


def test_loop_links_noise_is_measured_not_assumed():
    # Tracks 0.05 px, loop matches 1 px (corners found anew in two far-apart views): counted as
    # equals the loops would drag the keyframes off; weighted by their measured noise they do not.
    links, R = _synthetic_links(57.0, noise_px=0.05)
    gen = np.random.default_rng(9)
    noisy = []
    for lk in links:
        if lk.b - lk.a >= 2:  # the longer links play the loops
            noisy.append(Link(lk.a, lk.b, lk.pa + gen.normal(0, 1.0, lk.pa.shape), lk.pb, loop=True))
        else:
            noisy.append(lk)
    as_equals = [Link(lk.a, lk.b, lk.pa, lk.pb) for lk in noisy]
    truth = R[0].T[None] @ R
    err_loops = rotation_angle_deg(adjust(noisy, R, 640, 360, 57.0).R, truth).max()
    err_equal = rotation_angle_deg(adjust(as_equals, R, 640, 360, 57.0).R, truth).max()
    assert err_loops < 0.5 * err_equal, (err_loops, err_equal)
