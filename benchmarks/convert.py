"""Benchmark ``pano360 convert`` (mosaic backend): fidelity on phone clips rendered from real
panoramas, speed, and peak memory for a 10 s and a 60 s clip.

Fidelity compares every sampled output frame with the true panorama turned into the first
frame's world (``rotate_erp(pano, R_path[0])``):

- ``psnr_current_db``: luma (BT.601 Y) PSNR over the pixels the current frame sees (its
  interior, where the output must be the frame itself);
- ``psnr_seen_db``: luma PSNR over the pixels other (earlier or later) frames saw but not this one;
- the same two in RGB (``*_rgb_db``): lower, as both the input clip and the output are 4:2:0
  (a pure RGB -> I420 -> RGB round trip of a colourful image is already ~39 dB);
- ``seam_ratio_max``: over every output frame, mean |col 0 - col W-1| / mean |col j - col j+1|;
- ``black_pct_max``: the largest share of pixels with every channel <= 2 in any output frame.

Speed: ``realtime_factor`` = wall time of the convert process / clip duration, for a 10 s 30 fps
clip (1920x1080 by default) to a 4096x2048 360 MP4. Peak RSS of the convert process for that clip
and for a 60 s clip (the 10 s clip concatenated six times, its trajectory repeated).

The LAST line is ``psnr_current_db=<a> psnr_seen_db=<b> seam_ratio_max=<c> realtime_factor=<d> peak_rss_mb=<e>``.

Usage: ``.venv/bin/python benchmarks/convert.py [--erp puydesancy.jpg] [--size 1920x1080] [--skip-long]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pano360.post.metrics import seam_ratio

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PANO360_SHARED_DATA", ROOT.parent / "shared" / "data"))

# Peak RSS from the kernel's VmHWM of this process image. Not getrusage's ru_maxrss: on Linux that
# survives execve, so a child started by this (large, after evaluate()) parent reported the
# parent's high-water mark (767 MB against 427-454 MB measured from outside).
_RUNNER = (
    "import sys\n"
    "from pano360.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "print('PEAK_RSS_KB', hwm, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_convert(args: list[str]) -> tuple[dict, float, float]:
    """Run ``pano360 convert`` in a fresh process; returns (its JSON, wall seconds, peak RSS MB)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RUNNER, "convert", *args, "--json", "-y"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"convert failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    rss = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return json.loads(proc.stdout), wall, rss / 1024.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) if a.size else 0.0
    return 99.0 if mse <= 1e-12 else 10.0 * np.log10(255.0 ** 2 / mse)


def evaluate(out_path: Path, truth: np.ndarray, traj, clip_size: tuple[int, int], samples: int = 12) -> dict:
    """Fidelity numbers of an output video against the true world panorama (same size)."""
    from pano360.generate.mosaic import MosaicBackend
    from pano360.generate.mosaic_place import place_frame

    w, h = clip_size
    width = truth.shape[1]
    height = width // 2
    band = MosaicBackend(feather=0.025).frame_alpha(w, h)
    # Everything any frame saw (at output size), built from the true trajectory.
    seen = np.zeros((height, width), bool)
    for i in range(len(traj)):
        pl = place_frame(np.zeros((h, w, 3), np.uint8), traj.R[i], traj.hfov_deg, width)
        for ec, bc in pl.column_pieces():
            seen[pl.v0:pl.v1, ec] |= pl.alpha[:, bc] > 0
    n = len(traj)
    pick = set(np.linspace(0, n - 1, samples).round().astype(int).tolist())
    acc = {k: [0.0, 0] for k in ("cur_y", "seen_y", "cur_rgb", "seen_rgb")}
    seams, blacks = [], []
    truth_y = _luma(truth)
    for index, rgb in _decode(out_path):
        seams.append(seam_ratio(rgb, band=None))  # the whole-frame definition
        blacks.append(float((rgb.max(axis=2) <= 2).mean() * 100.0))
        if index not in pick or index >= n:
            continue
        pl = place_frame(np.zeros((h, w, 3), np.uint8), traj.R[index], traj.hfov_deg, width, alpha=band)
        cur = np.zeros((height, width), bool)
        for ec, bc in pl.column_pieces():
            cur[pl.v0:pl.v1, ec] = pl.alpha[:, bc] == 255
        other = seen & ~cur
        y = _luma(rgb)
        for key, m in (("cur", cur), ("seen", other)):
            d = y[m] - truth_y[m]
            acc[f"{key}_y"][0] += float((d ** 2).sum())
            acc[f"{key}_y"][1] += d.size
            d = rgb[m].astype(np.float64) - truth[m]
            acc[f"{key}_rgb"][0] += float((d ** 2).sum())
            acc[f"{key}_rgb"][1] += d.size
    to_db = lambda se, k: 99.0 if k == 0 or se <= 0 else 10 * np.log10(255.0 ** 2 / (se / k))  # noqa: E731
    return {
        "psnr_current_db": round(float(to_db(*acc["cur_y"])), 2),
        "psnr_seen_db": round(float(to_db(*acc["seen_y"])), 2),
        "psnr_current_rgb_db": round(float(to_db(*acc["cur_rgb"])), 2),
        "psnr_seen_rgb_db": round(float(to_db(*acc["seen_rgb"])), 2),
        "seam_ratio_max": round(float(max(seams)), 3),
        "seam_ratio_mean": round(float(np.mean(seams)), 3),
        "black_pct_max": round(float(max(blacks)), 4),
        "frames": len(seams),
    }


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma (what PSNR of video usually means: chroma is subsampled 4:2:0 anyway)."""
    f = rgb.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _decode(path: Path):
    """``(index, rgb)`` of every frame, converted from yuv420p with OpenCV (exact BT.601 inverse of the encoder)."""
    import av
    import cv2

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for i, fr in enumerate(c.decode(s)):
            if fr.format.name == "yuv420p":
                yield i, cv2.cvtColor(fr.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
            else:
                yield i, fr.to_ndarray(format="rgb24")


def make_clip(folder: Path, erp_name: str, size: tuple[int, int], duration: float, fps: float, hfov: float, seed: int,
              degrade: bool, clip_crf: int = 10):
    """Render the phone clip; returns (clip path, truth trajectory, true world panorama, path R0)."""
    from pano360.synth import load_erp, phone_path, write_clip
    from pano360.synth.degrade import Degradations

    erp = load_erp(DATA / "erp" / erp_name)
    t, R = phone_path(duration, fps, np.random.default_rng(seed))
    clip = folder / f"clip_{size[0]}x{size[1]}_{duration:g}s.mp4"
    deg = Degradations(exposure_swing=0.15) if degrade else None
    traj = write_clip(clip, erp, t, R, hfov, size[0], size[1], fps, degrade=deg, preset="veryfast", crf=clip_crf)
    return clip, traj, erp, R[0]


def long_clip(folder: Path, clip: Path, traj, repeats: int = 6):
    """The clip concatenated ``repeats`` times (stream copy) and its trajectory repeated in time."""
    from pano360.trajectory import Trajectory

    lst = folder / "concat.txt"
    lst.write_text("".join(f"file '{clip}'\n" for _ in range(repeats)))
    out = folder / f"long_{repeats}x.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy", str(out)], check=True)
    dt = float(traj.time_s[1] - traj.time_s[0]) if len(traj) > 1 else 1 / 30
    span = float(traj.time_s[-1]) + dt
    times = np.concatenate([traj.time_s + k * span for k in range(repeats)])
    R = np.concatenate([traj.R] * repeats)
    return out, Trajectory(times, R, traj.hfov_deg, traj.width, traj.height, source=out.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--erp", default="puydesancy.jpg", help="panorama under ../shared/data/erp")
    ap.add_argument("--size", default="1920x1080", help="clip size WxH")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--hfov", type=float, default=65.0)
    ap.add_argument("--width", type=int, default=4096, help="output ERP width")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--trajectory", choices=["truth", "estimate"], default="truth",
                    help="truth: pass the true trajectory (measures the mosaic); estimate: run rotation estimation too")
    ap.add_argument("--exposure", action="store_true", help="render with a +-15%% exposure swing")
    ap.add_argument("--crf", type=int, default=None, help="convert's --crf (default: convert's default)")
    ap.add_argument("--clip-crf", type=int, default=10, help="x264 CRF of the rendered input clip (near-lossless by default, so the score is the pipeline's)")
    ap.add_argument("--skip-long", action="store_true", help="skip the 60 s memory run")
    ap.add_argument("--keep", default=None, help="keep the clips and outputs in this folder")
    a = ap.parse_args()
    size = tuple(int(x) for x in a.size.lower().split("x"))
    from pano360.project.remap import rotate_erp

    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        folder = Path(a.keep) if a.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        clip, traj, erp, R0 = make_clip(folder, a.erp, size, a.duration, a.fps, a.hfov, a.seed, a.exposure, a.clip_crf)
        print(f"rendered {clip.name} ({len(traj)} frames) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        traj_file = folder / "truth.json"
        traj.save(traj_file)
        out = folder / "out.mp4"
        args = [str(clip), str(out), "--width", str(a.width)] + (["--crf", str(a.crf)] if a.crf is not None else [])
        if a.trajectory == "truth":
            args += ["--trajectory", str(traj_file)]
        result, wall, rss10 = run_convert(args)
        print(json.dumps({"convert": result, "wall_s": round(wall, 2), "peak_rss_mb": round(rss10, 1)}), file=sys.stderr)
        import cv2

        big = erp if erp.shape[1] == a.width else cv2.resize(erp, (a.width, a.width // 2), interpolation=cv2.INTER_AREA)
        truth = rotate_erp(big, R0)
        fid = evaluate(out, truth, traj, size)
        print(json.dumps({"fidelity": fid}), file=sys.stderr)
        rss60 = 0.0
        if not a.skip_long:
            lclip, ltraj = long_clip(folder, clip, traj)
            lfile = folder / "long.json"
            ltraj.save(lfile)
            lres, lwall, rss60 = run_convert([str(lclip), str(folder / "out_long.mp4"), "--width", str(a.width), "--trajectory", str(lfile)]
                                             + (["--crf", str(a.crf)] if a.crf is not None else []))
            print(json.dumps({"long": {"duration_s": lres["duration_s"], "wall_s": round(lwall, 2), "peak_rss_mb": round(rss60, 1),
                                       "realtime_factor": round(lwall / lres["duration_s"], 3)}}), file=sys.stderr)
    rtf = wall / result["duration_s"]
    print(f"psnr_current_db={fid['psnr_current_db']:.2f} psnr_seen_db={fid['psnr_seen_db']:.2f} "
          f"seam_ratio_max={fid['seam_ratio_max']:.3f} realtime_factor={rtf:.3f} peak_rss_mb={max(rss10, rss60):.1f}")


if __name__ == "__main__":
    main()
