"""`pano360 metrics VIDEO`: seam closure, left-right consistency, motion per view, coverage.

Definitions in :mod:`pano360.post.metrics`. The JSON holds per-video summaries (means, and the
worst frame for the seam measures), not per-frame arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pano360.commands._options import JsonOpt, QuietOpt


def command(
    video: Annotated[Path, typer.Argument(help="An equirectangular (360) video.", show_default=False)],
    trajectory: Annotated[Optional[Path], typer.Option("--trajectory", help="The clip's trajectory JSON: coverage of its frames.")] = None,
    mask: Annotated[Optional[Path], typer.Option("--mask", help="A 2:1 mask image (white = real pixels): its coverage.")] = None,
    motion_width: Annotated[int, typer.Option("--motion-width", help="ERP width the motion is measured at (views of W/4).")] = 1024,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Measure only the first N frames.")] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure a 360 video as PanoLora does (left-right consistency, motion) plus the seam ratio."""
    import json

    import cv2
    import numpy as np

    from pano360.console import count, note, progress_enabled, stage_progress
    from pano360.errors import Pano360Error, UsageError
    from pano360.io.reader import iter_frames
    from pano360.post.inputs import check_erp_video, note_untagged, first_eye
    from pano360.post.metrics import MotionMeter, lr_consistency, seam_ratio, seam_step, sphere_share, trajectory_coverage
    from pano360.prefetch import prefetch

    if trajectory is not None and mask is not None:
        raise UsageError("--trajectory and --mask cannot be combined")
    if not 64 <= motion_width <= 8192:
        raise UsageError(f"--motion-width must be within 64..8192, got {motion_width}")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {max_frames}")
    info = check_erp_video(video, allow_stereo=True)
    stereo = info.stereo

    coverage = None
    warnings: list[str] = []  # shown as they arise, even with -q; listed by --json
    if trajectory is not None:
        from pano360.trajectory import Trajectory

        traj = Trajectory.load(trajectory)
        if warning := traj.check_covers(info.duration_s, float(info.fps), f"--trajectory {trajectory}", info.frame_count if info.frame_count_exact else None):
            note(f"warning: {warning}")
            warnings.append(warning)
        try:
            share = trajectory_coverage(traj)[0]
        except ValueError as exc:
            raise Pano360Error(f"{exc}: {trajectory}") from None
        coverage = {"source": "trajectory", "share": round(share, 5)}
    elif mask is not None:
        if not mask.is_file():
            raise UsageError(f"mask not found: {mask}")
        img = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise Pano360Error(f"cannot read mask image {mask}")
        if img.shape[1] != 2 * img.shape[0]:
            raise Pano360Error(f"mask must be 2:1 like an ERP, got {img.shape[1]}x{img.shape[0]}: {mask}")
        coverage = {"source": "mask", "share": round(sphere_share(img > 127), 5)}

    lr, seam, seam_local, step = [], [], [], []
    motion = MotionMeter()
    total = min(info.frame_count, max_frames) if max_frames else info.frame_count
    note_untagged(info, quiet or json_output)
    with stage_progress(progress_enabled(quiet, json_output)) as progress:
        task = progress.add_task("measure", total=total)
        for f in prefetch(iter_frames(video, max_frames=max_frames)):  # decoding beside measuring
            rgb = first_eye(f.rgb, stereo)
            lr.append(lr_consistency(rgb))
            seam.append(seam_ratio(rgb, band=None))
            seam_local.append(seam_ratio(rgb))
            step.append(seam_step(rgb))
            small = rgb
            if small.shape[1] > motion_width:
                small = cv2.resize(small, (motion_width, motion_width // 2), interpolation=cv2.INTER_AREA)
            motion.add(small)
            progress.update(task, completed=len(lr))
    if not lr:
        raise Pano360Error(f"no frames decoded from {video}")
    lr_a, seam_a, local_a = np.array(lr), np.array(seam), np.array(seam_local)
    result = {
        "video": str(video), "frames": len(lr), "width": info.width, "height": info.height,
        "stereo": stereo, "measured": "left eye" if stereo != "none" else "frame",
        "lr_consistency": {"mean": round(float(lr_a.mean()), 5), "min": round(float(lr_a.min()), 5)},
        # seam_ratio: over every neighbouring column pair (PanoLora's definition);
        # seam_ratio_local: over the pairs near the seam only (steadier, see post.metrics.seam_ratio)
        "seam_ratio": {"mean": round(float(seam_a.mean()), 4), "max": round(float(seam_a.max()), 4)},
        "seam_ratio_local": {"mean": round(float(local_a.mean()), 4), "max": round(float(local_a.max()), 4)},
        # seam_step: the seam's own size in 8-bit levels (a large ratio over a flat sky can be ~0.5 levels)
        "seam_step": {"mean": round(float(np.mean(step)), 3), "max": round(float(np.max(step)), 3)},
        "motion": {k: (None if v is None else round(v, 4)) for k, v in motion.means().items()},
        "motion_view_px": max(16, min(rgb.shape[1], motion_width) // 4),
        "coverage": coverage, "warnings": warnings,
    }
    if json_output:
        typer.echo(json.dumps(result))
        return
    m = result["motion"]
    lines = [
        f"video:           {video} ({count(len(lr), 'frame')}, {info.width}x{info.height}"
        f"{', stereo ' + stereo + ', left eye measured' if stereo != 'none' else ''})",
        f"LR consistency:  {result['lr_consistency']['mean']:.4f} (min {result['lr_consistency']['min']:.4f})",
        f"seam ratio:      {result['seam_ratio']['mean']:.3f} (max {result['seam_ratio']['max']:.3f}); "
        f"near the seam {result['seam_ratio_local']['mean']:.3f} (max {result['seam_ratio_local']['max']:.3f})",
        f"seam step:       {result['seam_step']['mean']:.2f} levels of 255 (max {result['seam_step']['max']:.2f})",
        "motion (px/frame, views of %d px): %s" % (result["motion_view_px"], "n/a (one frame)" if m["mean"] is None else
                                                   ", ".join(f"{k} {m[k]:.3f}" for k in ("front", "right", "back", "left", "mean"))),
    ]
    if coverage is not None:
        lines.append(f"coverage:        {coverage['share'] * 100:.2f}% of the sphere ({coverage['source']})")
    typer.echo("\n".join(lines))
