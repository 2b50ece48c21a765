"""Which video stream of a file is "the" video: the one every reader, probe and writer uses."""

from __future__ import annotations

import av

__all__ = ["STILL_CODECS", "video_stream"]

# Codecs of pictures, not moving video: a cover image stored as a stream of its own.
STILL_CODECS = {"png", "mjpeg", "jpeg2000", "webp", "bmp", "tiff", "ppm", "pgm", "jpegxl", "qoi"}


def video_stream(container: "av.container.InputContainer") -> "av.video.stream.VideoStream | None":
    """The file's video stream: cover art (an attached picture, or a still-image stream before the
    video, as in some MKVs) is passed over for a moving one; then the default-flagged stream; then
    the first. None when the file has no video stream."""
    streams = list(container.streams.video)
    if not streams:
        return None
    moving = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic]
    moving = [s for s in moving if (s.codec_context.name or "") not in STILL_CODECS] or moving or streams
    default = [s for s in moving if s.disposition & av.stream.Disposition.default]
    return (default or moving)[0]
