"""Render a flat shot from a 360 video along a virtual camera path, frame by frame, in YUV 4:2:0.

The work stays in the decoder's planes (luma at full size, chroma at half size each way), as
ffmpeg's ``v360`` does, so no RGB conversion runs at 4K. Decoding, table building + remapping
and encoding overlap on three threads (OpenCV, numpy and PyAV release the GIL).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from pano360.canvas import yuv420_planes
from pano360.errors import Pano360Error
from pano360.io.probe import VideoInfo, probe_video
from pano360.io.reader import Yuv420, iter_yuv420
from pano360.io.stereo import split_eye_yuv420
from pano360.io.writer import VideoWriter
from pano360.project.viewmap import coarse_nodes, sample, sample_yuv420_coarse, view_map
from pano360.prefetch import prefetch

__all__ = ["CameraFn", "render_yuv420", "reframe_video", "ReframeResult",
           "fixed_camera", "keyframe_camera", "follow_camera", "adjusted_camera"]

# times (N,) seconds -> (R (N, 3, 3) camera to world, hfov (N,) degrees)
CameraFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

_BLACK = (16, 128, 128)  # limited-range black in Y, U, V


def render_yuv420(frame: Yuv420, R: np.ndarray, hfov_deg: float, projection: str, width: int, height: int,
                  step: int = 16) -> tuple[np.ndarray, bool]:
    """Render one view of a 4:2:0 ERP frame: the packed ``(h * 3 / 2, w)`` yuv420p array, and
    whether its table had to be built exactly (see :func:`pano360.project.viewmap.view_map`)."""
    if step > 1 and step % 2:
        raise ValueError(f"the coarse table step must be even for 4:2:0, got {step}")
    # Any aspect: a stereo eye may be stored squeezed (congo.mp4: 1920x540 per eye).
    erp_h, erp_w = frame.y.shape
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    y, u, v = yuv420_planes(out, height)  # remapped straight into the packed frame
    nodes = coarse_nodes(R, hfov_deg, projection, width, height, erp_w, erp_h, step) if step > 1 else None
    if nodes is not None:
        sample_yuv420_coarse((frame.y, frame.u, frame.v), nodes, step, (y, u, v))
        return out, False
    luma, chroma = view_map(R, hfov_deg, projection, width, height, erp_w, erp_h, step=1, chroma=True)
    sample(frame.y, luma, _BLACK[0], out=y)
    sample(frame.u, chroma, _BLACK[1], out=u)
    sample(frame.v, chroma, _BLACK[2], out=v)
    return out, luma.exact


@dataclass(frozen=True)
class ReframeResult:
    """What :func:`reframe_video` wrote."""

    frames: int
    width: int
    height: int
    fps: float
    exact_tables: int  # frames whose table was built exactly (a pole in view)


def reframe_video(src: str | Path, dst: str | Path, camera: CameraFn, projection: str, width: int, height: int, *,
                  crf: int = 18, preset: str = "medium", codec: str = "h264", audio: bool = True,
                  max_frames: int | None = None, step: int = 16, stereo: str = "none",
                  on_frame: Callable[[int], None] | None = None, info: VideoInfo | None = None,
                  warn: Callable[[str], None] | None = None) -> ReframeResult:
    """Reframe the ERP video ``src`` into ``dst`` (written directly: wrap in ``atomic_output``).

    A stereo video (``stereo`` "top-bottom" or "left-right", as its metadata says) is reframed
    from its left eye: a flat shot has one picture.

    ``camera(times)`` gives each frame's rotation (camera to world, the ERP's frame) and FOV.
    Three stages overlap, each on its own thread: decoding, rendering (one OpenCV thread while it
    runs) and encoding (x264's own threads). The output carries the input's colour tags
    (its planes pass through in the input's Y'CbCr). ``info``: ``src``'s probe, when the caller
    has one (each open of a 4K video costs ~0.1 s).
    """
    exact = 0

    def render(f: Yuv420) -> tuple[np.ndarray, bool, float]:
        R, hfov = camera(np.array([f.time_s]))
        if stereo != "none":
            f = replace(f, **dict(zip("yuv", split_eye_yuv420(f.y, f.u, f.v, stereo))))
        return (*render_yuv420(f, R[0], float(hfov[0]), projection, width, height, step), f.time_s)

    threads = cv2.getNumThreads()
    # Rendering has a thread of its own beside the decoder and x264, which keep the other cores
    # busy: OpenCV's own workers would only add their spin-waits.
    cv2.setNumThreads(1)
    rendered = None
    try:
        # Decoding and rendering start now, while the writer opens its file (and the audio).
        rendered = prefetch(map(render, prefetch(iter_yuv420(src, max_frames))))
        info = info if info is not None else probe_video(src)
        # Each frame keeps the input frame's time: a variable-rate input stays in step with its audio.
        with VideoWriter(dst, width, height, info.fps, codec=codec, crf=crf, preset=preset,
                         audio_from=src if audio and info.has_audio else None, vfr=True,
                         time_base=info.frame_time_base,
                         colour=info.colour.assumed(info.coded_width, info.coded_height)) as writer:
            for packed, was_exact, time_s in rendered:
                exact += was_exact
                writer.write_yuv420(packed, time_s)
                if on_frame is not None:
                    on_frame(writer.frames_written)
            frames = writer.frames_written
            for w in writer.dropped_audio if warn is not None else ():
                warn(w)
    finally:
        if rendered is not None:
            rendered.close()  # stops both threads when the writer fails
        cv2.setNumThreads(threads)
    if frames == 0:
        raise Pano360Error(f"no frames decoded from {src}")
    return ReframeResult(frames=frames, width=width, height=height, fps=float(info.fps), exact_tables=exact)


# -- virtual camera paths -------------------------------------------------------------------------


def fixed_camera(R: np.ndarray, hfov_deg: float) -> CameraFn:
    """A camera that never moves: rotation ``R (3, 3)`` and FOV at every time."""
    R = np.asarray(R, dtype=np.float64)

    def camera(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(times)
        return np.broadcast_to(R, (n, 3, 3)).copy(), np.full(n, float(hfov_deg))

    return camera


def keyframe_camera(keyframes: list, interpolation: str = "smooth") -> CameraFn:
    """The keyframed camera of :mod:`pano360.post.keyframes`."""
    from pano360.post.keyframes import KeyframePath

    return KeyframePath(keyframes, interpolation)


def follow_camera(traj) -> CameraFn:
    """Replay a :class:`~pano360.trajectory.Trajectory` (SLERP between its frames, clamped at the
    ends, as ``project.rotation.interpolate_rotations``): reframing ``convert``'s output along the
    clip's own trajectory gives the clip back."""
    from scipy.spatial.transform import Rotation, Slerp

    t = np.asarray(traj.time_s, dtype=np.float64)
    slerp = Slerp(t, Rotation.from_matrix(traj.R)) if len(t) > 1 else None  # built once, not per frame

    def camera(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        times = np.asarray(times, dtype=np.float64)
        if slerp is None:
            R = np.repeat(traj.R[:1], len(times), axis=0)
        else:
            R = slerp(np.clip(times, t[0], t[-1])).as_matrix()
        return R, np.full(len(times), traj.hfov_deg)

    return camera


def adjusted_camera(camera: CameraFn, R_offset: np.ndarray | None = None, hfov_deg: float | None = None) -> CameraFn:
    """``camera`` turned by ``R_offset`` in its own frame (``R @ R_offset``) and/or with its FOV replaced."""

    def adjusted(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        R, hfov = camera(times)
        if R_offset is not None:
            R = R @ R_offset
        if hfov_deg is not None:
            hfov = np.full(len(hfov), float(hfov_deg))
        return R, hfov

    return adjusted
