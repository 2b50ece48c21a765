"""Keyframed virtual camera: hits every keyframe exactly, moves smoothly, eases as asked."""

import json

import numpy as np
import pytest

from pano360.errors import Pano360Error
from pano360.post.keyframes import camera_path, ease, load_keyframes, parse_keyframes
from pano360.project.rotation import euler_to_matrix, rotation_angle_deg

KEYS = {"keyframes": [
    {"t": 0.0, "yaw": 0, "pitch": 0, "roll": 0, "hfov": 90},
    {"t": 1.0, "yaw": 80, "pitch": 15, "hfov": 70},
    {"t": 2.5, "yaw": 170, "pitch": -10, "roll": 20},
    {"t": 3.0, "yaw": -150, "hfov": 100, "ease": "inout"},
]}


@pytest.mark.parametrize("interp", ["smooth", "linear"])
def test_path_passes_exactly_through_every_keyframe(interp):
    kfs, _ = parse_keyframes(KEYS)
    R, hfov = camera_path(kfs, np.array([k.t for k in kfs]), interp)
    want = euler_to_matrix([k.yaw for k in kfs], [k.pitch for k in kfs], [k.roll for k in kfs])
    assert rotation_angle_deg(R, want).max() < 1e-9
    np.testing.assert_allclose(hfov, [90, 70, 70, 100])
    # Missing values repeat the previous keyframe's: keyframe 1 keeps roll 0, keyframe 3 pitch -10 and roll 20.
    assert kfs[3].pitch == -10 and kfs[3].roll == 20


def test_smooth_path_has_no_kinks_and_takes_the_short_way():
    kfs, interp = parse_keyframes(KEYS)
    t = np.linspace(0.0, 2.4, 2401)  # 1 ms steps, before the eased last segment
    R, _ = camera_path(kfs, t, interp)
    speed = rotation_angle_deg(R[1:], R[:-1]) / 1e-3  # deg/s
    # C1 at the keyframe t = 1: the angular speed does not jump there (a SLERP chain would).
    i = 1000
    assert abs(speed[i] - speed[i - 1]) < 0.5
    assert speed.max() < 200.0  # 170 -> -150 is 40 deg the short way, never 320
    R2, _ = camera_path(kfs, np.linspace(2.5, 3.0, 501), interp)
    assert rotation_angle_deg(R2[-1], R2[0]) < 60.0


def test_linear_interpolation_is_constant_speed_slerp():
    kfs, _ = parse_keyframes({"interpolation": "linear", "keyframes": [{"t": 0, "yaw": 0}, {"t": 2, "yaw": 60}]})
    R, _ = camera_path(kfs, np.array([0.5, 1.0, 1.5]), "linear")
    assert rotation_angle_deg(R, euler_to_matrix([15, 30, 45], 0, 0)).max() < 1e-9


def test_ease_inout_stops_at_both_keyframes_and_meets_in_the_middle():
    kfs, _ = parse_keyframes([{"t": 0, "yaw": 0}, {"t": 1, "yaw": 40, "ease": "inout"}])
    R, _ = camera_path(kfs, np.array([0.0, 0.001, 0.5, 0.999, 1.0]), "linear")
    ang = rotation_angle_deg(R, R[:1])
    assert ang[1] < 0.001 and 40 - ang[3] < 0.001  # slow at both ends (linear would move 0.04 deg)
    assert ang[2] == pytest.approx(20.0, abs=1e-6)
    np.testing.assert_allclose(ease(np.array([0.0, 0.25, 1.0]), "in"), [0.0, 0.015625, 1.0])


def test_outside_the_keyframes_the_camera_holds():
    kfs, interp = parse_keyframes(KEYS)
    R, hfov = camera_path(kfs, np.array([-1.0, 10.0]), interp)
    assert rotation_angle_deg(R[0], np.eye(3)) < 1e-9
    assert hfov[1] == 100


@pytest.mark.parametrize("bad, msg", [
    ({"keyframes": []}, "non-empty"),
    ({"keyframes": [{"yaw": 3}]}, '"t"'),
    ({"keyframes": [{"t": 1}, {"t": 1}]}, "increase"),
    ({"keyframes": [{"t": 0, "ease": "bounce"}]}, "ease"),
    ({"keyframes": [{"t": 0, "zoom": 2}]}, "unknown fields"),
    ({"keyframes": [{"t": 0, "hfov": "wide"}]}, "not a number"),
    ({"interpolation": "cubic", "keyframes": [{"t": 0}]}, "interpolation"),
])
def test_bad_keyframes_give_one_clear_error(bad, msg):
    with pytest.raises(Pano360Error, match=msg):
        parse_keyframes(bad)


def test_load_keyframes_reads_the_documented_file(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps(KEYS))
    kfs, interp = load_keyframes(p)
    assert len(kfs) == 4 and interp == "smooth" and kfs[3].ease == "inout" and kfs[1].ease == "linear"
    with pytest.raises(Pano360Error, match="not found"):
        load_keyframes(tmp_path / "missing.json")
