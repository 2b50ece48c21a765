"""The mosaic backend's parts: the spherical fill, exposure gains, the generic Canvas path."""

from __future__ import annotations

import numpy as np
import pytest

from pano360.canvas import Canvas
from pano360.generate.mosaic import MosaicBackend, build_background, upsample_erp
from pano360.generate.mosaic_fill import pad_sphere, spherical_fill
from pano360.generate.mosaic_place import canvas_from_placement, place_frame
from pano360.project.rotation import euler_to_matrix
from tests.conftest import shared_file


def _seam(img):
    f = img.astype(np.float64)
    return np.abs(f[:, 0] - f[:, -1]).mean() / max(np.abs(np.diff(f, axis=1)).mean(), 1e-9)


def test_pad_sphere_continues_over_the_seam_and_the_poles():
    e = np.arange(32.0).reshape(4, 8)
    p = pad_sphere(e, 2)
    assert np.array_equal(p[2:-2, 0], e[:, 6]) and np.array_equal(p[2:-2, -1], e[:, 1])
    # above row 0 at column u is row 0 at column u + W/2 (over the pole), then row 1
    assert np.array_equal(p[1, 2:-2], np.roll(e[0], 4)) and np.array_equal(p[0, 2:-2], np.roll(e[1], 4))
    assert np.array_equal(p[-2, 2:-2], np.roll(e[-1], 4))


def test_fill_keeps_known_pixels_and_is_seamless_and_pole_uniform():
    """A frame-sized patch of real panorama on an empty 512x256 sphere (feathered edge, as the
    background's weights are): known pixels unchanged,
    no black, the seam no rougher than the image, each pole one colour (not a fan of stripes)."""
    import cv2

    erp = cv2.cvtColor(cv2.imread(str(shared_file("erp/puydesancy.jpg"))), cv2.COLOR_BGR2RGB)
    erp = cv2.resize(erp, (512, 256), interpolation=cv2.INTER_AREA)
    w = np.zeros((256, 512), np.float32)
    w[90:170, 180:330] = 1.0  # the seam and the poles are all fill
    # a feathered edge, as the background's weights have (wrap-padded so the seam is no edge)
    w = cv2.blur(np.pad(w, ((0, 0), (16, 16)), mode="wrap"), (15, 15))[:, 16:-16]
    w = np.clip((w - 0.2) / 0.6, 0.0, 1.0)
    out = spherical_fill(erp, w)
    assert np.array_equal(out[w == 1], erp[w == 1].astype(np.float32))
    assert out.min() > 2 and np.isfinite(out).all()
    assert _seam(out) <= 1.5
    for row in (out[0], out[-1]):
        assert row.std(axis=0).max() < 1.0
    # rows next to the pole change smoothly (no ring)
    assert np.abs(np.diff(out[:8].mean(axis=1), axis=0)).max() < 3.0


def test_fill_with_nothing_known_is_grey():
    out = spherical_fill(np.zeros((64, 128, 3), np.uint8), np.zeros((64, 128), np.float32))
    assert np.all(out == 128)


def test_upsample_is_continuous_across_the_seam():
    rng = np.random.default_rng(0)
    small = (rng.random((32, 64, 3)) * 255).astype(np.uint8)
    big = upsample_erp(small, 256)
    assert big.shape == (128, 256, 3)
    assert _seam(big) <= 1.5


def test_exposure_gains_follow_the_auto_exposure():
    """A clip with a +-20% (linear light) exposure wobble: the estimated per-frame gains follow the
    true ones relative to frame 0 within 3%."""
    from pano360.synth import load_erp, phone_path, render_frames, relative_trajectory
    from pano360.synth.degrade import Degradations

    erp = load_erp(shared_file("erp/puydesancy.jpg"), max_width=1024)
    t, R = phone_path(3.0, 10, np.random.default_rng(2), pan_speed_deg_s=(15.0, 25.0))
    traj = relative_trajectory(t, R, 65.0, 240, 135)
    swing = 0.2
    frames = render_frames(erp, t, R, 65.0, 240, 135, Degradations(exposure_swing=swing), np.random.default_rng(7))
    bg = build_background(((i, float(t[i]), f) for i, f in enumerate(frames)), lambda i, _: traj.R[i], 65.0,
                          bg_width=512, step=1)
    phase = np.random.default_rng(7).uniform(0, 2 * np.pi)
    true = 1.0 + swing * np.sin(2 * np.pi * t / 3.0 + phase)
    rel = (true / true[0]) ** (1 / 2.2)  # the synth scales linear light (gamma 2.2): x ** (1/2.2) in 8-bit values
    assert np.abs(bg.gains - rel).max() < 0.03, (bg.gains.round(3), rel.round(3))


def test_generic_canvas_fill_keeps_the_interior_exact():
    """The FillBackend protocol path (full canvases, e.g. what Wan also takes): interior pixels
    unchanged, nothing black, one frame out per canvas."""
    rng = np.random.default_rng(1)
    frame = (rng.random((60, 80, 3)) * 200 + 40).astype(np.uint8)
    canvases = []
    for yaw in (0.0, 10.0, 20.0):
        pl = place_frame(frame, euler_to_matrix(yaw, 0.0, 0.0), 60.0, 256)
        canvases.append(canvas_from_placement(pl))
    outs = list(MosaicBackend().fill(canvases))
    assert len(outs) == 3
    import cv2

    for c, o in zip(canvases, outs):
        interior = cv2.erode(c.mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert np.array_equal(o[interior], c.rgb[interior])
        assert (o.max(axis=2) <= 2).mean() == 0.0


def test_canvas_rejects_bad_shapes():
    with pytest.raises(ValueError):
        Canvas(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool))
