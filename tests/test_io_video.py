"""Video reading and writing: display rotation, 10-bit sources, variable frame rate, codecs, audio remux,
clean aborts, probing."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pano360.errors import Pano360Error
from pano360.io.atomic import atomic_output
from pano360.io.probe import probe_video, validate_video_input
from pano360.io.reader import iter_frames
from pano360.io.writer import VideoWriter
from conftest import shared_file

W, H = 64, 32


def _pattern() -> np.ndarray:
    """64x32 frame: black, a white 8x8 block at the stored top-left corner."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:8, :8] = 255
    return img


def _encode(path: Path, frames, rate=10, codec="libx264", pix_fmt="yuv420p", rotation=None, pts=None,
            time_base=None, options=None) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        s.options = options or {"preset": "ultrafast", "qp": "0"} if codec == "libx264" else (options or {})
        if time_base is not None:
            s.codec_context.time_base = time_base
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None:
                f.pts = pts[i]
                f.time_base = time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _ffprobe(path: Path, entries: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_entries", entries, str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# Where the stored top-left block must appear once upright: FFmpeg's rotation is counter-clockwise.
@pytest.mark.parametrize("rotation, shape, corner", [
    (90, (W, H), "bottom-left"), (180, (H, W), "bottom-right"), (270, (W, H), "top-right"), (0, (H, W), "top-left"),
])
def test_portrait_display_rotation_decodes_upright(tmp_path, rotation, shape, corner):
    clip = _encode(tmp_path / "rot.mp4", [_pattern()] * 3, rotation=rotation)
    frames = list(iter_frames(clip))
    assert len(frames) == 3
    rgb = frames[0].rgb
    assert rgb.shape[:2] == shape
    ys, xs = np.nonzero(rgb[..., 0] > 128)
    cy, cx = ys.mean() / rgb.shape[0], xs.mean() / rgb.shape[1]
    assert corner == ("top" if cy < 0.5 else "bottom") + "-" + ("left" if cx < 0.5 else "right")
    # same picture as ffmpeg's own autorotation
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(rgb.shape), rgb)
    info = probe_video(clip)
    assert (info.height, info.width) == shape and info.rotation_deg == rotation
    assert (info.coded_width, info.coded_height) == (W, H)
    small = next(iter_frames(clip, max_width=shape[1] // 2)).rgb
    assert small.shape[:2] == (shape[0] // 2, shape[1] // 2)


def test_ten_bit_hevc_to_uint8(tmp_path):
    rng = np.random.default_rng(3)
    base = np.kron(rng.integers(0, 255, (4, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    ten = _encode(tmp_path / "ten.mp4", [base] * 3, codec="libx265", pix_fmt="yuv420p10le",
                  options={"x265-params": "lossless=1:log-level=error", "preset": "ultrafast"})
    eight = _encode(tmp_path / "eight.mp4", [base] * 3)
    info = probe_video(ten)
    assert info.codec == "hevc" and info.bit_depth == 10 and info.pix_fmt == "yuv420p10le"
    a = next(iter_frames(ten)).rgb
    b = next(iter_frames(eight)).rgb
    assert a.dtype == np.uint8 and a.shape == (H, W, 3)
    # lossless 10-bit vs lossless 8-bit of the same picture. Measured: mean 0.69, max 4 levels apart
    # (RGB->YUV rounding at 10 vs 8 bits); swscale's direct 10-bit -> rgb24 path: mean 6.6, max 82.
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.mean() < 1.5 and diff.max() <= 8
    assert np.abs(a.astype(int) - base.astype(int)).mean() < 5  # 4:2:0 chroma loss only (8-bit: 3.97)


def test_variable_frame_rate_timestamps(tmp_path):
    pts_ms = [0, 40, 100, 110, 200, 450]
    frames = [np.full((H, W, 3), 20 * i, np.uint8) for i in range(len(pts_ms))]
    clip = _encode(tmp_path / "vfr.mp4", frames, rate=25, pts=pts_ms, time_base=Fraction(1, 1000))
    times = [f.time_s for f in iter_frames(clip)]
    assert np.allclose(times, np.array(pts_ms) / 1000, atol=1e-3), times
    assert [f.index for f in iter_frames(clip, max_frames=2)] == [0, 1]


def test_truncated_mid_stream_is_one_clear_error(tmp_path):
    rng = np.random.default_rng(4)
    clip = _encode(tmp_path / "long.mp4", [rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(20)])
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(Pano360Error, match="truncated"):
        validate_video_input(cut)


def test_truncated_matroska_is_one_clear_error_and_a_live_one_passes(tmp_path):
    whole, live = tmp_path / "whole.mkv", tmp_path / "live.mkv"
    make = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=2", "-c:v", "libx264",
            "-preset", "ultrafast", "-f", "matroska"]
    subprocess.run([*make, str(whole)], check=True)
    live.write_bytes(subprocess.run([*make, "-"], check=True, capture_output=True).stdout)  # unknown size
    for path in (whole, live):  # the live one's header says no duration: its packets are counted
        info = validate_video_input(path)
        assert info.frame_count == 20 and abs(info.duration_s - 2.0) < 1e-6
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(Pano360Error, match=rf"truncated or damaged Matroska file \(it ends at byte {len(cut.read_bytes())} "
                                           rf"of its {len(data)}\)"):
        validate_video_input(cut)


@pytest.mark.parametrize("codec, tag", [("h264", "avc1"), ("hevc", "hvc1")])
def test_writer_codecs_and_audio_remux(tmp_path, codec, tag):
    src = tmp_path / "src.mp4"
    # a source with AAC audio, made by ffmpeg (as a phone clip would have)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=2", "-f", "lavfi",
                    "-i", "sine=f=440:d=2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
                    str(src)], check=True)
    out = tmp_path / f"out_{codec}.mp4"
    with VideoWriter(out, W, H, Fraction(10), codec=codec, crf=23, preset="ultrafast", audio_from=src) as w:
        for f in iter_frames(src, max_frames=10):
            w.write(f.rgb)
    probe = _ffprobe(out, "stream=codec_type,codec_name,codec_tag_string,pix_fmt,width,height,nb_frames")
    video = [s for s in probe["streams"] if s["codec_type"] == "video"][0]
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"][0]
    assert (video["codec_name"], video["codec_tag_string"], video["pix_fmt"]) == (codec, tag, "yuv420p")
    assert (video["width"], video["height"], int(video["nb_frames"])) == (W, H, 10)
    assert audio["codec_name"] == "aac"
    with av.open(str(src)) as a, av.open(str(out)) as b:
        pa = [bytes(p) for p in a.demux(audio=0) if p.size]
        pb = [bytes(p) for p in b.demux(audio=0) if p.size]
    # remuxed, not re-encoded: the first second of packets is byte-identical
    assert 40 <= len(pb) < len(pa) and pb == pa[: len(pb)]
    info = probe_video(out)
    assert info.has_audio and info.fps == 10 and info.frame_count == 10


def test_writer_reencodes_pcm_to_aac(tmp_path):
    src = tmp_path / "pcm.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=1", "-f", "lavfi",
                    "-i", "sine=d=1", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
                    str(src)], check=True)
    out = tmp_path / "o.mp4"
    with VideoWriter(out, W, H, 10, preset="ultrafast", audio_from=src) as w:
        for f in iter_frames(src):
            w.write(f.rgb)
    info = probe_video(out)
    assert info.audio_codec == "aac" and info.frame_count == 10


def test_writer_keeps_every_audio_track(tmp_path):
    # Two tracks (a phone's main track and a second one a camera or an editor added), the
    # second one PCM, which an MP4 cannot hold; the video is cut to 1 s of the source's 2 s.
    src = tmp_path / "two.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=2", "-f", "lavfi",
                    "-i", "sine=f=440:d=2", "-f", "lavfi", "-i", "sine=f=880:d=2", "-map", "0", "-map", "1",
                    "-map", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a:0", "aac", "-c:a:1",
                    "pcm_s16le", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", str(src)],
                   check=True)
    out = tmp_path / "o.mp4"
    with VideoWriter(out, W, H, 10, preset="ultrafast", audio_from=src) as w:
        for f in iter_frames(src, max_frames=10):
            w.write(f.rgb)
    probe = _ffprobe(out, "stream=codec_type,codec_name,duration:stream_tags=language")
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    assert [a["codec_name"] for a in audio] == ["aac", "aac"]
    assert [a["tags"]["language"] for a in audio] == ["eng", "fra"]  # copied and re-encoded tracks alike
    for a in audio:  # both cut at the video's end (AAC frames are 1024 samples: ~23 ms)
        assert abs(float(a["duration"]) - 1.0) < 0.05
    with av.open(str(src)) as a, av.open(str(out)) as b:
        pa = [bytes(p) for p in a.demux(audio=0) if p.size]
        pb = [bytes(p) for p in b.demux(audio=0) if p.size]
    assert 40 <= len(pb) < len(pa) and pb == pa[: len(pb)]  # the first track still copied as it was
    info = probe_video(out)
    assert info.audio_codecs == ("aac", "aac")


def _onsets(path: Path) -> list[float]:
    """Each audio track's first loud sample, in seconds of the file's own timeline (pts)."""
    with av.open(str(path)) as c:
        n = len(c.streams.audio)
    onsets = []
    for i in range(n):
        with av.open(str(path)) as c:
            for frame in c.decode(c.streams.audio[i]):
                x = np.abs(frame.to_ndarray().astype(np.float64))
                x = x.max(axis=0) if x.ndim > 1 else x
                loud = np.nonzero(x > 0.05 * (32767 if frame.format.name.startswith("s16") else 1))[0]
                if len(loud):
                    onsets.append(float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate)
                    break
    return onsets


def test_writer_reencodes_unnamed_layouts_rates_and_late_starts(tmp_path):
    # PCM in MKV has an unnamed "2 channels" layout that AAC does not take; 192 kHz has no AAC
    # table; a track that starts 1 s after the video must start 1 s after it in the output too.
    src = tmp_path / "odd.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=3",
                    "-itsoffset", "1", "-f", "lavfi", "-i", "sine=f=500:d=1.5",
                    "-f", "lavfi", "-i", "sine=f=800:d=3:sample_rate=192000",
                    "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "pcm_s16le", "-ac", "2", str(src)], check=True)
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.layout.name == "2 channels"
    out = tmp_path / "o.mp4"
    with VideoWriter(out, W, H, 10, preset="ultrafast", audio_from=src) as w:
        for f in iter_frames(src):
            w.write(f.rgb)
    assert w.dropped_audio == []
    probe = _ffprobe(out, "stream=codec_type,codec_name,sample_rate,channel_layout")
    audio = [(a["codec_name"], a["sample_rate"], a["channel_layout"]) for a in probe["streams"] if a["codec_type"] == "audio"]
    assert audio == [("aac", "44100", "stereo"), ("aac", "48000", "stereo")]
    late, early = _onsets(out)
    assert abs(late - 1.0) < 0.01 and abs(early) < 0.01


def test_a_reencoded_track_ends_with_the_video_to_the_sample(tmp_path):
    # ADPCM in AVI comes in large packets (8192 bytes: ~0.19 s): cut at the packet, the sound ran
    # 0.23 s past a 2 s video.
    src = tmp_path / "adpcm.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=25:d=2", "-f", "lavfi",
                    "-i", "sine=d=3", "-map", "0", "-map", "1", "-c:v", "mpeg4", "-c:a", "adpcm_ms",
                    "-block_size", "8192", str(src)], check=True)
    out = tmp_path / "o.mp4"
    with VideoWriter(out, W, H, 25, preset="ultrafast", audio_from=src) as w:
        for f in iter_frames(src):
            w.write(f.rgb)
    probe = _ffprobe(out, "stream=codec_type,duration")
    durations = {s["codec_type"]: float(s["duration"]) for s in probe["streams"]}
    assert durations["video"] == 2.0 and abs(durations["audio"] - 2.0) < 0.001, durations


def test_writer_leaves_out_a_track_aac_cannot_hold(tmp_path):
    src = tmp_path / "many.mkv"  # 12 channels: more than AAC's 8
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=1", "-f", "lavfi",
                    "-i", "sine=d=1", "-f", "lavfi", "-i", "aevalsrc=" + "|".join(["0.1*sin(440*2*PI*t)"] * 12) + ":d=1",
                    "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a:0", "libvorbis", "-c:a:1", "pcm_s16le", str(src)], check=True)
    out = tmp_path / "o.mp4"
    with VideoWriter(out, W, H, 10, preset="ultrafast", audio_from=src) as w:
        for f in iter_frames(src):
            w.write(f.rgb)
    assert len(w.dropped_audio) == 1 and "12 channels" in w.dropped_audio[0]
    assert probe_video(out).audio_codecs == ("aac",)


def test_a_track_pyav_cannot_decode_is_left_out_not_a_crash(tmp_path):
    # 7.1 PCM in a MOV comes back in a custom channel order that PyAV 18 frees twice (SIGABRT).
    src = tmp_path / "eight.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=1", "-f", "lavfi",
                    "-i", "sine=d=1", "-f", "lavfi", "-i", "aevalsrc=0.1*sin(2*PI*500*t):s=48000:c=7.1:d=1",
                    "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a:0", "aac", "-c:a:1", "pcm_s16le", str(src)], check=True)
    out = tmp_path / "o.mp4"
    with VideoWriter(out, W, H, 10, preset="ultrafast", audio_from=src) as w:
        for f in iter_frames(src):
            w.write(f.rgb)
    if w.dropped_audio:  # PyAV 18.1: left out with a word; a fixed PyAV keeps it
        assert w.dropped_audio == ["audio track 2 (pcm_s16le) cannot be decoded here (a channel order this build "
                                   "of PyAV mishandles); left out"]
    assert probe_video(out).audio_codecs == ("aac",) * (2 - len(w.dropped_audio))


def test_writer_rejects_bad_settings(tmp_path):
    for kwargs, word in [({"width": 63}, "even"), ({"codec": "vp9"}, "codec"), ({"crf": 70}, "crf"),
                         ({"preset": "warp"}, "preset")]:
        args = {"width": W, "height": H, "fps": 10, **kwargs}
        with pytest.raises(Pano360Error, match=word):
            VideoWriter(tmp_path / "x.mp4", **args)
    with VideoWriter(tmp_path / "y.mp4", W, H, 10, preset="ultrafast") as w:
        with pytest.raises(ValueError, match=r"\(32, 64, 3\)"):
            w.write(np.zeros((H, W + 2, 3), np.uint8))
        w.write(np.zeros((H, W, 3), np.uint8))


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_abort_leaves_no_file(tmp_path, exc):
    target = tmp_path / "out.mp4"
    with pytest.raises(exc):
        with atomic_output(target) as tmp:
            with VideoWriter(tmp, W, H, 10, preset="ultrafast") as w:
                for _ in range(5):
                    w.write(np.zeros((H, W, 3), np.uint8))
                raise exc()
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_output_not_its_hidden_temporary_file(tmp_path):
    from pano360.io.spherical import spherical_output

    for context in (atomic_output, spherical_output):
        target = tmp_path / "out.mp4"
        with pytest.raises(Pano360Error) as caught:
            with context(target) as tmp:
                raise Pano360Error(f"encoding {tmp} failed: Invalid argument")
        assert str(caught.value) == f"encoding {target} failed: Invalid argument"
        assert list(tmp_path.iterdir()) == []


def test_probe_real_clips():
    box = probe_video(shared_file("clips/box.mp4"))  # audio is stream 0, video stream 1
    assert (box.width, box.height, box.codec, box.audio_codec) == (640, 480, "h264", "mp3")
    assert box.frame_count == 456 and box.frame_count_exact and abs(box.duration_s - 15.184) < 0.01
    assert box.spherical is None and not box.is_360
    avi = probe_video(shared_file("clips/tree.avi"))
    assert (avi.codec, avi.width, avi.height, avi.has_audio) == ("cinepak", 320, 240, False)
    # Its index has 444 entries for 68 pictures (dropped frames): the non-empty ones are counted.
    assert avi.frame_count == 68 and avi.frame_count_exact
    assert len(list(iter_frames(shared_file("clips/tree.avi")))) == 68
    assert box.pixel_aspect == 1 and box.non_square_pixels is None


def test_counts_and_rates_where_the_header_misleads(tmp_path):
    long, trim, dv, late = (tmp_path / n for n in ("long.mp4", "trim.mp4", "clip.dv", "late.mkv"))
    run = lambda *a: subprocess.run(["ffmpeg", "-v", "error", *a], check=True)  # noqa: E731
    src = ["-f", "lavfi", "-i", "testsrc2=s=64x32:r=30:d=3"]
    run(*src, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-g", "60", str(long))
    run("-ss", "1.3", "-i", str(long), "-t", "1.5", "-c", "copy", str(trim))  # an edit list over more samples
    run("-f", "lavfi", "-i", "testsrc2=s=720x480:r=30000/1001:d=1", "-c:v", "dvvideo", "-pix_fmt", "yuv411p", str(dv))
    run("-itsoffset", "0.5", *src, "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libx264", "-preset", "ultrafast",
        "-c:a", "pcm_s16le", str(late))
    for path in (trim, dv, late):
        info = probe_video(path)
        decoded = list(iter_frames(path))
        # within a few frames (an estimate; the trimmed clip's header counts 86 samples for ~47 frames)
        assert abs(info.frame_count - len(decoded)) <= 3, (path.name, info.frame_count, len(decoded))
    assert probe_video(dv).fps == Fraction(30000, 1001)  # not its 60000 Hz clock
    assert abs(probe_video(late).duration_s - 3.0) < 0.05  # not the container's 3.5 s


def test_non_square_pixels_are_reported(tmp_path):
    src = tmp_path / "sar.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(shared_file("clips/cup.mp4")), "-t", "0.3",
                    "-vf", "scale=160:120,setsar=2", "-an", str(src)], check=True)
    info = probe_video(src)
    assert info.pixel_aspect == 2 and info.to_dict()["pixel_aspect"] == "2:1"
    assert "not square (aspect 2:1)" in info.non_square_pixels


def test_atomic_output_mode_and_checks(tmp_path):
    import os
    import stat

    from pano360.errors import UsageError
    from pano360.io.atomic import check_output_path

    with atomic_output(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"x")
    mode = stat.S_IMODE((tmp_path / "a.bin").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's private 0600
    with pytest.raises(Pano360Error, match="nothing was written"):
        with atomic_output(tmp_path / "b.bin"):
            pass
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UsageError, match="folder is a file"):
        check_output_path(tmp_path / "f" / "x.mp4", overwrite=False)
    with pytest.raises(UsageError, match="is a folder"):
        check_output_path(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "f"]


def test_require_equirectangular():
    with pytest.raises(Pano360Error, match="mesh projection is not supported"):
        validate_video_input(shared_file("video360/sphericalv2.mp4"), require_equirectangular=True)
    with pytest.raises(Pano360Error, match="not 2:1"):
        validate_video_input(shared_file("clips/box.mp4"), require_equirectangular=True)
    assert validate_video_input(shared_file("video360/congo.mp4"), require_equirectangular=True).spherical.stereo == "top-bottom"
    assert validate_video_input(shared_file("video360/testRoom1_1920Mono.mp4"), require_equirectangular=True).spherical is None


def test_writer_keeps_variable_frame_times(tmp_path):
    times = [0.0, 0.04, 0.1, 0.11, 0.2, 0.45]
    out = tmp_path / "vfr.mp4"
    with VideoWriter(out, W, H, 25, preset="ultrafast", vfr=True) as w:
        for i, t in enumerate(times):
            w.write(np.full((H, W, 3), 30 * i, np.uint8), time_s=t)
    got = [f.time_s for f in iter_frames(out)]
    assert np.allclose(got, times, atol=1e-4), got
    with VideoWriter(tmp_path / "cfr.mp4", W, H, 25, preset="ultrafast") as w:
        with pytest.raises(ValueError, match="vfr"):
            w.write(np.zeros((H, W, 3), np.uint8), time_s=0.5)


def test_every_yields_only_the_multiples_with_their_own_times(tmp_path):
    """iter_frames(every=k) gives exactly frames 0, k, 2k, ... with the same times and pixels as a full decode."""
    import numpy as np

    from pano360.io.reader import iter_frames
    from pano360.io.writer import VideoWriter

    path = tmp_path / "ramp.mp4"
    with VideoWriter(path, 64, 48, 10, crf=0, preset="ultrafast") as w:
        for i in range(10):
            w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    full = list(iter_frames(path))
    some = list(iter_frames(path, every=3))
    assert [f.index for f in some] == [0, 3, 6, 9]
    for f in some:
        assert f.time_s == full[f.index].time_s
        assert np.array_equal(f.rgb, full[f.index].rgb)


def test_start_s_seeks_to_the_same_frames_a_full_decode_gives(tmp_path):
    """iter_frames(start_s=t) starts at the frame shown at t (past keyframes, through B-frames), with the
    full decode's indices, times and pixels; a start past the end gives nothing."""
    rng = np.random.default_rng(4)
    frames = [np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), np.uint8), 8, 0), 8, 1) for _ in range(40)]
    clip = _encode(tmp_path / "s.mp4", frames, rate=20, options={"preset": "ultrafast", "crf": "10", "g": "8", "bf": "2"})
    full = list(iter_frames(clip))
    for start in (0.0, 0.45, 1.0, 1.52):
        got = list(iter_frames(clip, start_s=start, max_frames=6))
        first = int(round(start * 20))
        assert [f.index for f in got] == list(range(first, min(first + 6, 40)))
        for f in got:
            assert f.time_s == pytest.approx(full[f.index].time_s)
            np.testing.assert_array_equal(f.rgb, full[f.index].rgb)
    assert list(iter_frames(clip, start_s=5.0)) == []


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv444p"])
@pytest.mark.parametrize("rotation", [0, 90])
def test_gray_matches_swscale_luma(tmp_path, pix_fmt, rotation):
    """iter_gray reads the decoder's luma plane itself: same values (range stretched, area-scaled, upright) as swscale's gray."""
    from pano360.io.reader import iter_gray, upright

    rng = np.random.default_rng(3)
    img = cv2_smooth(rng.integers(0, 256, (96, 128, 3), np.uint8))
    img[:10] = 0  # limited range clips below 16: the stretch must saturate, not wrap
    clip = _encode(tmp_path / "g.mp4", [img] * 2, pix_fmt=pix_fmt, rotation=rotation or None)
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
        for size in (None, (64, 48) if rotation == 0 else (48, 64)):
            got = next(iter_gray(clip, size))[2]
            w, h = (frame.width, frame.height) if size is None else (size[1], size[0]) if rotation else size
            want = upright(frame.to_ndarray(format="gray", width=w, height=h, interpolation="AREA"), rotation)
            assert got.shape == want.shape and got.dtype == np.uint8
            assert np.abs(got.astype(int) - want).mean() < 0.15 and np.abs(got.astype(int) - want).max() <= 1


def cv2_smooth(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), 2)


def test_reproducible_writer_gives_the_same_file_whatever_the_process_did_before(tmp_path):
    """x264's AVX-512 code reads memory it never wrote, so the same frames could encode differently
    after other work (CPUs with AVX-512 only); a reproducible writer's files are equal byte for byte."""
    from pano360.synth.camera_path import phone_path
    from pano360.synth.render import load_erp, render_frames

    grid = load_erp(shared_file("erp/test-sphere.jpg"), max_width=1024)
    gen = np.random.default_rng(42)
    times, R = phone_path(1.0, 30.0, gen, start_yaw_deg=40.0)
    frames = list(render_frames(grid, times, R, 57.0, 320, 180))  # 180 rows: not a multiple of 16
    files = []
    for k in range(3):
        for junk in [np.random.default_rng(k).integers(0, 255, 3_000_000, dtype=np.uint8) for _ in range(5)]:
            junk += 1  # freed memory full of varied bytes, for the encoder's next allocations
        out = tmp_path / f"{k}.mp4"
        with VideoWriter(out, 320, 180, 30, preset="veryfast", reproducible=True) as w:
            for rgb in frames:
                w.write(rgb)
        files.append(out.read_bytes())
    assert files[0] == files[1] == files[2]


def test_a_cover_image_stream_is_passed_over_for_the_video(tmp_path):
    # Some MKVs (and MP4s with attached pictures) hold a cover image as a video stream of its own,
    # before the video: the moving stream is the one read.
    cover, clip = tmp_path / "cover.png", tmp_path / "clip.mp4"
    cv2.imwrite(str(cover), np.full((32, 64, 3), 200, np.uint8))
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=1", "-c:v", "libx264",
                    "-preset", "ultrafast", str(clip)], check=True)
    for name, extra in (("first.mkv", []), ("attached.mp4", ["-disposition:v:0", "attached_pic"])):
        out = tmp_path / name
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(cover), "-i", str(clip), "-map", "0", "-map", "1",
                        "-c:v:0", "png" if name.endswith("mkv") else "mjpeg", "-c:v:1", "copy", *extra, str(out)],
                       check=True)
        info = validate_video_input(out)
        frames = list(iter_frames(out))
        assert (info.codec, info.frame_count, len(frames)) == ("h264", 10, 10), name
        assert frames[5].rgb.std() > 20  # the test pattern, not the flat cover


def test_interlaced_and_hdr_inputs_are_flagged(tmp_path):
    interlaced, hdr = tmp_path / "i.ts", tmp_path / "pq.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=25:d=0.4", "-c:v", "mpeg2video",
                    "-flags", "+ilme+ildct", "-top", "1", str(interlaced)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=25:d=0.4", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-color_trc", "smpte2084",
                    "-color_primaries", "bt2020", "-colorspace", "bt2020nc", str(hdr)], check=True)
    a, b = probe_video(interlaced), probe_video(hdr)
    assert a.interlaced and "interlaced" in a.picture_caveats[0]
    assert not b.interlaced and b.picture_caveats == [
        "the input is 10-bit HDR (PQ) and the output 8-bit with its HDR tags: smooth gradients may band, and "
        "YouTube takes only 10-bit HDR as HDR"]
    assert probe_video(shared_file("clips/box.mp4")).picture_caveats == []
