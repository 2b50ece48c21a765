"""Every command that renders a video frame for frame keeps the input's frame times.

Phones lower their frame rate in the dark, screen recordings and AVI files skip frames: numbering
the output's frames at a constant rate would stretch or squeeze such a clip (the shared
``tree.avi``, 30 s, came out 4.5 s long) and let its sound drift away from the picture.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from pano360.cli import main
from pano360.io.reader import _BestEffortTime, frame_time_base, iter_frames, iter_gray
from pano360.io.writer import VideoWriter
from pano360.project.remap import rotate_erp
from pano360.project.rotation import euler_to_matrix
from tests.conftest import shared_file

RATE = 20  # the nominal rate; the clips keep an irregular subset of its frames
KEPT = [0, 2, 3, 6, 7, 10, 16, 17, 18, 24]
TIMES = [k / RATE for k in KEPT]


def _frame_times(path) -> np.ndarray:
    """The video's frame times as ffprobe reads them, from the first frame."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    t = np.array([float(x.split(",")[0]) for x in out.split()])
    return t - t[0]


def _vfr_clip(path, frames) -> None:
    with VideoWriter(path, frames[0].shape[1], frames[0].shape[0], RATE, crf=12, preset="veryfast", vfr=True) as w:
        for rgb, t in zip(frames, TIMES):
            w.write(rgb, t)


@pytest.fixture(scope="module")
def vfr_erp(tmp_path_factory):
    """A 512x256 equirectangular clip of a real room turning 3 deg per nominal frame, irregularly timed."""
    room = next(iter_frames(shared_file("video360/testRoom1_1920Mono.mp4"), max_width=512)).rgb
    path = tmp_path_factory.mktemp("vfr") / "room.mp4"
    _vfr_clip(path, [rotate_erp(room, euler_to_matrix(3.0 * k, 0, 0)) for k in KEPT])
    assert np.allclose(_frame_times(path), TIMES, atol=1e-3)
    return path


def test_best_effort_time_takes_the_stamps_that_run_forwards():
    def frames(pts, dts):
        return [SimpleNamespace(pts=p, dts=d, time_base=None) for p, d in zip(pts, dts)]

    # box.mp4's pattern: every other presentation stamp is two frames early, the decoding stamps are sane.
    guess = _BestEffortTime(1 / 1000)
    got = [guess.of(f) for f in frames([0, 101, 67, 134, 34, 234, 201], [67, 101, 134, 167, 201, 234, 267])]
    assert got == pytest.approx([0.0, 0.101, 0.134, 0.167, 0.201, 0.234, 0.267])
    # A clip with B-frames: presentation stamps in order win, whatever the decoding stamps say.
    guess = _BestEffortTime(1 / 1000)
    assert [guess.of(f) for f in frames([0, 40, 80, 120], [-80, -40, 0, 40])] == pytest.approx([0, 0.04, 0.08, 0.12])
    guess = _BestEffortTime(1 / 1000)
    assert [guess.of(f) for f in frames([None, None], [0, 50])] == pytest.approx([0.0, 0.05])


def test_reader_times_of_a_clip_with_broken_presentation_stamps():
    times = np.array([t for _, t, _ in iter_gray(shared_file("clips/box.mp4"), (160, 120))])
    steps = np.diff(times)
    assert len(times) == 455 and np.all(steps > 0)
    assert np.median(steps) == pytest.approx(1001 / 30000, abs=1e-3)  # 29.97 fps
    assert times[-1] == pytest.approx(15.2, abs=0.05)


def test_output_time_base_is_the_inputs_own_when_an_mp4_can_hold_it(vfr_erp):
    assert frame_time_base(vfr_erp) == Fraction(1, 90000)  # what the writer used
    assert frame_time_base(shared_file("clips/box.mp4")) == Fraction(1, 1000000)
    assert frame_time_base(shared_file("clips/tree.avi")) == Fraction(1, 90000)  # AVI's 66667/1000000 s ticks are not 1/N


def test_convert_keeps_the_clips_frame_times(tmp_path):
    from pano360.synth import load_erp, phone_path
    from pano360.synth.render import relative_trajectory, render_frames

    erp = load_erp(shared_file("erp/sechelt.jpg"), max_width=1024)
    t, R = phone_path(KEPT[-1] / RATE + 0.05, RATE, np.random.default_rng(2))
    t, R = t[KEPT], R[KEPT]
    clip, traj_path, out = tmp_path / "clip.mp4", tmp_path / "clip.json", tmp_path / "clip360.mp4"
    _vfr_clip(clip, list(render_frames(erp, t, R, 70.0, 160, 96)))
    relative_trajectory(t, R, 70.0, 160, 96).save(traj_path)
    assert main(["convert", str(clip), str(out), "-q", "--backend", "mosaic", "--width", "512",
                 "--trajectory", str(traj_path)]) == 0
    assert np.allclose(_frame_times(out), TIMES, atol=1e-3), _frame_times(out)


def test_reframe_keeps_the_frame_times(vfr_erp, tmp_path):
    out = tmp_path / "view.mp4"
    assert main(["reframe", str(vfr_erp), str(out), "--size", "160x96", "-q"]) == 0
    assert np.allclose(_frame_times(out), TIMES, atol=1e-3), _frame_times(out)


def test_stabilize_keeps_the_frame_times(vfr_erp, tmp_path):
    out = tmp_path / "steady.mp4"
    assert main(["stabilize", str(vfr_erp), str(out), "-q"]) == 0
    assert np.allclose(_frame_times(out), TIMES, atol=1e-3), _frame_times(out)
