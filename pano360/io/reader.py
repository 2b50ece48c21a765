"""Streaming video decoding with PyAV: upright RGB frames (or 4:2:0 planes) with their presentation times."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from pano360.errors import Pano360Error
from pano360.io.streams import video_stream

__all__ = ["Frame", "Yuv420", "frame_time_base", "iter_frames", "iter_gray", "iter_gray_sampled", "iter_yuv420", "upright",
           "writer_time_base"]


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``rgb (h, w, 3) uint8`` upright (display rotation applied), its index in
    presentation order and its presentation time in seconds (0 at the first frame)."""

    index: int
    time_s: float
    rgb: np.ndarray


def upright(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, as FFmpeg's display matrix and
    ``VideoFrame.rotation`` report it): 90 turns the stored picture a quarter turn
    counter-clockwise, so its top-left corner lands bottom-left, as ``ffmpeg`` autorotates."""
    r = int(round(rotation_deg)) % 360
    if r == 0:
        return rgb
    if r == 90:
        return cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if r == 180:
        return cv2.rotate(rgb, cv2.ROTATE_180)
    if r == 270:
        return cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
    raise Pano360Error(f"unsupported display rotation of {rotation_deg} degrees")


_upright = upright  # old private name


# High-bit-depth YUV goes to its 8-bit twin first: swscale's direct 10-bit YUV -> rgb24 path
# smears chroma (mean error 6.4 vs 0.0 on a lossless 10-bit testsrc2, measured with PyAV 18.1).
_EIGHT_BIT_TWIN = {"yuv420p": "yuv420p", "yuv422p": "yuv422p", "yuv444p": "yuv444p", "p010": "yuv420p",
                   "p016": "yuv420p", "p210": "yuv422p", "p410": "yuv444p", "nv20": "yuv422p"}


def _to_rgb(frame: av.VideoFrame, max_width: int | None = None) -> np.ndarray:
    """8-bit RGB of any source format, 10- and 12-bit included, stored (not yet upright).

    With ``max_width`` (of the upright picture) swscale scales (area filter) in the same pass as
    the colour conversion: a 1080p frame to ~640 px costs a fraction of converting it at full
    size and resizing after.
    """
    name = frame.format.name
    if name not in ("yuv420p", "yuvj420p", "rgb24") and frame.format.components[0].bits > 8:
        for prefix, twin in _EIGHT_BIT_TWIN.items():
            if name.startswith(prefix):
                frame = frame.reformat(format=twin)
                break
    sideways = int(round(frame.rotation or 0)) % 180 == 90
    upright_w, upright_h = (frame.height, frame.width) if sideways else (frame.width, frame.height)
    if max_width is None or upright_w <= max_width:
        return frame.to_ndarray(format="rgb24")
    h = max(1, int(round(upright_h * max_width / upright_w)))
    w, h = (h, max_width) if sideways else (max_width, h)
    return frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")


class _BestEffortTime:
    """A decoded frame's presentation time in seconds, as FFmpeg's ``best_effort_timestamp`` guesses it.

    Some files carry wrong presentation stamps (``box.mp4`` of the shared clips: every other
    frame's stamp is two frames early, while the pictures come out in the right order). Like
    libavcodec's ``guess_correct_pts``, the stamps that have run backwards less often win: the
    presentation stamps normally, the decoding stamps when those are the sane ones.
    """

    def __init__(self, time_base: Fraction | None) -> None:
        self._tb = time_base
        self._last_pts = self._last_dts = None
        self._faulty_pts = self._faulty_dts = 0

    def of(self, frame: av.VideoFrame) -> float | None:
        pts, dts = frame.pts, frame.dts
        if pts is not None:
            self._faulty_pts += self._last_pts is not None and pts <= self._last_pts
            self._last_pts = pts
        if dts is not None:
            self._faulty_dts += self._last_dts is not None and dts <= self._last_dts
            self._last_dts = dts
        stamp = pts if pts is not None and (self._faulty_pts <= self._faulty_dts or dts is None) else dts
        tb = self._tb or frame.time_base
        return None if stamp is None or tb is None else float(stamp * tb)


def _decoded(path: str | Path, max_frames: int | None, start_s: float = 0.0,
             threads: int = 0) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """The one decode loop: ``(index, time_s, frame)`` in presentation order, ``time_s`` from 0.

    With ``start_s > 0`` it seeks to the last keyframe before that time and yields from the first
    frame at or after it (``time_s`` and ``index`` still counted from the stream's start; nothing
    when the stream ends before it). ``threads`` is the decoder's thread count (0: FFmpeg's choice).
    """
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise Pano360Error(f"input not found: {path}") from None
    except IsADirectoryError:
        raise Pano360Error(f"input is a folder, not a video file: {path}") from None
    except av.error.InvalidDataError:
        raise Pano360Error(f"not a video file (unknown or damaged format): {path}") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise Pano360Error(f"cannot open video {path}: {exc}") from None
    with container:
        stream = video_stream(container)
        if stream is None:
            raise Pano360Error(f"no video stream in {path}")
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        index = 0
        yielded = 0
        t0 = None
        last_t = None
        seeking = start_s > 0 and stream.time_base is not None
        try:
            if seeking:
                t0 = float((stream.start_time or 0) * stream.time_base)
                container.seek(int(start_s / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True)
            times = _BestEffortTime(stream.time_base)
            for frame in container.decode(stream):
                t = times.of(frame)
                if t is None or (last_t is not None and t <= last_t):
                    # No usable stamp (none, or one that runs backwards): continue on the nominal rate.
                    t = (last_t + 1.0 / rate) if last_t is not None else (t0 or 0.0)
                if t0 is None:
                    t0 = t
                last_t = t
                if seeking:
                    if t - t0 < start_s - 0.5 / rate:
                        continue
                    if yielded == 0:
                        index = int(round((t - t0) * rate))
                yield index, t - t0, frame
                index += 1
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise Pano360Error(f"cannot decode {path} at frame {index} (damaged or truncated): {exc}") from None
        if last_t is None:
            raise Pano360Error(f"no decodable video frames in {path}")


def frame_time_base(path: str | Path) -> Fraction:
    """A time base in which every frame time of ``path``'s video is a whole number of ticks
    (:func:`writer_time_base` of its video stream's). :func:`pano360.io.probe.probe_video` gives
    the same as ``VideoInfo.frame_time_base`` without a second open."""
    with av.open(str(path)) as container:
        stream = video_stream(container)
        return writer_time_base(stream.time_base if stream is not None else None)


def writer_time_base(stream_time_base: Fraction | None) -> Fraction:
    """The time base to write a video frame for frame: the stream's own when that is ``1/N``
    (MP4, MOV, MKV), else 1/90000 s (AVI counts frames in units such as 66667/1000000 s, which no
    MP4 track can hold). For a :class:`VideoWriter` with ``vfr=True``."""
    tb = stream_time_base
    if tb is not None and tb.numerator == 1 and 0 < tb.denominator <= 10**7:
        return Fraction(tb)
    return Fraction(1, 90000)


def iter_frames(path: str | Path, max_width: int | None = None, *, max_frames: int | None = None,
                every: int = 1, start_s: float = 0.0) -> Iterator[Frame]:
    """Decode a video one frame at a time (never the whole clip in memory).

    Frames come upright (the container's display rotation applied) as 8-bit RGB whatever the
    source's bit depth; with ``max_width`` they are downscaled (area filter) so that the upright
    width is at most that. ``time_s`` is the frame's presentation time (``frame.time``, so
    variable-rate clips keep their real timing) minus the first frame's. ``max_frames`` stops early.
    With ``every = k`` only frames whose index is a multiple of ``k`` are converted and yielded
    (the others are still decoded, as they must be, but never turned into RGB). ``start_s`` seeks:
    frames begin at that time (indices and times still count from the start; none when the clip
    is shorter).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    for index, t, frame in _decoded(path, max_frames, start_s):
        if index % every:
            continue
        rotation = int(round(frame.rotation or 0)) % 360
        yield Frame(index=index, time_s=t, rgb=upright(_to_rgb(frame, max_width), rotation))


def iter_gray(path: str | Path, size: tuple[int, int] | None = None, *,
              max_frames: int | None = None, threads: int = 0) -> Iterator[tuple[int, float, np.ndarray]]:
    """Upright 8-bit luma frames ``(index, time_s, gray (h, w))``, at the upright ``size = (w, h)``.

    Luma is scaled (area filter) straight from the decoder's plane, skipping a full-size RGB
    frame. ``threads`` is the decoder's thread count (0: FFmpeg's choice; 1 spends the least CPU
    when the consumer is slower than one thread decodes anyway).
    """
    for index, t, frame in _decoded(path, max_frames, threads=threads):
        yield index, t, _to_gray(frame, size)


# 8-bit formats whose first plane is luma. Luma goes to 0-255 (limited range, 16-235, stretched as
# swscale's "gray" output does) in 8.8 fixed point, so that scaling averages before anything is
# rounded: rounding first, then stretching, would leave steps in smooth gradients (sky, water)
# that the tracker takes for texture.
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"})
_LUMA_TO_FIXED = {False: np.clip(np.round((np.arange(256) - 16) * 255 / 219 * 256), 0, 255 * 256).astype(np.uint16),
                  True: (np.arange(256) * 256).astype(np.uint16)}


def _to_gray(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """Upright 8-bit full-range luma, at the upright ``size = (w, h)`` when given (area filter)."""
    rotation = int(round(frame.rotation or 0)) % 360
    w, h = (frame.width, frame.height) if size is None else (size[1], size[0]) if rotation in (90, 270) else size
    name = frame.format.name
    if name in _LUMA_FIRST:
        # The decoder's luma plane, scaled by OpenCV: half of what swscale's gray conversion costs.
        p = frame.planes[0]
        luma = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
        full = name.startswith("yuvj") or int(frame.color_range) == 2
        if (w, h) == (p.width, p.height):
            gray = cv2.convertScaleAbs(cv2.LUT(luma, _LUMA_TO_FIXED[full]), alpha=1 / 256) if not full else luma.copy()
        else:
            fixed = cv2.resize(cv2.LUT(luma, _LUMA_TO_FIXED[full]), (w, h), interpolation=cv2.INTER_AREA)
            gray = cv2.convertScaleAbs(fixed, alpha=1 / 256)
    elif size is None:
        gray = frame.to_ndarray(format="gray")
    else:
        gray = frame.to_ndarray(format="gray", width=w, height=h, interpolation="AREA")
    return upright(gray, rotation)


def iter_gray_sampled(path: str | Path, size: tuple[int, int], every: int, rgb_width: int, *,
                      max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray, np.ndarray | None]]:
    """:func:`iter_gray` that also gives every ``every``-th frame as upright RGB at most ``rgb_width``
    wide (``None`` for the others): one decode for a job that tracks the clip and then samples it.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    for index, t, frame in _decoded(path, max_frames):
        rgb = None
        if index % every == 0:
            rgb = upright(_to_rgb(frame, rgb_width), int(round(frame.rotation or 0)) % 360)
        yield index, t, _to_gray(frame, size), rgb


@dataclass(frozen=True)
class Yuv420:
    """One decoded frame as 8-bit 4:2:0 planes: ``y (H, W)``, ``u, v (H/2, W/2)`` uint8, upright."""

    index: int
    time_s: float
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # yuvj420p is yuv420p in full range: the same planes, kept as they are (the range is the
    # input's, see io.colour.read_colour); anything else becomes 8-bit yuv420p.
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    # Views of the decoder's buffers (rows may be padded to line_size); they keep the frame alive.
    y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes[:3])
    rotation = int(round(frame.rotation or 0)) % 360
    if rotation:
        y, u, v = (upright(p, rotation) for p in (y, u, v))
    return y, u, v


def iter_yuv420(path: str | Path, max_frames: int | None = None) -> Iterator[Yuv420]:
    """Decode a video as upright 8-bit 4:2:0 planes (no RGB conversion; for 4K 360 work), streaming.

    The values are the input's own Y'CbCr (its matrix and range: :func:`pano360.io.colour.read_colour`)."""
    for index, t, frame in _decoded(path, max_frames):
        if frame.width % 2 or frame.height % 2:
            raise Pano360Error(f"video size must be even, got {frame.width}x{frame.height}: {path}")
        yield Yuv420(index, t, *_planes(frame))
