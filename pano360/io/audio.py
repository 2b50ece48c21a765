"""Audio tracks on their way into an MP4: which can be decoded here, what AAC settings hold them,
and cutting a decoded frame to the video's end."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import av
import numpy as np

__all__ = ["aac_settings", "decodes_safely", "first_samples"]


# AAC's channel layouts by channel count, for sources whose layout has no name ("2 channels").
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@cache
def _aac_opens(rate: int, layout: str) -> bool:
    cc = av.CodecContext.create("aac", "w")
    cc.sample_rate, cc.layout, cc.format = rate, layout, "fltp"
    try:
        cc.open()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


_DECODE_CHECK = """
import sys, av
with av.open(sys.argv[1]) as c:
    s = c.streams[int(sys.argv[2])]
    n = 0
    for pkt in c.demux(s):
        n += len(pkt.decode())
        if n >= 4:
            break
    s.codec_context.layout.name, s.codec_context.layout.name
"""


def decodes_safely(path: str | Path, stream_index: int) -> bool:
    """Whether PyAV decodes audio stream ``stream_index`` of ``path`` without dying, tried in a
    child process: PyAV 18 frees a custom channel order (multichannel PCM in a MOV, e.g. 7.1 as
    FL+FR+FC+LFE+SL+SR+BL+BR) twice and takes the whole process down (SIGABRT), with no exception
    to catch; in this process even reading ``codec_context.channels`` twice does it. ~0.3 s, paid
    only for tracks that must be re-encoded."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", _DECODE_CHECK, str(path), str(stream_index)],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def aac_settings(source: "av.audio.codeccontext.AudioCodecContext") -> tuple[int, str] | None:
    """The (sample rate, layout) to re-encode ``source`` to AAC with, or None where AAC cannot hold it.

    The source's own when the encoder takes them; else its channel count's usual layout (PCM in
    AVI or MKV often has an unnamed "2 channels") and 48 kHz for rates AAC has no table for."""
    layout = source.layout.name if source.layout else ""
    channels = source.channels or (source.layout.nb_channels if source.layout else 0)
    rate = source.sample_rate or 48000
    for lay in dict.fromkeys(x for x in (layout, _AAC_LAYOUTS.get(channels)) if x):
        for r in dict.fromkeys((rate, 48000)):
            if _aac_opens(r, lay):
                return r, lay
    return None


def first_samples(frame: "av.AudioFrame", n: int) -> "av.AudioFrame":
    """``frame`` cut to its first ``n`` samples (itself when it has no more): a large packet
    (ADPCM, PCM in AVI) may run 0.1 s past the video's end."""
    if n >= frame.samples:
        return frame
    arr = frame.to_ndarray()
    width = n if frame.format.is_planar else n * frame.layout.nb_channels  # packed: samples interleaved
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr[:, :width]), format=frame.format.name,
                                     layout=frame.layout.name)
    out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
    return out
