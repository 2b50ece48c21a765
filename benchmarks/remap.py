"""Benchmark the remap tables with a new view / rotation every frame (issue 3).

    .venv/bin/python benchmarks/remap.py [--frames 16] [--pano ../shared/data/erp/puydesancy.jpg]

1. ERP 4096x2048 -> 1920x1080 view (hfov 65, bilinear), a new rotation every frame:
   ours (``erp_to_persp``: table + remap) vs ``py360convert.e2p`` (new angles each call, so its
   lru_cache never hits) vs ``ffmpeg -vf v360=e:flat`` on the same frames. ffmpeg reads the
   frames as raw planar ``gbrp`` (v360's own layout, no conversion) from a file in the page
   cache; ``-vf null`` on the same input is timed too and subtracted for its filter-only rate.
   ffmpeg renders ONE fixed view (its table is built once at start), so it only pays the remap.
2. 1920x1080 frame -> 4096x2048 ERP canvas, a new rotation every frame: ``persp_to_erp`` (table
   over the footprint box + remap + full canvas and mask), and the convert-style route
   (``persp_footprint_region`` + fixed-point maps + RGB and feathered alpha layers).
3. ERP -> ERP re-orientation (``rotate_erp``, 4096x2048), a new rotation every frame.

Prints a table; the LAST line is ``speedup_vs_py360convert=<X> ms_per_frame_persp_to_erp=<Y>``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pano360.project import footprint as F
from pano360.project.remap import erp_to_persp, persp_to_erp
from pano360.project.rotation import euler_to_matrix

ROOT = Path(__file__).resolve().parents[1]
W, H, VW, VH, HFOV = 4096, 2048, 1920, 1080, 65.0


def path_angles(i: int) -> tuple[float, float, float]:
    """A hand-held-like path: yaw sweeping through the seam, pitch and roll wobbling."""
    return (150.0 + 7.3 * i, 12.0 * math.sin(0.7 * i), 4.0 * math.cos(1.3 * i))


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def ffmpeg_seconds(raw: Path, n: int, vf: str) -> float:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "gbrp", "-s", f"{W}x{H}",
           "-i", str(raw), "-frames:v", str(n), "-vf", vf, "-f", "null", "-"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--py360-calls", type=int, default=4)
    ap.add_argument("--pano", type=Path, default=ROOT.parent / "shared" / "data" / "erp" / "puydesancy.jpg")
    args = ap.parse_args()
    n = args.frames

    pano = cv2.cvtColor(cv2.imread(str(args.pano)), cv2.COLOR_BGR2RGB)
    pano = cv2.resize(pano, (W, H), interpolation=cv2.INTER_AREA) if pano.shape[:2] != (H, W) else pano
    frames = [np.roll(pano, 97 * i, axis=1) for i in range(n)]  # n distinct ERP frames
    Rs = [euler_to_matrix(*path_angles(i)) for i in range(n)]
    print(f"# machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"cv2 {cv2.__version__} threads={cv2.getNumThreads()}, numpy {np.__version__}, python {platform.python_version()}")
    print(f"# date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.2f}")
    rows: list[tuple[str, float, float, str]] = []

    def add(name: str, ms: list[float], note: str = "") -> float:
        med = float(np.median(ms))
        rows.append((name, float(np.min(ms)), med, note))
        return med

    # 1. ERP -> view, new view per frame
    erp_to_persp(frames[0], Rs[0], HFOV, VW, VH)  # warm-up (page faults, cv2 thread pool)
    ours = add("erp->view ours (new view/frame, precise)", timed(lambda i: erp_to_persp(frames[i], Rs[i], HFOV, VW, VH), n),
               "table + fixed-point remap, bilinear")
    from pano360.project import _angles

    workers, _angles._WORKERS = _angles._WORKERS, 1
    add("erp->view ours, table on 1 thread", timed(lambda i: erp_to_persp(frames[i], Rs[i], HFOV, VW, VH), n),
        f"default builds the table on {workers} threads")
    _angles._WORKERS = workers
    add("erp->view ours precise=False", timed(lambda i: erp_to_persp(frames[i], Rs[i], HFOV, VW, VH, precise=False), n),
        "no Newton step: 0.11 px error")
    py360_ms = float("nan")
    try:
        import py360convert

        vfov = math.degrees(2 * math.atan(math.tan(math.radians(HFOV) / 2) * VH / VW))
        py360_ms = add("erp->view py360convert.e2p (new view/call)",
                       timed(lambda i: py360convert.e2p(frames[i], (HFOV, vfov), path_angles(i)[0], path_angles(i)[1],
                                                        (VH, VW), in_rot_deg=path_angles(i)[2]), args.py360_calls),
                       f"{args.py360_calls} calls")
    except ImportError:
        print("# py360convert not installed: skipped")

    ff_note = "ffmpeg not found"
    if shutil.which("ffmpeg"):
        with tempfile.TemporaryDirectory(prefix="pano360_bench_") as tmp:
            raw = Path(tmp) / "frames.gbrp"
            with open(raw, "wb") as fh:
                for fr in frames:
                    fh.write(np.ascontiguousarray(fr[..., [1, 2, 0]].transpose(2, 0, 1)).tobytes())  # planar G, B, R
            yaw, pitch, roll = path_angles(0)
            vfov = math.degrees(2 * math.atan(math.tan(math.radians(HFOV) / 2) * VH / VW))
            v360 = (f"v360=input=e:output=flat:w={VW}:h={VH}:h_fov={HFOV}:v_fov={vfov:.4f}:"
                    f"yaw={yaw}:pitch={pitch}:roll={roll}:interp=linear")
            ffmpeg_seconds(raw, n, "null")  # warm the page cache
            base = min(ffmpeg_seconds(raw, n, "null") for _ in range(2))
            total = min(ffmpeg_seconds(raw, n, v360) for _ in range(2))
            add("erp->view ffmpeg v360 (fixed view), total", [total * 1000 / n], "raw gbrp read included, table built once")
            ff = add("erp->view ffmpeg v360, filter only", [(total - base) * 1000 / n], "total minus -vf null run")
            ff_note = f"ours {1000 / ours:.1f} fps vs ffmpeg v360 {1000 / ff:.1f} fps (filter only)"

    # 2. frame -> ERP canvas, new rotation per frame
    views = [erp_to_persp(frames[i], Rs[i], HFOV, VW, VH) for i in range(min(n, 4))]
    frame_of = lambda i: views[i % len(views)]  # noqa: E731
    persp_to_erp(frame_of(0), Rs[0], HFOV, W, H)
    p2e = add("view->erp persp_to_erp (new R/frame)", timed(lambda i: persp_to_erp(frame_of(i), Rs[i], HFOV, W, H), n),
              "box table + remap + full canvas & mask")
    add("view->erp footprint table only", timed(lambda i: F.persp_footprint_region(Rs[i], HFOV, VW, VH, W, H), n),
        "persp_footprint_region")
    alpha = F.feather_alpha(VW, VH, 32.0, np.uint8)

    def convert_style(i: int) -> None:
        reg = F.persp_footprint_region(Rs[i], HFOV, VW, VH, W, H)
        maps = F.fixed_point_maps(reg)
        F.remap_region(frame_of(i), reg, maps=maps)
        F.remap_region(alpha, reg, maps=maps)

    add("view->erp region + rgb + feathered alpha", timed(convert_style, n), "fixed-point maps shared by rgb, uint8 alpha")

    # 3. ERP -> ERP re-orientation (stabilize), new rotation per frame
    from pano360.project.remap import rotate_erp

    add("erp->erp rotate_erp 4096x2048 (new R/frame)", timed(lambda i: rotate_erp(frames[i], Rs[i]), min(n, 6)),
        "8.4 Mpx table + fixed-point remap")

    print(f"{'case':46s} {'min ms':>8s} {'median ms':>10s}  note")
    for name, lo, med, note in rows:
        print(f"{name:46s} {lo:8.1f} {med:10.1f}  {note}")
    print(f"# {ff_note}")
    print(f"speedup_vs_py360convert={py360_ms / ours:.1f} ms_per_frame_persp_to_erp={p2e:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
