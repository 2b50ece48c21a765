"""`pano360 reframe`: the round trip through convert, fixed/keyframed/vertical views, presets, errors."""

import json
import subprocess

import cv2
import numpy as np
import pytest

from pano360.cli import main
from pano360.io.reader import iter_frames
from pano360.io.writer import VideoWriter
from pano360.project.remap import erp_to_persp, rotate_erp
from pano360.project.rotation import euler_to_matrix
from conftest import shared_file


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def erp_video(tmp_path_factory):
    """12 frames of a real panorama turning 2 deg per frame (1024x512), and the frames themselves."""
    from pano360.synth import load_erp

    erp = load_erp(shared_file("erp/sechelt.jpg"), max_width=1024)
    path = tmp_path_factory.mktemp("reframe") / "pano.mp4"
    frames = [rotate_erp(erp, euler_to_matrix(2.0 * i, 0, 0)) for i in range(12)]
    with VideoWriter(path, 1024, 512, 30, crf=10, preset="veryfast", reproducible=True) as w:
        for f in frames:
            w.write(f)
    decoded = [f.rgb for f in iter_frames(path)]
    return path, decoded


@pytest.mark.parametrize("orientation", ["world", "follow"])
def test_round_trip_convert_then_follow_gives_the_clip_back(orientation, tmp_path, capsys):
    """Render a phone clip inside a real panorama, convert it with its trajectory, reframe along the
    trajectory convert saved (with --orientation follow, the world turned with the heading)."""
    from pano360.synth import load_erp, phone_path, write_clip

    erp = load_erp(shared_file("erp/sechelt.jpg"), max_width=2048)
    times, R = phone_path(0.6, 30, np.random.default_rng(0))
    clip, traj_path = tmp_path / "clip.mp4", tmp_path / "clip.json"
    traj = write_clip(clip, erp, times, R, 90.0, 256, 144, 30, crf=12)
    traj.save(traj_path)
    pano, back = tmp_path / "clip360.mp4", tmp_path / "back.mp4"
    saved = tmp_path / "saved.json"
    assert main(["convert", str(clip), str(pano), "-q", "--backend", "mosaic", "--width", "1024",
                 "--trajectory", str(traj_path), "--crf", "12", "--orientation", orientation,
                 "--save-trajectory", str(saved)]) == 0
    assert main(["reframe", str(pano), str(back), "--follow", str(saved), "--crf", "12", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["width"], summary["height"], summary["camera"]) == (256, 144, "follow")
    scores = [psnr(a.rgb, b.rgb) for a, b in zip(iter_frames(clip), iter_frames(back))]
    assert len(scores) == len(traj)
    # Measured 33.2-36.8 dB (two bilinear resamplings through a 1024-wide ERP plus x264 at crf 12).
    assert min(scores) >= 30.0, scores


def test_fixed_view_matches_the_projection_of_each_frame(erp_video, tmp_path):
    path, frames = erp_video
    out = tmp_path / "view.mp4"
    assert main(["reframe", str(path), str(out), "--yaw", "-40", "--pitch", "12", "--roll", "5",
                 "--hfov", "75", "--size", "320x180", "-q"]) == 0
    got = [f.rgb for f in iter_frames(out)]
    assert len(got) == len(frames)
    R = euler_to_matrix(-40, 12, 5)
    for i in (0, 7):
        assert psnr(got[i], erp_to_persp(frames[i], R, 75.0, 320, 180)) > 33.0  # measured ~38 dB


def test_keyframed_vertical_view_follows_its_path(erp_video, tmp_path):
    """A 9:16 camera panning 60 deg over the clip sees what erp_to_persp sees at each time."""
    path, frames = erp_video
    keys = tmp_path / "k.json"
    keys.write_text(json.dumps({"interpolation": "linear", "keyframes": [
        {"t": 0.0, "yaw": 0, "hfov": 60}, {"t": 11 / 30, "yaw": 60, "pitch": -20, "hfov": 80}]}))
    out = tmp_path / "vertical.mp4"
    assert main(["reframe", str(path), str(out), "--path", str(keys), "--size", "180x320", "-q"]) == 0
    got = [f.rgb for f in iter_frames(out)]
    assert got[0].shape == (320, 180, 3)
    from pano360.post.keyframes import camera_path, load_keyframes

    kfs, interp = load_keyframes(keys)
    for i in (0, 5, 11):
        R, hfov = camera_path(kfs, np.array([i / 30]), interp)
        assert psnr(got[i], erp_to_persp(frames[i], R[0], float(hfov[0]), 180, 320)) > 33.0


def test_tiny_planet_looks_down_and_fisheye_blacks_out_past_the_back(erp_video, tmp_path):
    from pano360.project.projections import projection_rays
    from pano360.project.remap import sample_erp
    from pano360.project.erp import dirs_to_uv

    path, frames = erp_video
    out = tmp_path / "planet.mp4"
    assert main(["reframe", str(path), str(out), "--preset", "tiny-planet", "--size", "256x256", "-q"]) == 0
    got = next(iter_frames(out)).rgb
    rays, _ = projection_rays("stereographic", 256, 256, 270.0)
    u, v = dirs_to_uv(rays @ euler_to_matrix(0, -90, 0).T.astype(np.float32), 1024, 512)
    want = sample_erp(frames[0], u.astype(np.float32), v.astype(np.float32))
    assert psnr(got, want) > 30.0
    out2 = tmp_path / "fish.mp4"
    assert main(["reframe", str(path), str(out2), "--projection", "fisheye", "--hfov", "359", "--size", "128x128", "-q"]) == 0
    fish = next(iter_frames(out2)).rgb
    assert fish[:4, :4].max() < 24  # corners see past the back pole: black
    rays, valid = projection_rays("fisheye", 128, 128, 359.0)
    u, v = dirs_to_uv(rays, 1024, 512)
    want = sample_erp(frames[0], u.astype(np.float32), v.astype(np.float32))
    inner = valid.copy()
    inner[[0, -1], :] = inner[:, [0, -1]] = False
    assert psnr(fish[inner], want[inner]) > 25.0  # a 359 deg circle squeezed into 128 px: fine detail


def test_a_preset_gives_a_path_the_values_its_keyframes_leave_out(erp_video, tmp_path):
    path, frames = erp_video
    still = tmp_path / "still.json"  # yaw only: the tiny planet's pitch and FOV come from the preset
    still.write_text(json.dumps({"keyframes": [{"t": 0, "yaw": 0}, {"t": 5, "yaw": 0}]}))
    zoom = tmp_path / "zoom.json"  # a path's own FOV is kept: the preset does not flatten its zoom
    zoom.write_text(json.dumps({"keyframes": [{"t": 0, "hfov": 40}, {"t": 5, "hfov": 120}]}))
    outs = {}
    for name, args in {"planet": ["--preset", "tiny-planet"], "planet_path": ["--preset", "tiny-planet", "--path", str(still)],
                       "natural": ["--preset", "natural"], "zoom": ["--preset", "natural", "--path", str(zoom)]}.items():
        out = tmp_path / f"{name}.mp4"
        assert main(["reframe", str(path), str(out), "--size", "128x128", "--encode-preset", "ultrafast", "-q", *args]) == 0
        outs[name] = next(iter_frames(out)).rgb
    assert psnr(outs["planet_path"], outs["planet"]) > 45.0
    want = erp_to_persp(frames[0], np.eye(3), 40.0, 128, 128)
    assert psnr(outs["zoom"], want) > 30.0 and psnr(outs["zoom"], outs["natural"]) < 25.0


@pytest.mark.parametrize("args, msg", [
    (["--path", "k.json", "--follow", "t.json"], "cannot be combined"),
    (["--size", "101x50"], "--size"),
    (["--size", "16384x16384"], "larger than the video encoder takes"),
    (["--crf", "99"], "crf must be within 0..51"),
    (["--hfov", "200"], "--hfov"),
    (["--path", "spike.json"], "the path asks for hfov up to 250.0"),  # one keyframe between frames, found up front
    (["--path", "missing.json"], "keyframes file not found"),
    (["--follow", "missing.json"], "trajectory file not found"),
])
def test_bad_flags_fail_with_one_line(erp_video, tmp_path, capsys, args, msg):
    path, _ = erp_video
    (tmp_path / "spike.json").write_text(json.dumps({"interpolation": "linear", "keyframes": [
        {"t": 0, "hfov": 90}, {"t": 0.099, "hfov": 90}, {"t": 0.1, "hfov": 250}, {"t": 0.101, "hfov": 90}]}))
    args = [str(tmp_path / a) if a.endswith(".json") else a for a in args]
    code = main(["reframe", str(path), str(tmp_path / "o.mp4"), *args])
    err = capsys.readouterr().err.strip()
    assert code == (1 if "not found" in msg else 2) and msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_non_equirectangular_input_is_refused(tmp_path, capsys):
    clip = shared_file("clips/box.mp4")
    assert main(["reframe", str(clip), str(tmp_path / "o.mp4")]) == 1
    assert "equirectangular" in capsys.readouterr().err


def test_audio_is_kept(tmp_path, capsys):
    """A 360 input with sound keeps it in the flat output."""
    src = tmp_path / "a360.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=256x128:d=0.5:r=10",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-shortest",
                    "-c:v", "libx264", "-c:a", "aac", str(src)], check=True)
    out = tmp_path / "flat.mp4"
    assert main(["reframe", str(src), str(out), "--size", "64x36", "-q"]) == 0
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(out)],
                           capture_output=True, text=True, check=True).stdout.split()
    assert probe.count("audio") == 1 and probe.count("video") == 1
    # The encoder's speed preset is the user's (x264 writes its settings into the stream).
    fast = tmp_path / "fast.mp4"
    assert main(["reframe", str(src), str(fast), "--size", "64x36", "--encode-preset", "ultrafast", "-q"]) == 0
    assert b"subme=0" in fast.read_bytes() and b"subme=0" not in out.read_bytes()
    # --preset picks the view; x264's name there points to --encode-preset
    assert main(["reframe", str(src), str(tmp_path / "no.mp4"), "--preset", "ultrafast", "-q"]) == 2
    assert "(x264's speed preset is --encode-preset ultrafast)" in capsys.readouterr().err


def test_stereo_video_is_reframed_from_its_left_eye(tmp_path, capsys):
    """congo.mp4 is top-bottom stereo, each eye squeezed to 1920x540: the view comes from the top eye."""
    from pano360.post.inputs import first_eye

    congo = shared_file("video360/congo.mp4")
    out = tmp_path / "view.mp4"
    assert main(["reframe", str(congo), str(out), "--yaw", "30", "--pitch", "-10", "--hfov", "80",
                 "--size", "320x180", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["eye"] == "left" and summary["frames"] == 300
    got = {f.index: f.rgb for f in iter_frames(out) if f.index in (0, 150)}
    src = {f.index: f.rgb for f in iter_frames(congo) if f.index in (0, 150)}
    R = euler_to_matrix(30, -10, 0)
    for i in (0, 150):
        top = erp_to_persp(first_eye(src[i], "top-bottom"), R, 80.0, 320, 180)
        bottom = erp_to_persp(cv2.resize(src[i][540:], (1920, 960)), R, 80.0, 320, 180)
        # Measured 39.4-40.3 dB against the top eye, 17.4-17.5 against the bottom one.
        assert psnr(got[i], top) > 33.0 and psnr(got[i], bottom) < 25.0, (psnr(got[i], top), psnr(got[i], bottom))


@pytest.mark.parametrize("pitch, step", [(0.0, 16), (-75.0, 16), (0.0, 1)])
def test_a_squeezed_eye_renders_like_its_full_height_panorama(pitch, step):
    """A stereo eye stored at less than 2:1 gives the view of the same panorama at 2:1, through the
    coarse table and through the exact one (the pole near the view at pitch -75, or step 1)."""
    from pano360.io.reader import Yuv420
    from pano360.post.reframe import render_yuv420
    from pano360.synth import load_erp

    erp = load_erp(shared_file("erp/puydesancy.jpg"), max_width=1024)

    def planes(rgb):
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        h = rgb.shape[0]
        return Yuv420(0, 0.0, yuv[:h], yuv[h:h + h // 4].reshape(h // 2, -1), yuv[h + h // 4:].reshape(h // 2, -1))

    R = euler_to_matrix(40.0, pitch, 0.0)
    full, _ = render_yuv420(planes(erp), R, 90.0, "rectilinear", 256, 144, step)
    squeezed, _ = render_yuv420(planes(cv2.resize(erp, (1024, 288), interpolation=cv2.INTER_AREA)), R, 90.0,
                                "rectilinear", 256, 144, step)
    # Measured 33-39 dB (the squeezed copy lost 44 % of its rows); without the row scaling 13-15 dB.
    assert psnr(full[:144], squeezed[:144]) > 30.0
