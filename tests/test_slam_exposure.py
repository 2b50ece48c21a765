"""The exposure match the tracker applies before re-tracking a frame from its keyframe."""

from __future__ import annotations

import cv2
import numpy as np

from pano360.slam.frontend import _match_exposure


def test_exposure_match_is_exact_in_the_dark_and_follows_a_real_gain():
    # Dusk: a dim sky above a dark shore, each half the picture. The old ratio of medians read an
    # 8 % gain here once the horizon moved half a pixel (the median jumps between the halves' levels).
    gen = np.random.default_rng(0)
    n = cv2.GaussianBlur(gen.normal(size=(360, 640)).astype(np.float32), (0, 0), 3)
    base = 15 + 0.8 * n / n.std()
    base[:180] += 7
    for shift in (0.0, 0.5, 1.0, 2.0):
        moved = cv2.warpAffine(base, np.float32([[1, 0, 0], [0, 1, shift]]), (640, 360), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        src, ref = np.rint(base).astype(np.uint8), np.rint(moved).astype(np.uint8)
        assert _match_exposure(src, ref) is src  # no gain: left alone
    bright = np.rint(base * 5).astype(np.uint8)
    out = _match_exposure(bright, np.clip(np.rint(bright * 1.2), 0, 255).astype(np.uint8))
    assert abs(out.mean() / bright.mean() - 1.2) < 0.01
