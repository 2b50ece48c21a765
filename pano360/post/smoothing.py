"""Smoothers of a camera path, Gyroflow style: each takes a Trajectory and returns one.

``smooth_none`` returns its input; ``smooth_lock`` holds the first frame's orientation (the world
stands still); ``smooth_plain`` is the forward-backward exponential SLERP of
``project.rotation.smooth_rotations``. :func:`corrections` turns a path and its smoothed version
into the per-frame re-orientation of each ERP frame (Gyroflow's ``sq.inverse() * q``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pano360.project.rotation import check_rotations, euler_to_matrix, matrix_to_euler, smooth_rotations
from pano360.trajectory import Trajectory

__all__ = ["smooth_none", "smooth_lock", "smooth_plain", "level_path", "corrections"]


def smooth_none(traj: Trajectory) -> Trajectory:
    """The identity smoother."""
    return traj


def smooth_lock(traj: Trajectory) -> Trajectory:
    """Every frame keeps frame 0's orientation: the world holds still."""
    return replace(traj, R=np.repeat(traj.R[:1], len(traj), axis=0))


def smooth_plain(traj: Trajectory, tau_s: float) -> Trajectory:
    """Forward-backward exponential SLERP with time constant ``tau_s`` seconds (0 returns the input)."""
    return replace(traj, R=smooth_rotations(traj.time_s, traj.R, tau_s))


def level_path(R: np.ndarray) -> np.ndarray:
    """Keep only the heading (yaw) of each rotation ``(N, 3, 3)``: up stays up, the horizon level."""
    yaw, _, _ = matrix_to_euler(check_rotations(R))
    return euler_to_matrix(yaw, 0.0, 0.0)


def corrections(R: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Per-frame re-orientations ``R_i^T S_i (N, 3, 3)`` for ``project.remap.rotate_erp``.

    ``R`` is the camera path, ``S`` the path the output should have (both camera to world): the
    output frame's direction ``d`` shows the input frame's direction ``R_i^T S_i d``.
    """
    R, S = check_rotations(R), check_rotations(S)
    return np.swapaxes(R, -1, -2) @ S
