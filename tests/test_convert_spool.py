"""One decode for tracking and the background: frames kept in a temporary spool."""

from __future__ import annotations

import numpy as np

from pano360.io import reader
from pano360.io.reader import iter_frames, iter_gray, iter_gray_sampled
from pano360.pipeline.convert import ConvertOptions, convert_video
from pano360.pipeline.spool import FrameSpool
from tests.conftest import shared_file


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b) ** 2))


def test_spool_gives_back_real_frames_in_order_and_cleans_up():
    frames = list(iter_frames(shared_file("clips/box.mp4"), 320, max_frames=12))
    with FrameSpool() as spool:
        for f in frames[::3]:
            spool.add(f.index, f.time_s, f.rgb)
        back = list(spool)
    assert [(i, t) for i, t, _ in back] == [(f.index, f.time_s) for f in frames[::3]]
    for (_, _, rgb), f in zip(back, frames[::3]):
        assert rgb.shape == f.rgb.shape and _psnr(rgb, f.rgb) > 38.0  # JPEG q95 (measured 41-44 dB)
    assert spool._file.closed  # a TemporaryFile: deleted when closed


def test_sampled_gray_is_iter_gray_plus_every_kth_rgb():
    path = shared_file("clips/box.mp4")
    plain = list(iter_gray(path, (160, 90), max_frames=10))
    sampled = list(iter_gray_sampled(path, (160, 90), 4, 200, max_frames=10))
    assert len(sampled) == len(plain) == 10
    for (i, t, g), (j, u, g2, rgb) in zip(plain, sampled):
        assert (i, t) == (j, u) and np.array_equal(g, g2)
        assert (rgb is not None) == (i % 4 == 0)
        if rgb is not None:
            assert rgb.shape[1] == 200 and rgb.dtype == np.uint8


def test_convert_decodes_a_tracked_clip_twice_not_three_times(tmp_path, monkeypatch):
    """Tracking keeps the background's samples, so pass 1 decodes nothing: two decodes of the clip
    (tracking, rendering), not three; and the result still covers the seen sphere."""
    opened = []
    real = reader._decoded

    def counting(path, max_frames):
        opened.append(str(path))
        return real(path, max_frames)

    monkeypatch.setattr(reader, "_decoded", counting)
    clip = shared_file("clips/box.mp4")
    summary = convert_video(clip, tmp_path / "out.mp4", ConvertOptions(width=256, hfov_deg=60.0))
    decodes = [p for p in opened if p == str(clip)]
    assert len(decodes) == 2, opened
    assert summary["frames"] > 10 and 5.0 < summary["coverage_pct"] < 100.0
