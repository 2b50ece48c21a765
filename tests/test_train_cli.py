"""`pano360 train` refuses bad input with one line on stderr before loading any model."""

from __future__ import annotations

import os

import pytest

from conftest import shared_file
from pano360.cli import main


@pytest.mark.parametrize(
    "case, code, message",
    [
        ("missing_data", 1, "training data folder not found"),
        ("empty_data", 1, "no video files in"),
        ("no_360", 1, "no 360 videos found"),
        ("missing_model", 1, "model folder not found"),
        ("model_not_wan", 1, "not a diffusers model folder"),
        ("bad_frames", 2, "--frames must be 4k+1"),
        ("bad_width", 2, "--width must be a multiple of 32"),
        ("bad_targets", 2, "--targets must be one of full, attn, ffn"),
        ("bad_out", 2, "--out must end in .safetensors"),
        ("missing_resume", 1, "checkpoint folder not found"),
        ("bad_device", 2, "--device must be cuda, cuda:N or cpu, got 'tpu'"),
        ("nan_lr", 2, "--lr must be a finite number, got nan"),
        ("inf_lr", 2, "--lr must be a finite number, got inf"),
        ("nan_alpha", 2, "--alpha must be a finite number, got nan"),
        pytest.param("no_gpu", 1, "training needs a CUDA GPU", marks=pytest.mark.skipif(
            __import__("torch").cuda.is_available(), reason="a GPU is present")),
    ],
)
def test_bad_input_gives_one_line(tmp_path, capsys, case, code, message):
    data = tmp_path / "data"
    data.mkdir()
    model = tmp_path / "model"
    model.mkdir()
    if case != "empty_data":
        os.symlink(shared_file("video360/testRoom1_1920Mono.mp4"), data / "room.mp4")
    if case == "no_360":
        os.remove(data / "room.mp4")
        os.symlink(shared_file("clips/box.mp4"), data / "box.mp4")
    extra = {"bad_frames": ["--frames", "16"], "bad_width": ["--width", "100"], "bad_targets": ["--targets", "mlp"],
             "missing_resume": ["--resume", str(tmp_path / "nope")], "bad_device": ["--device", "tpu"],
             "nan_lr": ["--lr", "nan"], "inf_lr": ["--lr", "inf"], "nan_alpha": ["--alpha", "nan"]}.get(case, [])
    args = ["train", str(tmp_path / "nothing" if case == "missing_data" else data),
            "--model", str(tmp_path / "nomodel" if case == "missing_model" else model),
            "--out", str(tmp_path / ("lora.bin" if case == "bad_out" else "lora.safetensors")),
            *([] if case in ("no_gpu", "bad_device") else ["--device", "cpu"]), *extra]
    assert main(args) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("Error: ") and message in lines[-1]
    assert all(line.startswith("warning: skipping ") for line in lines[:-1])  # one line per skipped video
    assert not (tmp_path / "lora.safetensors").exists()
