"""`pano360 stabilize IN360 OUT360`: lock or smooth a 360 video's rotation, optionally level it.

The rotation of every frame is measured on the sphere (:mod:`pano360.post.sphere_motion`), the
output path chosen (:mod:`pano360.post.smoothing`) and every frame re-oriented; the output keeps
the audio and carries Spherical Video V1 + V2 metadata.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from pano360.commands._options import JsonOpt, OverwriteOpt, QuietOpt


class Mode(str, Enum):
    lock = "lock"
    smooth = "smooth"


def command(
    input: Annotated[Path, typer.Argument(help="An equirectangular (360) video.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="The stabilised 360 MP4 to write.", show_default=False)],
    mode: Annotated[Mode, typer.Option("--mode", help="lock: the world holds still; smooth: keep a smoothed path.")] = Mode.lock,
    smooth: Annotated[Optional[float], typer.Option("--smooth", help="Smoothing time constant in seconds (--mode smooth; default 0.5).", show_default=False)] = None,
    level: Annotated[bool, typer.Option("--level", help="Level the horizon (from the scene's vertical lines).")] = False,
    save_trajectory: Annotated[Optional[Path], typer.Option("--save-trajectory", help="Also write the measured rotations (trajectory JSON).")] = None,
    analysis_width: Annotated[int, typer.Option("--analysis-width", help="Width the rotation is measured at.")] = 960,
    crf: Annotated[int, typer.Option("--crf", help="x264 quality (lower is better).")] = 18,
    preset: Annotated[str, typer.Option("--preset", help="x264 speed preset; faster ones also need less memory (an 8K video: ~7 GB with medium, ~2 GB with ultrafast).")] = "medium",
    overwrite: OverwriteOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Stabilise a 360 video (Gyroflow style: measure, smooth, re-orient)."""
    import json
    import time

    import numpy as np

    from pano360.console import count, note, progress_enabled, stage_progress
    from pano360.errors import UsageError
    from pano360.io.atomic import MP4_OUTPUT_SUFFIXES, check_output_path
    from pano360.io.spherical import spherical_output
    from pano360.io.writer import check_encoder_settings
    from pano360.post.inputs import check_erp_video, note_untagged
    from pano360.post.smoothing import corrections
    from pano360.post.stabilize import estimate_video_rotations, render_corrected, target_path
    from pano360.project.rotation import rotation_angle_deg

    if smooth is not None and mode != Mode.smooth:
        raise UsageError("--smooth applies to --mode smooth (lock holds the view still)")
    smooth = 0.5 if smooth is None else smooth
    if not 0.0 <= smooth <= 60.0:
        raise UsageError(f"--smooth must be within 0..60 seconds, got {smooth}")
    if not 128 <= analysis_width <= 4096:
        raise UsageError(f"--analysis-width must be within 128..4096, got {analysis_width}")
    check_encoder_settings("h264", crf, preset)
    info = check_erp_video(input, allow_stereo=True)
    stereo = info.stereo
    check_output_path(output, overwrite, inputs=(input,), suffixes=MP4_OUTPUT_SUFFIXES)
    if save_trajectory is not None:
        check_output_path(save_trajectory, overwrite, (input,), (".json",), what="--save-trajectory",
                          other_outputs=(("output", output),))

    warnings: list[str] = []  # shown as they arise, even with -q; listed by --json

    def warn(message: str) -> None:
        warnings.append(message)
        note(f"warning: {message}")

    for caveat in info.picture_caveats:
        warn(caveat)

    t0 = time.perf_counter()
    note_untagged(info, quiet or json_output)
    with stage_progress(progress_enabled(quiet, json_output)) as progress:
        task = progress.add_task("measure rotation", total=info.frame_count)
        traj = estimate_video_rotations(input, analysis_width, on_frame=lambda n: progress.update(task, completed=n),
                                        stereo=stereo, warn=warn)
        up_world, level_info = None, {"applied": False}
        if level:
            up_world, level_info = _estimate_up(input, traj, analysis_width, stereo)
            if up_world is None:
                warn(f"not levelled: {level_info['reason']}")
        S, R = target_path(traj, mode.value, smooth, up_world)
        M = corrections(R, S)
        task = progress.add_task("render", total=info.frame_count)
        view = info.spherical.initial_view_deg if info.spherical is not None else (0.0, 0.0, 0.0)  # kept
        with spherical_output(output, overwrite=overwrite, stereo=stereo, initial_view_deg=view) as tmp:
            frames = render_corrected(input, tmp, M, info, crf=crf, preset=preset, stereo=stereo,
                                      on_frame=lambda n: progress.update(task, completed=n), warn=warn)
            if save_trajectory is not None:  # before the video is renamed into place (see convert)
                traj.save(save_trajectory)
    steps = rotation_angle_deg(traj.R[1:], traj.R[:-1]) if len(traj) > 1 else np.zeros(1)
    summary = {
        "output": str(output), "frames": frames, "mode": mode.value, "stereo": stereo,
        "smooth_s": smooth if mode == Mode.smooth else None, "level": level_info,
        "rotation_deg_per_frame": {"mean": round(float(steps.mean()), 4), "max": round(float(steps.max()), 4)},
        "max_correction_deg": round(float(rotation_angle_deg(M, np.eye(3)).max()), 3),
        "min_inliers": int(traj.inliers.min()), "seconds": round(time.perf_counter() - t0, 3), "warnings": warnings,
    }
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"wrote {output}: {count(frames, 'frame')}, {mode.value}"
                   f"{', levelled' if level_info.get('applied') else ''}")


def _estimate_up(path: Path, traj, analysis_width: int, stereo: str = "none", samples: int = 5):
    """World up from the vertical lines of a few frames (each frame's up turned into the world)."""
    import cv2
    import numpy as np

    from pano360.io.reader import iter_frames
    from pano360.post.inputs import decode_width, first_eye
    from pano360.post.level import estimate_up

    picks = set(np.linspace(0, len(traj) - 1, min(samples, len(traj))).round().astype(int).tolist())
    ups, weights = [], []
    for f in iter_frames(path, max_width=decode_width(analysis_width, stereo)):
        if f.index > max(picks):
            break
        if f.index not in picks:
            continue
        gray = first_eye(cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY), stereo)
        try:
            up, share = estimate_up(gray, np.random.default_rng(f.index))
        except ValueError:
            continue
        if share >= 0.5:  # most straight lines agree: a built scene with verticals
            ups.append(traj.R[f.index] @ up)
            weights.append(share)
    if len(ups) < 2:  # one frame's lines alone misled it (a 24 deg tilt found for 5.5 on a landscape)
        return None, {"applied": False, "reason": "too few vertical lines agree in the picture"
                      + (" (in one sampled frame only)" if ups else "")}
    up = (np.array(ups) * np.array(weights)[:, None]).sum(0)
    up /= np.linalg.norm(up)
    tilt = float(np.degrees(np.arccos(np.clip(-up[1], -1.0, 1.0))))
    return up, {"applied": True, "tilt_deg": round(tilt, 3), "frames": len(ups), "method": "vertical lines"}
