"""Which way the output ERP faces: locked to the first frame's world, or following the heading."""

from __future__ import annotations

import numpy as np

from pano360.errors import UsageError
from pano360.project.rotation import smooth_rotations

__all__ = ["ORIENTATIONS", "check_orientation", "heading_deg", "follow_shifts"]

ORIENTATIONS = ("world", "follow")


def check_orientation(orientation: str) -> None:
    """Raise UsageError unless ``orientation`` (the ``--orientation`` flag) is one of :data:`ORIENTATIONS`."""
    if orientation not in ORIENTATIONS:
        raise UsageError(f"--orientation must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}")


def heading_deg(times: np.ndarray, R: np.ndarray, tau_s: float = 1.0) -> np.ndarray:
    """The smoothed camera heading ``(N,)`` in degrees: yaw about the world's vertical axis (y) of the
    optical axis, from rotations ``R (N, 3, 3)`` smoothed with time constant ``tau_s``, unwrapped.

    Positive is to the right (toward +x), as yaw is in ``CONVENTIONS.md``.
    """
    Rs = smooth_rotations(times, R, tau_s)
    z = Rs[:, :, 2]  # optical axes in the world
    return np.degrees(np.unwrap(np.arctan2(z[:, 0], z[:, 2])))


def follow_shifts(heading: np.ndarray, erp_w: int) -> np.ndarray:
    """Integer column shifts ``(N,)`` that put each heading at the ERP centre: output column ``j``
    shows world column ``(j + shift) % W`` (``np.roll(world, -shift, axis=1)``).

    >>> follow_shifts(np.array([0.0, 90.0, -90.0]), 4096).tolist()
    [0, 1024, -1024]
    """
    return np.round(np.asarray(heading) / 360.0 * erp_w).astype(int)
