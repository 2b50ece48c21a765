"""Stabilise a 360 video: measure its rotation on the sphere, choose the path the output should
have (a smoother from :mod:`pano360.post.smoothing`, optionally levelled), and re-orient every
frame by its correction (``project.remap.rotate_erp``), as Gyroflow separates motion, smoothing
and rendering."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from pano360.canvas import yuv420_planes
from pano360.console import frame_list
from pano360.errors import Pano360Error
from pano360.io.probe import VideoInfo
from pano360.io.reader import iter_frames
from pano360.io.stereo import split_eye_yuv420
from pano360.post.inputs import decode_width, first_eye
from pano360.post.smoothing import level_path, smooth_lock, smooth_plain
from pano360.post.sphere_motion import SphereTracker
from pano360.project.remap import rotate_erp_table, sample_erp_table
from pano360.project.rotation import check_rotations, interpolate_rotations
from pano360.slam.level import level_rotation
from pano360.trajectory import Trajectory

__all__ = ["estimate_video_rotations", "target_path", "render_corrected", "MODES"]

MODES = ("lock", "smooth")


def estimate_video_rotations(path: str | Path, analysis_width: int = 960, max_frames: int | None = None,
                             on_frame: Callable[[int], None] | None = None, stereo: str = "none",
                             warn: Callable[[str], None] | None = None) -> Trajectory:
    """Every frame's rotation (camera to world = frame 0's camera) of an ERP video, measured on
    gray frames downscaled to ``analysis_width`` (:mod:`pano360.post.sphere_motion`); on the left
    eye of a stereo video (both eyes turn together).

    Frames that could not be measured (black, blank) get rotations interpolated between their
    measured neighbours; ``warn`` hears which, and where tracking had to start again."""
    tracker = None
    times, Rs, inl = [], [], []
    width = height = 0
    for f in iter_frames(path, max_width=decode_width(analysis_width, stereo)):
        if max_frames is not None and f.index >= max_frames:
            break
        gray = first_eye(cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY), stereo)  # a squeezed eye gets its rows back
        if tracker is None:
            # The tracker wants 2:1 (a mono frame downscaled to an odd size may be a pixel off).
            width = gray.shape[1] - gray.shape[1] % 2
            height = width // 2
            tracker = SphereTracker(width, height, generator=np.random.default_rng(0))
        if gray.shape != (height, width):
            gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_LINEAR)
        R, n = tracker.update(f.index, gray)
        times.append(f.time_s)
        Rs.append(R)
        inl.append(n)
        if on_frame is not None:
            on_frame(len(Rs))
    if not Rs:
        raise Pano360Error(f"no frames decoded from {path}")
    times_a, R = np.array(times), np.stack(Rs)
    lost = np.zeros(len(R), bool)
    lost[tracker.lost] = True  # the tracker's indices are the decoded frames', one per row here
    if lost.all():
        raise Pano360Error(f"cannot measure the rotation of {path}: none of its {len(R)} frames has anything "
                           "to track (black or blank)")
    if lost.any():
        R[lost] = interpolate_rotations(times_a[~lost], R[~lost], times_a[lost])
    if warn is not None:
        if tracker.lost:
            warn(f"{frame_list(tracker.lost)}: nothing to track (black, blank or a fade); rotations interpolated")
        if tracker.restarts:
            warn(f"{frame_list(tracker.restarts)}: the view matched nothing before it (a cut to another scene?); "
                 "rotations from there on continue from the frame before and may be off")
    return Trajectory(time_s=times_a, R=R, hfov_deg=360.0, width=width, height=height,
                      inliers=np.array(inl), source=Path(path).name)


def target_path(traj: Trajectory, mode: str = "lock", smooth_s: float = 0.5,
                up_world: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The orientation ``S (N, 3, 3)`` (camera to world) each output frame should have, and the
    camera path ``R`` in the same (possibly levelled) world: ``corrections(R, S)`` re-orients.

    ``lock``: frame 0's orientation throughout; ``smooth``: the path smoothed with time constant
    ``smooth_s``. With ``up_world`` (the world's up direction) the path is expressed in the levelled
    world and keeps only its heading, so the horizon is level in every output frame.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    R = traj.R
    if up_world is not None:
        R = level_rotation(up_world) @ R
    moved = Trajectory(traj.time_s, R, traj.hfov_deg, traj.width, traj.height, traj.inliers, traj.source)
    S = (smooth_lock(moved) if mode == "lock" else smooth_plain(moved, smooth_s)).R
    if up_world is not None:
        S = level_path(S)
    return S, R


def _rotate_yuv420(frame, M: np.ndarray, stereo: str = "none") -> np.ndarray:
    """Re-orient one 4:2:0 ERP frame (``project.remap.rotate_erp_table`` per plane; the chroma
    planes are ERPs of half the size) into a packed yuv420p array; each eye of a stereo frame
    alike (an eye may be stored squeezed, e.g. 1920x540)."""
    h, w = frame.y.shape
    out = np.empty((h * 3 // 2, w), dtype=np.uint8)
    y, u, v = yuv420_planes(out, h)
    eyes = [((frame.y, frame.u, frame.v), (y, u, v))]
    if stereo != "none":
        eyes = [(split_eye_yuv420(frame.y, frame.u, frame.v, stereo, eye), split_eye_yuv420(y, u, v, stereo, eye))
                for eye in ("left", "right")]
        if sum(e[0][0].size for e in eyes) != frame.y.size:  # a frame not divisible by 4: its last rows/columns stay
            for d, plane in zip((y, u, v), (frame.y, frame.u, frame.v)):
                d[:] = plane
    for src, dst in eyes:
        eh, ew = src[0].shape
        luma = rotate_erp_table(M, ew, eh, any_aspect=True)
        chroma = rotate_erp_table(M, ew // 2, eh // 2, any_aspect=True)
        for d, plane, table in zip(dst, src, (luma, chroma, chroma)):
            d[:] = sample_erp_table(np.ascontiguousarray(plane), table, any_aspect=True)
    return out


def render_corrected(src: str | Path, dst: str | Path, M: np.ndarray, info: VideoInfo, *, crf: int = 18,
                     preset: str = "medium", audio: bool = True, workers: int = 2, on_frame: Callable[[int], None] | None = None,
                     stereo: str = "none", warn: Callable[[str], None] | None = None) -> int:
    """Re-orient frame i of the ERP video ``src`` by ``M[i]`` (``rotate_erp``'s rule) into ``dst``;
    returns the frame count. Frames past ``len(M)`` reuse the last correction; both eyes of a
    ``stereo`` video turn by the same. Works on the decoder's 4:2:0 planes (no RGB round trip),
    rendering on ``workers`` threads while encoding. ``info``: ``src``'s probe (rate, time base,
    colour tags, audio), so that the writer needs no further open of the input. ``warn`` hears of
    what is not kept (an audio track no MP4 codec can hold)."""
    from concurrent.futures import ThreadPoolExecutor

    from pano360.io.reader import iter_yuv420
    from pano360.io.writer import VideoWriter

    M = check_rotations(M)
    written = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        writer = None
        try:
            for f in iter_yuv420(src):
                if writer is None:
                    h, w = f.y.shape
                    # Each frame keeps the input frame's time (a variable-rate input stays in step with its audio).
                    # The planes pass through in the input's Y'CbCr: its colour tags go with them.
                    writer = VideoWriter(dst, w, h, info.fps, crf=crf, preset=preset, vfr=True, time_base=info.frame_time_base,
                                         audio_from=src if audio and info.has_audio else None, colour=info.colour.assumed(info.coded_width, info.coded_height),
                                         pixel_aspect=info.pixel_aspect)
                pending.append((pool.submit(_rotate_yuv420, f, M[min(f.index, len(M) - 1)], stereo), f.time_s))
                while len(pending) > workers + 1:
                    job, time_s = pending.popleft()
                    writer.write_yuv420(job.result(), time_s)
                    written += 1
                    if on_frame is not None:
                        on_frame(written)
            while pending:
                job, time_s = pending.popleft()
                writer.write_yuv420(job.result(), time_s)
                written += 1
                if on_frame is not None:
                    on_frame(written)
        except BaseException:
            if writer is not None:
                writer.__exit__(Exception, None, None)
            raise
        if writer is None:
            raise Pano360Error(f"no frames decoded from {src}")
        writer.close()
    for w in writer.dropped_audio if warn is not None else ():
        warn(w)
    return written
