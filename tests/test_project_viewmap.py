"""Per-frame view tables: the coarse-grid table matches the exact one; projections keep their conventions."""

import math

import numpy as np
import pytest

from pano360.project.projections import projection_rays, rays_at
from pano360.project.viewmap import chroma_map, view_map
from pano360.project.erp import dirs_to_uv
from pano360.project.remap import erp_to_persp_map
from pano360.project.rotation import euler_to_matrix


def _wrap_diff(a, b, w):
    return (a - b + w / 2) % w - w / 2


@pytest.mark.parametrize("ypr, coarse", [((0, 0, 0), True), ((170, 20, 5), True), ((-179.9, -10, 30), True),
                                         ((45, 55, -20), False)])
def test_coarse_table_matches_the_exact_table(ypr, coarse):
    """A 1080p view of a 4K ERP (what reframe renders): the coarse table is within 0.05 px of the
    exact one wherever it is used; near a pole (pitch 55 with a 90 deg view) it is not used."""
    W, H = 4096, 2048
    R = euler_to_matrix(*ypr)
    luma, chroma = view_map(R, 90.0, "rectilinear", 1920, 1080, W, H, chroma=True)
    assert luma.exact is not coarse
    mx, my = erp_to_persp_map(R, 90.0, 1920, 1080, W, H)
    assert np.abs(_wrap_diff(luma.map_x, mx, W)).max() < 0.05
    assert np.abs(luma.map_y - np.clip(my, 0, H - 1)).max() < 0.05
    # Chroma sample (a, b) sits at full-size (2a + 0.5, 2b + 0.5): half the source coordinate.
    ex, ey = mx, my
    want_x = (ex[::2, ::2] + ex[1::2, 1::2]) / 2  # straddles the seam only where both wrap alike
    ok = np.abs(ex[::2, ::2] - ex[1::2, 1::2]) < W / 2
    got = chroma.map_x * 2 + 0.5
    assert np.abs(_wrap_diff(got, want_x, W)[ok]).max() < 0.1
    want_y = np.clip((ey[::2, ::2] + ey[1::2, 1::2]) / 2, 0, H - 1)
    assert np.abs(chroma.map_y * 2 + 0.5 - want_y).max() < 0.1


def test_a_pole_in_view_falls_back_to_the_exact_table():
    R = euler_to_matrix(0, -90, 0)  # looking straight down
    luma, _ = view_map(R, 100.0, "rectilinear", 320, 180, 1024, 512)
    mx, my = erp_to_persp_map(R, 100.0, 320, 180, 1024, 512)
    assert luma.exact
    np.testing.assert_allclose(luma.map_x, mx)


def test_exact_chroma_table_never_averages_across_the_seam():
    R = euler_to_matrix(180, 0, 0)  # the seam runs down the middle of the view
    luma, chroma = view_map(R, 90.0, "rectilinear", 64, 32, 256, 128, step=1, chroma=True)
    assert luma.exact
    u = chroma.map_x * 2 + 0.5
    assert (np.minimum(np.abs(u), np.abs(u - 256)) < 40).all()  # within 45 deg of the seam, never mid-panorama
    chroma_map(luma, 256, 128)


@pytest.mark.parametrize("projection, hfov", [("rectilinear", 100.0), ("stereographic", 270.0), ("fisheye", 180.0)])
def test_projection_edges_see_half_the_fov(projection, hfov):
    w, h = 400, 200
    rays, valid = rays_at(projection, np.array([w - 0.5, (w - 1) / 2]), np.array([(h - 1) / 2, (h - 1) / 2]), w, h, hfov)
    edge = rays[0] / np.linalg.norm(rays[0])
    assert math.degrees(math.atan2(edge[0], edge[2])) == pytest.approx(hfov / 2, abs=1e-6)
    np.testing.assert_allclose(rays[1] / np.linalg.norm(rays[1]), [0, 0, 1], atol=1e-12)
    full, full_valid = projection_rays(projection, w, h, hfov)
    assert full.shape == (h, w, 3) and full_valid.all()


def test_fisheye_beyond_360_marks_pixels_invalid_and_tiny_planet_centre_is_nadir():
    _, valid = projection_rays("fisheye", 200, 200, 360.0)
    assert valid[100, 100] and not valid[0, 0]  # corners lie past the back pole
    rays, _ = projection_rays("stereographic", 200, 200, 270.0)
    R = euler_to_matrix(0, -90, 0)
    centre = R @ rays[100, 100].astype(float)
    u, v = dirs_to_uv(centre, 512, 256)
    assert v > 250  # the bottom row of the ERP: straight down


def test_strips_give_the_same_pixels_as_the_whole_table():
    """sample_yuv420_coarse (strip by strip, the full table never made) = view_map + sample,
    pixel for pixel, for a view crossing the seam, in every plane."""
    from pano360.canvas import yuv420_planes
    from pano360.project.viewmap import coarse_nodes, sample, sample_yuv420_coarse

    rng = np.random.default_rng(2)
    W, H = 4096, 2048
    planes = (rng.integers(0, 256, (H, W), dtype=np.uint8), rng.integers(0, 256, (H // 2, W // 2), dtype=np.uint8),
              rng.integers(0, 256, (H // 2, W // 2), dtype=np.uint8))
    R = euler_to_matrix(170.0, 20.0, 5.0)
    nodes = coarse_nodes(R, 90.0, "rectilinear", 1920, 1080, W, H)
    assert nodes is not None  # coarse nodes hold for a 1080p view of a 4K ERP (not for small ones)
    packed = np.empty((1620, 1920), np.uint8)
    sample_yuv420_coarse(planes, nodes, 16, yuv420_planes(packed, 1080), band=3)
    luma, chroma = view_map(R, 90.0, "rectilinear", 1920, 1080, W, H, chroma=True)
    want = (sample(planes[0], luma), sample(planes[1], chroma), sample(planes[2], chroma))
    for got, ref in zip(yuv420_planes(packed, 1080), want):
        assert np.array_equal(got, ref)
