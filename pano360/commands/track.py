"""`pano360 track IN -o traj.json [--hfov DEG] [--json] [-y]`: every frame's rotation and the FOV."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from pano360.commands._options import JsonOpt, OverwriteOpt, QuietOpt


def _count(n: int, noun: str) -> str:
    """``"1 warning"``, ``"3 warnings"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _summary(result, out: Path, seconds: float, warnings: list[str]) -> dict:
    traj = result.trajectory
    sigma = result.stats.get("hfov_sigma_deg")  # only for an estimated FOV
    return {
        "output": str(out),
        "source": traj.source,
        "frames": len(traj),
        "width": traj.width,
        "height": traj.height,
        "hfov_deg": round(traj.hfov_deg, 4),
        "hfov_source": result.hfov_source,
        "hfov_sigma_deg": round(float(sigma), 4) if sigma is not None and math.isfinite(sigma) else None,
        "keyframes": result.keyframes,
        "loop_closures": result.loop_closures,
        "rolling_shutter_ms": round(float(result.stats.get("readout_ms", 0.0)), 2),
        "low_confidence_frames": int(result.low_confidence.sum()),
        "warnings": list(warnings),
        "seconds": round(seconds, 3),
    }


def command(
    input: Annotated[Path, typer.Argument(help="The perspective video to track.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Trajectory file to write (JSON).", show_default=False)],
    hfov: Annotated[Optional[float], typer.Option("--hfov", help="Horizontal field of view in degrees, if known (else estimated).")] = None,
    json_output: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Estimate every frame's camera rotation and the horizontal FOV; write the trajectory file."""
    from pano360.console import count, note, progress_enabled, stage_progress
    from pano360.errors import Pano360Error
    from pano360.project.camera import check_clip_hfov
    from pano360.io.atomic import check_output_path
    from pano360.io.probe import validate_video_input
    from pano360.slam.estimate import track_clip

    check_clip_hfov(hfov)
    info = validate_video_input(input)
    if info.spherical is not None:
        raise Pano360Error(f"already a 360 video (Spherical Video {info.spherical.source} metadata): track measures a flat "
                           f"clip's camera; stabilize --save-trajectory measures a 360 video's rotations: {input}")
    out = check_output_path(output, overwrite, (input,))
    if info.non_square_pixels:
        note(f"warning: {info.non_square_pixels}", quiet=False)
    t0 = time.perf_counter()
    with stage_progress(progress_enabled(quiet, json_output)) as progress:
        task = progress.add_task("tracking", total=info.frame_count or None)
        result = track_clip(input, hfov, progress=lambda i: progress.update(task, completed=i))
    result.trajectory.save(out)  # atomically
    # The input's own warning (printed before tracking) counts with the tracker's.
    summary = _summary(result, out, time.perf_counter() - t0,
                       ([info.non_square_pixels] if info.non_square_pixels else []) + list(result.warnings))
    if json_output:
        for w in result.warnings:
            note(f"warning: {w}")
        typer.echo(json.dumps(summary, separators=(",", ":")))
        return
    for w in result.warnings:
        note(f"warning: {w}", quiet=False)
    rs = f", rolling shutter {summary['rolling_shutter_ms']:.1f} ms" if summary["rolling_shutter_ms"] else ""
    sigma = f" +- {summary['hfov_sigma_deg']:.2g}" if summary["hfov_sigma_deg"] is not None else ""
    typer.echo(f"{out}: {count(summary['frames'], 'frame')}, hfov {summary['hfov_deg']:.2f}{sigma} deg ({summary['hfov_source']}), "
               f"{_count(summary['keyframes'], 'keyframe')}, {_count(summary['loop_closures'], 'loop closure')}{rs}, "
               f"{_count(len(summary['warnings']), 'warning')}, {summary['seconds']:.1f} s")
