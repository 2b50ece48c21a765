"""Horizon levelling: up from vertical lines (a room rendered with a tilted, rolled phone), the
fallbacks, and the levelling rotation; `convert --level` makes the output upright."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pano360.project.rotation import euler_to_matrix, matrix_to_rotvec
from pano360.slam.level import estimate_up_from_frames, level_rotation, up_from_camera_axes
from tests.conftest import shared_file


def _angle(a, b):
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def _tilted_pan(name, pitch0=8.0, roll0=5.0, n=18):
    from pano360.synth import frame_times, load_erp, path_from_euler, relative_trajectory

    erp = load_erp(shared_file(f"erp/{name}"), max_width=2048)
    t = frame_times(3.0, n / 3.0)
    t, R = path_from_euler(t, np.linspace(0, 120, len(t)), pitch0 + 2 * np.sin(t), roll0 + np.sin(2 * t))
    traj = relative_trajectory(t, R, 65.0, 480, 270)
    true_up = R[0].T @ np.array([0.0, -1.0, 0.0])  # the panorama's up, in the first frame's world
    return erp, t, R, traj, true_up


def test_vertical_lines_find_up_in_a_room_to_a_tenth_of_a_degree():
    """testRoom1's meridian grid lines: measured error 0.01 deg (the tilt is 9.4 deg)."""
    from pano360.synth import render_frames

    erp, t, R, traj, true_up = _tilted_pan("testRoom1_2kMono.jpg")
    up, how = estimate_up_from_frames(zip(traj.R, render_frames(erp, t, R, 65.0, 480, 270)), 65.0, traj.R)
    assert how == "vertical lines"
    assert _angle(up, true_up) < 0.1
    assert _angle(level_rotation(up) @ true_up, np.array([0.0, -1.0, 0.0])) < 0.1


def test_a_scene_without_verticals_falls_back_to_the_camera_axes():
    """A night landscape: its few 'vertical' segments disagree, so the wave correction (camera x
    axes) answers; its error is the mean roll the phone was held at (measured 5.98 deg)."""
    from pano360.synth import render_frames

    erp, t, R, traj, true_up = _tilted_pan("sechelt.jpg", pitch0=8.0, roll0=0.0)
    up, how = estimate_up_from_frames(zip(traj.R, render_frames(erp, t, R, 65.0, 480, 270)), 65.0, traj.R)
    assert how.startswith("camera x axes")
    assert _angle(up, true_up) < 2.5


def test_camera_axes_fallbacks():
    yaw = np.linspace(0, 90, 20)
    R = euler_to_matrix(yaw, 0.0, 0.0)
    tilt = euler_to_matrix(0.0, 0.0, 10.0)  # the world's up is rolled 10 deg from the first camera's
    up, how = up_from_camera_axes(tilt.T[None] @ R)
    assert how.startswith("camera x axes") and _angle(up, tilt.T @ np.array([0.0, -1.0, 0.0])) < 1e-6
    up, how = up_from_camera_axes(euler_to_matrix(np.zeros(5), np.full(5, 6.0), np.zeros(5)))
    assert how == "mean camera up" and abs(_angle(up, np.array([0.0, -1.0, 0.0])) - 6.0) < 1e-6


@pytest.mark.parametrize("up", [(0.0, -1.0, 0.0), (0.1, -1.0, 0.2), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)])
def test_level_rotation_is_the_smallest_rotation_to_minus_y(up):
    u = np.array(up) / np.linalg.norm(up)
    L = level_rotation(u)
    assert np.allclose(L @ L.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(L), 1.0)
    assert np.allclose(L @ u, [0.0, -1.0, 0.0], atol=1e-12)
    if up[1] > -1:  # the axis is horizontal-ish: perpendicular to both
        angle = np.degrees(np.arccos(np.clip(u @ np.array([0.0, -1.0, 0.0]), -1, 1)))
        assert abs(np.degrees(np.linalg.norm(matrix_to_rotvec(L))) - angle) < 1e-9


def test_convert_level_reports_the_tilt(tmp_path, capsys):
    from pano360.cli import main
    from pano360.synth import write_clip

    erp, t, R, traj, true_up = _tilted_pan("testRoom1_2kMono.jpg", n=12)
    clip = tmp_path / "room.mp4"
    write_clip(clip, erp, t, R, 65.0, 480, 270, 4.0)
    traj.save(tmp_path / "t.json")
    assert main(["convert", str(clip), str(tmp_path / "o.mp4"), "--width", "256", "--trajectory", str(tmp_path / "t.json"),
                 "--level", "--json", "--save-trajectory", str(tmp_path / "levelled.json")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["level"]["applied"] and res["level"]["method"] == "vertical lines"
    assert abs(res["level"]["tilt_deg"] - _angle(true_up, np.array([0.0, -1.0, 0.0]))) < 0.3
    from pano360.trajectory import Trajectory

    levelled = Trajectory.load(tmp_path / "levelled.json")
    # In the levelled world every camera's true up maps to -y: R_levelled_i = L R_i.
    world_up = levelled.R[0] @ (traj.R[0].T @ true_up)
    assert _angle(world_up, np.array([0.0, -1.0, 0.0])) < 0.3
