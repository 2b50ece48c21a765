"""Film a phone clip inside an ERP panorama along a known camera path: the ground truth of tracking.

``render_frames`` yields the perspective frames (an iterator, never the whole clip in memory);
``write_clip`` encodes them to H.264 and returns the true :class:`~pano360.trajectory.Trajectory`
in the project's convention: the world is the first frame's camera, ``R_i = R_0^T @ path_R_i``,
so ``R[0]`` is the identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from pano360.errors import Pano360Error
from pano360.project.camera import focal_from_hfov, pixel_rays
from pano360.project.erp import check_erp_size, dirs_to_uv
from pano360.project.remap import erp_to_persp, sample_erp
from pano360.project.rotation import check_rotations, interpolate_rotations, matrix_to_rotvec, rotvec_to_matrix
from pano360.synth.degrade import Degradations, MovingObject, exposure, motion_blur, paste_object, sensor_noise
from pano360.trajectory import Trajectory

__all__ = ["load_erp", "render_rolling_shutter", "render_frames", "write_clip", "relative_trajectory"]


def load_erp(path: str | Path, max_width: int | None = None) -> np.ndarray:
    """Read an ERP image as ``(H, 2H, 3) uint8`` RGB, downscaled (area filter) to ``max_width`` if wider."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise Pano360Error(f"cannot read panorama image {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if max_width is not None and rgb.shape[1] > max_width:
        w = max_width - max_width % 2
        rgb = cv2.resize(rgb, (w, w // 2), interpolation=cv2.INTER_AREA)
    check_erp_size(rgb.shape[1], rgb.shape[0])
    return rgb


def render_rolling_shutter(erp: np.ndarray, R_rows: np.ndarray, hfov_deg: float, out_w: int, out_h: int) -> np.ndarray:
    """A perspective view whose row ``v`` is seen with rotation ``R_rows[v]`` (``(out_h, 3, 3)``)."""
    R_rows = check_rotations(R_rows).astype(np.float32)
    if R_rows.shape[0] != out_h:
        raise ValueError(f"R_rows must be ({out_h}, 3, 3), got {R_rows.shape}")
    rays = pixel_rays(out_w, out_h, float(hfov_deg))
    world = np.einsum("hwj,hij->hwi", rays, R_rows)
    u, v = dirs_to_uv(world, erp.shape[1], erp.shape[0])
    return sample_erp(erp, u.astype(np.float32), v.astype(np.float32))


def _rotations_at(times: np.ndarray, R: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The path SLERPed at ``query`` times, extended past its ends at the end intervals' angular velocity
    (a rolling shutter sees the first frame's top rows before the path's first sample)."""
    out = interpolate_rotations(times, R, query)
    if len(times) < 2:
        return out
    for end, (i, j) in (("lo", (0, 1)), ("hi", (-2, -1))):
        sel = query < times[0] if end == "lo" else query > times[-1]
        if sel.any():
            rate = matrix_to_rotvec(R[i].T @ R[j]) / (times[j] - times[i])
            anchor = R[0] if end == "lo" else R[-1]
            t_anchor = times[0] if end == "lo" else times[-1]
            out[sel] = anchor[None] @ rotvec_to_matrix(rate[None] * (query[sel] - t_anchor)[:, None])
    return out


def _centre_motion(R_a: np.ndarray, R_b: np.ndarray, f: float) -> tuple[float, float]:
    """Pixel motion of the frame centre from rotation ``R_a`` to ``R_b`` (image plane of ``R_a``)."""
    d = R_a.T @ R_b @ np.array([0.0, 0.0, 1.0])
    if d[2] <= 1e-6:
        return 0.0, 0.0
    return float(f * d[0] / d[2]), float(f * d[1] / d[2])


def render_frames(erp: np.ndarray, times: np.ndarray, R: np.ndarray, hfov_deg: float, width: int, height: int,
                  degrade: Degradations | None = None, generator: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Yield the ``(height, width, 3) uint8`` frames filmed along the path ``(times (N,), R (N, 3, 3))``.

    Without ``degrade`` frame ``i`` is exactly ``erp_to_persp(erp, R[i], hfov_deg, width, height)``.
    With a rolling shutter, row ``v`` is seen at ``times[i] + (v / (h - 1) - 0.5) * readout_s``
    (the path SLERPed, and extended past its ends at constant angular velocity), so ``R[i]`` is the
    rotation at mid-readout, the centre row.
    """
    R = check_rotations(R)
    times = np.asarray(times, dtype=np.float64)
    if R.shape != (len(times), 3, 3):
        raise ValueError(f"R must be ({len(times)}, 3, 3), got {R.shape}")
    d = degrade or Degradations()
    gen = generator if generator is not None else np.random.default_rng(0)
    f = focal_from_hfov(width, hfov_deg)
    duration = max(float(times[-1] - times[0]), 1e-6)
    obj = MovingObject.random(width, height, d.object_frac, gen) if d.moving_object else None
    phase = gen.uniform(0, 2 * np.pi)
    row_offsets = (np.arange(height) / max(height - 1, 1) - 0.5) * d.readout_s
    for i, t in enumerate(times):
        if d.readout_s > 0:
            rgb = render_rolling_shutter(erp, _rotations_at(times, R, t + row_offsets), hfov_deg, width, height)
        else:
            rgb = erp_to_persp(erp, R[i], hfov_deg, width, height)
        if d.exposure_s > 0 and len(times) > 1:
            half = _rotations_at(times, R, np.array([t - d.exposure_s / 2, t + d.exposure_s / 2]))
            rgb = motion_blur(rgb, *_centre_motion(half[0], half[1], f))
        if obj is not None:
            rgb = paste_object(rgb, obj, float(t - times[0]) / duration)
        if d.exposure_swing > 0:
            rgb = exposure(rgb, 1.0 + d.exposure_swing * np.sin(2 * np.pi * t / 3.0 + phase))
        if d.noise_sigma > 0:
            rgb = sensor_noise(rgb, d.noise_sigma, gen)
        yield rgb


def relative_trajectory(times: np.ndarray, R: np.ndarray, hfov_deg: float, width: int, height: int, source: str = "") -> Trajectory:
    """The ground truth in the project's world (the first frame's camera): ``R_i = R_0^T @ R[i]``."""
    R = check_rotations(R)
    return Trajectory(time_s=np.asarray(times, dtype=np.float64), R=R[0].T[None] @ R, hfov_deg=hfov_deg,
                      width=width, height=height, source=source)


def write_clip(path: str | Path, erp: np.ndarray, times: np.ndarray, R: np.ndarray, hfov_deg: float, width: int, height: int,
               fps: float, degrade: Degradations | None = None, generator: np.random.Generator | None = None,
               crf: int = 18, preset: str = "veryfast") -> Trajectory:
    """Render the path to an H.264 MP4 at ``fps`` and return the true trajectory (``R[0]`` = I).

    ``times`` should be ``i / fps`` (as :func:`~pano360.synth.camera_path.frame_times` gives), so the
    container's timestamps match the trajectory's. The same arguments give the same file, bit for
    bit, so tests and benchmarks measure the same clip every run.
    """
    from pano360.io.writer import VideoWriter

    with VideoWriter(path, width, height, fps, codec="h264", crf=crf, preset=preset, reproducible=True) as writer:
        for rgb in render_frames(erp, times, R, hfov_deg, width, height, degrade, generator):
            writer.write(rgb)
    return relative_trajectory(times, R, hfov_deg, width, height, source=Path(path).name)
