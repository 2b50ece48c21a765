"""The training videos: find the 360 videos under a folder, and read an ERP clip from one.

A video is used when its Spherical Video metadata (V1 or V2, read by
:func:`pano360.io.spherical.read_spherical`) says full-sphere equirectangular, mono or stereo
(top-bottom / left-right: the left eye, the top or left half, is kept), or when it has no 360
metadata and is 2:1 (a mono ERP that was never tagged). Anything else is skipped with a warning.
A caption is the text of ``<video stem>.txt`` beside the video, else the empty prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pano360.errors import Pano360Error
from pano360.io.folders import VIDEO_SUFFIXES, walk_files
from pano360.io.stereo import split_eye

__all__ = ["VIDEO_SUFFIXES", "TrainVideo", "find_videos", "read_erp_clip"]

_ASPECT_TOL = 0.02


@dataclass(frozen=True)
class TrainVideo:
    """One usable 360 video: ``stereo`` in {"none", "top-bottom", "left-right"}; ``frame_count`` and
    ``fps`` as probed; ``eye_width``/``eye_height`` the size of one eye in pixels."""

    path: Path
    stereo: str
    frame_count: int
    fps: float
    eye_width: int
    eye_height: int
    caption: str = ""


def _caption(video: Path) -> str:
    txt = video.with_suffix(".txt")
    if txt.is_file():
        return " ".join(txt.read_text(encoding="utf-8", errors="replace").split())
    return ""


def _classify(path: Path) -> tuple[TrainVideo | None, str]:
    """``(video, "")`` when usable, else ``(None, why not)``."""
    from pano360.io.probe import probe_video

    try:
        info = probe_video(path)
    except Pano360Error as exc:
        return None, str(exc)
    sph = info.spherical
    if sph is not None:
        if not sph.supported:
            return None, sph.reason
        stereo = sph.stereo
    elif abs(info.width - 2 * info.height) <= _ASPECT_TOL * info.width:
        stereo = "none"  # untagged 2:1 video: a mono ERP
    else:
        return None, f"no 360 metadata and not 2:1 ({info.width}x{info.height})"
    w, h = info.width, info.height
    if stereo == "top-bottom":
        h //= 2
    elif stereo == "left-right":
        w //= 2
    return TrainVideo(path, stereo, int(info.frame_count), float(info.fps), w, h, _caption(path)), ""


def find_videos(data_dir: str | Path, warn=None) -> list[TrainVideo]:
    """Every usable 360 video under ``data_dir`` (recursively, symlinked folders too, sorted by path).

    ``warn(message)`` is called once per skipped video. Raises ``Pano360Error`` when the folder is
    missing, holds no video files, or none of them is a usable 360 video.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise Pano360Error(f"training data folder not found: {root}")
    files = sorted(p for p in walk_files(root) if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise Pano360Error(f"no video files in {root} (looked for {', '.join(VIDEO_SUFFIXES)})")
    found, skipped = [], []
    for path in files:
        video, why = _classify(path)
        if video is None:
            skipped.append(path.name)
            if warn is not None:
                warn(f"skipping {path}: {why}")
        else:
            found.append(video)
    if not found:
        raise Pano360Error(f"no 360 videos found in {root}: {len(skipped)} video(s) skipped, none equirectangular")
    return found


def read_erp_clip(video: TrainVideo, start: int, n_frames: int, width: int) -> np.ndarray:
    """Frames ``start .. start + n_frames - 1`` of ``video`` as ERP ``(n_frames, width/2, width, 3) uint8``.

    One eye of a stereo video; resized with an area filter. The decoder seeks to the last keyframe
    before ``start`` and decodes from there. A clip running past the end repeats the last frame; a
    ``start`` past the end (a container that overstates its frame count) takes the last frames.
    """
    if width % 2:
        raise ValueError(f"width must be even, got {width}")
    out, n = _decode_clip(video, start, n_frames, width)
    if n == 0 and start > 0:  # the container overstated its length: take the clip's last frames
        out, n = _decode_clip(video, max(0, _count_frames(video.path) - n_frames), n_frames, width)
    if n == 0:
        raise Pano360Error(f"no frames at or after frame {start} in {video.path}")
    out[n:] = out[n - 1]
    return out


def _decode_clip(video: TrainVideo, start: int, n_frames: int, width: int) -> tuple[np.ndarray, int]:
    """``(frames (n_frames, width/2, width, 3), how many were read)`` from frame ``start`` on."""
    from pano360.io.reader import iter_frames

    out = np.empty((n_frames, width // 2, width, 3), np.uint8)
    n = 0
    for fr in iter_frames(video.path, max_frames=n_frames, start_s=start / video.fps):
        out[n] = cv2.resize(split_eye(fr.rgb, video.stereo), (width, width // 2), interpolation=cv2.INTER_AREA)
        n += 1
    return out, n


def _count_frames(path: Path) -> int:
    """Video packets in the file: its true frame count, read without decoding."""
    import av

    from pano360.io.streams import video_stream

    with av.open(str(path)) as container:
        stream = video_stream(container)
        return sum(1 for packet in container.demux(stream) if packet.size)
