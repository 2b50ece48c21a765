"""Training data for `pano360 train`: which videos count, stereo to one eye, clips, samples, weights."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from conftest import shared_file
from pano360.errors import Pano360Error
from pano360.io.reader import iter_frames
from pano360.io.writer import VideoWriter
from pano360.project.erp import dirs_to_uv
from pano360.train.objective import flow_loss, latitude_weights, noisy_latents, shift_sigmas
from pano360.train.sample import make_sample, sample_camera, view_size
from pano360.io.stereo import split_eye
from pano360.train.videos import find_videos, read_erp_clip


def _erp(name: str, width: int) -> np.ndarray:
    bgr = cv2.imread(str(shared_file(f"erp/{name}")))
    return cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, width // 2), interpolation=cv2.INTER_AREA)


def _rotating_clip(path, name: str, width: int = 128, n: int = 9) -> np.ndarray:
    img = _erp(name, width)
    frames = np.stack([np.roll(img, 3 * i, axis=1) for i in range(n)])
    with VideoWriter(path, width, width // 2, 30, crf=12, preset="ultrafast") as w:
        for f in frames:
            w.write(f)
    return frames


# ---------------------------------------------------------------------------------------------
# Latitude weights and the flow objective


@pytest.mark.parametrize("rows", [4, 5, 8, 64])
def test_latitude_weights_sum_to_rows_and_peak_at_equator(rows):
    w = latitude_weights(rows)
    assert w.shape == (rows,)
    assert w.sum() == pytest.approx(rows, rel=1e-5)
    centre = [rows // 2] if rows % 2 else [rows // 2 - 1, rows // 2]
    assert set(np.flatnonzero(w == w.max())) == set(centre)
    np.testing.assert_allclose(w, w[::-1], rtol=1e-6)  # symmetric about the equator
    assert np.all(np.diff(w[: rows // 2]) > 0)  # rising toward the equator
    # Before renormalising: sqrt(1 - h^2) + 0.25 at row centres.
    h = np.abs(np.arange(rows) + 0.5 - rows / 2) / (rows / 2)
    raw = np.sqrt(1 - h * h) + 0.25
    np.testing.assert_allclose(w, raw * rows / raw.sum(), rtol=1e-6)


def test_shifted_sigmas_and_flow_target():
    import torch

    assert shift_sigmas(0.5, 3.0) == pytest.approx(0.75)  # 3 * 0.5 / (1 + 2 * 0.5)
    assert shift_sigmas(0.25, 1.0) == 0.25
    x0 = torch.full((1, 2, 1, 4, 4), 2.0)
    noise = torch.full_like(x0, -1.0)
    x_t, v = noisy_latents(x0, noise, torch.tensor([0.25]))
    assert torch.allclose(x_t, torch.full_like(x0, 0.75 * 2.0 - 0.25))
    assert torch.allclose(v, torch.full_like(x0, -3.0))  # noise - x0
    # A uniform error gives the plain MSE (weights sum to the row count).
    w = torch.from_numpy(latitude_weights(4))
    assert flow_loss(x0, x0 + 0.5, w).item() == pytest.approx(0.25, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Which videos count


def test_find_videos_stereo_mono_and_skipped(tmp_path):
    _rotating_clip(tmp_path / "a_mono.mp4", "sechelt.jpg")
    (tmp_path / "a_mono.txt").write_text("a  360 degree\npanorama ")
    os.symlink(shared_file("video360/congo.mp4"), tmp_path / "b_congo.mp4")  # V1 top-bottom stereo
    os.symlink(shared_file("video360/sphericalv2.mp4"), tmp_path / "c_mesh.mp4")  # V2 mesh projection
    os.symlink(shared_file("clips/box.mp4"), tmp_path / "d_flat.mp4")  # 4:3, no metadata
    (tmp_path / "e_text.mp4").write_text("not a video")
    warnings = []
    videos = find_videos(tmp_path, warn=warnings.append)
    assert [v.path.name for v in videos] == ["a_mono.mp4", "b_congo.mp4"]
    mono, congo = videos
    assert (mono.stereo, mono.eye_width, mono.eye_height, mono.frame_count) == ("none", 128, 64, 9)
    assert mono.caption == "a 360 degree panorama"
    assert (congo.stereo, congo.eye_width, congo.eye_height, congo.caption) == ("top-bottom", 1920, 540, "")
    skipped = " ".join(warnings)
    assert len(warnings) == 3 and "c_mesh.mp4" in skipped and "mesh" in skipped
    assert "d_flat.mp4" in skipped and "not 2:1" in skipped and "e_text.mp4" in skipped


def test_symlinked_subfolders_are_followed_once_without_looping(tmp_path):
    """A data folder made of links to folders elsewhere: each real folder is read once, and a link
    back up the tree is no endless loop."""
    elsewhere = tmp_path / "disk2" / "shoots"
    elsewhere.mkdir(parents=True)
    _rotating_clip(elsewhere / "a.mp4", "sechelt.jpg", n=5)
    data = tmp_path / "data"
    (data / "own").mkdir(parents=True)
    _rotating_clip(data / "own" / "b.mp4", "sphere_small.jpg", n=5)
    os.symlink(elsewhere, data / "linked")
    os.symlink(elsewhere, data / "own" / "linked-again")  # the same folder through a second link
    os.symlink(data, elsewhere / "loop")  # a cycle: data/linked/loop -> data
    videos = find_videos(data)
    assert sorted(v.path.name for v in videos) == ["a.mp4", "b.mp4"]


def test_stereo_top_bottom_video_is_split_to_its_top_eye(tmp_path):
    os.symlink(shared_file("video360/congo.mp4"), tmp_path / "congo.mp4")
    (video,) = find_videos(tmp_path)
    clip = read_erp_clip(video, 0, 1, 128)
    assert clip.shape == (1, 64, 128, 3)
    full = next(iter_frames(tmp_path / "congo.mp4")).rgb
    assert full.shape == (1080, 1920, 3)
    top = cv2.resize(full[:540], (128, 64), interpolation=cv2.INTER_AREA)
    bottom = cv2.resize(full[540:], (128, 64), interpolation=cv2.INTER_AREA)
    err_top = np.abs(clip[0].astype(int) - top).mean()
    assert err_top < 0.5  # same decode, same resize
    assert np.abs(clip[0].astype(int) - bottom).mean() > 5 * err_top + 1  # and not the other eye
    assert split_eye(np.zeros((6, 8, 3)), "left-right").shape == (6, 4, 3)


def test_empty_and_non_360_folders_fail_with_one_line(tmp_path):
    with pytest.raises(Pano360Error, match="no video files"):
        find_videos(tmp_path)
    os.symlink(shared_file("clips/box.mp4"), tmp_path / "box.mp4")
    with pytest.raises(Pano360Error, match="no 360 videos found"):
        find_videos(tmp_path)
    with pytest.raises(Pano360Error, match="not found"):
        find_videos(tmp_path / "missing")


def test_read_erp_clip_seeks_to_the_start_frame_and_pads_the_end(tmp_path):
    frames = _rotating_clip(tmp_path / "r.mp4", "sphere_small.jpg", n=9)
    (video,) = find_videos(tmp_path)
    clip = read_erp_clip(video, 3, 5, 128)
    decoded = np.stack([f.rgb for f in iter_frames(tmp_path / "r.mp4")])
    np.testing.assert_array_equal(clip, decoded[3:8])
    assert np.abs(clip.astype(int) - frames[3:8]).mean() < 3  # H.264 at crf 12
    tail = read_erp_clip(video, 7, 5, 64)
    assert tail.shape == (5, 32, 64, 3)
    np.testing.assert_array_equal(tail[2], tail[4])  # past the end: the last frame repeated
    # A start past the end (an overstated frame count) takes the last frames.
    np.testing.assert_array_equal(read_erp_clip(video, 40, 5, 128), decoded[4:9])


# ---------------------------------------------------------------------------------------------
# Samples: the phone inside the panorama


def test_phone_camera_covers_fov_and_both_orientations():
    gen = np.random.default_rng(3)
    cams = [sample_camera(17, 30.0, 256, gen) for _ in range(60)]
    hfovs = np.array([c.hfov_deg for c in cams])
    assert hfovs.min() >= 30 and hfovs.max() <= 120 and hfovs.max() - hfovs.min() > 60
    portrait = np.array([c.height > c.width for c in cams])
    assert 10 < portrait.sum() < 50
    for c in cams:
        assert c.R.shape == (17, 3, 3)
        np.testing.assert_allclose(c.R @ np.transpose(c.R, (0, 2, 1)), np.broadcast_to(np.eye(3), (17, 3, 3)), atol=1e-9)
    assert view_size(1024, 90.0, False) == (488, 274)  # 1.5 * 1024 * tan(45 deg) / pi = 488.9, even; 16:9
    w, h = view_size(1024, 90.0, True)
    assert w == 488 and h > w


def test_sample_canvas_matches_target_where_seen():
    clip = np.stack([_erp("sechelt.jpg", 256)] * 5)
    s = make_sample(clip, np.random.default_rng(5), fps=30.0, prompt="p", carry_prob=0.0)
    assert s.info["known_frames"] == 0
    assert s.target.shape == s.canvas.shape == (5, 128, 256, 3) and s.mask.shape == (5, 128, 256)
    # The world is the first camera's frame: its optical axis lands at the ERP centre.
    u, v = dirs_to_uv(np.array([0.0, 0.0, 1.0]), 256, 128)
    assert s.mask[0, int(round(float(v))), int(round(float(u)))]
    # Seen pixels are the panorama's own pixels (ERP -> phone -> ERP, two bilinear resamplings).
    for i in range(5):
        seen = s.mask[i]
        assert 0.005 < seen.mean() < 0.6
        err = np.abs(s.canvas[i].astype(int) - s.target[i].astype(int))[seen].mean()
        assert err < 6.0, f"frame {i}: mean error {err:.2f} on seen pixels"
        assert np.all(s.canvas[i][~seen] == 0)
    # The random roll moves the whole sphere: same seed, same sample; other seed, other roll.
    again = make_sample(clip, np.random.default_rng(5), carry_prob=0.0)
    np.testing.assert_array_equal(again.canvas, s.canvas)
    assert make_sample(clip, np.random.default_rng(6), carry_prob=0.0).info["roll_px"] != s.info["roll_px"]


def test_some_samples_start_with_fully_known_frames_like_later_windows():
    clip = np.stack([np.roll(_erp("sphere_small.jpg", 64), 4 * i, axis=1) for i in range(9)])
    gen = np.random.default_rng(0)
    samples = [make_sample(clip, gen) for _ in range(30)]
    known = np.array([s.info["known_frames"] for s in samples])
    assert 3 < np.count_nonzero(known) < 20 and known.max() <= 2  # (9 - 1) / 4
    for s in samples:
        k = s.info["known_frames"]
        assert s.mask[:k].all() and np.array_equal(s.canvas[:k], s.target[:k])
        assert not s.mask[k:].all(axis=(1, 2)).any()  # the rest only where the phone looks


@pytest.mark.parametrize("stereo, axis", [("top-bottom", 0), ("left-right", 1)])
def test_tagged_stereo_video_gives_its_first_eye(tmp_path, stereo, axis):
    from pano360.io.spherical import inject_spherical, read_spherical

    left, right = _erp("sechelt.jpg", 128), _erp("sphere_small.jpg", 128)
    both = np.concatenate([left, right], axis=axis)
    _write_frames(tmp_path / "raw.mp4", [both] * 5)
    (tmp_path / "data").mkdir()
    inject_spherical(tmp_path / "raw.mp4", tmp_path / "data" / "s.mp4", stereo=stereo)  # V1 + V2 boxes
    assert read_spherical(tmp_path / "data" / "s.mp4").stereo == stereo
    (video,) = find_videos(tmp_path / "data")
    assert (video.stereo, video.eye_width, video.eye_height) == (stereo, 128, 64)
    clip = read_erp_clip(video, 1, 1, 128)[0].astype(int)
    assert np.abs(clip - left).mean() < 4 < np.abs(clip - right).mean()


def _write_frames(path, frames):
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, 30, crf=12, preset="ultrafast") as out:
        for f in frames:
            out.write(f)
