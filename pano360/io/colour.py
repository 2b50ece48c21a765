"""A video's colour description (matrix, range, primaries, transfer), and RGB <-> 4:2:0 with its matrix.

Work that stays in the decoder's Y'CbCr planes (compositing, reframing) keeps the input's values,
so the output must carry the input's colour tags for players to show the same colours; and
anything made in RGB (a background, a preview) must cross to and from those planes with the
input's matrix, not a fixed BT.601. swscale (through PyAV) does the conversions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pano360.io.streams import video_stream

__all__ = ["ColourInfo", "frame_colour", "read_colour", "rgb_to_yuv420", "yuv420_to_rgb"]


@dataclass(frozen=True)
class ColourInfo:
    """FFmpeg's enum values (``AVColorSpace``, ``AVColorRange``, ``AVColorPrimaries``,
    ``AVColorTransferCharacteristic``) of a stream; 2 (0 for the range) means unspecified."""

    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2

    @property
    def full_range(self) -> bool:
        """Whether Y' spans 0..255 (JPEG range) instead of 16..235."""
        return self.color_range == 2

    def assumed(self, width: int, height: int) -> "ColourInfo":
        """These tags with the unspecified ones filled in as players assume them for a coded
        picture of ``width x height`` (mpv, VLC and browsers: BT.709 from 1280 wide or over 576
        high, else BT.601, with 625-line primaries at 576 rows). An output of another size than
        its input must carry them: left unspecified, a 640x480 clip's colours turned into a
        4096x2048 video are shown through BT.709 instead of BT.601 (a red 11 levels off)."""
        hd = width >= 1280 or height > 576
        return ColourInfo(
            self.colorspace if self.colorspace != 2 else (1 if hd else 6),
            self.color_range if self.color_range != 0 else 1,
            self.color_primaries if self.color_primaries != 2 else (1 if hd else (5 if height == 576 else 6)),
            self.color_trc if self.color_trc != 2 else (1 if hd else 6),
        )

    def tag(self, codec_context) -> None:
        """Write these tags on an encoder's context before it opens."""
        codec_context.colorspace = self.colorspace
        codec_context.color_primaries = self.color_primaries
        codec_context.color_trc = self.color_trc
        codec_context.color_range = 2 if self.full_range else (1 if self.colorspace != 2 else 0)

    def to_yuv420(self, rgb: np.ndarray) -> np.ndarray:
        """:func:`rgb_to_yuv420` with this matrix and range."""
        return rgb_to_yuv420(rgb, self.colorspace, self.full_range)

    def to_rgb(self, packed: np.ndarray) -> np.ndarray:
        """:func:`yuv420_to_rgb` with this matrix and range."""
        return yuv420_to_rgb(packed, self.colorspace, self.full_range)


def frame_colour(frame: av.VideoFrame) -> ColourInfo:
    """The colour tags of a decoded frame (a ``yuvj`` format counts as full range)."""
    full = int(frame.color_range) == 2 or frame.format.name.startswith("yuvj")
    return ColourInfo(int(frame.colorspace), 2 if full else int(frame.color_range), int(frame.color_primaries),
                      int(frame.color_trc))


def read_colour(path: str | Path) -> ColourInfo:
    """The colour tags of the first video frame of ``path`` (all unspecified if it has none).
    :func:`pano360.io.probe.probe_video` reads them too (``VideoInfo.colour``) without a second open."""
    with av.open(str(path)) as container:
        stream = video_stream(container)
        frame = next(container.decode(stream), None) if stream is not None else None
        return ColourInfo() if frame is None else frame_colour(frame)


def _range(full: bool) -> str:
    return "JPEG" if full else "MPEG"


def rgb_to_yuv420(rgb: np.ndarray, matrix: int = 2, full_range: bool = False) -> np.ndarray:
    """``(h, w, 3) uint8`` RGB (even sizes) to packed yuv420p ``(h * 3 / 2, w)`` with the Y'CbCr
    ``matrix`` (an ``AVColorSpace`` value; 2, unspecified, is BT.601), limited range unless
    ``full_range``. swscale's area filter makes the chroma (3 dB better than OpenCV's I420)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.to_ndarray(format="yuv420p", src_colorspace=matrix, dst_colorspace=matrix, interpolation="AREA",
                            src_color_range="JPEG", dst_color_range=_range(full_range))


def yuv420_to_rgb(packed: np.ndarray, matrix: int = 2, full_range: bool = False) -> np.ndarray:
    """Packed yuv420p ``(h * 3 / 2, w)`` back to ``(h, w, 3) uint8`` RGB (see :func:`rgb_to_yuv420`)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(packed), format="yuv420p")
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, dst_colorspace=matrix,
                            src_color_range=_range(full_range), dst_color_range="JPEG")
