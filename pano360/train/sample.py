"""One training sample: a simulated phone filming inside a 360 clip, put back on the ERP canvas.

The world of a sample is the first simulated camera's frame, as at inference (CONVENTIONS.md:
the world is the first frame's camera, ``R_0 = I``): the target is the 360 clip re-oriented by
``R_0`` and the canvas holds each perspective view placed with ``R_0^T R_i``. The views are
rendered by :func:`pano360.project.remap.erp_to_persp` and placed by
:func:`pano360.project.remap.persp_to_erp`, the code inference uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pano360.project.remap import erp_to_persp, persp_to_erp, rotate_erp
from pano360.project.rotation import euler_to_matrix
from pano360.synth.camera_path import argus_path

__all__ = ["PhoneCamera", "Sample", "sample_camera", "view_size", "make_sample"]

HFOV_RANGE = (30.0, 120.0)  # Argus samples the horizontal FOV in [30, 120] degrees
START_PITCH_SD = 8.0  # degrees; phones start near the horizon


@dataclass(frozen=True)
class PhoneCamera:
    """A simulated phone: rotations ``R (F, 3, 3)`` in the panorama's world, horizontal FOV,
    picture size ``width x height`` (portrait when taller than wide)."""

    R: np.ndarray
    hfov_deg: float
    width: int
    height: int


@dataclass
class Sample:
    """``target (F, H, W, 3) uint8``: the full ERP clip; ``canvas (F, H, W, 3) uint8`` and
    ``mask (F, H, W) bool`` (True = seen by the phone): the conditioning; ``prompt``; ``info``:
    how it was made (video, start frame, FOV, portrait, roll in pixels)."""

    target: np.ndarray
    canvas: np.ndarray
    mask: np.ndarray
    prompt: str = ""
    info: dict = field(default_factory=dict)


def view_size(erp_width: int, hfov_deg: float, portrait: bool, aspect: float = 16 / 9) -> tuple[int, int]:
    """Picture size ``(w, h)`` of a phone view with about the ERP's angular resolution (x1.5).

    An ERP of width W has ``W / (2 pi)`` pixels per radian at the equator; a pinhole of FOV ``a``
    spans ``2 tan(a / 2)`` focal lengths, hence ``w = 1.5 W tan(a / 2) / pi`` (at least 8, even).
    """
    w = max(8, int(round(1.5 * erp_width * math.tan(math.radians(hfov_deg) / 2) / math.pi / 2)) * 2)
    h = max(8, int(round(w / aspect / 2)) * 2) if not portrait else max(8, int(round(w * aspect / 2)) * 2)
    return w, h


def sample_camera(n_frames: int, fps: float, erp_width: int, generator: np.random.Generator) -> PhoneCamera:
    """Argus's camera motion (walking sway, drift, jitter; :func:`pano360.synth.camera_path.argus_path`)
    from a start pitch ~ N(0, 8 deg), FOV uniform in [30, 120] deg, landscape or portrait 50/50."""
    hfov = float(generator.uniform(*HFOV_RANGE))
    portrait = bool(generator.random() < 0.5)
    pitch0 = float(np.clip(generator.normal(0.0, START_PITCH_SD), -25.0, 25.0))
    _, R_path = argus_path(n_frames / fps, fps, generator)
    R_path = R_path[:n_frames]
    if len(R_path) < n_frames:
        R_path = np.concatenate([R_path, np.repeat(R_path[-1:], n_frames - len(R_path), 0)])
    R = euler_to_matrix(0.0, pitch0, 0.0) @ R_path
    w, h = view_size(erp_width, hfov, portrait)
    return PhoneCamera(R, hfov, w, h)


def make_sample(clip: np.ndarray, generator: np.random.Generator, fps: float = 30.0, prompt: str = "") -> Sample:
    """A training sample from an ERP clip ``(F, H, 2H, 3) uint8`` (see module docstring).

    The whole sphere is first rolled by a random number of columns (a random yaw), then filmed by
    :func:`sample_camera`. Randomness only comes from ``generator``.
    """
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[2] != 2 * clip.shape[1]:
        raise ValueError(f"clip must be (F, H, 2H, 3), got {clip.shape}")
    n, h, w = clip.shape[:3]
    roll = int(generator.integers(0, w))
    cam = sample_camera(n, fps, w, generator)
    R0_T = cam.R[0].T
    target = np.empty_like(clip)
    canvas = np.empty_like(clip)
    mask = np.empty((n, h, w), bool)
    for i in range(n):
        erp = np.roll(clip[i], roll, axis=1)
        view = erp_to_persp(erp, cam.R[i], cam.hfov_deg, cam.width, cam.height)
        target[i] = rotate_erp(erp, cam.R[0])
        canvas[i], mask[i] = persp_to_erp(view, R0_T @ cam.R[i], cam.hfov_deg, w, h)
    info = dict(hfov_deg=round(cam.hfov_deg, 3), portrait=cam.height > cam.width, view=[cam.width, cam.height], roll_px=roll)
    return Sample(target, canvas, mask, prompt, info)
