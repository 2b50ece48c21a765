"""The field of view a phone wrote into the container, when it wrote one.

Apple writes ``com.apple.quicktime.camera.focal_length.35mm_equivalent`` (an mdta key FFmpeg
exposes as a format tag); other writers use EXIF-like names (``FocalLengthIn35mmFormat``). A
35 mm-equivalent focal length is defined on the 36x24 mm frame's diagonal (43.27 mm), so it
gives the picture's diagonal FOV, and from the picture's aspect its horizontal FOV.

>>> round(hfov_from_35mm(26.0, 1920, 1080), 1)
71.9
"""

from __future__ import annotations

import math
from pathlib import Path

from pano360.project.camera import hfov_from_focal

__all__ = ["hfov_from_35mm", "focal_35mm_from_tags", "hfov_from_metadata"]

_DIAGONAL_35MM = math.hypot(36.0, 24.0)


def hfov_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Horizontal FOV in degrees of a ``width x height`` picture with a 35 mm-equivalent focal length."""
    half_diag = math.atan2(_DIAGONAL_35MM / 2.0, focal_35mm)
    f_px = math.hypot(width, height) / 2.0 / math.tan(half_diag)
    return hfov_from_focal(width, f_px)


def focal_35mm_from_tags(tags: dict[str, str]) -> float | None:
    """A plausible 35 mm-equivalent focal length (8-300 mm) from metadata tags, else None."""
    for key, value in tags.items():
        k = key.lower().replace("_", "").replace(".", "").replace(" ", "")
        if "focal" in k and ("35mm" in k or "35" in k):
            try:
                mm = float(str(value).split()[0].rstrip("m"))
            except (ValueError, IndexError):
                continue
            if 8.0 <= mm <= 300.0:
                return mm
    return None


def hfov_from_metadata(path: str | Path, width: int, height: int) -> float | None:
    """Horizontal FOV from the container's or video stream's tags (``width x height`` upright), else None."""
    import av

    from pano360.io.streams import video_stream

    try:
        with av.open(str(path)) as container:
            tags = dict(container.metadata)
            if (stream := video_stream(container)) is not None:
                tags.update(stream.metadata)
    except (av.error.FFmpegError, OSError):
        return None
    mm = focal_35mm_from_tags(tags)
    return hfov_from_35mm(mm, width, height) if mm is not None else None
