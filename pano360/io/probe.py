"""What a video file is (size, rate, duration, codec, rotation, audio, 360 metadata), and the
one check every command runs on its input video: :func:`validate_video_input`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from pano360.errors import Pano360Error, UsageError
from pano360.io import mp4box
from pano360.io.colour import ColourInfo, frame_colour
from pano360.io.streams import STILL_CODECS, video_stream
from pano360.io.reader import writer_time_base
from pano360.io.spherical import SphericalInfo, read_spherical

__all__ = ["VideoInfo", "probe_video", "validate_video_input"]

# Demuxers that read still images (a .png/.jpg opens as a one-frame "video").
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe",
                  "pgm_pipe", "ppm_pipe", "jpegxl_pipe", "qoi_pipe", "dpx_pipe", "exr_pipe", "svg_pipe")
_MP4_SUFFIXES = {".mp4", ".m4v", ".mov", ".3gp"}
_MP4_BRANDS = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pnot"}


@dataclass(frozen=True)
class VideoInfo:
    """A probed video. ``width``/``height`` are upright (display rotation applied, what
    :func:`pano360.io.reader.iter_frames` yields); ``coded_*`` as stored. ``rotation_deg`` is the
    display rotation, counter-clockwise, in {0, 90, 180, 270}. ``frame_count`` is the container's
    count when it stores one, else ``round(duration_s * fps)`` (``frame_count_exact`` says which).
    ``colour`` holds the first frame's colour tags and ``frame_time_base`` the time base to write
    its frames in (as :func:`~pano360.io.colour.read_colour` and
    :func:`~pano360.io.reader.frame_time_base`, which open the file again)."""

    path: Path
    container: str
    size_bytes: int
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation_deg: int
    fps: Fraction
    duration_s: float
    frame_count: int
    frame_count_exact: bool
    codec: str
    pix_fmt: str
    bit_depth: int
    has_audio: bool
    audio_codec: str | None
    spherical: SphericalInfo | None
    colour: ColourInfo = ColourInfo()
    frame_time_base: Fraction = Fraction(1, 90000)
    pixel_aspect: Fraction = Fraction(1)  # the sample aspect ratio (width : height of one pixel)
    audio_codecs: tuple[str, ...] = ()  # every audio track's codec, in order (audio_codec: the first)
    interlaced: bool = False  # its first frame is coded as two fields

    @property
    def picture_caveats(self) -> list[str]:
        """Warnings about what an 8-bit, progressive output does not keep of this input."""
        out = []
        if self.interlaced:
            out.append("the input is interlaced: its two fields are taken as one picture, so moving edges comb "
                       "(deinterlace it first, e.g. ffmpeg -vf bwdif)")
        if self.bit_depth > 8:
            hdr = {16: "HDR (PQ)", 18: "HDR (HLG)"}.get(self.colour.color_trc)
            out.append(f"the input is {self.bit_depth}-bit{' ' + hdr if hdr else ''} and the output 8-bit" +
                       (" with its HDR tags: smooth gradients may band, and YouTube takes only 10-bit HDR as HDR"
                        if hdr else ": smooth gradients may band"))
        return out

    @property
    def is_360(self) -> bool:
        """Carries 360 metadata (whatever its projection)."""
        return self.spherical is not None

    @property
    def non_square_pixels(self) -> str | None:
        """A warning when the pixels are not square (anamorphic DV, some cameras), else None: the
        geometry takes pixels as square, so such a clip's FOV and rotations come out wrong."""
        if self.pixel_aspect == 1:
            return None
        a = self.pixel_aspect
        return (f"the input's pixels are not square (aspect {a.numerator}:{a.denominator}) and are taken as "
                f"square: its field of view and rotations will be off (make them square first, e.g. "
                f"ffmpeg -vf scale=iw*sar:ih,setsar=1)")

    @property
    def stereo(self) -> str:
        """The stereo layout its 360 metadata declares ("top-bottom", "left-right"), else "none"."""
        return self.spherical.stereo if self.spherical is not None else "none"

    def to_dict(self) -> dict:
        """JSON-ready dict (fps as a float plus its exact fraction)."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["fps"] = float(self.fps)
        d["fps_fraction"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["spherical"] = self.spherical.to_dict() if self.spherical is not None else None
        d["frame_time_base"] = f"{self.frame_time_base.numerator}/{self.frame_time_base.denominator}"
        d["pixel_aspect"] = f"{self.pixel_aspect.numerator}:{self.pixel_aspect.denominator}"
        d["is_360"] = self.is_360
        return d


def _pixel_aspect(stream: av.video.stream.VideoStream) -> Fraction:
    """A stream's sample aspect ratio; 1 where it is square or not given (0:1)."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not sar or sar.numerator <= 0 or sar.denominator <= 0:
        return Fraction(1)
    return Fraction(sar.numerator, sar.denominator)


def _check_file(path: Path) -> int:
    if not path.exists():
        hint = " (reading from standard input is not supported: save the stream to a file first)" if str(path) == "-" else ""
        raise UsageError(f"input not found: {path}{hint}")
    if path.is_dir():
        raise UsageError(f"input is a folder, not a video file: {path}")
    if not path.is_file():  # a pipe, /dev/stdin, <(...): read twice (probe, then decode), so it must be a file
        raise UsageError(f"input must be a regular file, not a pipe or device (save the stream to a file first): {path}")
    size = path.stat().st_size
    if size == 0:
        raise Pano360Error(f"input is an empty file (0 bytes): {path}")
    return size


def _check_mp4_structure(path: Path, size: int) -> None:
    """For MP4-like files, a whole box structure: catches a cut-off download before decoding."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] not in _MP4_BRANDS:
        return
    seen: set[bytes] = set()
    try:
        with open(path, "rb") as f:
            for box in mp4box.iter_top_level(f, size):
                seen.add(box.type)
    except mp4box.Mp4Error as exc:
        if not {b"moov", b"mdat"} <= seen:  # junk after a whole moov + mdat is harmless
            raise Pano360Error(f"truncated or damaged MP4 ({exc}): {path}") from None
    if b"moov" not in seen:
        raise Pano360Error(f"truncated or damaged MP4 (no moov index box): {path}")


def _ebml_vint(data: bytes, pos: int) -> tuple[int | None, int]:
    """An EBML variable-size integer at ``pos``: (value, or None for "unknown size"; its length)."""
    first = data[pos]
    length = 9 - first.bit_length()  # the leading zero bits say how many bytes follow
    if length > 8 or pos + length > len(data):
        raise ValueError("bad EBML size")
    value = first & (0xFF >> length)
    for b in data[pos + 1: pos + length]:
        value = value << 8 | b
    return (None if value == (1 << (7 * length)) - 1 else value), length


def _check_matroska_size(path: Path, size: int) -> None:
    """For MKV/WebM, a Segment that ends where it says: catches a cut-off copy before decoding
    (FFmpeg decodes what is there without a word). Live recordings of unknown size pass."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return
    try:
        header, n = _ebml_vint(head, 4)
        pos = 4 + n + (header or 0)
        if head[pos: pos + 4] != b"\x18\x53\x80\x67":  # the Segment
            return
        segment, n = _ebml_vint(head, pos + 4)
    except (ValueError, IndexError):
        return  # not a layout this check knows: FFmpeg's own probe decides
    if segment is not None and pos + 4 + n + segment > size:
        raise Pano360Error(f"truncated or damaged Matroska file (it ends at byte {size} of its "
                           f"{pos + 4 + n + segment}): {path}")


def _count_packets(path: Path) -> tuple[float, int]:
    """Duration and frame count of the first video stream from its packets (no decoding), for
    containers whose header holds neither: one read through the file."""
    count, end = 0, 0.0
    try:
        with av.open(str(path)) as container:
            stream = video_stream(container)
            for pkt in container.demux(stream):
                if pkt.size and pkt.pts is not None:
                    count += 1
                    end = max(end, float((pkt.pts + (pkt.duration or 0)) * stream.time_base))
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    except av.error.FFmpegError:
        return 0.0, 0
    return max(0.0, end - start), count


def _rate(stream) -> Fraction | None:
    rates = [Fraction(r.numerator, r.denominator) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate)
             if r is not None and r > 0]
    if len(rates) >= 2 and rates[0] > 2 * rates[1]:
        return rates[1]  # raw DV's average is its 60000 Hz clock: the guessed 29.97 is the picture rate
    return rates[0] if rates else None


def _codec_name(stream) -> str:
    """The codec's canonical name (``mp3``, not the decoder's ``mp3float``)."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def _bit_depth(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    try:
        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, IndexError, av.error.FFmpegError):
        return 8


def probe_video(path: str | Path) -> VideoInfo:
    """Probe a video file: opens it and decodes its first frame (for the display rotation and to
    prove it decodes). Raises Pano360Error with one line when it is not a readable video."""
    path = Path(path)
    size = _check_file(path)
    _check_mp4_structure(path, size)
    _check_matroska_size(path, size)
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError:
        raise Pano360Error(f"not a video file (unknown or damaged format): {path}") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise Pano360Error(f"cannot open video {path}: {exc}") from None
    with container:
        fmt = container.format.name
        stream = video_stream(container)
        if stream is None:
            kinds = sorted({s.type for s in container.streams})
            what = "audio-only file" if "audio" in kinds else "file without a video stream"
            raise Pano360Error(f"{what}, no video to read: {path}")
        codec = _codec_name(stream)
        if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe") or (codec in STILL_CODECS and (stream.frames or 0) <= 1
                                                             and not stream.duration):
            raise Pano360Error(f"still image, not a video ({codec}): {path}")
        audio = container.streams.audio[0] if container.streams.audio else None
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise Pano360Error(f"cannot decode the first frame of {path}: {exc}") from None
        if first is None:
            raise Pano360Error(f"video stream has no decodable frames: {path}")
        rotation = int(round(first.rotation or 0)) % 360
        if rotation not in (0, 90, 180, 270):
            raise Pano360Error(f"unsupported display rotation of {rotation} degrees: {path}")
        coded_w, coded_h = first.width, first.height
        pix_fmt = stream.codec_context.pix_fmt or first.format.name
        fps = _rate(stream)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            # The container's span starts at its first packet of any stream: a video that starts
            # later (MKV, video offset by 0.5 s) lasts that much less.
            late = 0.0
            if stream.start_time is not None and stream.time_base is not None:
                late = float(stream.start_time * stream.time_base) - (container.start_time or 0) / 1_000_000
            duration = container.duration / 1_000_000 - max(late, 0.0)
        else:
            duration = 0.0
        if fps is None:
            fps = Fraction(30)
        frames = int(stream.frames or 0)
        if duration <= 0 and not frames:  # a live recording (MKV from a pipe, OBS) says neither
            duration, frames = _count_packets(path)
        # An AVI's count is of its index entries, the empty ones of dropped frames included
        # (tree.avi: 444 entries, 68 pictures): its non-empty packets are counted instead.
        if fmt == "avi":
            frames = _count_packets(path)[1]
        exact = frames > 0
        if exact and duration > 0 and frames > duration * float(fps) * 1.02 + 2:
            # An edit list (a clip cut with -c copy) plays a part of the samples the count includes.
            exact = False
        if not exact:
            frames = max(1, int(round(duration * float(fps))))
        width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
        info = VideoInfo(
            path=path, container=fmt, size_bytes=size, width=width, height=height,
            coded_width=coded_w, coded_height=coded_h, rotation_deg=rotation, fps=fps,
            duration_s=duration, frame_count=frames, frame_count_exact=exact, codec=codec,
            pix_fmt=pix_fmt, bit_depth=_bit_depth(pix_fmt), has_audio=audio is not None,
            audio_codec=_codec_name(audio) if audio is not None else None,
            spherical=None, colour=frame_colour(first), frame_time_base=writer_time_base(stream.time_base),
            pixel_aspect=_pixel_aspect(stream), interlaced=bool(first.interlaced_frame),
            audio_codecs=tuple(_codec_name(a) for a in container.streams.audio),
        )
    spherical = read_spherical(path) if fmt.startswith("mov") else None
    if spherical is not None:
        info = VideoInfo(**{**info.__dict__, "spherical": spherical})
    return info


def validate_video_input(path: str | Path, *, require_equirectangular: bool = False) -> VideoInfo:
    """Check a command's input video and return its :class:`VideoInfo`.

    One-line UsageError (exit 2) for a missing path or a folder; Pano360Error (exit 1) for an
    empty file, a file that is no video (text named .mp4, a still image), an audio-only file, a
    truncated MP4, a video that does not decode. With ``require_equirectangular`` (commands that
    take a 360 video) also for a mesh/cubemap/partial 360 video, and for a video with no 360
    metadata whose frame is not 2:1 (a 2:1 frame without metadata is taken as equirectangular).
    """
    info = probe_video(path)
    if require_equirectangular:
        sph = info.spherical
        if sph is not None and not sph.supported:
            raise Pano360Error(f"{sph.reason}: {info.path}")
        if sph is None and abs(info.width - 2 * info.height) > 2:
            raise Pano360Error(f"not an equirectangular 360 video (no 360 metadata and {info.width}x{info.height} "
                               f"is not 2:1): {info.path}")
    return info
