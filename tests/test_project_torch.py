"""The torch grid_sample path agrees with the OpenCV path (on CPU; the same code runs on a GPU)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import shared_file
from pano360.project import remap as M
from pano360.project.rotation import euler_to_matrix

torch = pytest.importorskip("torch")
from pano360.project import torch_remap as T  # noqa: E402

YPR = [(0, 0, 0), (179, 10, 5), (30, 85, 0), (-100, -89, 20)]  # plain, across the seam, near both poles


@pytest.fixture(scope="module")
def erp() -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(shared_file("erp/sphere_small.jpg"))), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (512, 256), interpolation=cv2.INTER_AREA).astype(np.float32)


def _batch(img: np.ndarray, n: int):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].expand(n, -1, -1, -1)


def test_views_match_cv2(erp):
    Rs = np.stack([euler_to_matrix(*a) for a in YPR])
    views = T.erp_to_persp_torch(_batch(erp, len(Rs)), Rs, 70.0, 160, 120)
    for i, R in enumerate(Rs):
        ref = M.sample_erp(erp, *M.erp_to_persp_map(R, 70.0, 160, 120, 512, 256))
        got = views[i].permute(1, 2, 0).numpy()
        assert np.abs(got - ref).max() < 0.05  # measured ~0.01: float32 coordinates both ways


def test_rotation_matches_cv2(erp):
    Rs = np.stack([euler_to_matrix(*a) for a in YPR])
    out = T.rotate_erp_torch(_batch(erp, len(Rs)), Rs)
    for i, R in enumerate(Rs):
        ref = M.sample_erp(erp, *M.rotate_erp_map(R, 512, 256))
        assert np.abs(out[i].permute(1, 2, 0).numpy() - ref).max() < 0.05


def test_placement_matches_cv2(erp):
    Rs = np.stack([euler_to_matrix(*a) for a in YPR])
    frame = M.erp_to_persp(erp, Rs[1], 70.0, 160, 120)
    out, valid = T.persp_to_erp_torch(_batch(frame, len(Rs)), Rs, 70.0, 512, 256)
    for i, R in enumerate(Rs):
        ref, mask = M.persp_to_erp(frame, R, 70.0, 512, 256)
        assert np.array_equal(valid[i, 0].numpy(), mask)
        assert np.abs(out[i].permute(1, 2, 0).numpy() - ref).max() < 0.05


def test_padding_wraps_the_seam_and_crosses_the_poles():
    x = torch.arange(2 * 4 * 8, dtype=torch.float32).reshape(1, 2, 4, 8)
    p = T.pad_erp_torch(x, 2)
    assert p.shape == (1, 2, 8, 12)
    assert torch.equal(p[..., 2:-2, 0], x[..., :, 6]) and torch.equal(p[..., 2:-2, -1], x[..., :, 1])
    assert torch.equal(p[..., 1, 2:-2], torch.roll(x[..., 0, :], 4, dims=-1))  # row -1 = row 0 across the pole
    assert torch.equal(p[..., 0, 2:-2], torch.roll(x[..., 1, :], 4, dims=-1))
    assert torch.equal(p[..., -1, 2:-2], torch.roll(x[..., -2, :], 4, dims=-1))
