"""RGB <-> 4:2:0 with a stream's own matrix and range, and reading a stream's colour tags."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pano360.io.colour import ColourInfo, read_colour, rgb_to_yuv420, yuv420_to_rgb
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    bgr = cv2.imread(str(shared_file("erp/puydesancy.jpg")))
    small = cv2.resize(bgr, (512, 256), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[..., ::-1])


def _psnr(a, b) -> float:
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b) ** 2))


@pytest.mark.parametrize("matrix", [2, 1, 6])
@pytest.mark.parametrize("full", [False, True])
def test_round_trip_of_a_real_photo(photo, matrix, full):
    """4:2:0 halves the chroma: a detailed photo comes back at ~32-36 dB RGB PSNR (measured)."""
    packed = rgb_to_yuv420(photo, matrix, full)
    assert packed.shape == (384, 512) and packed.dtype == np.uint8
    y = packed[:256]
    assert (y.min(), y.max()) >= ((0, 0) if full else (16, 0)) and y.max() <= (255 if full else 235)
    assert _psnr(yuv420_to_rgb(packed, matrix, full), photo) > 31.0


def test_unspecified_is_bt601_like_opencv_and_bt709_differs(photo):
    ours = rgb_to_yuv420(photo)
    cv = cv2.cvtColor(photo, cv2.COLOR_RGB2YUV_I420)
    assert np.abs(ours[:256].astype(int) - cv[:256]).max() <= 1  # same luma
    assert np.abs(rgb_to_yuv420(photo, 1)[:256].astype(int) - ours[:256]).max() > 5


def test_read_colour_of_real_clips():
    assert read_colour(shared_file("clips/cup.mp4")) == ColourInfo(6, 1, 6, 1)  # tagged SMPTE 170M
    assert read_colour(shared_file("clips/box.mp4")) == ColourInfo()  # untagged


def test_writer_says_which_matrix_its_frames_use(tmp_path):
    """RGB frames are converted with BT.601 and tagged so (players would guess BT.709 for HD);
    4:2:0 frames carry the colour they are given, or none."""
    import json
    import subprocess

    from pano360.io.writer import VideoWriter

    def tags(path):
        out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                              "stream=color_space,color_range,color_primaries", "-of", "json", str(path)],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)["streams"][0]

    with VideoWriter(tmp_path / "rgb.mp4", 64, 32, 30, colour=ColourInfo(1, 1, 1, 1)) as w:
        w.write(np.full((32, 64, 3), 90, np.uint8))
    assert tags(tmp_path / "rgb.mp4") == {"color_range": "tv", "color_space": "smpte170m", "color_primaries": "bt709"}
    with VideoWriter(tmp_path / "yuv.mp4", 64, 32, 30, colour=ColourInfo(1, 1, 1, 1)) as w:
        w.write_yuv420(np.full((48, 64), 90, np.uint8))
    assert tags(tmp_path / "yuv.mp4") == {"color_range": "tv", "color_space": "bt709", "color_primaries": "bt709"}
    with VideoWriter(tmp_path / "plain.mp4", 64, 32, 30) as w:
        w.write_yuv420(np.full((48, 64), 90, np.uint8))
    assert read_colour(tmp_path / "plain.mp4") == ColourInfo()


@pytest.mark.parametrize("rel", ["clips/cup.mp4", "clips/vtest.avi", "clips/tree.avi", "video360/testRoom1_1920Mono.mp4"])
def test_the_probe_reads_the_writer_facts_without_another_open(rel):
    """``VideoInfo.colour`` / ``frame_time_base`` are what ``read_colour`` / ``frame_time_base``
    give, from the probe's one open."""
    from pano360.io.probe import probe_video
    from pano360.io.reader import frame_time_base

    path = shared_file(rel)
    info = probe_video(path)
    assert info.colour == read_colour(path)
    assert info.frame_time_base == frame_time_base(path) and info.frame_time_base.numerator == 1
    assert info.to_dict()["frame_time_base"] == str(info.frame_time_base)


def test_unspecified_tags_become_what_players_assume_for_the_inputs_size(tmp_path):
    sd, hd = ColourInfo().assumed(640, 480), ColourInfo().assumed(1920, 1080)
    assert (sd.colorspace, sd.color_primaries, sd.color_trc, sd.color_range) == (6, 6, 6, 1)  # BT.601 525-line
    assert ColourInfo().assumed(720, 576).color_primaries == 5  # 625-line (PAL)
    assert (hd.colorspace, hd.color_primaries, hd.color_trc) == (1, 1, 1)
    tagged = ColourInfo(9, 2, 9, 16)  # BT.2020 PQ, full range: kept as it is
    assert tagged.assumed(640, 480) == tagged
    # An untagged 640x480 clip converted to a 1024x512 360 video (shown as BT.709 if left
    # untagged at HD sizes) says BT.601, as the clip was shown.
    import json
    import subprocess

    from pano360.cli import main

    clip, out = tmp_path / "box.mp4", tmp_path / "o.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(shared_file("clips/box.mp4")), "-t", "0.4", "-an",
                    "-c:v", "libx264", "-preset", "ultrafast", str(clip)], check=True)
    assert read_colour(clip).colorspace == 2  # untagged
    assert main(["convert", str(clip), str(out), "--width", "1280", "--hfov", "60", "--preset", "ultrafast", "-q"]) == 0
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json", "-show_entries",
                                       "stream=color_space,color_primaries,color_transfer", str(out)],
                                      capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert (probe["color_space"], probe["color_primaries"], probe["color_transfer"]) == ("smpte170m",) * 3
