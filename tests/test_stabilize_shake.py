"""`pano360 stabilize`: a real 360 video shaken by a known rotation path comes back still and level."""

import json

import cv2
import numpy as np
import pytest

from conftest import shared_file
from pano360.cli import main
from pano360.io.reader import iter_frames
from pano360.io.writer import VideoWriter
from pano360.post.smoothing import corrections, smooth_lock, smooth_none, smooth_plain
from pano360.post.sphere_motion import SphereTracker
from pano360.project.remap import rotate_erp
from pano360.project.rotation import euler_to_matrix, rotation_angle_deg
from pano360.trajectory import Trajectory

N_FRAMES = 20
WIDTH = 512


@pytest.fixture(scope="module")
def shaken(tmp_path_factory):
    """testRoom1 (512x256, 20 frames), shaken by a random-walk rotation (1 deg/frame per axis) on
    top of a 6 deg pitch / -4 deg roll tilt, with a sound track borrowed from congo.mp4."""
    room = shared_file("video360/testRoom1_1920Mono.mp4")
    audio = shared_file("video360/congo.mp4")
    rng = np.random.default_rng(3)
    ang = np.cumsum(rng.normal(0.0, 1.0, (N_FRAMES, 3)), axis=0) + np.array([0.0, 6.0, -4.0])
    Q = euler_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2])  # shaken frame i shows the original's Q_i d
    folder = tmp_path_factory.mktemp("shake")
    path = folder / "shaken.mp4"
    originals = []
    with VideoWriter(path, WIDTH, WIDTH // 2, 30, crf=12, preset="veryfast", audio_from=audio, reproducible=True) as w:
        for f in iter_frames(room, max_width=WIDTH, max_frames=N_FRAMES):
            originals.append(f.rgb)
            w.write(rotate_erp(f.rgb, Q[f.index]))
    return path, Q, originals


def _residuals(originals, out_path, picks):
    """Rotation of each picked output frame relative to its original frame (camera to world)."""
    outs = {f.index: f.rgb for f in iter_frames(out_path) if f.index in picks}
    res = []
    for i in picks:
        tr = SphereTracker(WIDTH, WIDTH // 2, generator=np.random.default_rng(0))
        tr.update(0, cv2.cvtColor(originals[i], cv2.COLOR_RGB2GRAY))
        R, inl = tr.update(1, cv2.cvtColor(outs[i], cv2.COLOR_RGB2GRAY))
        assert inl > 100
        res.append(R)
    return np.stack(res)


def test_lock_removes_the_shake(shaken, tmp_path, capsys):
    from pano360.io.spherical import read_spherical

    path, Q, originals = shaken
    out, traj_path = tmp_path / "locked.mp4", tmp_path / "traj.json"
    assert main(["stabilize", str(path), str(out), "--json", "--save-trajectory", str(traj_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == N_FRAMES and summary["mode"] == "lock"
    # The measured path against the truth: frame i's camera is Q_0^T Q_i in frame 0's world.
    traj = Trajectory.load(traj_path)
    err = rotation_angle_deg(traj.R, Q[0].T @ Q)
    assert np.sqrt((err ** 2).mean()) <= 0.1, err  # measured 0.008 deg RMS
    # The output itself: every frame is the original turned by one and the same rotation.
    picks = [0, 5, 10, 15, 19]
    res = _residuals(originals, out, picks)
    jitter = rotation_angle_deg(res, res[0])
    assert np.sqrt((jitter ** 2).mean()) <= 0.1, jitter  # measured 0.008 deg RMS
    # 360 metadata and the sound survive.
    sph = read_spherical(out)
    assert sph is not None and sph.projection == "equirectangular" and "V1" in sph.source and "V2" in sph.source
    import av

    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1


def test_level_brings_the_horizon_back(shaken, tmp_path, capsys):
    """The shaken clip starts tilted ~7 deg; --level (smooth mode) puts up back at -y."""
    path, Q, originals = shaken
    out = tmp_path / "level.mp4"
    assert main(["stabilize", str(path), str(out), "--mode", "smooth", "--smooth", "0.3", "--level", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["level"]["applied"]
    res = _residuals(originals, out, [0, 10, 19])
    up = np.array([0.0, -1.0, 0.0])
    tilt = np.degrees(np.arccos(np.clip((res @ up) @ up, -1, 1)))  # out camera's up, in the level original
    assert tilt.max() <= 1.0, tilt  # measured 0.04 deg


def test_level_estimate_on_a_tilted_still_panorama():
    from pano360.post.level import estimate_up
    from pano360.synth import load_erp

    erp = load_erp(shared_file("erp/testRoom1_2kMono.jpg"), max_width=1024)
    for ypr in [(30, 8, -5), (100, -12, 15)]:
        T = euler_to_matrix(*ypr)
        gray = cv2.cvtColor(rotate_erp(erp, T), cv2.COLOR_RGB2GRAY)
        up, share = estimate_up(gray)
        true_up = T.T @ np.array([0.0, -1.0, 0.0])
        assert np.degrees(np.arccos(np.clip(up @ true_up, -1, 1))) < 1.0  # measured 0.04-0.05 deg
        assert share > 0.5


def test_smoothers_follow_gyroflows_contract():
    t = np.arange(30) / 30.0
    R = euler_to_matrix(np.linspace(0, 60, 30) + np.sin(np.arange(30)) * 2, 0, 0)
    traj = Trajectory(t, R, 360.0, 512, 256)
    assert smooth_none(traj) is traj
    assert rotation_angle_deg(smooth_lock(traj).R, R[0]).max() < 1e-12
    sm = smooth_plain(traj, 0.2).R
    jerk_in = rotation_angle_deg(R[2:], R[1:-1]) - rotation_angle_deg(R[1:-1], R[:-2])
    jerk_out = rotation_angle_deg(sm[2:], sm[1:-1]) - rotation_angle_deg(sm[1:-1], sm[:-2])
    assert np.abs(jerk_out).mean() < 0.3 * np.abs(jerk_in).mean()
    assert rotation_angle_deg(corrections(R, R), np.eye(3)).max() < 1e-9


def test_stabilize_refuses_a_flat_clip(tmp_path, capsys):
    assert main(["stabilize", str(shared_file("clips/box.mp4")), str(tmp_path / "o.mp4")]) == 1
    assert "equirectangular" in capsys.readouterr().err
    # Encoder settings are checked before the (long) measuring pass.
    assert main(["stabilize", str(shared_file("video360/testRoom1_1920Mono.mp4")), str(tmp_path / "o.mp4"),
                 "--preset", "fastest"]) == 2  # a usage error
    assert "unknown preset 'fastest'" in capsys.readouterr().err and not (tmp_path / "o.mp4").exists()


def test_stereo_video_turns_both_eyes_together(tmp_path, capsys):
    """A top-bottom stereo clip, each eye squeezed to 512x128 (as congo.mp4 stores them), shaken:
    both eyes come out locked, by the same correction, and the stereo metadata stays."""
    from pano360.io.spherical import read_spherical, spherical_output

    room = shared_file("video360/testRoom1_1920Mono.mp4")
    rng = np.random.default_rng(7)
    n = 10
    ang = np.cumsum(rng.normal(0.0, 1.0, (n, 3)), axis=0)
    Q = euler_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
    right_of_left = euler_to_matrix(3.0, 0.0, 0.0)  # the right eye: another view, not a copy

    def squeeze(rgb):
        return cv2.resize(rgb, (WIDTH, WIDTH // 4), interpolation=cv2.INTER_AREA)

    def stretch(rgb):
        return cv2.resize(rgb, (WIDTH, WIDTH // 2), interpolation=cv2.INTER_LINEAR)

    path = tmp_path / "stereo.mp4"
    eyes = []
    with spherical_output(path, stereo="top-bottom") as tmp:
        with VideoWriter(tmp, WIDTH, WIDTH // 2, 30, crf=12, preset="veryfast", reproducible=True) as w:
            for f in iter_frames(room, max_width=WIDTH, max_frames=n):
                left, right = f.rgb, rotate_erp(f.rgb, right_of_left)
                eyes.append((stretch(squeeze(left)), stretch(squeeze(right))))
                w.write(np.concatenate([squeeze(rotate_erp(left, Q[f.index])), squeeze(rotate_erp(right, Q[f.index]))]))
    out = tmp_path / "locked.mp4"
    assert main(["stabilize", str(path), str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["stereo"] == "top-bottom" and summary["frames"] == n
    assert read_spherical(out).stereo == "top-bottom"
    outs = {f.index: f.rgb for f in iter_frames(out)}
    for eye in (0, 1):
        res = []
        for i in (0, 4, 9):
            tr = SphereTracker(WIDTH, WIDTH // 2, generator=np.random.default_rng(0))
            tr.update(0, cv2.cvtColor(eyes[i][eye], cv2.COLOR_RGB2GRAY))
            half = outs[i][: WIDTH // 4] if eye == 0 else outs[i][WIDTH // 4:]
            R, inl = tr.update(1, cv2.cvtColor(stretch(half), cv2.COLOR_RGB2GRAY))
            assert inl > 50
            res.append(R)
        res = np.stack(res)
        jitter = rotation_angle_deg(res, res[0])
        # The shake is 1 deg a frame per axis; measured 0.027-0.037 deg left after locking, both eyes.
        assert jitter.max() <= 0.2, (eye, jitter)


def test_black_frames_a_fade_and_a_whip_do_not_lose_the_world(tmp_path, capsys):
    """A turning 360 video (60 deg/s) with four black frames, a dim stretch and a 100 deg jump
    between two frames: every measured frame stays on the true path (no offset carried past the
    gap), the black ones are interpolated and named in a warning."""
    pano = cv2.resize(cv2.cvtColor(cv2.imread(str(shared_file("erp/puydesancy.jpg"))), cv2.COLOR_BGR2RGB),
                      (WIDTH, WIDTH // 2), interpolation=cv2.INTER_AREA)
    n = 40
    t = np.arange(n) / 25
    yaw = 60 * t + np.where(np.arange(n) >= 30, 100.0, 0.0)
    Q = euler_to_matrix(yaw, 8 * np.sin(2 * np.pi * t), 4 * np.sin(3 * np.pi * t))
    gain = np.ones(n)
    gain[10:14] = 0.0  # black
    gain[18:22] = [0.5, 0.25, 0.15, 0.3]  # a dim stretch (a fade)
    path = tmp_path / "turning.mp4"
    with VideoWriter(path, WIDTH, WIDTH // 2, 25, crf=14, preset="veryfast", reproducible=True) as w:
        for i in range(n):
            w.write(np.clip(rotate_erp(pano, Q[i]) * gain[i], 0, 255).astype(np.uint8))
    warnings = []
    from pano360.post.stabilize import estimate_video_rotations

    traj = estimate_video_rotations(path, analysis_width=WIDTH, warn=warnings.append)
    truth = Q[0].T[None] @ Q
    err = np.minimum(rotation_angle_deg(traj.R, truth), rotation_angle_deg(traj.R, np.transpose(truth, (0, 2, 1))))
    seen = gain > 0
    # measured: 0.003-0.028 deg on every frame with a picture, the dim ones and the one after the jump
    # too (the dim ones 0.24-0.55 before the flow matched their brightness to the reference's)
    assert err[seen].max() < 0.1, str(np.round(err, 3).tolist())
    assert warnings == ["frames 10-13: nothing to track (black, blank or a fade); rotations interpolated"]
    out = tmp_path / "locked.mp4"
    assert main(["stabilize", str(path), str(out), "--json", "--analysis-width", str(WIDTH)]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip().splitlines()[-1])["warnings"] == warnings
    assert "warning: frames 10-13: nothing to track" in printed.err


def test_a_cut_to_another_scene_restarts_tracking_with_a_warning(tmp_path):
    from pano360.post.stabilize import estimate_video_rotations

    def pano(name):
        img = cv2.imread(str(shared_file(f"erp/{name}")))
        return cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (WIDTH, WIDTH // 2), interpolation=cv2.INTER_AREA)

    a, b = pano("puydesancy.jpg"), pano("testRoom1_2kMono.jpg")
    n, cut = 30, 6
    Q = euler_to_matrix(3.0 * np.arange(n), 0.0, 0.0)
    path = tmp_path / "cut.mp4"
    with VideoWriter(path, WIDTH, WIDTH // 2, 25, crf=14, preset="veryfast", reproducible=True) as w:
        for i in range(n):
            w.write(rotate_erp(a if i < cut else b, Q[i]))
    warnings = []
    traj = estimate_video_rotations(path, analysis_width=WIDTH, warn=warnings.append)
    # 14 frames lost, the 15th (the tracker's patience) starts again
    assert warnings == ["frames 6-19: nothing to track (black, blank or a fade); rotations interpolated",
                        "frame 20: the view matched nothing before it (a cut to another scene?); rotations from "
                        "there on continue from the frame before and may be off"]
    # after the restart the turn is measured again: 3 deg a frame (the room is weakly textured)
    steps = rotation_angle_deg(traj.R[21:], traj.R[20:-1])
    assert np.all(np.abs(steps - 3.0) < 0.1), steps  # measured within 0.06
