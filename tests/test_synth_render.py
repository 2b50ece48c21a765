"""The synthetic phone-clip renderer: exact first frame, ground truth in the project's world, decodable clip."""

from __future__ import annotations

import numpy as np

from pano360.io.reader import iter_frames
from pano360.project.remap import erp_to_persp
from pano360.project.rotation import euler_to_matrix, matrix_to_euler, rotation_angle_deg
from pano360.synth import HARD, argus_path, load_erp, phone_path, render_frames, static_path, write_clip
from tests.conftest import shared_file


def test_first_frame_is_the_identity_view_and_truth_starts_at_identity(tmp_path):
    erp = load_erp(shared_file("erp/sechelt.jpg"), max_width=1024)
    times, R = static_path(1.0, 10.0)
    frame0 = next(render_frames(erp, times, R, 60.0, 160, 96))
    assert np.array_equal(frame0, erp_to_persp(erp, np.eye(3), 60.0, 160, 96))
    times, R = phone_path(1.0, 10.0, np.random.default_rng(3), start_yaw_deg=40.0)
    truth = write_clip(tmp_path / "c.mp4", erp, times, R, 60.0, 160, 96, fps=10.0)
    assert np.allclose(truth.R[0], np.eye(3), atol=1e-12)
    # R_i = R_0^T R_i: the world is the first frame's camera.
    assert rotation_angle_deg(truth.R[5], R[0].T @ R[5]) < 1e-9
    decoded = list(iter_frames(tmp_path / "c.mp4"))
    assert len(decoded) == len(truth) == 10
    assert np.allclose([f.time_s for f in decoded], truth.time_s, atol=1e-3)
    # H.264 at crf 18 keeps the first frame close to the exact render (mean error in 8-bit levels).
    first = next(render_frames(erp, times, R, 60.0, 160, 96))
    assert np.abs(decoded[0].rgb.astype(float) - first).mean() < 4.0


def test_paths_have_the_promised_motion():
    times, R = phone_path(8.0, 30.0, np.random.default_rng(0))
    yaw, pitch, _ = matrix_to_euler(R)
    rate = np.abs(np.diff(np.unwrap(np.radians(yaw)))) * 30.0
    assert np.degrees(rate).max() > 20.0  # it pans
    times, R = argus_path(4.0, 30.0, np.random.default_rng(0))
    assert R.shape == (120, 3, 3)
    assert rotation_angle_deg(R[0], euler_to_matrix(0, 0, 0)) < 3.0


def test_hard_render_keeps_geometry_at_mid_readout():
    erp = load_erp(shared_file("erp/sechelt.jpg"), max_width=1024)
    times, R = static_path(0.3, 10.0, yaw_deg=30.0)
    frames = list(render_frames(erp, times, R, 60.0, 160, 96, HARD, np.random.default_rng(0)))
    assert len(frames) == 3 and frames[0].shape == (96, 160, 3)
