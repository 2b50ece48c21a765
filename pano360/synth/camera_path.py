"""Known camera paths for synthetic clips: a hand-held phone, Argus's training simulation, a tripod.

Every path is ``(times (N,), R (N, 3, 3))`` with ``R`` camera-to-world in the project's axes
(``CONVENTIONS.md``: ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``, positive yaw turns right, positive
pitch looks up). The world here is the panorama's; ``R[0]`` is the starting view, not the identity.
Randomness only comes from the ``generator`` argument.

>>> import numpy as np
>>> t, R = static_path(1.0, 10.0, yaw_deg=90.0)
>>> t.shape, R.shape, np.round(R[0] @ [0.0, 0.0, 1.0], 6).tolist()
((10,), (10, 3, 3), [1.0, 0.0, 0.0])
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from pano360.project.rotation import euler_to_matrix

__all__ = ["frame_times", "static_path", "phone_path", "argus_path", "path_from_euler"]


def frame_times(duration_s: float, fps: float) -> np.ndarray:
    """Presentation times ``(N,)`` of a constant-rate clip: ``i / fps`` for ``i < round(duration * fps)``."""
    if duration_s <= 0 or fps <= 0:
        raise ValueError(f"duration and fps must be positive, got {duration_s} s at {fps} fps")
    n = max(1, int(round(duration_s * fps)))
    return np.arange(n, dtype=np.float64) / float(fps)


def path_from_euler(times: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A path from per-frame yaw, pitch, roll in degrees (each ``(N,)``)."""
    return np.asarray(times, dtype=np.float64), euler_to_matrix(yaw, pitch, roll)


def static_path(duration_s: float, fps: float, yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A camera on a tripod: the same rotation for every frame."""
    t = frame_times(duration_s, fps)
    z = np.zeros_like(t)
    return path_from_euler(t, z + yaw_deg, z + pitch_deg, z + roll_deg)


def _smooth_steps(t: np.ndarray, seg_starts: np.ndarray, values: np.ndarray, ramp_s: float) -> np.ndarray:
    """A piecewise-constant signal (``values[k]`` from ``seg_starts[k]``) with ramps of about ``ramp_s``."""
    idx = np.clip(np.searchsorted(seg_starts, t, side="right") - 1, 0, len(values) - 1)
    steps = values[idx]
    dt = float(t[1] - t[0]) if len(t) > 1 else 1.0
    return gaussian_filter1d(steps, sigma=max(ramp_s / dt / 2.0, 1e-3), mode="nearest")


def phone_path(duration_s: float, fps: float, generator: np.random.Generator, *, pan_speed_deg_s: tuple[float, float] = (25.0, 45.0),
               start_yaw_deg: float = 0.0, look_pitch_deg: float = 12.0, sway_hz: float = 1.5,
               sway_deg: tuple[float, float, float] = (0.8, 0.6, 0.4), jitter_deg: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """A hand-held phone looking around: pans, holds, pitch changes, walking sway and jitter.

    The yaw rate is piecewise constant (segments of 1-2.5 s: a pan left or right at a speed in
    ``pan_speed_deg_s``, or a short hold) with smooth ramps; pitch drifts slowly within about
    ``+-look_pitch_deg``; a walking sway at ``sway_hz`` adds ``sway_deg`` (yaw, pitch, roll
    amplitudes); per-frame jitter is Gaussian, lightly smoothed (a hand is not white noise).
    """
    t = frame_times(duration_s, fps)
    # 1. Yaw rate: pans and holds.
    starts, rates = [0.0], []
    direction = generator.choice([-1.0, 1.0])
    while starts[-1] < duration_s:
        if rates and generator.random() < 0.25:
            rates.append(0.0)
        else:
            if generator.random() < 0.35:
                direction = -direction
            rates.append(direction * generator.uniform(*pan_speed_deg_s))
        starts.append(starts[-1] + generator.uniform(1.0, 2.5))
    yaw_rate = _smooth_steps(t, np.array(starts[:-1]), np.array(rates), ramp_s=0.3)
    yaw = start_yaw_deg + np.concatenate([[0.0], np.cumsum((yaw_rate[1:] + yaw_rate[:-1]) / 2 * np.diff(t))])
    # 2. Looking up and down: a slow random walk of pitch, kept in range.
    n_knots = max(2, int(duration_s / 1.5) + 2)
    knots = generator.uniform(-look_pitch_deg, look_pitch_deg, n_knots)
    knots[0] = 0.0
    pitch = np.interp(t, np.linspace(0, max(duration_s, 1e-6), n_knots), knots)
    pitch = gaussian_filter1d(pitch, sigma=max(0.3 * fps, 1e-3), mode="nearest")
    pitch -= pitch[0]
    roll = generator.uniform(-2.0, 2.0) * np.sin(2 * np.pi * t / max(duration_s, 1.0) + generator.uniform(0, 2 * np.pi))
    # 3. Walking sway and jitter.
    phases = generator.uniform(0, 2 * np.pi, 3)
    sway = np.array(sway_deg)[:, None] * np.sin(2 * np.pi * sway_hz * t[None, :] + phases[:, None])
    sway[2] = np.array(sway_deg)[2] * np.sin(np.pi * sway_hz * t + phases[2])  # roll sways once per two steps
    jitter = gaussian_filter1d(generator.normal(0.0, jitter_deg, (3, len(t))), sigma=1.0, axis=1, mode="nearest")
    return path_from_euler(t, yaw + sway[0] + jitter[0], pitch + sway[1] + jitter[1], roll + sway[2] + jitter[2])


def argus_path(duration_s: float, fps: float, generator: np.random.Generator, start_yaw_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Argus's training camera motion (src/simulate_camera_motion.py, as described in NOTES.md).

    A 1.5 Hz walking sinusoid of about 1 deg yaw, 0.5 deg pitch, 0.2 deg roll times a random factor
    in [0.5, 2]; with probability 2/3 a constant drift of up to 15 deg/s yaw, 3 deg/s pitch and
    1 deg/s roll; Gaussian jitter of 0.15/0.15/0.1 deg per frame.
    """
    t = frame_times(duration_s, fps)
    factor = generator.uniform(0.5, 2.0)
    phases = generator.uniform(0, 2 * np.pi, 3)
    amp = np.array([1.0, 0.5, 0.2]) * factor
    walk = amp[:, None] * np.sin(2 * np.pi * 1.5 * t[None, :] + phases[:, None])
    walk -= walk[:, :1]
    drift = np.zeros(3)
    if generator.random() < 2.0 / 3.0:
        drift = generator.uniform(-1.0, 1.0, 3) * np.array([15.0, 3.0, 1.0])
    jitter = generator.normal(0.0, 1.0, (3, len(t))) * np.array([0.15, 0.15, 0.1])[:, None]
    angles = walk + drift[:, None] * t[None, :] + jitter
    return path_from_euler(t, start_yaw_deg + angles[0], angles[1], angles[2])
