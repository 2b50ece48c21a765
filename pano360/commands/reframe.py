"""`pano360 reframe IN360 OUT`: cut a flat (or tiny-planet / fisheye) shot out of a 360 video.

The view is fixed (``--yaw/--pitch/--roll/--hfov``), keyframed (``--path keyframes.json``, format in
:mod:`pano360.post.keyframes`) or a replayed trajectory (``--follow traj.json``: the clip's own
camera path, size and FOV by default). With a path, ``--yaw/--pitch/--roll`` turn the camera
further in its own frame and ``--hfov`` replaces the path's FOV.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from pano360.commands._options import JsonOpt, OverwriteOpt, QuietOpt


class Projection(str, Enum):
    rectilinear = "rectilinear"
    stereographic = "stereographic"
    fisheye = "fisheye"


# preset -> (projection, hfov, pitch) used where the flag is not given
PRESETS = {
    "natural": ("rectilinear", 80.0, 0.0),
    "tiny-planet": ("stereographic", 270.0, -90.0),
    "fisheye": ("fisheye", 180.0, 0.0),
}


def _view_preset(value: str | None) -> str | None:
    """--preset's check; x264's names (ultrafast, ...) get a pointer to --encode-preset."""
    from pano360.io.writer import ENCODER_PRESETS

    if value is None or value in PRESETS:
        return value
    hint = f" (x264's speed preset is --encode-preset {value})" if value in ENCODER_PRESETS else ""
    raise typer.BadParameter(f"{value!r} is not one of {', '.join(PRESETS)}{hint}")


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> ``(1920, 1080)``; both even and positive (4:2:0 video)."""
    from pano360.errors import UsageError

    try:
        w, h = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 1920x1080, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2 or w > 16384 or h > 16384:
        raise UsageError(f"--size must be even and positive (at most 16384), got {text}")
    check_frame_area(w, h, "--size")
    return w, h


def check_frame_area(w: int, h: int, what: str) -> None:
    """FFmpeg refuses a picture of (w + 128) * (h + 128) >= 2^31 / 8 bytes (av_image_check_size):
    16384x16384 is too big, 16384x8192 fits."""
    from pano360.errors import UsageError

    if (w + 128) * (h + 128) >= 2**31 // 8:
        raise UsageError(f"{what} {w}x{h} is larger than the video encoder takes (about 268 million pixels, e.g. 16384x8192)")


def command(
    input: Annotated[Path, typer.Argument(help="An equirectangular (360) video.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="The flat MP4 to write.", show_default=False)],
    yaw: Annotated[Optional[float], typer.Option("--yaw", help="Degrees, positive turns right.")] = None,
    pitch: Annotated[Optional[float], typer.Option("--pitch", help="Degrees, positive looks up.")] = None,
    roll: Annotated[Optional[float], typer.Option("--roll", help="Degrees, positive turns the camera clockwise.")] = None,
    hfov: Annotated[Optional[float], typer.Option("--hfov", help="Horizontal field of view, degrees (default 90, or the path's / preset's).")] = None,
    path: Annotated[Optional[Path], typer.Option("--path", help="Keyframes JSON, a moving virtual camera: a \"keyframes\" list of {t (s), yaw, pitch, roll, hfov, ease: linear|in|out|inout}; format in pano360/post/keyframes.py.")] = None,
    follow: Annotated[Optional[Path], typer.Option("--follow", help="Trajectory JSON to replay (e.g. the clip's own).")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Output WxH, e.g. 1920x1080 or 1080x1920 for phones (default 1920x1080, or the trajectory's).")] = None,
    projection: Annotated[Optional[Projection], typer.Option("--projection", help="Output projection (default rectilinear, or the preset's).")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", callback=_view_preset, metavar="[natural|tiny-planet|fisheye]", help="natural (80 deg flat), tiny-planet (stereographic looking down), fisheye (180 deg).")] = None,
    crf: Annotated[int, typer.Option("--crf", help="x264 quality (lower is better).")] = 18,
    encode_preset: Annotated[str, typer.Option("--encode-preset", help="x264 speed preset (--preset picks the view).")] = "medium",
    overwrite: OverwriteOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Render a virtual camera inside a 360 video: fixed, keyframed or a replayed trajectory."""
    import json
    import time

    import numpy as np

    from pano360.console import count, note, progress_enabled, stage_progress
    from pano360.errors import UsageError
    from pano360.io.atomic import MP4_OUTPUT_SUFFIXES, atomic_output, check_output_path
    from pano360.io.writer import check_encoder_settings
    from pano360.post.inputs import check_erp_video, note_untagged
    from pano360.project.projections import max_hfov
    from pano360.post.reframe import adjusted_camera, fixed_camera, follow_camera, keyframe_camera, reframe_video
    from pano360.project.rotation import euler_to_matrix

    if path is not None and follow is not None:
        raise UsageError("--path and --follow cannot be combined: give one camera path")
    check_encoder_settings("h264", crf, encode_preset)
    info = check_erp_video(input, allow_stereo=True)
    stereo = info.stereo
    check_output_path(output, overwrite, inputs=(input,), suffixes=MP4_OUTPUT_SUFFIXES)

    proj_name, preset_hfov, preset_pitch = PRESETS[preset] if preset else ("rectilinear", None, 0.0)
    proj_name = projection.value if projection else proj_name
    if pitch is None and preset is not None and path is None and follow is None:
        pitch = preset_pitch
    for flag, value in (("--yaw", yaw), ("--pitch", pitch), ("--roll", roll)):
        if value is not None and not np.isfinite(value):
            raise UsageError(f"{flag} must be a number of degrees, got {value}")
    span = "(0, 360]" if proj_name == "fisheye" else f"(0, {max_hfov(proj_name):.0f})"  # a fisheye may see all round
    if hfov is None and preset_hfov is not None and not 0.0 < preset_hfov < max_hfov(proj_name):
        raise UsageError(f"the {preset} preset's {preset_hfov:.0f} deg FOV is outside {span} for --projection "
                         f"{proj_name}; give --hfov too")
    if hfov is not None and not 0.0 < hfov < max_hfov(proj_name):
        raise UsageError(f"--hfov must be in {span} degrees for {proj_name}, got {hfov}")

    warnings: list[str] = []  # shown as they arise, even with -q; listed by --json

    def warn(message: str) -> None:
        warnings.append(message)
        note(f"warning: {message}")

    for caveat in info.picture_caveats:
        warn(caveat)

    traj = None
    offsets = (yaw or 0.0, pitch or 0.0, roll or 0.0)
    R_off = euler_to_matrix(*offsets) if any(offsets) else None
    if follow is not None:
        from pano360.trajectory import Trajectory

        traj = Trajectory.load(follow)
        traj.check_flat(f"--follow {follow}")
        if warning := traj.check_covers(info.duration_s, float(info.fps), f"--follow {follow}", info.frame_count if info.frame_count_exact else None):
            warn(warning)
        camera = adjusted_camera(follow_camera(traj), R_off, hfov)  # the clip's own FOV unless --hfov
    elif path is not None:
        from pano360.post.keyframes import load_keyframes

        # A preset's FOV and pitch stand where the keyframes give none; --hfov replaces every FOV.
        defaults = {"hfov": preset_hfov, "pitch": preset_pitch} if preset_hfov is not None else None
        keyframes, interpolation = load_keyframes(path, defaults)
        camera = adjusted_camera(keyframe_camera(keyframes, interpolation), R_off, hfov)
        key_times = np.array([k.t for k in keyframes])
    else:
        hfov = hfov if hfov is not None else (preset_hfov if preset_hfov is not None else 90.0)
        camera = fixed_camera(R_off if R_off is not None else np.eye(3), hfov)
    # Every FOV the path will ask for must suit the projection: checked at every frame's time
    # (and at the keyframes) before any work, not found mid-render.
    duration = max(info.duration_s, 0.0)
    probe_t = np.linspace(0.0, duration, int(min(max(64, duration * float(info.fps) * 2 + 2), 2_000_000)))
    if path is not None:
        probe_t = np.concatenate([probe_t, key_times[(key_times >= 0) & (key_times <= duration)]])
    _, hfovs = camera(probe_t)
    if not np.all((hfovs > 0) & (hfovs < max_hfov(proj_name))):
        raise UsageError(f"the path asks for hfov up to {hfovs.max():.1f} deg; {proj_name} shows less than {max_hfov(proj_name):.0f}")

    if size is not None:
        width, height = parse_size(size)
    elif traj is not None:
        width, height = traj.width, traj.height
        if width % 2 or height % 2:
            raise UsageError(f"the trajectory's size {width}x{height} is odd; give an even --size")
        if width > 16384 or height > 16384:
            raise UsageError(f"the trajectory's size {width}x{height} is over 16384; give a --size")
        check_frame_area(width, height, "the trajectory's size")
    else:
        width, height = 1920, 1080

    t0 = time.perf_counter()
    note_untagged(info, quiet or json_output)
    with stage_progress(progress_enabled(quiet, json_output)) as progress:
        task = progress.add_task("reframe", total=info.frame_count)
        with atomic_output(output, overwrite=overwrite) as tmp:
            result = reframe_video(input, tmp, camera, proj_name, width, height, crf=crf, preset=encode_preset, stereo=stereo, info=info,
                                   on_frame=lambda n: progress.update(task, completed=n), warn=warn)
    seconds = time.perf_counter() - t0
    summary = {"output": str(output), "frames": result.frames, "width": width, "height": height,
               "projection": proj_name, "fps": result.fps, "seconds": round(seconds, 3),
               "render_fps": round(result.frames / seconds, 2) if seconds > 0 else None,
               "camera": "follow" if traj is not None else ("keyframes" if path is not None else "fixed"),
               "eye": "left" if stereo != "none" else None, "warnings": warnings}
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"wrote {output}: {count(result.frames, 'frame')} {width}x{height} {proj_name}"
                   f"{f' from the left eye of a {stereo} stereo video' if stereo != 'none' else ''} "
                   f"({summary['render_fps']} frames/s)")
