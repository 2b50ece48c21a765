"""Streaming video encoding with PyAV: H.264 (or HEVC), yuv420p, even sizes, the input's audio tracks
remuxed or re-encoded (their checks and AAC settings: :mod:`pano360.io.audio`)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np

from pano360.errors import Pano360Error, UsageError
from pano360.io.audio import aac_settings, decodes_safely, first_samples
from pano360.io.colour import ColourInfo
from pano360.io.streams import video_stream

__all__ = ["VideoWriter", "CODECS", "ENCODER_PRESETS", "MP4_AUDIO_CODECS", "check_encoder_settings", "x264_reproducible_params"]

CODECS = {"h264": "libx264", "hevc": "libx265"}
_CODECS = CODECS
# Audio codecs the MP4 muxer takes and common players play; others are re-encoded to AAC.
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
ENCODER_PRESETS = {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"}


# x264's CPU features (its own names) of every x86 CPU with AVX-512, less AVX-512 itself.
_X264_AVX2_FEATURES = "MMX2,SSE,SSE2,SSE2Fast,SSE3,SSSE3,SSE4.1,SSE4.2,AVX,AVX2,FMA3,BMI1,BMI2,LZCNT,Cache64"


@cache
def x264_reproducible_params() -> str | None:
    """The ``x264-params`` that make x264's output depend on its input only, or None where it does already.

    x264's AVX-512 code reads memory x264 never wrote (seen with PyAV 18.1's libx264; valgrind,
    which has no AVX-512, sees nothing), so on CPUs with AVX-512 the same frames encode to slightly
    different files depending on what the process did before, e.g. an 0.02-0.06 deg spread in the
    tracking error of one rendered test clip. Keeping x264 to its AVX2 code (every AVX-512 CPU has
    the features listed) makes it deterministic at about the same speed at 1080p, 5-10 % slower at 4K.
    """
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return None
    needed = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")  # what x264 calls AVX512
    return f"asm={_X264_AVX2_FEATURES}" if all(f in flags.split() for f in needed) else None


def check_encoder_settings(codec: str, crf: int, preset: str) -> None:
    """Raise UsageError (exit 2) unless the encoder takes these settings (commands check them before any work)."""
    if codec not in CODECS:
        raise UsageError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if not 0 <= int(crf) <= 51:
        raise UsageError(f"crf must be within 0..51, got {crf}")
    if preset not in ENCODER_PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(ENCODER_PRESETS))}")


@dataclass(frozen=True)
class _AudioTrack:
    """One source audio track and where it goes: copied packet by packet, or re-encoded to AAC."""

    src: "av.audio.stream.AudioStream"
    out: "av.audio.stream.AudioStream"
    encode: bool
    shift: int  # the first video frame's time, in the source track's ticks


class VideoWriter:
    """Encode RGB frames to an MP4 one at a time.

    Use as a context manager; ``write(rgb)`` per ``(height, width, 3) uint8`` frame. ``codec`` is
    "h264" (libx264, ``avc1``) or "hevc" (libx265 tagged ``hvc1`` so Apple players and YouTube take
    it); ``crf``/``preset`` go to the encoder; pixels are yuv420p and sizes must be even.
    ``audio_from`` names a file whose audio tracks (all of them, in order) are copied packet by
    packet (remuxed, not re-encoded; re-encoded to AAC only when the codec cannot go in an MP4),
    aligned to that file's first video frame and cut at the end of the written video. ``vfr=True`` keeps each frame's own
    time: ``write(rgb, time_s)``, in ``time_base`` (default 1/90000 s; an input's own, from
    :func:`pano360.io.reader.frame_time_base`, keeps its frames' times exactly), so a clip
    rendered frame for frame from an input plays in step with the input and its audio, however
    irregular the input's frame times (phones lower the rate in the dark; AVI skips frames).
    ``colour`` tags the stream with an input's colour description, for frames given to
    :meth:`write_yuv420` in that input's Y'CbCr (untagged, players guess: BT.601 for SD, BT.709 for
    HD). :meth:`write` converts RGB with BT.601 and says so in the stream (matrix SMPTE 170M,
    limited range, with ``colour``'s primaries and transfer when given).
    ``pixel_aspect`` marks non-square pixels (an input's sample aspect ratio, for frames of its layout).
    ``reproducible=True`` makes two encodes of the same frames the same file, bit for bit (see
    :func:`x264_reproducible_params`); it costs 5-10 % of x264's speed on CPUs with AVX-512.
    Nothing cleans up the file on an error: wrap the path in :func:`pano360.io.atomic.atomic_output`.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float | Fraction, codec: str = "h264",
                 crf: int = 18, preset: str = "medium", audio_from: str | Path | None = None, *,
                 faststart: bool = True, vfr: bool = False, time_base: Fraction | None = None,
                 colour: ColourInfo | None = None, reproducible: bool = False,
                 pixel_aspect: Fraction | None = None) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise Pano360Error(f"video size must be positive and even, got {width}x{height}")
        check_encoder_settings(codec, crf, preset)
        rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001000)
        if rate <= 0:
            raise Pano360Error(f"frame rate must be positive, got {fps}")
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, rate
        self.frames_written = 0
        self._closed = False
        self._audio_src = None
        self._audio_packets = None
        self._pending = None
        self._audio: dict[int, _AudioTrack] = {}  # by the source stream's index
        self.dropped_audio: list[str] = []  # why a source audio track is not in the output
        try:
            self._container = av.open(str(self.path), mode="w", format="mp4",
                                      options={"movflags": "+faststart"} if faststart else {})
        except (av.error.FFmpegError, OSError) as exc:
            raise Pano360Error(f"cannot write {self.path}: {exc}") from None
        try:
            self._stream = self._container.add_stream(CODECS[codec], rate=rate)
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = "yuv420p"
            self._vfr = vfr
            self._time_base = (Fraction(time_base) if time_base else Fraction(1, 90000)) if vfr else 1 / rate
            self._last_pts = -1
            self._last_time = 0.0
            if vfr:
                self._stream.codec_context.time_base = self._time_base
                self._stream.time_base = self._time_base
            options = {"crf": str(int(crf)), "preset": preset}
            if codec == "hevc":
                self._stream.codec_tag = "hvc1"
                options["x265-params"] = "log-level=error"
            elif reproducible and (params := x264_reproducible_params()):
                options["x264-params"] = params
            self._stream.options = options
            # PyAV asks for slice threads by default; x264's frame threads (ffmpeg's own default)
            # encode ~12% more frames per second on 2 cores with the same output size.
            self._stream.codec_context.thread_type = "FRAME"
            if pixel_aspect is not None and pixel_aspect != 1:  # e.g. a squeezed stereo 360 kept as it came
                self._stream.codec_context.sample_aspect_ratio = Fraction(pixel_aspect)
            self._colour = colour
            self._tagged = False
            if audio_from is not None:
                self._open_audio(Path(audio_from))
        except BaseException:
            self._abort()
            raise

    # -- audio ------------------------------------------------------------------------------

    def _open_audio(self, src_path: Path) -> None:
        try:
            src = av.open(str(src_path))
        except (av.error.FFmpegError, OSError) as exc:
            raise Pano360Error(f"cannot read audio from {src_path}: {exc}") from None
        if not src.streams.audio:
            src.close()
            return
        self._audio_src = src
        # The reader puts the first video frame at t = 0: shift the audio the same way.
        start = 0.0
        vs = video_stream(src)
        if vs is not None and vs.start_time is not None:
            start = float(vs.start_time * vs.time_base)
        self._audio_shift = start
        # Every audio track, in order (a phone's second track, a commentary, a second language).
        for ain in src.streams.audio:
            name = ain.codec_context.codec.canonical_name if ain.codec_context.codec else ain.codec_context.name
            if name in MP4_AUDIO_CODECS:
                out, encode = self._container.add_stream_from_template(ain), False
            elif ain.codec_context.codec is None:
                continue  # no decoder for it here (nor can an MP4 hold it): the other tracks still go
            elif not decodes_safely(src_path, ain.index):  # before anything reads its channel layout
                self.dropped_audio.append(f"audio track {ain.index} ({name}) cannot be decoded here (a channel order "
                                          "this build of PyAV mishandles); left out")
                continue
            elif (settings := aac_settings(ain.codec_context)) is None:
                self.dropped_audio.append(f"audio track {ain.index} ({name}, {ain.codec_context.channels} channels) "
                                          "cannot be re-encoded to AAC; left out")
                continue
            else:
                out = self._container.add_stream("aac", rate=settings[0])
                out.layout = settings[1]
                encode = True
            for key in ("language", "title", "handler_name"):  # which track is which, for a player's menu
                if ain.metadata.get(key):
                    out.metadata[key] = ain.metadata[key]
            self._audio[ain.index] = _AudioTrack(ain, out, encode, int(round(start / ain.time_base)))
        if self._audio:
            self._audio_packets = src.demux(*(t.src for t in self._audio.values()))

    def _audio_until(self, t_end: float | None, last: bool = False) -> None:
        """Mux source audio packets up to video time ``t_end`` (None: to the end).

        Tracks are interleaved in the source: a packet past ``t_end`` stops the copy (it waits
        for the next call), except on the ``last`` call, which drops such packets and reads on
        until every track has passed ``t_end``."""
        if self._audio_packets is None:
            return
        passed: set[int] = set()
        while True:
            pkt = self._pending
            self._pending = None
            if pkt is None:
                try:
                    pkt = next(self._audio_packets)
                except (StopIteration, av.error.FFmpegError):
                    self._audio_packets = None
                    return
            track = self._audio.get(pkt.stream.index)
            if track is None or pkt.dts is None or pkt.pts is None:
                continue  # the demuxer's empty flush packet
            tb_in = track.src.time_base
            t = float(pkt.pts * tb_in) - self._audio_shift
            if t + float((pkt.duration or 0) * tb_in) < -0.05:
                continue  # wholly before the first video frame (priming packets ending at 0 stay)
            if t_end is not None and not last and track.encode and t + float((pkt.duration or 0) * tb_in) > t_end:
                self._pending = pkt  # it may run past the video's end: the last call cuts it to the sample
                return
            if t_end is not None and t >= t_end:
                if not last:
                    self._pending = pkt
                    return
                passed.add(pkt.stream.index)
                if len(passed) == len(self._audio):
                    return
                continue
            if track.encode:
                for frame in pkt.decode():
                    # In the output's samples from the first video frame: a track that starts late
                    # stays late (pts None would start it at the video's first frame).
                    rate = track.out.codec_context.sample_rate
                    if frame.pts is not None:
                        frame.pts = int(round((float(frame.pts * frame.time_base) - self._audio_shift) * rate))
                        frame.time_base = Fraction(1, rate)
                        if last and t_end is not None:  # cut at the video's end to the sample, not the packet
                            keep = int(round((t_end - float(frame.pts * frame.time_base)) * frame.sample_rate))
                            if keep <= 0:
                                continue
                            frame = first_samples(frame, keep)
                    for out in track.out.encode(frame):
                        self._container.mux(out)
            else:
                pkt.pts -= track.shift
                pkt.dts -= track.shift
                pkt.stream = track.out
                self._container.mux(pkt)

    # -- video ------------------------------------------------------------------------------

    def write(self, rgb: np.ndarray, time_s: float | None = None) -> None:
        """Encode one ``(height, width, 3) uint8`` RGB frame (at ``time_s`` seconds when ``vfr``)."""
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8, got {rgb.shape} {rgb.dtype}")
        # OpenCV's RGB -> I420 (BT.601 limited range, like libswscale's default) is ~10x faster at
        # 4096x2048 (10 ms vs 111 ms measured) with a slightly lower round-trip error (1.44 vs 1.46).
        self._tag(rgb=True)
        self.write_yuv420(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420), time_s)

    def _tag(self, rgb: bool) -> None:
        """Write the colour tags before the encoder opens (at the first frame)."""
        if self._tagged:
            return
        self._tagged = True
        c = self._colour
        if rgb:  # OpenCV's RGB -> I420 is BT.601 (SMPTE 170M), limited range
            c = ColourInfo(6, 1, c.color_primaries if c else 2, c.color_trc if c else 2)
        if c is not None:
            c.tag(self._stream.codec_context)

    def write_yuv420(self, packed: np.ndarray, time_s: float | None = None) -> None:
        """Encode one packed planar yuv420p frame ``(height * 3 / 2, width) uint8`` (Y, then U, then V)."""
        if self._closed:
            raise Pano360Error(f"writer for {self.path} is closed")
        if packed.shape != (self.height * 3 // 2, self.width) or packed.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height * 3 // 2}, {self.width}) uint8, got {packed.shape} {packed.dtype}")
        if self._vfr:
            if time_s is None:
                raise ValueError("a vfr writer needs each frame's time_s")
            pts = max(int(round(float(time_s) / self._time_base)), self._last_pts + 1)  # strictly increasing
        elif time_s is not None:
            raise ValueError("time_s is only taken by a VideoWriter(..., vfr=True)")
        else:
            pts = self.frames_written
        self._tag(rgb=False)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(packed), format="yuv420p")
        frame.pts = pts
        frame.time_base = self._time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise Pano360Error(f"encoding {self.path} failed: {exc}") from None
        self._last_pts = pts
        self.frames_written += 1
        self._last_time = float(pts * self._time_base) + 1 / float(self.fps)  # end of this frame
        self._audio_until(self._last_time)

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio (up to the video's end), close the file."""
        if self._closed:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            end = self._last_time if self._vfr else self.frames_written / float(self.fps)
            self._audio_until(end, last=True)
            self._audio_packets = None
            for track in self._audio.values():
                if track.encode:
                    for out in track.out.encode(None):
                        self._container.mux(out)
        except av.error.FFmpegError as exc:
            self._abort()
            raise Pano360Error(f"encoding {self.path} failed: {exc}") from None
        self._closed = True
        try:
            self._container.close()
        finally:
            if self._audio_src is not None:
                self._audio_src.close()

    def _abort(self) -> None:
        """Close everything without flushing (the caller removes the partial file)."""
        self._closed = True
        for closer in (getattr(self, "_container", None), self._audio_src):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # noqa: BLE001 - best effort on the error path
                    pass

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()
