"""`pano360 metrics` on frames whose answers are known."""

import json

import numpy as np
import pytest

from conftest import shared_file
from pano360.cli import main
from pano360.io.writer import VideoWriter
from pano360.post.metrics import (flow_magnitude, lr_consistency, seam_ratio, seam_step, sphere_share, trajectory_coverage,
                                  view_grays)
from pano360.project.remap import rotate_erp
from pano360.project.rotation import euler_to_matrix
from pano360.trajectory import Trajectory


@pytest.fixture(scope="module")
def pano():
    from pano360.synth import load_erp

    return load_erp(shared_file("erp/puydesancy.jpg"), max_width=1024)


def test_a_seamless_panorama_has_seam_ratio_near_one_and_high_lr_consistency(pano):
    assert seam_ratio(pano) == pytest.approx(1.0, abs=0.15)
    assert lr_consistency(pano) > 0.99


@pytest.mark.parametrize("yaw", [100.37, -33.3, 171.71])
def test_rolling_by_a_non_integer_offset_keeps_the_panorama_seamless(pano, yaw):
    rolled = rotate_erp(pano, euler_to_matrix(yaw, 0.0, 0.0))  # e.g. 285.5 columns, resampled
    # Every integer roll of this panorama scored 0.9-1.3 (146 positions tried).
    assert seam_ratio(rolled) == pytest.approx(1.0, abs=0.35)
    assert lr_consistency(rolled) > 0.99


def test_a_cut_panorama_has_a_visible_seam(pano):
    w = pano.shape[1]
    # Drop a quarter of the panorama and stretch the rest: the two edges no longer meet.
    import cv2

    cut = cv2.resize(pano[:, : 3 * w // 4], (w, w // 2), interpolation=cv2.INTER_AREA)
    assert seam_ratio(cut) > 3.0 * seam_ratio(pano)
    assert seam_ratio(cut, band=None) > 3.0 * seam_ratio(pano, band=None)
    assert lr_consistency(cut) < lr_consistency(pano)  # measured 0.966 vs 0.994
    flat = np.full((8, 16, 3), 77, np.uint8)
    assert seam_ratio(flat) == 1.0 and lr_consistency(flat) == pytest.approx(1.0)
    # A smooth sky with a half-level step at the seam: a large ratio, a step nobody sees.
    sky = np.repeat(np.linspace(100.0, 140.0, 64)[:, None, None], 128, axis=1).repeat(3, axis=2)
    sky[:, -1] += 0.5
    assert seam_ratio(sky) > 5.0 and seam_step(sky) == pytest.approx(0.5)
    assert seam_step(cut) > 5.0 * seam_step(pano)


def test_motion_is_zero_for_a_still_video_and_right_for_a_known_turn():
    from pano360.synth import load_erp

    room = load_erp(shared_file("erp/testRoom1_2kMono.jpg"), max_width=1024)  # textured everywhere
    views = view_grays(room)
    assert flow_magnitude(views["front"], views["front"]) < 0.01
    # Turning yaw by a small angle a moves a pixel at (x, y) / f of a 90 deg view by
    # f a |(1 + x^2, x y)|: averaged over the 256 px view, 2.98 px for 1 deg.
    f = 128.0
    x, y = np.meshgrid((np.arange(256) - 127.5) / f, (np.arange(256) - 127.5) / f)
    want = float((f * np.radians(1.0) * np.hypot(1 + x ** 2, x * y)).mean())
    turned = view_grays(rotate_erp(room, euler_to_matrix(1.0, 0.0, 0.0)))
    for k in ("front", "right", "back", "left"):
        assert flow_magnitude(views[k], turned[k]) == pytest.approx(want, rel=0.1)  # measured 2.89-2.92


def test_sphere_share_weights_by_solid_angle():
    mask = np.zeros((90, 180), bool)
    mask[:45] = True  # the upper hemisphere
    assert sphere_share(mask) == pytest.approx(0.5, abs=1e-9)
    polar = np.zeros((90, 180), bool)
    polar[:15] = True  # the cap above 60 deg latitude: (1 - sin 60) / 2 of the sphere
    assert sphere_share(polar) == pytest.approx((1 - np.sin(np.radians(60))) / 2, abs=2e-3)


def test_coverage_of_a_trajectory():
    # A 90x90 deg square camera looking along the six cube axes covers the sphere.
    from pano360.post.sphere_motion import CUBE_FACES

    traj = Trajectory(np.arange(6) / 30, CUBE_FACES, 90.0, 64, 64)
    share, _ = trajectory_coverage(traj)
    assert share == pytest.approx(1.0, abs=0.005)
    one = Trajectory(np.zeros(1), np.eye(3)[None], 90.0, 64, 64)
    assert trajectory_coverage(one)[0] == pytest.approx(1 / 6, abs=0.005)


def test_metrics_json_on_a_still_video_and_a_mask(pano, tmp_path, capsys):
    import cv2

    path = tmp_path / "still.mp4"
    with VideoWriter(path, 512, 256, 10, crf=12, preset="veryfast", reproducible=True) as w:
        small = cv2.resize(pano, (512, 256), interpolation=cv2.INTER_AREA)
        for _ in range(4):
            w.write(small)
    mask = tmp_path / "mask.png"
    m = np.zeros((64, 128), np.uint8)
    m[:32] = 255
    cv2.imwrite(str(mask), m)
    assert main(["metrics", str(path), "--json", "--mask", str(mask)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 4
    assert all(out["motion"][k] < 0.05 for k in ("front", "right", "back", "left", "mean"))
    assert out["seam_ratio_local"]["mean"] == pytest.approx(1.0, abs=0.2)
    assert out["seam_ratio"]["mean"] == pytest.approx(seam_ratio(small, band=None), abs=0.3)  # whole-picture definition
    assert out["seam_step"]["mean"] == pytest.approx(seam_step(small), abs=1.0)  # after H.264 at crf 12
    assert out["lr_consistency"]["mean"] > 0.99
    assert out["coverage"] == {"source": "mask", "share": 0.5}


def test_metrics_on_the_shared_stereo_video_measure_the_left_eye(capsys):
    congo = shared_file("video360/congo.mp4")  # top-bottom stereo with V1 metadata
    assert main(["metrics", str(congo), "--json", "--max-frames", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stereo"] == "top-bottom" and out["measured"] == "left eye" and out["frames"] == 3
    assert out["lr_consistency"]["mean"] > 0.98  # measured 0.992: a real camera's seam
    assert set(out["motion"]) == {"front", "right", "back", "left", "mean"}


def test_metrics_refuse_a_mesh_projection(capsys):
    assert main(["metrics", str(shared_file("video360/sphericalv2.mp4"))]) == 1
    assert "mesh" in capsys.readouterr().err
