"""The input check shared by reframe, stabilize and metrics: a readable mono equirectangular video."""

from __future__ import annotations

from pathlib import Path

from pano360.errors import Pano360Error

__all__ = ["check_erp_video"]


def check_erp_video(path: str | Path):
    """Validate a command's 360 input and return its ``VideoInfo`` (``pano360.io.probe``).

    One-line Pano360Error for anything ``validate_video_input`` refuses, a mesh/cubemap/cropped
    or stereo 360 video, and a frame that is not 2:1 (W = 2H).
    """
    from pano360.io.probe import validate_video_input

    info = validate_video_input(path, require_equirectangular=True)
    sph = info.spherical
    if sph is not None and sph.stereo not in ("none",):
        raise Pano360Error(f"stereo ({sph.stereo}) 360 video is not supported, only mono equirectangular: {path}")
    if info.width != 2 * info.height:
        raise Pano360Error(f"not an equirectangular video: {info.width}x{info.height} is not 2:1: {path}")
    return info
