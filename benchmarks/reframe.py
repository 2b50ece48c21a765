"""Reframing speed: a MOVING virtual camera (pano360) against ffmpeg's v360 with a FIXED view.

Both read the same 4096x2048 H.264 clip (a real panorama, puydesancy.jpg, turning), render
1920x1080 and encode with the same x264 settings (medium, crf 18, yuv420p); decoding and encoding
are inside both timings. pano360's time is the library call (no interpreter start-up); ffmpeg's is
the whole process. Each side runs ``--rounds`` times, alternating, and the best round counts
(the machine may be shared).

    .venv/bin/python benchmarks/reframe.py [--seconds 4] [--rounds 2]

The LAST line is ``reframe_fps=<a> ffmpeg_v360_fps=<b>``.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PANORAMA = Path(os.environ.get("PANO360_SHARED_DATA", ROOT.parent / "shared" / "data")) / "erp" / "puydesancy.jpg"


def make_input(path: Path, seconds: float, fps: int = 30) -> None:
    """A 4096x2048 clip of the panorama turning (ffmpeg's scroll wraps columns: a yaw rotation)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", str(PANORAMA),
                    "-vf", "scale=4096:2048,scroll=h=0.002,format=yuv420p", "-t", str(seconds), "-r", str(fps),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", str(path)], check=True)


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_ffmpeg(src: Path, dst: Path) -> tuple[float, float]:
    vfov = 2 * math.degrees(math.atan(math.tan(math.radians(45)) * 1080 / 1920))
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src),
           "-vf", f"v360=e:flat:yaw=30:pitch=10:h_fov=90:v_fov={vfov:.4f}:w=1920:h=1080",
           "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p", "-an", str(dst)]
    t, c = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t, _cpu(resource.RUSAGE_CHILDREN) - c


def run_pano360(src: Path, dst: Path, duration: float, path: str = "drift") -> tuple[float, float, int]:
    from pano360.post.keyframes import parse_keyframes
    from pano360.post.reframe import keyframe_camera, reframe_video

    n = max(2, int(math.ceil(duration)) + 1)
    if path == "fixed":
        # ffmpeg's own view, for reference: the same work on both sides.
        keys = [{"t": 0.0, "yaw": 30.0, "pitch": 10.0, "hfov": 90.0}]
    elif path == "drift":
        # A slow reframing move: yaw 6 deg/s (with the input's own turn, the content moves 27 deg/s
        # instead of the fixed view's 21), pitch 3 deg/s.
        keys = [{"t": 0.0, "yaw": 0.0, "pitch": 0.0, "hfov": 90.0},
                {"t": duration, "yaw": 6.0 * duration, "pitch": 3.0 * duration, "hfov": 90.0}]
    elif path == "sway":
        # Looking around: yaw swinging 20 deg each way every second, pitch +-8 deg, a gentle zoom.
        # (The input turns 21 deg/s, so the view's content moves 1-41 deg/s, about the fixed view's 21 on average.)
        keys = [{"t": k * duration / (n - 1), "yaw": 20.0 * (k % 2), "pitch": 8.0 * (-1) ** k,
                 "hfov": 90.0 - 10.0 * k / (n - 1)} for k in range(n)]
    else:
        # A steady 20 deg/s pan against the input's own turn: the content moves 41 deg/s (hardest to encode).
        keys = [{"t": k * duration / (n - 1), "yaw": 20.0 * k * duration / (n - 1), "pitch": 8.0 * (-1) ** k,
                 "hfov": 90.0 - 10.0 * k / (n - 1)} for k in range(n)]
    keys, interp = parse_keyframes({"keyframes": keys})
    t, c = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    res = reframe_video(src, dst, keyframe_camera(keys, interp), "rectilinear", 1920, 1080, crf=18, preset="medium")
    return time.perf_counter() - t, _cpu(resource.RUSAGE_SELF) - c, res.frames


def count_frames(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--path", choices=("drift", "sway", "pan", "fixed"), default="drift",
                    help="the virtual camera's path (see run_pano360): the more its picture moves, the more x264 works")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the clips here (default: a temp folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = work / f"puydesancy_4096_{args.seconds:g}s.mp4"
        if not src.exists():
            make_input(src, args.seconds)
        n = count_frames(src)
        ours, theirs = [], []
        for r in range(args.rounds):
            dt_ff, cpu_ff = run_ffmpeg(src, work / "v360.mp4")
            dt_us, cpu_us, frames = run_pano360(src, work / "reframe.mp4", args.seconds, args.path)
            assert frames == n == count_frames(work / "reframe.mp4") == count_frames(work / "v360.mp4")
            theirs.append(n / dt_ff)
            ours.append(n / dt_us)
            print(f"round {r + 1}: {n} frames  pano360 {ours[-1]:.2f} fps ({dt_us:.2f} s, {1000 * cpu_us / n:.0f} "
                  f"CPU-ms/frame)  ffmpeg v360 {theirs[-1]:.2f} fps ({dt_ff:.2f} s, {1000 * cpu_ff / n:.0f} "
                  f"CPU-ms/frame)  load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"cores={os.cpu_count()} frames={n} input=4096x2048 output=1920x1080 x264=medium/crf18 path={args.path}")
    print(f"reframe_fps={max(ours):.2f} ffmpeg_v360_fps={max(theirs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
