"""Remap tables on real panoramas: conventions pinned on the grid images, seam and poles exact,
round trips, an independent implementation (py360convert), and the footprint tables."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_file
from pano360.project import footprint as F
from pano360.project import remap as M
from pano360.project.camera import focal_from_hfov
from pano360.project.erp import dirs_to_uv, uv_to_dirs
from pano360.project.rotation import euler_to_matrix


def _load(rel: str, width: int | None = None) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(shared_file(rel)), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if width is not None and rgb.shape[1] != width:
        rgb = cv2.resize(rgb, (width, width // 2), interpolation=cv2.INTER_AREA)
    return rgb


@pytest.fixture(scope="module")
def sechelt() -> np.ndarray:
    return _load("erp/sechelt.jpg", 1024)


@pytest.fixture(scope="module")
def meadow() -> np.ndarray:
    return _load("erp/sphere_small.jpg", 1024)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        d = d[mask]
    return float(10 * np.log10(255.0**2 / d.mean()))


# --- conventions on the grid images -------------------------------------------------------------

@pytest.mark.parametrize("ypr, u, v", [
    ((90, 0, 0), 0.75, None),  # yaw +90 at u = 3W/4 - 0.5
    ((-90, 0, 0), 0.25, None),
    ((0, 0, 0), 0.5, None),
    ((0, 90, 0), None, -0.5),  # straight up at row -0.5
    ((0, -90, 0), None, 1024 - 0.5),  # straight down at row H - 0.5
    ((0, 45, 0), 0.5, 256 - 0.5),
])
def test_view_centre_lands_where_the_conventions_say(ypr, u, v):
    mx, my = M.erp_to_persp_map(euler_to_matrix(*ypr), 60.0, 65, 33, 2048, 1024)
    if u is not None:
        assert mx[16, 32] == pytest.approx(u * 2048 - 0.5, abs=2e-3)
    if v is not None:
        assert my[16, 32] == pytest.approx(v, abs=2e-3)


@pytest.mark.parametrize("ypr, rgb", [
    ((0, 0, 0), (0, 0, 254)),  # blue object straight ahead (+z)
    ((90, 0, 0), (254, 0, 0)),  # red object on +x: yaw +90 turns right
    ((-90, 0, 0), (136, 0, 0)),
    ((180, 0, 0), (32, 33, 151)),  # behind: the view straddles the seam
    ((0, 80, 0), (2, 253, 2)),  # ceiling: pitch +80 looks up
    ((0, -80, 0), (0, 138, 0)),  # floor
])
def test_room_objects_seen_in_the_conventions_directions(ypr, rgb):
    room = _load("erp/testRoom1_2kMono.jpg")
    view = M.erp_to_persp(room, euler_to_matrix(*ypr), 10.0, 33, 33)
    np.testing.assert_allclose(view[16, 16].astype(int), rgb, atol=12)


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (90, 0), (-135, 0), (180, 0), (180, 22.5), (45, -45), (-90, 67.5)])
def test_grid_lines_centred_in_views_of_their_intersections(yaw, pitch):
    # test-sphere.jpg: 2-px white lines centred on u = k W/8 - 0.5 and v = j H/8 - 0.5, including the
    # seam (columns 0 and W-1). A view centred on an intersection has them on its centre column and
    # row, symmetric to a tenth of the line contrast: no half-pixel shift, also across the seam.
    grid = cv2.cvtColor(_load("erp/test-sphere.jpg"), cv2.COLOR_RGB2GRAY).astype(np.float32)
    view = M.sample_erp(grid, *M.erp_to_persp_map(euler_to_matrix(yaw, pitch, 0), 8.0, 41, 41, 4000, 2000))
    cols = np.concatenate([view[:14], view[-14:]]).mean(0)  # away from the horizontal line
    rows = view[:, 17:24].mean(1)
    for prof in (cols, rows):
        assert int(np.argmax(prof)) == 20
        contrast = prof[20] - np.median(prof)
        assert contrast > 20
        assert abs(prof[19] - prof[21]) < 0.1 * contrast


def test_seam_view_equals_view_of_the_rolled_erp(meadow):
    W = meadow.shape[1]
    rolled = np.roll(meadow, W // 2, axis=1)
    for ypr, ypr_rolled in [((180, 10, 5), (0, 10, 5)), ((-170, -20, 0), (10, -20, 0))]:
        a = M.sample_erp(meadow, *M.erp_to_persp_map(euler_to_matrix(*ypr), 70.0, 320, 240, W, W // 2))
        b = M.sample_erp(rolled, *M.erp_to_persp_map(euler_to_matrix(*ypr_rolled), 70.0, 320, 240, W, W // 2))
        diff = np.abs(a.astype(int) - b)
        # The two tables differ only by float32 rounding of u (~1e-4 px), so at most a few
        # pixels round to the neighbouring grey level.
        assert diff.max() <= 1 and (diff > 0).mean() < 0.005
        # The fixed-point path rounds positions to 1/32 px, which that rounding can tip over.
        c = M.erp_to_persp(meadow, euler_to_matrix(*ypr), 70.0, 320, 240).astype(int)
        d = M.erp_to_persp(rolled, euler_to_matrix(*ypr_rolled), 70.0, 320, 240)
        assert np.abs(c - d).mean() < 0.02


def test_seam_interpolates_between_last_and_first_column():
    erp = np.random.default_rng(0).uniform(0, 1, (8, 16)).astype(np.float32)
    mx = np.array([[-0.5, 15.5, 15.25, -0.25]], np.float32)
    my = np.full_like(mx, 3.0)
    out = M.sample_erp(erp, mx, my)
    mid = 0.5 * (erp[3, 0] + erp[3, 15])
    np.testing.assert_allclose(out[0], [mid, mid, 0.75 * erp[3, 15] + 0.25 * erp[3, 0], 0.25 * erp[3, 15] + 0.75 * erp[3, 0]], atol=1e-6)


@pytest.mark.parametrize("interp", [cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4])
def test_seam_and_poles_are_invisible_to_every_kernel(interp):
    # Sampling next to the seam (and next to a pole) equals sampling the ERP rolled by W/2 away
    # from it: the wrap and the pole padding feed every tap of the kernel its true neighbour.
    erp = np.random.default_rng(3).uniform(0, 1, (16, 32)).astype(np.float32)
    u = np.array([[-0.5, -0.25, 31.5, 30.75, 0.3, 1.6]], np.float32)
    for v in (7.3, -0.4, 15.45):
        vv = np.full_like(u, v)
        a = M.sample_erp(erp, u, vv, interp)
        b = M.sample_erp(np.roll(erp, 16, axis=1), u + 16, vv, interp)
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_pole_rows_interpolate_across_the_pole():
    erp = np.random.default_rng(1).uniform(0, 1, (8, 16)).astype(np.float32)
    u = np.arange(16, dtype=np.float32)[None]
    top = M.sample_erp(erp, u, np.full_like(u, -0.5))[0]
    bottom = M.sample_erp(erp, u, np.full_like(u, 7.5))[0]
    np.testing.assert_allclose(top, 0.5 * (erp[0] + np.roll(erp[0], 8)), atol=1e-6)  # the pole's average
    np.testing.assert_allclose(bottom, 0.5 * (erp[7] + np.roll(erp[7], 8)), atol=1e-6)
    # the fixed-point table path pads the poles the same way (positions rounded to 1/32 px)
    table = M.ErpTable(*cv2.convertMaps(u, np.full_like(u, -0.5), cv2.CV_16SC2), -0.5, -0.5)
    np.testing.assert_allclose(M.sample_erp_table(erp, table)[0], top, atol=1e-5)


def test_looking_straight_up_sees_a_pole_without_seam(meadow):
    # A view centred on the zenith: the ERP's top rows all meet there; mirrored pixel pairs across
    # the view centre come from columns W/2 apart and must stay continuous (no black/border wedge).
    view = M.erp_to_persp(meadow, euler_to_matrix(0, 90, 0), 40.0, 101, 101).astype(np.float64)
    centre = view[45:56, 45:56].reshape(-1, 3)
    assert np.abs(centre - centre.mean(0)).max() < 25
    grad = np.abs(np.diff(view, axis=1)).mean()
    assert grad < 6


# --- accuracy against float64 and an independent implementation --------------------------------

def test_table_matches_float64_mapping():
    R = euler_to_matrix(123.0, -31.0, 17.0)
    w, h, hfov = 640, 360, 75.0
    mx, my = M.erp_to_persp_map(R, hfov, w, h, 4096, 2048)
    f = focal_from_hfov(w, hfov)
    x, y = np.meshgrid((np.arange(w) - (w / 2 - 0.5)) / f, (np.arange(h) - (h / 2 - 0.5)) / f)
    u, v = dirs_to_uv(np.stack([x, y, np.ones_like(x)], -1) @ R.T, 4096, 2048)
    du = np.abs((mx - u + 2048) % 4096 - 2048)
    assert du.max() < 0.002 and np.abs(my - v).max() < 0.002  # measured 3e-4 px
    fx, fy = M.erp_to_persp_map(R, hfov, w, h, 4096, 2048, precise=False)
    assert np.abs((fx - u + 2048) % 4096 - 2048).max() < 0.2  # measured 0.11 px: cv2.phase alone


def test_dirs_to_uv_fast_matches_dirs_to_uv():
    d = np.random.default_rng(2).normal(size=(50, 60, 3))
    R = euler_to_matrix(40, 20, -70)
    u, v = M.dirs_to_uv_fast(d, 2048, 1024, R)
    ur, vr = dirs_to_uv(d @ R.T, 2048, 1024)
    assert np.abs((u - ur + 1024) % 2048 - 1024).max() < 1e-3 and np.abs(v - vr).max() < 1e-3
    assert u.min() >= -0.5 - 1e-3 and u.max() < 2047.5 + 1e-3


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (90, 0), (-135, 30), (179, -20), (45, 60)])
def test_view_agrees_with_py360convert(meadow, yaw, pitch):
    # py360convert's e2p puts the first and last pixel CENTRES on the FOV edges (linspace from
    # -tan to tan), so its focal length is (w - 1) / 2 / tan(hfov / 2); ours is w / 2 / tan(hfov / 2).
    # Its u_deg / v_deg are our yaw (right) / pitch (up). Measured MAD: < 0.001 grey levels.
    py360convert = pytest.importorskip("py360convert")
    w, h, hfov = 320, 240, 60.0
    f = (w - 1) / 2 / math.tan(math.radians(hfov / 2))
    ours = M.erp_to_persp(meadow, euler_to_matrix(yaw, pitch, 0), math.degrees(2 * math.atan(w / 2 / f)), w, h)
    theirs = py360convert.e2p(meadow, (hfov, math.degrees(2 * math.atan((h - 1) / 2 / f))), yaw, pitch, (h, w))
    assert np.abs(ours.astype(float) - theirs).mean() < 1.0


# --- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, ypr", [("sechelt", (170, 20, 10)), ("meadow", (-60, -35, 0)), ("meadow", (20, 75, 30))])
def test_erp_view_erp_round_trip_above_40db(request, name, ypr):
    # The view samples the sphere at ~2x the ERP's density (f = 520 px/rad vs 163 px/rad), bicubic
    # both ways; compared inside the footprint, 2 px in from its edge. Measured 55-68 dB.
    erp = request.getfixturevalue(name)
    R = euler_to_matrix(*ypr)
    view = M.erp_to_persp(erp, R, 60.0, 600, 450, cv2.INTER_CUBIC)
    reg = F.persp_footprint_region(R, 60.0, 600, 450, erp.shape[1], erp.shape[0])
    back = F.remap_region(view, reg, cv2.INTER_CUBIC)
    inside = cv2.erode(reg.valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert psnr(back, F.take_region(erp, reg), inside) >= 40.0


def test_rotate_erp_by_yaw_quarter_is_a_roll(meadow):
    W = meadow.shape[1]
    out = M.rotate_erp(meadow, euler_to_matrix(90, 0, 0))
    assert np.array_equal(out, np.roll(meadow, -W // 4, axis=1))  # output lon l shows input lon l + 90


def test_rotate_erp_and_back(sechelt):
    R = euler_to_matrix(33, 47, -21)
    there = M.rotate_erp(sechelt, R, cv2.INTER_CUBIC)
    back = M.rotate_erp(there, R.T, cv2.INTER_CUBIC)
    assert psnr(back, sechelt) >= 38.0  # two bicubic resamplings at the ERP's own density; measured ~41 dB


# --- footprint tables ------------------------------------------------------------------------------

def _reference_valid(R, hfov, fw, fh, W, H):
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    cam = uv_to_dirs(u, v, W, H) @ R
    f = focal_from_hfov(fw, hfov)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = f * cam[..., 0] / cam[..., 2] + fw / 2 - 0.5
        y = f * cam[..., 1] / cam[..., 2] + fh / 2 - 0.5
    return (cam[..., 2] > 0) & (x >= -0.5) & (x <= fw - 0.5) & (y >= -0.5) & (y <= fh - 0.5), x, y


@pytest.mark.parametrize("ypr, hfov, fw, fh", [
    ((178, 5, 0), 41.0, 480, 270),  # box crosses the seam
    ((0, 70, 10), 98.0, 480, 270),  # zenith inside
    ((128, -84, 83), 54.0, 480, 270),  # nadir inside
    ((41, -21, 179), 118.0, 480, 270),
    ((-131, 40, 9), 65.0, 480, 270),
    ((90, 0, 0), 30.0, 480, 270),
    ((-60, 30, 0), 50.0, 270, 480),  # portrait
])
def test_footprint_region_is_exact(ypr, hfov, fw, fh):
    W, H = 1024, 512
    R = euler_to_matrix(*ypr)
    ref, x, y = _reference_valid(R, hfov, fw, fh, W, H)
    reg = F.persp_footprint_region(R, hfov, fw, fh, W, H)
    got = np.zeros((H, W), bool)
    F.paste_region(got, reg.valid, reg, where=np.ones_like(reg.valid))
    assert np.array_equal(got, ref)
    sel = reg.valid
    assert np.abs(F.take_region(x, reg)[sel] - reg.map_x[sel]).max() < 1e-3 + 0.5  # clamped within half a pixel
    inner = sel & (reg.map_x > 0) & (reg.map_x < fw - 1) & (reg.map_y > 0) & (reg.map_y < fh - 1)
    assert np.abs(F.take_region(x, reg)[inner] - reg.map_x[inner]).max() < 2e-3
    assert np.abs(F.take_region(y, reg)[inner] - reg.map_y[inner]).max() < 2e-3
    assert np.all(reg.map_x[~sel] == F.INVALID)
    fp = M.persp_footprint_map(R, hfov, fw, fh, W, H)  # the full-width form agrees
    assert np.array_equal(fp.valid, ref[fp.v0:fp.v1]) and ref[: fp.v0].sum() == 0 and ref[fp.v1:].sum() == 0


def test_persp_to_erp_places_the_frame_and_zeros_elsewhere(meadow):
    R = euler_to_matrix(175, 10, 0)  # across the seam
    frame = M.erp_to_persp(meadow, R, 70.0, 320, 240)
    out, mask = M.persp_to_erp(frame, R, 70.0, 1024, 512)
    ref, _, _ = _reference_valid(R, 70.0, 320, 240, 1024, 512)
    assert np.array_equal(mask, ref)
    assert not out[~mask].any()
    inside = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert psnr(out, meadow, inside) > 30.0  # the view is sparser than the ERP here: just a sanity bound


def test_feathered_alpha_on_the_erp():
    R = euler_to_matrix(-30, 15, 5)
    reg = F.persp_footprint_region(R, 60.0, 320, 180, 1024, 512)
    alpha = F.remap_region(F.feather_alpha(320, 180, 16.0), reg)
    assert np.all(alpha[~reg.valid] == 0)
    assert alpha.max() == pytest.approx(1.0) and alpha.min() >= 0
    assert np.all(alpha[reg.valid] > 0)
    inner = cv2.erode(reg.valid.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
    assert np.all(alpha[inner] > 0.3)
    ones = F.remap_region(np.ones((180, 320), np.float32), reg)
    assert np.array_equal(ones > 0, reg.valid) and np.all(ones[reg.valid] == 1.0)
    fixed = F.remap_region(F.feather_alpha(320, 180, 16.0), reg, maps=F.fixed_point_maps(reg))
    assert np.abs(fixed - alpha).max() < 0.01
    a8 = F.remap_region(F.feather_alpha(320, 180, 16.0, np.uint8), reg)
    assert np.array_equal(a8 > 0, reg.valid) and np.abs(a8 / 255.0 - alpha).max() < 0.01


@settings(max_examples=6, deadline=None, derandomize=True)
@given(st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180), st.floats(40, 100))
def test_random_views_keep_the_masked_pixels(yaw, pitch, roll, hfov):
    # ERP -> view (2x the ERP's density, bicubic) -> ERP keeps every pixel the footprint marks
    # valid, within interpolation error.
    erp = _load("erp/sphere_small.jpg", 512)
    R = euler_to_matrix(yaw, pitch, roll)
    w = 400
    f = focal_from_hfov(w, hfov)
    view = M.erp_to_persp(erp, R, hfov, w, w * 3 // 4, cv2.INTER_CUBIC)
    reg = F.persp_footprint_region(R, hfov, w, w * 3 // 4, 512, 256)
    back = F.remap_region(view, reg, cv2.INTER_CUBIC)
    inside = cv2.erode(reg.valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert f / (512 / (2 * np.pi)) > 2.0  # the view samples the sphere at least twice as densely as the ERP
    assert psnr(back, F.take_region(erp, reg), inside) >= 40.0  # measured 45-61 dB


def _first_column(yaw: float) -> int:
    return int(M.erp_to_persp_table(euler_to_matrix(yaw, 0, 0), 60.0, 640, 480, 2048, 1024).map1[0, 0, 0])


def test_tables_build_in_forked_children():
    # Tables are built on a per-process thread pool: a fork must not inherit dead workers.
    import multiprocessing as mp

    parent = _first_column(0.0)
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.map(_first_column, [0.0, 10.0]) == [parent, _first_column(10.0)]
