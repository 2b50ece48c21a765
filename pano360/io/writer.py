"""Streaming video encoding with PyAV: H.264 (or HEVC), yuv420p, even sizes, the input's audio remuxed."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pano360.errors import Pano360Error

__all__ = ["VideoWriter"]

_CODECS = {"h264": "libx264", "hevc": "libx265"}


class VideoWriter:
    """Encode RGB frames to an MP4 one at a time.

    Use as a context manager; ``write(rgb)`` per frame. ``audio_from`` names a file whose first
    audio stream is copied packet by packet (not re-encoded).
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float | Fraction, codec: str = "h264",
                 crf: int = 18, preset: str = "medium", audio_from: str | Path | None = None) -> None:
        if width % 2 or height % 2:
            raise Pano360Error(f"video size must be even, got {width}x{height}")
        if codec not in _CODECS:
            raise Pano360Error(f"unknown codec {codec!r}; choose one of {', '.join(_CODECS)}")
        self.path = Path(path)
        self._container = av.open(str(self.path), mode="w")
        rate = Fraction(fps).limit_denominator(1001000) if not isinstance(fps, Fraction) else fps
        self._stream = self._container.add_stream(_CODECS[codec], rate=rate)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        if codec == "hevc":
            self._stream.codec_tag = "hvc1"
            self._stream.options["x265-params"] = "log-level=error"
        self._audio_src = None
        self._audio_in = None
        self._audio_out = None
        if audio_from is not None:
            src = av.open(str(audio_from))
            if src.streams.audio:
                self._audio_src = src
                self._audio_in = src.streams.audio[0]
                self._audio_out = self._container.add_stream_from_template(self._audio_in)
            else:
                src.close()

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``(h, w, 3) uint8`` RGB frame."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder, copy the audio, close the file."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        if self._audio_src is not None:
            for packet in self._audio_src.demux(self._audio_in):
                if packet.dts is None:
                    continue
                packet.stream = self._audio_out
                self._container.mux(packet)
            self._audio_src.close()
        self._container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self._container.close()
            finally:
                if self._audio_src is not None:
                    self._audio_src.close()
