"""Streaming video decoding with PyAV: upright RGB frames with their presentation times."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from pano360.errors import Pano360Error

__all__ = ["Frame", "iter_frames"]


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``rgb (h, w, 3) uint8`` upright (display rotation applied), its index in
    presentation order and its presentation time in seconds."""

    index: int
    time_s: float
    rgb: np.ndarray


def _upright(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, as FFmpeg's display matrix reports it)."""
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


def iter_frames(path: str | Path, max_width: int | None = None) -> Iterator[Frame]:
    """Decode a video one frame at a time (never the whole clip in memory).

    Frames come upright (the container's display rotation applied) as 8-bit RGB; with
    ``max_width`` they are downscaled (area filter) so that the upright width is at most that.
    """
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise Pano360Error(f"cannot open video {path}: {exc}") from None
    with container:
        if not container.streams.video:
            raise Pano360Error(f"no video stream in {path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        t0 = None
        try:
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                rgb = _upright(rgb, getattr(frame, "rotation", 0) or 0)
                if max_width is not None and rgb.shape[1] > max_width:
                    h = int(round(rgb.shape[0] * max_width / rgb.shape[1]))
                    rgb = cv2.resize(rgb, (max_width, h), interpolation=cv2.INTER_AREA)
                t = frame.time if frame.time is not None else index / float(stream.average_rate or 30)
                if t0 is None:
                    t0 = t
                yield Frame(index=index, time_s=float(t - t0), rgb=rgb)
                index += 1
        except av.error.FFmpegError as exc:
            raise Pano360Error(f"cannot decode {path} at frame {index}: {exc}") from None
