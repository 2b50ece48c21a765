"""Generation windows: every frame output exactly once, carried-over frames already generated."""

from __future__ import annotations

import numpy as np
import pytest

from pano360.errors import UsageError
from pano360.generate.wan.windows import Window, plan_windows, round_up_4k1


@pytest.mark.parametrize("window, overlap", [(w, o) for w in (5, 9, 17, 81) for o in (0, 1, 4, 8) if o < w])
def test_windows_cover_every_frame_exactly_once(window, overlap):
    for n in list(range(1, 60)) + [81, 82, 161, 200]:
        wins = plan_windows(n, window, overlap)
        output = [i for w in wins for i in w.new]
        assert output == list(range(n))  # each frame once, in order
        for prev, w in zip(wins, wins[1:]):
            assert w.known >= overlap or w.start == 0  # conditioned on what was generated
            assert w.start + w.known == prev.stop  # the known frames are exactly the generated ones
        for w in wins:
            assert w.length % 4 == 1 and w.length >= w.stop - w.start
            assert w.stop - w.start == min(window, n)


def test_window_plan_pinned():
    assert plan_windows(20, 9, 2) == [Window(0, 9, 0, 9), Window(7, 16, 2, 9), Window(11, 20, 5, 9)]
    assert plan_windows(3, 81, 8) == [Window(0, 3, 0, 5)]  # short clip: padded to 4k+1
    assert [round_up_4k1(n) for n in (1, 2, 5, 6, 9, 80, 81)] == [1, 5, 5, 9, 9, 81, 81]


@pytest.mark.parametrize("window, overlap", [(8, 2), (81, 81), (9, -1), (1, 0)])
def test_bad_windows_are_usage_errors(window, overlap):
    with pytest.raises(UsageError):
        plan_windows(10, window, overlap)


class _EchoPipe:
    """Stands in for the model: returns the conditioning video and records what each window got."""

    def __init__(self):
        self.calls = []

    def __call__(self, video, mask, embeds, **kw):
        self.calls.append((video[:, 0, 0, 0].copy(), mask.reshape(len(mask), -1).max(1)))
        return video


def test_backend_streams_windows_as_planned():
    """23 canvases, each a flat grey of value 10*i (no real pixels): the streaming backend must run the
    planned windows, carry over generated frames as fully known, and output frame i as the i-th frame."""
    from pano360.canvas import Canvas
    from pano360.generate.wan.backend import WanBackend

    backend = WanBackend.__new__(WanBackend)
    backend.gen_width, backend.gen_height, backend.window, backend.overlap = 64, 32, 9, 3
    backend.steps, backend.guidance, backend.seed, backend.rotate = 1, 1.0, 0, True
    backend.blend_ratio, backend.wrap_pad, backend._embeds = 16.0, 0, object()
    backend.pipe = _EchoPipe()
    n = 23
    canvases = (Canvas(np.full((32, 64, 3), 10 * i, np.uint8), np.zeros((32, 64), bool), i / 30) for i in range(n))
    out = list(backend.fill(canvases))
    assert len(out) == n
    assert [int(f[0, 0, 0]) for f in out] == [10 * i for i in range(n)]
    plan = plan_windows(n, 9, 3)
    assert len(backend.pipe.calls) == len(plan)
    for (values, gen_any), w in zip(backend.pipe.calls, plan):
        assert list(values) == [10 * i for i in range(w.start, w.stop)]
        assert list(gen_any) == [0.0] * w.known + [1.0] * (w.stop - w.start - w.known)
