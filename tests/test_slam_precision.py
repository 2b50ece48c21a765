"""How precisely KLT places points (structure tensors), and residuals weighted by it in the adjustment
and in the per-frame fit."""

from __future__ import annotations

import numpy as np

from pano360.project.rotation import euler_to_matrix, rotation_angle_deg
from pano360.slam.bundle import adjust
from pano360.slam.geometry import grouped_weighted_rotations, pixels_to_rays, rays_to_pixels
from pano360.slam.links import Link
from pano360.slam.precision import point_information, whiten, whitening


def test_an_edge_is_known_across_itself_and_a_corner_both_ways():
    img = np.zeros((100, 100), np.uint8)
    img[50:, :] = 200  # a horizontal edge
    img[:50, 70:] = 120  # and, above it, a vertical one meeting it: a corner at (70, 50)
    info = point_information(img, np.array([[30.0, 50.0], [70.0, 50.0], [30.0, 20.0]]), 15)
    gxx, gxy, gyy = info.T
    assert gyy[0] > 50 * gxx[0]  # the edge: y pinned, x hardly
    assert min(gxx[1], gyy[1]) > 0.2 * max(gxx[1], gyy[1])  # the corner: both
    # Flat: nothing known, yet a positive definite weight (the 1 % floor and a tiny absolute one).
    assert gxx[2] > 0 and gyy[2] > 0 and gxx[2] * gyy[2] > gxy[2] ** 2


def test_whitening_squares_to_the_weights_scaled_by_their_median():
    gen = np.random.default_rng(1)
    A = gen.normal(size=(20, 2, 2))
    G = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(2)
    info = np.stack([G[:, 0, 0], G[:, 0, 1], G[:, 1, 1]], 1)
    U = whitening([info[:12], None, info[12:]], [12, 3, 8])
    scale = np.median(0.5 * (info[:, 0] + info[:, 2]))
    W = np.swapaxes(U, 1, 2) @ U
    assert np.allclose(W[:12], G[:12] / scale) and np.allclose(W[15:], G[12:] / scale)
    assert np.allclose(W[12:15], np.eye(2))  # unknown: a typical point
    v, M = gen.normal(size=(23, 2)), gen.normal(size=(23, 2, 3))
    assert np.allclose(whiten(U, v), np.einsum("nij,nj->ni", U, v)) and np.allclose(whiten(U, M), U @ M)


def _edge_link(R_rel: np.ndarray, w: int, h: int, f: float, gen: np.random.Generator, bias_px: float):
    """80 pairs seen across a turn, most on horizontal edges whose x is off by ``bias_px`` (KLT
    sliding along them), with their structure tensors; a few round corners without bias."""
    pb = np.stack([gen.uniform(40, w - 40, 80), gen.uniform(40, h - 40, 80)], 1)
    pa = rays_to_pixels(pixels_to_rays(pb, w, h, f) @ R_rel.T, w, h, f)
    edge = np.arange(80) >= 10
    pa = pa + gen.normal(0, 0.03, pa.shape)
    pa[edge, 0] += bias_px * np.sign(pa[edge, 0] - w / 2)  # a bias that also mimics a wrong focal
    info = np.where(edge[:, None], [0.02, 0.0, 2.0], [1.0, 0.0, 1.0])
    return pa, pb, info


def test_weights_undo_the_along_edge_errors_of_edge_points():
    w, h, hfov = 640, 360, 60.0
    f = w / 2 / np.tan(np.radians(hfov) / 2)
    gen = np.random.default_rng(4)
    R = euler_to_matrix(np.array([0.0, 6.0, 12.0]), np.array([0.0, 2.0, -1.0]), np.array([0.0, 0.5, 1.0]))
    plain, weighted = [], []
    for a, b in ((0, 1), (1, 2), (0, 2)):
        pa, pb, info = _edge_link(R[a].T @ R[b], w, h, f, gen, 0.4)
        plain.append(Link(a, b, pa, pb))
        weighted.append(Link(a, b, pa, pb, wa=info))
    ba_plain = adjust(plain, R, w, h, hfov)
    ba_weighted = adjust(weighted, R, w, h, hfov)
    # 0.4 px along 70 edges a link: counted as corners they move the FOV; weighted they hardly can.
    assert abs(ba_plain.hfov_deg - hfov) > 0.05
    assert abs(ba_weighted.hfov_deg - hfov) < 0.2 * abs(ba_plain.hfov_deg - hfov)
    assert rotation_angle_deg(ba_weighted.R, R).max() < 0.5 * rotation_angle_deg(ba_plain.R, R).max()
    # The per-frame fit does the same, and a zero weight drops a pair.
    pa, pb, info = _edge_link(R[1], w, h, f, gen, 0.4)
    U = whitening([info], [80])
    U[:5] = 0.0
    pa[:5] += 30.0  # outliers, dropped
    fit = grouped_weighted_rotations(np.eye(3)[None], pa, pb, np.array([0]), U, w, h, f, iterations=4)[0]
    assert rotation_angle_deg(fit, R[1]) < 0.005
