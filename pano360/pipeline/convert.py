"""``convert``: a perspective video to a full 360 equirectangular MP4, in two streaming passes.

1. Check the input; the trajectory (estimated, or read from a file); optional levelling;
   the output orientation (locked to the first frame's world, or following the heading).
2. Pass 1 (mosaic backend): the full-clip background mosaic and exposure gains at reduced cost.
3. Pass 2: every frame placed on the world ERP (view-based alignment), the backend fills the
   rest, frames are encoded with the input's audio, the file gets Spherical Video V1 + V2
   metadata and is renamed into place.

Memory holds a few ERP frames, never the clip.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from pano360.canvas import yuv420_planes
from pano360.console import note, stage_progress
from pano360.errors import Pano360Error, UsageError
from pano360.generate.mosaic_place import Placement, Yuv420Placement, canvas_from_placement, place_frame, place_yuv420
from pano360.pipeline.spool import FrameSpool
from pano360.trajectory import Trajectory

__all__ = ["ConvertOptions", "RotationLookup", "convert_video", "trajectory_stats", "check_width"]

PREVIEW_FRAMES = 4
MOSAIC_STEP = 3  # the background samples every 3rd frame
SPOOL_WIDTH = 1024  # samples kept while tracking: wide enough for the background up to ~100 deg FOV


@dataclass
class ConvertOptions:
    """Everything ``pano360 convert`` takes besides IN and OUT (see the command's help)."""

    backend: str = "auto"
    width: int = 4096
    hfov_deg: float | None = None
    trajectory: Path | None = None
    save_trajectory: Path | None = None
    orientation: str = "world"
    level: bool = False
    preview: Path | None = None
    crf: int = 20
    preset: str = "ultrafast"
    overwrite: bool = False
    model: str | None = None
    device: str | None = None
    wan: dict[str, Any] = field(default_factory=dict)
    bg_width: int | None = None
    bg_step: int | None = None


class RotationLookup:
    """``R`` of a decoded frame: the trajectory's entry when index and time agree, else SLERPed by time."""

    def __init__(self, traj: Trajectory) -> None:
        self.traj = traj
        self._slerp = None

    def __call__(self, index: int, time_s: float) -> np.ndarray:
        t = self.traj
        if index < len(t) and abs(float(t.time_s[index]) - time_s) < 2e-3:
            return t.R[index]
        if len(t) == 1:
            return t.R[0]
        if self._slerp is None:
            from scipy.spatial.transform import Rotation, Slerp

            self._slerp = Slerp(t.time_s, Rotation.from_matrix(t.R))
        q = float(np.clip(time_s, t.time_s[0], t.time_s[-1]))
        return self._slerp([q]).as_matrix()[0]


def check_width(width: int) -> int:
    """The output ERP width: even height (W/2) for yuv420p, so a multiple of 4, 64..16384 (x264's widest)."""
    if not 64 <= width <= 16384 or width % 4:
        raise UsageError(f"--width must be a multiple of 4 within 64..16384 (height = width / 2), got {width}")
    return int(width)


def _default_bg(width: int) -> int:
    """Background mosaic width: a power of two (for the pyramid fill), at most 2048 and the output width."""
    w = 256
    while w * 2 <= min(width, 2048):
        w *= 2
    return w


def trajectory_stats(traj: Trajectory) -> dict:
    """People-readable numbers about a trajectory (ranges of yaw/pitch/roll, total turning)."""
    from pano360.project.rotation import matrix_to_euler, rotation_angle_deg

    yaw, pitch, roll = matrix_to_euler(traj.R)
    yaw_u = np.degrees(np.unwrap(np.radians(yaw)))
    steps = rotation_angle_deg(traj.R[:-1], traj.R[1:]) if len(traj) > 1 else np.zeros(0)
    rng = lambda a: [round(float(np.min(a)), 2), round(float(np.max(a)), 2)]  # noqa: E731
    return {
        "frames": len(traj),
        "hfov_deg": round(traj.hfov_deg, 3),
        "yaw_deg": rng(yaw_u), "pitch_deg": rng(pitch), "roll_deg": rng(roll),
        "total_rotation_deg": round(float(steps.sum()), 2),
    }


def _file_trajectory(info, opts: ConvertOptions) -> tuple[Trajectory, str | None]:
    """The trajectory file ``opts.trajectory``, checked against the video (before any work), and
    a warning when its frames do not match the video's."""
    traj = Trajectory.load(opts.trajectory)
    traj.check_flat(f"trajectory {opts.trajectory}")
    if traj.width * info.height != traj.height * info.width:
        raise Pano360Error(f"trajectory {opts.trajectory} is for {traj.width}x{traj.height} frames, "
                           f"the video is {info.width}x{info.height}")
    warning = traj.check_covers(info.duration_s, float(info.fps), f"trajectory {opts.trajectory}",
                                info.frame_count if info.frame_count_exact else None)
    if opts.hfov_deg is not None:
        traj = Trajectory(traj.time_s, traj.R, opts.hfov_deg, traj.width, traj.height, traj.inliers, traj.source)
    return traj, warning


def _get_trajectory(path: Path, info, opts: ConvertOptions, done: Callable[[int], None],
                    keep: tuple[int, int, FrameSpool] | None = None,
                    given: Trajectory | None = None) -> tuple[Trajectory, str, list[str]]:
    """The trajectory to render with, where it came from and the tracker's warnings; ``done(n)``
    reports frames tracked so far.

    ``given``: the checked trajectory file. ``keep = (every, width, spool)``: when the clip is
    tracked, the same decode keeps every ``every``-th frame (RGB, at most ``width`` wide) in
    ``spool`` for the background pass.
    """
    if given is not None:
        return given, "file", []
    try:
        from pano360.slam.estimate import track_clip, tracking_size
    except ImportError:
        raise Pano360Error("rotation estimation is not available in this build; pass --trajectory traj.json") from None
    frames = None
    if keep is not None:
        from pano360.io.reader import iter_gray_sampled
        from pano360.prefetch import prefetch

        every, width, spool = keep

        def gray_keeping_samples():
            for index, t, gray, rgb in iter_gray_sampled(path, tracking_size(info.width, info.height), every, width):
                if rgb is not None:
                    spool.add(index, t, rgb)
                yield t, gray

        frames = prefetch(gray_keeping_samples(), depth=4)  # decoding and keeping beside the tracker
    result = track_clip(path, opts.hfov_deg, done, frames=frames)
    return result.trajectory, "estimated", list(result.warnings)


def _level(path: Path, traj: Trajectory) -> tuple[Trajectory, dict]:
    """The trajectory turned so the estimated up is -y, and what was done (for --json)."""
    from pano360.slam.level import estimate_up, level_rotation

    up, how = estimate_up(path, traj)
    L = level_rotation(up)
    tilt = float(np.degrees(np.arccos(np.clip(-up[1] / np.linalg.norm(up), -1, 1))))
    levelled = Trajectory(traj.time_s, L[None] @ traj.R, traj.hfov_deg, traj.width, traj.height, traj.inliers, traj.source)
    return levelled, {"applied": True, "tilt_deg": round(tilt, 2), "method": how}


def _make_backend(name: str, opts: ConvertOptions):
    if name == "mosaic":
        from pano360.generate.mosaic import MosaicBackend

        return MosaicBackend(bg_width=opts.bg_width or _default_bg(opts.width), step=opts.bg_step or MOSAIC_STEP)
    from pano360.generate.wan.backend import WanBackend

    kwargs = dict(opts.wan)
    kwargs.setdefault("model", opts.model)
    kwargs.setdefault("device", opts.device)
    return WanBackend(**kwargs)


def convert_video(input_path: str | Path, output_path: str | Path, opts: ConvertOptions, show_progress: bool = False,
                  quiet: bool = True, show_warnings: bool = True) -> dict:
    """Run the whole convert job; returns the JSON summary (see ``pano360 convert --json``).

    ``show_progress`` draws rich bars on stderr; ``quiet`` silences the notes (the chosen backend);
    warnings (the summary's ``warnings``) go to stderr as they arise unless ``show_warnings`` is False.
    """
    from pano360.generate.select import choose_backend
    from pano360.io.atomic import MP4_OUTPUT_SUFFIXES, check_output_path
    from pano360.io.probe import validate_video_input
    from pano360.io.reader import iter_frames, iter_yuv420
    from pano360.io.spherical import spherical_output
    from pano360.io.writer import VideoWriter, check_encoder_settings
    from pano360.project.camera import check_clip_hfov
    from pano360.pipeline.orient import check_orientation, follow_shifts, heading_deg
    from pano360.prefetch import prefetch

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    src, out = Path(input_path), Path(output_path)
    width = check_width(opts.width)
    check_encoder_settings("h264", opts.crf, opts.preset)
    height = width // 2
    check_orientation(opts.orientation)
    check_clip_hfov(opts.hfov_deg)
    info = validate_video_input(src)
    if info.spherical is not None:
        sph = info.spherical
        kind = sph.projection if sph.stereo == "none" else f"{sph.projection}, stereo {sph.stereo}"
        raise Pano360Error(f"already a 360 video ({kind}, Spherical Video {sph.source} metadata): convert takes a flat "
                           f"clip; use reframe, stabilize or metrics on a 360 video: {src}")
    check_output_path(out, opts.overwrite, inputs=(src,), suffixes=MP4_OUTPUT_SUFFIXES)
    # The second outputs are checked before any work too, and may be no input and no other output.
    inputs = (src,) + ((opts.trajectory,) if opts.trajectory is not None else ())
    if opts.preview is not None:
        check_output_path(opts.preview, opts.overwrite, inputs, (".png",), what="--preview",
                          other_outputs=(("output", out), ("--save-trajectory", opts.save_trajectory)))
    if opts.save_trajectory is not None:
        check_output_path(opts.save_trajectory, opts.overwrite, inputs, (".json",), what="--save-trajectory",
                          other_outputs=(("output", out),))
    given, given_warning = _file_trajectory(info, opts) if opts.trajectory is not None else (None, None)
    warnings = [w for w in (info.non_square_pixels, given_warning, *info.picture_caveats) if w]
    for w in warnings:  # warnings show even with -q (and with --json, where they are listed too)
        note(f"warning: {w}", quiet=not show_warnings)
    backend_name, reason = choose_backend(opts.backend, opts.model, opts.device)
    note(f"backend: {backend_name} ({reason})", quiet)
    timings["probe"] = time.perf_counter() - t_start
    n_est = max(1, int(info.frame_count))

    with stage_progress(show_progress) as prog, contextlib.ExitStack() as stack:
        # 1. Trajectory, levelling, orientation. The mosaic backend's pass 1 samples the clip: when
        # the clip is tracked, the tracking decode keeps those samples, so pass 1 decodes nothing.
        t0 = time.perf_counter()
        task = prog.add_task("track", total=n_est if opts.trajectory is None else 1)
        spool = keep = None
        if opts.trajectory is None and backend_name == "mosaic":
            spool = stack.enter_context(FrameSpool())
            keep = (opts.bg_step or MOSAIC_STEP, min(info.width, SPOOL_WIDTH), spool)
        traj, traj_source, track_warnings = _get_trajectory(src, info, opts, lambda n: prog.update(task, completed=n),
                                                             keep, given)
        prog.update(task, completed=prog.tasks[task].total)
        for w in track_warnings:
            note(f"warning: {w}", quiet=not show_warnings)
        warnings += track_warnings
        rotation_at = RotationLookup(traj)
        level_info: dict = {"applied": False}
        if opts.level:
            traj, level_info = _level(src, traj)
            rotation_at = RotationLookup(traj)
        shifts = None
        if opts.orientation == "follow":
            shifts = follow_shifts(heading_deg(traj.time_s, traj.R), width)
        timings["track"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        backend = _make_backend(backend_name, opts)
        timings["load_backend"] = time.perf_counter() - t0

        # 2. Pass 1: the full-clip background (backends that want it).
        t0 = time.perf_counter()
        if hasattr(backend, "prepare"):
            task = prog.add_task("mosaic", total=n_est)
            # Only the frames the background samples are converted; their times come from the trajectory.
            step = int(getattr(backend, "step", 1))
            if spool is not None and len(spool):
                frames = prefetch(iter(spool))
            else:
                sample_w = backend.sample_width(info.width, traj.hfov_deg) if hasattr(backend, "sample_width") else None
                frames = prefetch((f.index, f.time_s, f.rgb) for f in iter_frames(src, sample_w, every=step))
            backend.prepare(frames, rotation_at, traj.hfov_deg, progress=lambda k: prog.advance(task, k),
                            times=traj.time_s)
            prog.update(task, completed=prog.tasks[task].total)
        timings["mosaic"] = time.perf_counter() - t0

        # 3. Pass 2: place, fill, encode.
        t0 = time.perf_counter()
        task = prog.add_task("render", total=n_est)
        seen = np.zeros((height, width), bool)
        alpha_for = getattr(backend, "frame_alpha", None)
        preview_every = max(1, n_est // PREVIEW_FRAMES)
        previews: list[tuple[float, np.ndarray]] = []

        # The mosaic backend works in the decoder's 4:2:0 planes (no RGB at full size, in or out);
        # other backends (and odd-sized inputs) go through RGB.
        yuv = hasattr(backend, "fill_placed_yuv420") and info.width % 2 == 0 and info.height % 2 == 0
        # Unspecified tags as players would have assumed them for the input (the output is another size);
        # the RGB path keeps its primaries and transfer (VideoWriter.write).
        colour = info.colour.assumed(info.coded_width, info.coded_height)

        # Each output frame keeps its input frame's time (a variable-rate clip stays in step with its
        # audio); the backends give one frame per placement, in order.
        times: deque[float] = deque()

        def mark_seen(pl: Placement) -> None:
            for erp_cols, box_cols in pl.column_pieces():
                seen[pl.v0:pl.v1, erp_cols] |= pl.alpha[:, box_cols] > 0

        def placements() -> Iterator[Placement]:
            alpha = None
            for f in iter_frames(src):
                times.append(f.time_s)
                if alpha is None and alpha_for is not None:
                    alpha = alpha_for(f.rgb.shape[1], f.rgb.shape[0])
                pl = place_frame(f.rgb, rotation_at(f.index, f.time_s), traj.hfov_deg, width, alpha, f.time_s)
                mark_seen(pl)
                yield pl

        def placements_yuv420() -> Iterator[Yuv420Placement]:
            a_y = a_c = None
            for f in iter_yuv420(src):
                times.append(f.time_s)
                if a_y is None and alpha_for is not None:
                    a_y, a_c = alpha_for(*f.y.shape[::-1]), alpha_for(*f.u.shape[::-1])
                pl = place_yuv420(f.y, f.u, f.v, rotation_at(f.index, f.time_s), traj.hfov_deg, width, a_y, a_c,
                                  f.time_s)
                mark_seen(pl.y)
                yield pl

        if yuv:
            filled = backend.fill_placed_yuv420(prefetch(placements_yuv420()), colour.to_yuv420)
        elif hasattr(backend, "fill_placed"):
            filled = backend.fill_placed(prefetch(placements()), reuse_buffer=True)
        else:
            filled = backend.fill(prefetch(canvas_from_placement(p) for p in placements()))
        n_written = 0
        with spherical_output(out, overwrite=opts.overwrite) as tmp:
            with VideoWriter(tmp, width, height, info.fps, crf=opts.crf, preset=opts.preset, vfr=True,
                             audio_from=src if info.has_audio else None, time_base=info.frame_time_base,
                             colour=colour) as writer:
                for i, frame in enumerate(filled):
                    if shifts is not None:
                        frame = _turn(frame, int(shifts[min(i, len(shifts) - 1)]), height if yuv else None)
                    if opts.preview is not None and i % preview_every == 0 and len(previews) < PREVIEW_FRAMES:
                        rgb = colour.to_rgb(frame) if yuv else frame
                        previews.append((float(traj.time_s[min(i, len(traj) - 1)]), _small(rgb, 1024)))
                    t = times.popleft()
                    if yuv:
                        writer.write_yuv420(frame, t)
                    else:
                        writer.write(frame, t)
                    n_written += 1
                    prog.advance(task, 1)
            for w in writer.dropped_audio:
                note(f"warning: {w}", quiet=not show_warnings)
            warnings += writer.dropped_audio
            if n_written == 0:
                raise Pano360Error(f"no frames decoded from {src}")
            timings["render"] = time.perf_counter() - t0
            # The second outputs are written (each atomically) before the video is renamed into
            # place: when one fails, nothing of this run is left and an older output stays as it was.
            preview_path = None
            if opts.preview is not None:
                from pano360.preview import contact_sheet, save_png

                t0 = time.perf_counter()
                save_png(opts.preview, contact_sheet(previews, seen, traj))
                preview_path = str(opts.preview)
                timings["preview"] = time.perf_counter() - t0
            if opts.save_trajectory is not None:  # after the preview, the likelier to fail
                _output_trajectory(traj, shifts, width, yuv).save(opts.save_trajectory)
        prog.update(task, completed=n_written, total=n_written)

    coverage = _coverage(seen)
    total = time.perf_counter() - t_start
    timings["total"] = total
    duration = float(info.duration_s) if info.duration_s else n_written / float(info.fps)
    return {
        "input": str(src),
        "output": str(out),
        "backend": backend_name,
        "backend_reason": reason,
        "width": width,
        "height": height,
        "frames": n_written,
        "fps": float(info.fps),
        "duration_s": round(duration, 3),
        "coverage_pct": round(100.0 * coverage, 2),
        "orientation": opts.orientation,
        "level": level_info,
        "trajectory": {"source": traj_source, **trajectory_stats(traj)},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "realtime_factor": round(total / duration, 3) if duration > 0 else None,
        "preview": preview_path,
        "warnings": warnings,
    }


def _output_trajectory(traj: Trajectory, shifts: np.ndarray | None, width: int, yuv: bool) -> Trajectory:
    """The trajectory in the output's frame: with ``--orientation follow`` each output frame is the
    world turned by its shift (as :func:`_turn` applies it), so ``reframe --follow`` of the output
    along this file gives the clip back."""
    if shifts is None:
        return traj
    from pano360.project.rotation import euler_to_matrix

    applied = _applied_shift(shifts[np.minimum(np.arange(len(traj)), len(shifts) - 1)], yuv)
    # Output column j shows world column j + shift: output longitudes are the world's less the turn.
    return replace(traj, R=euler_to_matrix(-360.0 * applied / width, 0.0, 0.0) @ traj.R)


def _applied_shift(shift: int | np.ndarray, yuv: bool) -> int | np.ndarray:
    """The column shift(s) :func:`_turn` applies: a 4:2:0 frame's is rounded down to even (chroma)."""
    return shift - shift % 2 if yuv else shift


def _turn(frame: np.ndarray, shift: int, yuv_height: int | None) -> np.ndarray:
    """The ERP frame turned left by ``shift`` columns (``--orientation follow``): an RGB frame, or
    a packed 4:2:0 one of ``yuv_height`` rows, whose shift is rounded to even columns (chroma)."""
    if yuv_height is None:
        return np.roll(frame, -shift, axis=1)
    shift = _applied_shift(shift, True)
    out = np.empty_like(frame)
    for src, dst, k in zip(yuv420_planes(frame, yuv_height), yuv420_planes(out, yuv_height), (1, 2, 2)):
        dst[:] = np.roll(src, -(shift // k), axis=1)
    return out


def _small(rgb: np.ndarray, width: int) -> np.ndarray:
    import cv2

    if rgb.shape[1] <= width:
        return rgb.copy()
    return cv2.resize(rgb, (width, width // 2), interpolation=cv2.INTER_AREA)


def _coverage(seen: np.ndarray) -> float:
    """Fraction of the sphere's area marked seen (rows weighted by cos(latitude))."""
    h = seen.shape[0]
    lat = (0.5 - (np.arange(h) + 0.5) / h) * np.pi
    w = np.cos(lat)
    return float((seen.mean(axis=1) * w).sum() / w.sum())
