"""`pano360 convert` end to end on a clip rendered from a real panorama along a known path.

The clip is tiny (320x180, 2 s at 15 fps) and the output 512x256, so the whole module runs in
a few seconds; thresholds are written next to what they were measured at.
"""

from __future__ import annotations

import json
import subprocess

import av
import cv2
import numpy as np
import pytest

from pano360.cli import main
from pano360.generate.mosaic import MosaicBackend
from pano360.generate.mosaic_place import place_frame
from pano360.io.reader import iter_frames
from pano360.post.metrics import seam_ratio
from pano360.project.remap import rotate_erp
from pano360.trajectory import Trajectory
from tests.conftest import shared_file

W_OUT = 512
CLIP_W, CLIP_H, FPS, HFOV = 320, 180, 15, 65.0


def _luma(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _decode_i420(path):
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            yield cv2.cvtColor(fr.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A phone clip with a 440 Hz AAC track, its true trajectory, and the true world panorama."""
    from pano360.synth import load_erp, phone_path, write_clip

    folder = tmp_path_factory.mktemp("convert")
    erp = load_erp(shared_file("erp/puydesancy.jpg"), max_width=1024)
    t, R = phone_path(2.0, FPS, np.random.default_rng(5), pan_speed_deg_s=(60.0, 90.0))
    silent = folder / "silent.mp4"
    traj = write_clip(silent, erp, t, R, HFOV, CLIP_W, CLIP_H, FPS, crf=12)
    clip = folder / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(silent), "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-c:v", "copy", "-c:a", "aac", "-b:a", "64k", "-shortest", str(clip)], check=True)
    traj_path = folder / "truth.json"
    traj.save(traj_path)
    truth = rotate_erp(cv2.resize(erp, (W_OUT, W_OUT // 2), interpolation=cv2.INTER_AREA), R[0])
    return {"folder": folder, "clip": clip, "traj": traj, "traj_path": traj_path, "truth": truth}


@pytest.fixture(scope="module")
def converted(rendered):
    out = rendered["folder"] / "out.mp4"
    sheet = rendered["folder"] / "sheet.png"
    code = main(["convert", str(rendered["clip"]), str(out), "--width", str(W_OUT), "--trajectory", str(rendered["traj_path"]),
                 "--backend", "mosaic", "--preview", str(sheet), "-q", "--crf", "14"])
    assert code == 0
    return out, sheet


def test_output_is_equirectangular_360_with_the_input_audio(rendered, converted):
    out, _ = converted
    probe = lambda path, sel, entries: json.loads(subprocess.run(  # noqa: E731
        ["ffprobe", "-v", "error", "-select_streams", sel, "-show_entries", entries, "-of", "json", str(path)],
        capture_output=True, text=True, check=True).stdout)
    side = probe(out, "v:0", "stream_side_data=side_data_type,projection")
    kinds = {d.get("side_data_type"): d for s in side["streams"] for d in s.get("side_data_list", [])}
    assert kinds["Spherical Mapping"]["projection"] == "equirectangular"
    v = probe(out, "v:0", "stream=width,height,nb_frames")["streams"][0]
    assert (v["width"], v["height"], int(v["nb_frames"])) == (W_OUT, W_OUT // 2, len(rendered["traj"]))
    a_in = probe(rendered["clip"], "a:0", "stream=codec_name,sample_rate,channels")["streams"][0]
    a_out = probe(out, "a:0", "stream=codec_name,sample_rate,channels")["streams"][0]
    assert a_out == a_in


def test_output_matches_the_true_panorama(rendered, converted):
    """Luma PSNR vs the true panorama: current frame >= 31 dB (measured 33.1-36.3 at 512 px from a
    320 px clip, both 4:2:0 H.264), elsewhere seen >= 32 dB (measured 35.4-37.7); the seam ratio
    <= 1.5 and no black pixels in any frame."""
    out, _ = converted
    traj, truth = rendered["traj"], rendered["truth"]
    truth_y = _luma(truth)
    seen = np.zeros((W_OUT // 2, W_OUT), bool)
    for R in traj.R:
        pl = place_frame(np.zeros((CLIP_H, CLIP_W, 3), np.uint8), R, HFOV, W_OUT)
        for ec, bc in pl.column_pieces():
            seen[pl.v0:pl.v1, ec] |= pl.alpha[:, bc] > 0
    alpha = MosaicBackend().frame_alpha(CLIP_W, CLIP_H)
    cur_db, seen_db = [], []
    for i, rgb in enumerate(_decode_i420(out)):
        assert seam_ratio(rgb, band=None) <= 1.5
        assert (rgb.max(axis=2) <= 2).mean() == 0.0
        if i % 6:
            continue
        pl = place_frame(np.zeros((CLIP_H, CLIP_W, 3), np.uint8), traj.R[i], HFOV, W_OUT, alpha)
        cur = np.zeros_like(seen)
        for ec, bc in pl.column_pieces():
            cur[pl.v0:pl.v1, ec] = pl.alpha[:, bc] == 255
        y = _luma(rgb)
        cur_db.append(_psnr(y[cur], truth_y[cur]))
        other = seen & ~cur
        seen_db.append(_psnr(y[other], truth_y[other]))
    assert min(cur_db) >= 31.0, cur_db
    assert min(seen_db) >= 32.0, seen_db


def test_current_frame_pixels_are_exact_and_the_rest_only_changes_where_frames_arrive(rendered):
    """In-process (before encoding): where the frame's feathered alpha is 255 the output IS the
    placed frame; from one output frame to the next, pixels change only inside the two frames'
    footprints (no flicker elsewhere)."""
    traj = rendered["traj"]
    frames = [(f.index, f.time_s, f.rgb) for f in iter_frames(rendered["clip"])]
    backend = MosaicBackend(bg_width=256)
    backend.prepare(iter(frames), lambda i, t: traj.R[i], HFOV)
    alpha = backend.frame_alpha(CLIP_W, CLIP_H)
    placements = [place_frame(rgb, traj.R[i], HFOV, W_OUT, alpha) for i, _, rgb in frames]
    outs = list(backend.fill_placed(iter(placements)))
    prev_box = None
    for k, (pl, out) in enumerate(zip(placements, outs)):
        box = np.zeros((W_OUT // 2, W_OUT), bool)
        for ec, bc in pl.column_pieces():
            region = out[pl.v0:pl.v1, ec]
            inside = pl.alpha[:, bc] == 255
            assert np.array_equal(region[inside], pl.rgb[:, bc][inside])
            box[pl.v0:pl.v1, ec] = pl.alpha[:, bc] > 0
        if k:
            changed = np.any(out != outs[k - 1], axis=2)
            assert not (changed & ~(box | prev_box)).any()
        prev_box = box
    assert backend.background.coverage > 0.05


def test_preview_sheet_and_json_summary(rendered, converted, capsys):
    _, sheet = converted
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[0] > 400 and img.shape[1] > 800
    out = rendered["folder"] / "follow.mp4"
    capsys.readouterr()
    code = main(["convert", str(rendered["clip"]), str(out), "--width", "256", "--trajectory", str(rendered["traj_path"]),
                 "--orientation", "follow", "--json", "--save-trajectory", str(rendered["folder"] / "saved.json")])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["backend"] == "mosaic" and "no Wan model" in summary["backend_reason"]
    assert summary["frames"] == len(rendered["traj"]) and summary["orientation"] == "follow"
    assert 5.0 < summary["coverage_pct"] < 60.0
    assert set(summary["timings_s"]) >= {"track", "mosaic", "render", "total"}
    assert summary["trajectory"]["source"] == "file" and summary["trajectory"]["hfov_deg"] == HFOV
    saved = Trajectory.load(rendered["folder"] / "saved.json")
    # In the output's frame: each rotation is the input's turned about the vertical by its follow shift.
    turn = saved.R @ np.swapaxes(rendered["traj"].R, 1, 2)
    assert np.allclose(turn[:, :, 1], [0.0, 1.0, 0.0], atol=1e-9) and np.allclose(turn[:, 1, :], [0.0, 1.0, 0.0], atol=1e-9)
    assert np.allclose(saved.time_s, rendered["traj"].time_s) and saved.hfov_deg == HFOV


def test_follow_orientation_puts_the_heading_at_the_centre(rendered):
    from pano360.pipeline.orient import follow_shifts, heading_deg

    traj = rendered["traj"]
    head = heading_deg(traj.time_s, traj.R, tau_s=0.0)
    yaw = np.degrees(np.arctan2(traj.R[:, 0, 2], traj.R[:, 2, 2]))
    assert np.allclose(((head - yaw + 180) % 360) - 180, 0, atol=1e-6)
    assert follow_shifts(np.array([45.0]), 512).tolist() == [64]


@pytest.mark.parametrize("args, code, text", [
    (["--width", "510"], 2, "--width"),
    (["--orientation", "sideways"], 2, "--orientation"),
    (["--backend", "magic"], 2, "--backend"),
    (["--hfov", "200"], 2, "--hfov"),
])
def test_bad_options_are_one_line_usage_errors(rendered, tmp_path, capsys, args, code, text):
    rc = main(["convert", str(rendered["clip"]), str(tmp_path / "o.mp4"), "--trajectory", str(rendered["traj_path"]), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code and len(err) == 1 and text in err[0]
    assert not list(tmp_path.iterdir())


def test_a_trajectory_for_another_frame_shape_is_refused(rendered, tmp_path, capsys):
    t = rendered["traj"]
    other = Trajectory(t.time_s, t.R, t.hfov_deg, 300, 300)
    other.save(tmp_path / "square.json")
    rc = main(["convert", str(rendered["clip"]), str(tmp_path / "o.mp4"), "--trajectory", str(tmp_path / "square.json")])
    assert rc == 1 and "300x300" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_yuv420_path_keeps_the_frames_own_planes_exactly(rendered):
    """The 4:2:0 path (what convert runs for the mosaic backend): in every plane, where the
    frame's alpha is 255 the output IS the frame's placed plane; pixels change only inside the
    footprints of this frame and the last; chroma lands where luma does."""
    from pano360.generate.mosaic_place import place_yuv420
    from pano360.canvas import yuv420_planes
    from pano360.io.colour import ColourInfo
    from pano360.io.reader import iter_yuv420

    traj = rendered["traj"]
    frames = [(f.index, f.time_s, f.rgb) for f in iter_frames(rendered["clip"])]
    backend = MosaicBackend(bg_width=256)
    backend.prepare(iter(frames), lambda i, t: traj.R[i], HFOV)
    a_y, a_c = backend.frame_alpha(CLIP_W, CLIP_H), backend.frame_alpha(CLIP_W // 2, CLIP_H // 2)
    placed = [place_yuv420(f.y, f.u, f.v, traj.R[f.index], HFOV, W_OUT, a_y, a_c) for f in iter_yuv420(rendered["clip"])]
    outs = [o.copy() for o in backend.fill_placed_yuv420(iter(placed), ColourInfo().to_yuv420)]
    assert len(outs) == len(placed) and outs[0].shape == (W_OUT // 2 * 3 // 2, W_OUT)
    prev = None
    for k, (pl, out) in enumerate(zip(placed, outs)):
        boxes = []
        for plane, p in zip(yuv420_planes(out, W_OUT // 2), (pl.y, pl.u, pl.v)):
            box = np.zeros(plane.shape, bool)
            for ec, bc in p.column_pieces():
                inside = p.alpha[:, bc] == 255
                assert np.array_equal(plane[p.v0:p.v1, ec][inside], p.rgb[:, bc][inside])
                box[p.v0:p.v1, ec] = p.alpha[:, bc] > 0
            boxes.append(box)
        if k:
            for plane, before, box, pbox in zip(yuv420_planes(out, W_OUT // 2), yuv420_planes(outs[k - 1], W_OUT // 2),
                                                boxes, prev):
                assert not ((plane != before) & ~(box | pbox)).any()
        prev = boxes
        # Chroma footprint = luma footprint at half size (to within the feather's rounding).
        y_in = cv2.resize(boxes[0].astype(np.float32), (W_OUT // 2, W_OUT // 4), interpolation=cv2.INTER_AREA)
        assert np.mean((y_in > 0.5) != boxes[1]) < 0.01


def test_output_carries_the_input_colour_and_the_background_matches_it(rendered, tmp_path):
    """A clip tagged BT.709 comes out tagged BT.709. Its planes pass through as they are, and the
    background (made in RGB) crosses back with the same matrix: the planes match the untagged
    run's (same values, BT.601) to within rounding, where a fixed-BT.601 background would differ."""
    tagged = tmp_path / "bt709.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(rendered["clip"]), "-c", "copy", "-bsf:v",
                    "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1:video_full_range_flag=0",
                    str(tagged)], check=True)
    outs = {}
    for name, src in (("plain", rendered["clip"]), ("bt709", tagged)):
        outs[name] = tmp_path / f"{name}_out.mp4"
        assert main(["convert", str(src), str(outs[name]), "--width", "256", "--trajectory", str(rendered["traj_path"]),
                     "-q", "--crf", "10"]) == 0
    tags = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                      "stream=color_space,color_primaries,color_transfer,color_range", "-of", "json",
                                      str(outs["bt709"])], capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert (tags["color_space"], tags["color_primaries"], tags["color_transfer"], tags["color_range"]) == \
        ("bt709", "bt709", "bt709", "tv")
    with av.open(str(outs["plain"])) as a, av.open(str(outs["bt709"])) as b:
        for fa, fb in zip(a.decode(video=0), b.decode(video=0)):
            pa, pb = fa.to_ndarray(format="yuv420p").astype(int), fb.to_ndarray(format="yuv420p").astype(int)
            assert np.abs(pa - pb).mean() < 0.6


def test_follow_output_is_the_world_output_turned_by_the_heading(rendered, tmp_path):
    """--orientation follow turns each 4:2:0 frame (luma and chroma) by the smoothed heading: frame
    for frame it is the world-locked output rolled by that many columns (even, for chroma)."""
    from pano360.pipeline.orient import follow_shifts, heading_deg

    outs = {}
    for mode in ("world", "follow"):
        outs[mode] = tmp_path / f"{mode}.mp4"
        assert main(["convert", str(rendered["clip"]), str(outs[mode]), "--width", "256", "--trajectory",
                     str(rendered["traj_path"]), "--orientation", mode, "-q", "--crf", "8"]) == 0
    traj = rendered["traj"]
    shifts = follow_shifts(heading_deg(traj.time_s, traj.R), 256)
    assert np.abs(shifts).max() >= 8  # the clip pans: the test means something
    for k, (w, f) in enumerate(zip(_decode_i420(outs["world"]), _decode_i420(outs["follow"]))):
        s = int(shifts[k]) - int(shifts[k]) % 2
        assert np.abs(np.roll(w, -s, axis=1).astype(float) - f).mean() < 1.5, k


def test_warnings_reach_convert_and_are_counted_by_track(tmp_path, capsys):
    # A still clip (its FOV cannot be measured) with non-square pixels: both warnings show on
    # stderr, in --json's "warnings" of track and of convert, and in track's count.
    src = tmp_path / "still_sar.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(shared_file("clips/cup.mp4")), "-t", "1",
                    "-vf", "scale=320:240,setsar=4/3", "-an", str(src)], check=True)
    assert main(["track", str(src), "-o", str(tmp_path / "t.json"), "--json"]) == 0
    out, err = capsys.readouterr()
    warned = json.loads(out)["warnings"]
    assert len(warned) == 2 and "not square" in warned[0] and "cannot be measured" in warned[1]
    assert main(["track", str(src), "-o", str(tmp_path / "t.json"), "-y"]) == 0
    assert "2 warnings" in capsys.readouterr().out
    assert main(["convert", str(src), str(tmp_path / "o.mp4"), "--width", "256", "--preset", "ultrafast", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warnings"] == warned
    assert "not square" in err and "cannot be measured" in err
