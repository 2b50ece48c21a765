"""Every frame's camera rotation and the field of view, from the video alone: the library behind `track`.

Steps: 1. track (``frontend.Tracker`` on gray frames with the long side at most 640 px);
2. link keyframes through shared tracks, and across breaks in tracking through the tracker's direct
alignments (``frontend.Bridge``); 3. FOV: the user's, else a 1-D search on the tracks'
rotation-only residual (direct alignments take no part: their focal length is held near a guess);
when the camera turns too little to measure it, the focal length a phone wrote into the container,
else 65 deg (with a warning); a shallow search minimum still counts when the adjustment's standard
error on the FOV is small; 4. chain keyframe rotations and adjust them
with the FOV (``bundle.adjust``); 5. close loops (ORB between keyframes that look the same way) and
adjust again; 6. every frame from its reference keyframe (best rotation on its inlier rays), frames
with nothing to track SLERPed between neighbours; 7. measure the rolling shutter's readout and, when
it shows, unroll every observation and redo 4-6. Every residual in 4-6 is weighted by how precisely
KLT placed its point (:mod:`pano360.slam.precision`). Frames are never kept; each frame's inlier
pairs go to a temporary file (:mod:`pano360.slam.framelog`), read back a block at a time, so memory
grows by the keyframes (~30 kB each with their ORB features) and a few numbers a frame.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from pano360.console import frame_list
from pano360.errors import Pano360Error
from pano360.project.camera import check_clip_hfov, focal_from_hfov
from pano360.project.rotation import best_rotation, interpolate_rotations, rotation_angle_deg
from pano360.slam.bundle import BundleResult, adjust, search_hfov
from pano360.slam.framelog import FrameLog, FrameObs
from pano360.slam.frontend import Tracker, TrackerConfig
from pano360.slam.geometry import (grouped_best_rotations, grouped_rotation_residuals, grouped_weighted_rotations, pixels_to_rays,
                                   unit_rays)
from pano360.slam.links import Link, chain_rotations, loop_links, track_links
from pano360.slam.precision import whitening
from pano360.slam.rolling import angular_velocity, search_readout, unroll_links, unroll_pixels
from pano360.trajectory import Trajectory

__all__ = ["TrackResult", "estimate_rotations", "estimate_result", "estimate_trajectory", "track_clip", "tracking_size", "WORK_SIZE", "DEFAULT_HFOV_DEG"]

WORK_SIZE = 640  # long side of the frames the tracker sees
DEFAULT_HFOV_DEG = 65.0  # a phone's main camera in video mode, used only when the FOV cannot be observed
LOW_CONFIDENCE_INLIERS = 25
# The FOV counts as measured when the search's cost rises by this share 15% away in focal, or else
# when the adjustment's standard error on it is below this fraction of it (3%: a phone's FOV is
# anywhere in 40-80 deg, so the default is usually off by far more).
FOV_CONTRAST = 0.05
FOV_SIGMA_FRAC = 0.03
# A given --hfov this far (a share) from what the pictures show is named in a warning.
USER_FOV_MISMATCH = 0.08
FOV_TURN_DEG = 10.0  # a camera turning this far shows its FOV, unless the motion is not a turn


@dataclass(frozen=True)
class TrackResult:
    """A trajectory and how it was obtained.

    Attributes:
        trajectory: one rotation per decoded frame (``R[0] = I``) and the FOV.
        hfov_source: "user", "estimated", "metadata" or "default".
        keyframes: number of keyframes; loop_closures: loop links found.
        warnings: one line each for a person: which frames and why (untrackable, low confidence...).
        low_confidence: ``(N,)`` bool, frames whose rotation was interpolated or rests on few features.
        stats: numbers for benchmarks (seconds per stage, residual RMS in work pixels, ...).
    """

    trajectory: Trajectory
    hfov_source: str
    keyframes: int
    loop_closures: int
    warnings: list[str] = field(default_factory=list)
    low_confidence: np.ndarray = field(default=None)  # type: ignore[assignment]
    stats: dict = field(default_factory=dict)


def _relative_rotations(obs: list[FrameObs], w: int, h: int, f: float) -> np.ndarray:
    """Each frame's rotation ``(len(obs), 3, 3)`` relative to its reference keyframe: the best rotation
    on its rays, refit without the rays more than 3 median errors (and 0.5 px) off, each pair
    weighted by how precisely KLT placed it in the keyframe. All at once."""
    sizes = np.array([len(o.pts) for o in obs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pa, pb = np.concatenate([o.kf_pts for o in obs]), np.concatenate([o.pts for o in obs])
    ua, ub = unit_rays(pa, w, h, f), unit_rays(pb, w, h, f)
    owner = np.repeat(np.arange(len(obs)), sizes)
    rel, err = grouped_rotation_residuals(ua, ub, starts, f)
    table = np.full((len(obs), sizes.max()), np.nan)
    table[owner, np.arange(len(err)) - starts[owner]] = err
    keep = err < np.maximum(3.0 * np.nanmedian(table, axis=1), 0.5)[owner]
    kept = np.add.reduceat(keep.astype(np.int64), starts)
    refit = (kept >= 3) & (kept < sizes)
    if refit.any():
        rel[refit] = grouped_best_rotations(ua, ub, starts, keep)[refit]
    # Then, from there, the kept pairs weighted by their precision (an edge counts across itself only).
    U = whitening([o.kf_info for o in obs], sizes)
    U[~keep] = 0.0
    weighted = grouped_weighted_rotations(rel, pa, pb, starts, U, w, h, f)
    rel[kept >= 3] = weighted[kept >= 3]
    return rel


EVERY_FRAME_BLOCK = 256  # frames refined together (each is fitted on its own)


def _every_frame(frames: FrameLog, kfs: list, R_kf: np.ndarray, linked_kfs: set[int], times: np.ndarray,
                 w: int, h: int, f: float, unroll: Callable[[int, FrameObs], FrameObs] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rotations ``(N, 3, 3)`` of every frame and which rest on evidence; the rest SLERPed between
    those. ``unroll(i, obs)``: frame ``i``'s evidence with the rolling shutter undone, when it is."""
    n = len(frames)
    R = np.repeat(np.eye(3)[None], n, axis=0)
    ok = np.zeros(n, bool)
    kf_of_frame = {k.frame: i for i, k in enumerate(kfs) if i in linked_kfs or len(kfs) == 1}
    for i, k in kf_of_frame.items():
        R[i], ok[i] = R_kf[k], True
    fitted = [i for i in range(n) if i not in kf_of_frame and frames.ref_kf(i) >= 0 and frames.point_count(i) >= 3]
    # A block of frames at a time, read back from the log: memory stays the same however long the clip.
    for at in range(0, len(fitted), EVERY_FRAME_BLOCK):
        block = fitted[at:at + EVERY_FRAME_BLOCK]
        obs = [frames[i] for i in block]
        if unroll is not None:
            obs = [unroll(i, o) for i, o in zip(block, obs)]
        ref = np.array([o.ref_kf for o in obs])
        R[block] = R_kf[ref] @ _relative_rotations(obs, w, h, f)
        ok[block] = True
    if ok.any() and not ok.all():
        good = np.flatnonzero(ok)
        R[~ok] = interpolate_rotations(times[good], R[good], times[~ok])
    return R, ok


def _rebase_segments(R: np.ndarray, segments: np.ndarray, loops: list, w: int, h: int, f: float) -> np.ndarray:
    """Keyframe rotations with every segment after a break moved rigidly to where its first
    relocalising link puts it (segments without one move with the segment before them), so the
    adjustment starts near the answer instead of 100 degrees away."""
    R = R.copy()
    for seg in range(1, int(segments.max()) + 1 if len(segments) else 0):
        members = np.flatnonzero(segments == seg)
        if not len(members):
            continue
        first = int(members[0])
        reloc = [lk for lk in loops if lk.b in members and segments[lk.a] < seg]
        if reloc:
            lk = reloc[0]
            rel = best_rotation(pixels_to_rays(lk.pa, w, h, f), pixels_to_rays(lk.pb, w, h, f))
            move = R[lk.a] @ rel @ R[lk.b].T
        else:
            move = np.eye(3)  # no link: keep continuing from the frame before the break
        R[members] = move[None] @ R[members]
        if not reloc and first > 0:
            R[members] = (R[first - 1] @ R[first].T)[None] @ R[members]
    return R


def _adjust_fov(links: list[Link], R_init: np.ndarray, w: int, h: int, hfov_deg: float, restarts: np.ndarray) -> BundleResult:
    """:func:`bundle.adjust` with the FOV solved, on the keyframes these links join only (the others
    would have nothing to hold them); what counts is its ``hfov_deg`` and ``hfov_sigma_deg``."""
    used = np.unique(np.concatenate([[0]] + [[lk.a, lk.b] for lk in links])).astype(np.int64)
    new = {int(k): i for i, k in enumerate(used)}
    sub = [replace(lk, a=new[lk.a], b=new[lk.b]) for lk in links]
    return adjust(sub, R_init[used], w, h, hfov_deg, priors=np.array([new[int(k)] for k in restarts if int(k) in new], np.int64), robust=False)


def _solve(tracker: Tracker, times: np.ndarray, out_w: int, out_h: int, hfov_deg: float | None, hfov_hint: float | None,
           source: str, stats: dict) -> TrackResult:
    w, h = tracker.width, tracker.height
    frames, kfs = tracker.frames, tracker.keyframes
    n = len(frames)
    warnings: list[str] = []
    if not kfs:
        why = (f"{out_w}x{out_h} is too small to find corners in; 96x54 or more works" if min(out_w, out_h) < 54
               else "black, blank or featureless video")
        raise Pano360Error(f"cannot track {source or 'the clip'}: none of its {n} frames has anything to track ({why})")
    t0 = time.perf_counter()
    segments = np.array([k.segment for k in kfs])
    # Breaks bridged by a direct alignment link their segments like shared tracks do.
    bridges = [Link(b.a, b.b, b.pa.astype(np.float64), b.pb.astype(np.float64)) for b in tracker.bridges]
    tracked = track_links(kfs)  # the FOV is measured on these alone
    links = tracked + bridges
    restarts = np.array([k for k in range(1, len(kfs)) if segments[k] != segments[k - 1]], np.int64)
    # 1. Field of view.
    hfov_source = "user"
    hfov = hfov_deg
    fov_fit = None  # an adjustment of the tracks alone with the FOV solved, when needed
    # Searched with --hfov given too: a wrong one bends every link (true 50 deg given as 55: 8 deg
    # median error), and where the pictures show the FOV clearly the warning says so.
    seed, contrast = search_hfov(tracked, w, h)
    stats["hfov_search_deg"] = seed
    stats["hfov_contrast"] = contrast
    if hfov is None:
        measured = math.isfinite(seed) and contrast > FOV_CONTRAST
        if math.isfinite(seed) and 0 < contrast <= FOV_CONTRAST:
            # A shallow search minimum (noise, blur, a rolling shutter, a narrow lens) may still pin the
            # FOV down: the adjustment's own standard error decides.
            fov_fit = _adjust_fov(tracked, chain_rotations(len(kfs), links, w, h, focal_from_hfov(w, seed), segments), w, h, seed, restarts)
            stats.update(hfov_trial_deg=fov_fit.hfov_deg, hfov_trial_sigma_deg=fov_fit.hfov_sigma_deg)
            measured = fov_fit.hfov_sigma_deg < FOV_SIGMA_FRAC * fov_fit.hfov_deg
        if measured:
            hfov, hfov_source = seed, "estimated"
        else:
            hfov = hfov_hint if hfov_hint is not None else DEFAULT_HFOV_DEG
            hfov_source = "metadata" if hfov_hint is not None else "default"
            fov_fit = None
    elif math.isfinite(seed) and contrast > FOV_CONTRAST and abs(seed / hfov - 1) > USER_FOV_MISMATCH:
        warnings.append(f"the pictures show a field of view near {seed:.1f} deg, not the given {hfov:g}; "
                        f"rotations may be off by degrees (a zoomed or cropped clip? leave out --hfov to measure it)")
    solve_focal = hfov_source == "estimated"
    # 2. Keyframe rotations, adjusted; then loops closed and adjusted again.
    f = focal_from_hfov(w, hfov)
    R_init = chain_rotations(len(kfs), links, w, h, f, segments)
    if hfov_source in ("metadata", "default"):
        why = "the camera hardly rotates"
        stats["turn_deg"] = turn = float(rotation_angle_deg(R_init, np.eye(3)).max())
        # How far the optical axis itself turned: a camera that only rolls about it shows no FOV.
        axis_turn = float(np.degrees(np.arccos(np.clip(R_init[:, 2, 2], -1.0, 1.0))).max())
        if turn >= FOV_TURN_DEG and axis_turn < FOV_TURN_DEG / 2:
            why = "the camera only rolls about its optical axis, which does not show it"
        elif turn >= FOV_TURN_DEG and not math.isfinite(seed):
            # It turns, but only direct alignments followed it: their focal length is a guess.
            why = "too few corners to measure it; the frames were aligned as wholes"
        elif turn >= FOV_TURN_DEG:
            # It turns, yet no FOV makes the pictures fit a turning camera: the rotations are suspect too.
            why = ("the motion does not fit a camera turning in place: something large moving on its own, or the "
                   "camera moving close to things; rotations may be off")
        warnings.append(f"the field of view cannot be measured ({why}); assumed {hfov:.1f} deg "
                        f"({'from the file' if hfov_hint is not None else 'a typical phone'}); pass --hfov if you know it")
    if solve_focal and bridges:
        # Direct alignments place pixels through a model (a turn at a focal length held near a
        # guess), so they would pull the FOV: it comes from the tracks alone and is then held.
        fov_fit = fov_fit or _adjust_fov(tracked, R_init, w, h, hfov, restarts)
        hfov, solve_focal = fov_fit.hfov_deg, False
        R_init = chain_rotations(len(kfs), links, w, h, focal_from_hfov(w, hfov), segments)
    ba = adjust(links, R_init, w, h, hfov, solve_focal=solve_focal, priors=restarts, robust=False)
    loops = loop_links(kfs, ba.R, w, h, focal_from_hfov(w, ba.hfov_deg), ba.hfov_deg)
    if loops:
        R0 = _rebase_segments(ba.R, segments, loops + bridges, w, h, focal_from_hfov(w, ba.hfov_deg))
        ba = adjust(links + loops, R0, w, h, ba.hfov_deg, solve_focal=solve_focal, priors=restarts)
    anchored = {int(segments[lk.b]) for lk in loops + bridges if segments[lk.a] < segments[lk.b]}
    lost = np.array([kfs[k].frame for k in restarts if int(segments[k]) not in anchored], np.int64)
    if len(lost):  # one line, however often it happened (a noisy clip can break at every frame)
        warnings.append(f"{frame_list(lost)}: tracking broke (a cut to another scene, "
                        f"or motion too fast to follow) and the view was not recognised again; rotations from there on continue "
                        f"from the frame before and may be off")
    # 3. Every frame; then the rolling shutter's readout measured and, when it shows, undone.
    hfov = ba.hfov_deg
    f = focal_from_hfov(w, hfov)
    linked_kfs = {lk.a for lk in links + loops} | {lk.b for lk in links + loops}
    R, ok = _every_frame(frames, kfs, ba.R, linked_kfs, times, w, h, f)
    kf_frames = np.array([k.frame for k in kfs])
    omega = angular_velocity(times, R)
    readout, gain = search_readout(links, omega[kf_frames], w, h, f) if ok.sum() > 2 else (0.0, 0.0)
    applied = readout > 0 and gain > 0.05
    # Only a readout that is undone is reported: a still or global-shutter clip's best guess is noise.
    stats.update(readout_ms=1000 * readout if applied else 0.0, readout_gain=gain)
    if applied:
        kf_omega = omega[kf_frames]
        ba = adjust(unroll_links(links + loops, kf_omega, readout, w, h, f), ba.R, w, h, hfov, solve_focal=solve_focal, priors=restarts)
        hfov = ba.hfov_deg
        f_px = f  # the pixels were measured with the focal length before this adjustment

        def unroll(i: int, o: FrameObs) -> FrameObs:
            return FrameObs(o.ref_kf, unroll_pixels(o.kf_pts, kf_omega[o.ref_kf], readout, w, h, f_px),
                            unroll_pixels(o.pts, omega[i], readout, w, h, f_px), o.inliers, o.reason)

        f = focal_from_hfov(w, hfov)
        R, ok = _every_frame(frames, kfs, ba.R, linked_kfs, times, w, h, f, unroll)
    stats["backend_s"] = time.perf_counter() - t0
    stats["ba_rms_px"] = ba.rms_px
    if hfov_source == "estimated":
        stats["hfov_sigma_deg"] = ba.hfov_sigma_deg if solve_focal else fov_fit.hfov_sigma_deg
    if not ok.all():
        warnings.append(f"{frame_list(np.flatnonzero(~ok))}: nothing to track (black, blank or featureless, or only something moving on its own); rotations interpolated")
    inliers = frames.inliers()
    inliers[~ok] = 0  # interpolated: no frame's own tracks hold them (a noise frame may have had many, all refused)
    weak = ok & (inliers < LOW_CONFIDENCE_INLIERS)
    if weak.any():
        warnings.append(f"{frame_list(np.flatnonzero(weak))}: few features (low texture or blur); low confidence")
    # The world is the first frame's camera (it may differ from keyframe 0 when the clip opens black).
    R = R[0].T[None] @ R
    traj = Trajectory(time_s=times, R=R, hfov_deg=hfov, width=out_w, height=out_h, inliers=inliers, source=source)
    stats.update(keyframes=len(kfs), loop_links=len(loops), links=len(links))
    return TrackResult(traj, hfov_source, len(kfs), len(loops), warnings, (~ok) | weak, stats)


def _blas_single_thread():
    """One BLAS thread for the back end: its vectors are small, and threaded BLAS on them spins
    (15 s instead of 0.2 s for one adjustment on a busy 2-core machine). threadpoolctl is optional."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - without it, BLAS keeps its own threads
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def tracking_size(width: int, height: int) -> tuple[int, int]:
    """The ``(w, h)`` the tracker works at for ``width x height`` frames (long side :data:`WORK_SIZE`)."""
    s = min(1.0, WORK_SIZE / max(width, height))
    return max(16, int(round(width * s))), max(16, int(round(height * s)))


def _to_gray(frame: np.ndarray, work: tuple[int, int]) -> np.ndarray:
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    if (g.shape[1], g.shape[0]) != work:
        g = cv2.resize(g, work, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(g)


def _run(frames: Iterable[tuple[float, np.ndarray]], width: int, height: int, hfov_deg: float | None, hfov_hint: float | None,
         source: str, progress: Callable[[int], None] | None, config: TrackerConfig | None) -> TrackResult:
    check_clip_hfov(hfov_deg)
    work = tracking_size(width, height)
    tracker = Tracker(work[0], work[1], config or TrackerConfig(), hfov_guess_deg=hfov_deg or hfov_hint or DEFAULT_HFOV_DEG)
    times = []
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        for i, (t, frame) in enumerate(frames):
            tracker.push(_to_gray(frame, work))
            times.append(t)
            if progress is not None:
                progress(i + 1)
    finally:
        tracker.finish()
    if not times:
        raise Pano360Error(f"no frames to track in {source or 'the clip'}")
    stats = {"frontend_s": time.perf_counter() - t0, "frontend_cpu_s": time.process_time() - c0, "frames": len(times), "work_size": list(work)}
    c1 = time.process_time()
    with _blas_single_thread():
        result = _solve(tracker, np.asarray(times, np.float64), width, height, hfov_deg, hfov_hint, source, stats)
    stats["total_s"] = time.perf_counter() - t0
    stats["backend_cpu_s"] = time.process_time() - c1
    return result


def estimate_result(frames: Iterable[np.ndarray], times: Iterable[float], width: int, height: int, hfov_deg: float | None = None,
                    *, config: TrackerConfig | None = None, progress: Callable[[int], None] | None = None) -> TrackResult:
    """:func:`estimate_rotations` with its warnings, low-confidence frames and statistics."""
    return _run(((float(t), fr) for t, fr in zip(times, frames)), width, height, hfov_deg, None, "", progress, config)


def estimate_rotations(frames: Iterable[np.ndarray], times: Iterable[float], width: int, height: int, hfov_deg: float | None = None,
                       *, config: TrackerConfig | None = None) -> Trajectory:
    """Camera rotation of every frame of a perspective sequence (and the FOV when not given).

    Args:
        frames: ``(height, width)`` gray or ``(height, width, 3)`` RGB uint8 frames, streamed in order
            (any iterable; they are not kept).
        times: ``(N,)`` their times in seconds.
        width, height: the frames' size (what the FOV refers to).
        hfov_deg: the horizontal FOV when known (e.g. a cube face's 90); estimated otherwise.

    Returns:
        A :class:`Trajectory` with ``R[0] = I`` (width/height as given, ``inliers`` per frame).
        Raises Pano360Error when nothing can be tracked. For warnings and statistics use
        :func:`estimate_result`, which takes the same arguments and returns a :class:`TrackResult`.
    """
    return estimate_result(frames, times, width, height, hfov_deg, config=config).trajectory


# Up to this many pixels a frame, one decoder thread outpaces the tracker: frame threads would
# only add their CPU overhead (~0.5 ms a 720p frame) to what the tracker's own threads could use.
SINGLE_THREAD_DECODE_PIXELS = 1280 * 720


def _frames_of(path: Path, work: tuple[int, int], pixels: int) -> Iterator[tuple[float, np.ndarray]]:
    """Upright gray frames at the work size ``(w, h)`` with their times (luma only: tracking needs no colour)."""
    from pano360.io.reader import iter_gray
    from pano360.prefetch import prefetch

    # Decoding and scaling run on the other core while the tracker works (both release the GIL).
    threads = 1 if pixels <= SINGLE_THREAD_DECODE_PIXELS else 0
    for t, gray in prefetch(((t, gray) for _, t, gray in iter_gray(path, work, threads=threads)), depth=4):
        yield t, gray


def track_clip(path: str | Path, hfov_deg: float | None = None, progress: Callable[[int], None] | None = None,
               config: TrackerConfig | None = None,
               frames: Iterable[tuple[float, np.ndarray]] | None = None) -> TrackResult:
    """Track a video file: every decoded frame's rotation, the FOV, warnings. See :class:`TrackResult`.

    ``frames`` may bring the clip's ``(time_s, gray)`` frames at :func:`tracking_size`, decoded by a
    caller that uses the same decode for something else; by default the file is decoded here.
    """
    from pano360.io.probe import validate_video_input
    from pano360.slam.metadata import hfov_from_metadata

    path = Path(path)
    info = validate_video_input(path)
    work = tracking_size(info.width, info.height)
    hint = hfov_from_metadata(path, info.width, info.height)
    if frames is None:
        frames = _frames_of(path, work, info.width * info.height)
    result = _run(frames, info.width, info.height, hfov_deg, hint, path.name, progress, config)
    if hint is not None:
        result.stats["hfov_metadata_deg"] = hint
    return result


def estimate_trajectory(path: str | Path, hfov_deg: float | None = None, progress: Callable[[int], None] | None = None) -> Trajectory:
    """The trajectory of a video file (one entry per decoded frame, ``R[0] = I``); see :func:`track_clip`."""
    return track_clip(path, hfov_deg, progress).trajectory
