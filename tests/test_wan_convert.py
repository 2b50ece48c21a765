"""`pano360 convert --backend wan` end to end with the tiny model on the CPU."""

from __future__ import annotations

import json
import subprocess

import av
import cv2
import numpy as np
import pytest

from pano360.cli import main
from pano360.generate.wan.tiny import save_tiny_wan
from conftest import shared_file

W_OUT, CLIP_W, CLIP_H, FPS, HFOV = 256, 160, 90, 15, 65.0


def _frames(path):
    with av.open(str(path)) as c:
        return [cv2.cvtColor(f.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from pano360.synth import load_erp, phone_path, write_clip

    folder = tmp_path_factory.mktemp("wanconvert")
    erp = load_erp(shared_file("erp/puydesancy.jpg"), max_width=512)
    t, R = phone_path(9 / FPS, FPS, np.random.default_rng(3), pan_speed_deg_s=(40.0, 60.0))
    traj = write_clip(folder / "clip.mp4", erp, t, R, HFOV, CLIP_W, CLIP_H, FPS, crf=12)
    traj.save(folder / "traj.json")
    return {"folder": folder, "clip": folder / "clip.mp4", "traj": traj, "model": save_tiny_wan(folder / "tiny")}


def _convert(clip, backend, out, *extra):
    return main(["convert", str(clip["clip"]), str(out), "--width", str(W_OUT), "--trajectory", str(clip["folder"] / "traj.json"),
                 "--backend", backend, "-q", "--crf", "12", *extra])


def test_convert_with_the_tiny_wan_model(clip, capsys):
    out = clip["folder"] / "wan.mp4"
    code = _convert(clip, "wan", out, "--model", str(clip["model"]), "--device", "cpu", "--steps", "1", "--gen-width", "64",
                    "--seed", "3", "--json")
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["backend"] == "wan"
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=width,height,nb_read_frames,r_frame_rate:stream_side_data=side_data_type,projection", "-of", "json", str(out)],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert (probe["width"], probe["height"]) == (W_OUT, W_OUT // 2)
    assert int(probe["nb_read_frames"]) == 9 and probe["r_frame_rate"] == f"{FPS}/1"  # frames in = frames out, rate kept
    assert any(sd.get("projection") == "equirectangular" for sd in probe.get("side_data_list", []))

    mosaic = clip["folder"] / "mosaic.mp4"
    assert _convert(clip, "mosaic", mosaic) == 0
    from pano360.project.remap import persp_to_erp

    for k, (w, m) in enumerate(zip(_frames(out), _frames(mosaic))):
        _, foot = persp_to_erp(np.zeros((CLIP_H, CLIP_W, 3), np.uint8), clip["traj"].R[k], HFOV, W_OUT, W_OUT // 2)
        core = cv2.erode(foot.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        # The real pixels are the same in both, to within two different encodes at crf 20 and
        # rounding: luma differs by 1.3-1.7 on average (measured). The mosaic backend places the
        # 4:2:0 planes directly, Wan's path goes through RGB, so chroma differs a little more.
        luma = lambda rgb: rgb.astype(float) @ np.array([0.299, 0.587, 0.114])  # noqa: E731
        diff = np.abs(luma(w[core]) - luma(m[core])).mean()
        assert diff < 2.5, (k, diff)
        rest = w[~foot].astype(float)
        assert rest.mean() > 20 and rest.std() > 2  # the generated part is filled, not black


@pytest.mark.parametrize("flag, value", [("--lora-scale", "nan"), ("--guidance", "inf"), ("--shift", "nan"),
                                         ("--shift", "-inf"), ("--device", "tpu")])
def test_bad_wan_numbers_and_devices_are_usage_errors_up_front(tmp_path, capsys, flag, value):
    """NaN passes every `x <= 0` check: refused before the input is even opened."""
    args = ["convert", str(tmp_path / "never-read.mp4"), str(tmp_path / "out.mp4"), "--backend", "wan", flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"Error: {flag} must be") and value in err and "\n" not in err
