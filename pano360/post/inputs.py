"""The input check shared by reframe, stabilize and metrics: a readable mono equirectangular video."""

from __future__ import annotations

from pathlib import Path

from pano360.errors import Pano360Error

__all__ = ["check_erp_video", "note_untagged", "decode_width", "first_eye"]


def check_erp_video(path: str | Path, allow_stereo: bool = False):
    """Validate a command's 360 input and return its ``VideoInfo`` (``pano360.io.probe``).

    One-line Pano360Error for anything ``validate_video_input`` refuses, a mesh/cubemap/cropped
    or (unless ``allow_stereo``) stereo 360 video, and a mono frame that is not 2:1 (W = 2H).
    A 2:1 video without Spherical Video metadata is taken as mono equirectangular (see
    :func:`note_untagged`).
    """
    from pano360.io.probe import validate_video_input

    info = validate_video_input(path, require_equirectangular=True)
    sph = info.spherical
    if sph is not None and sph.stereo not in ("none",):
        if allow_stereo and sph.stereo in ("top-bottom", "left-right"):
            return info
        raise Pano360Error(f"stereo ({sph.stereo}) 360 video is not supported, only mono equirectangular: {path}")
    if info.width != 2 * info.height:
        raise Pano360Error(f"not an equirectangular video: {info.width}x{info.height} is not 2:1: {path}")
    return info


def note_untagged(info, quiet: bool = False) -> None:
    """Say (on stderr, unless ``quiet``) that an input without 360 metadata is taken as mono
    equirectangular: a flat 2:1 shot passes :func:`check_erp_video` too. Commands call it once
    their checks have passed, so that an error stays one line."""
    if info.spherical is None:
        from pano360.console import note

        note("note: no 360 metadata in the input; its 2:1 frames are taken as mono equirectangular "
             "(pano360 tag adds the metadata)", quiet)


def decode_width(eye_width: int, stereo: str) -> int:
    """The width to decode a ``stereo`` video at for one eye to be ``eye_width`` wide (a
    left-right frame holds both eyes side by side; a top-bottom one is as wide as its eyes)."""
    return eye_width * (2 if stereo == "left-right" else 1)


def first_eye(rgb, stereo: str):
    """The left eye of a stereo frame (top half for top-bottom, left half for left-right), stretched
    back to 2:1 when the layout squeezed it; a mono frame is returned as is."""
    import cv2

    from pano360.io.stereo import split_eye

    if stereo not in ("top-bottom", "left-right"):
        return rgb
    eye = split_eye(rgb, stereo)
    w = eye.shape[1] - eye.shape[1] % 2
    if eye.shape[:2] != (w // 2, w):
        eye = cv2.resize(eye, (w, w // 2), interpolation=cv2.INTER_LINEAR)
    return eye
