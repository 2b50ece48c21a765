"""Rotations in the project's axes: Euler angles for people, matrices for code, SLERP and smoothing.

Convention (``CONVENTIONS.md``): ``R`` maps camera directions to world directions and
``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)`` in degrees, with positive yaw turning right, positive
pitch looking up and positive roll turning the camera clockwise seen from behind. These are
right-handed rotations about the camera's y, x, z axes, which is scipy's intrinsic ``"YXZ"``
sequence; the conversion to scipy happens here and nowhere else. Quaternions are scipy's
scalar-last ``(x, y, z, w)``.

>>> import numpy as np
>>> np.round(euler_to_matrix(90.0, 0.0, 0.0) @ np.array([0.0, 0.0, 1.0]), 6).tolist()
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

__all__ = [
    "euler_to_matrix",
    "matrix_to_euler",
    "matrix_to_quat",
    "quat_to_matrix",
    "rotvec_to_matrix",
    "matrix_to_rotvec",
    "rotation_angle_deg",
    "slerp",
    "interpolate_rotations",
    "smooth_rotations",
    "orthonormalize",
    "best_rotation",
    "check_rotations",
]

_SEQ = "YXZ"


def check_rotations(R: np.ndarray) -> np.ndarray:
    """Return ``R`` as a float64 array after checking it is ``(..., 3, 3)``."""
    R = np.asarray(R, dtype=np.float64)
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"R must be (..., 3, 3), got {R.shape}")
    return R


def _to_scipy(R: np.ndarray) -> tuple[Rotation, tuple[int, ...]]:
    R = check_rotations(R)
    batch = R.shape[:-2]
    return Rotation.from_matrix(R.reshape(-1, 3, 3)), batch


def euler_to_matrix(yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float) -> np.ndarray:
    """Yaw, pitch, roll in degrees (broadcast, shape ``(...)``) to rotation matrices ``(..., 3, 3)``."""
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (yaw, pitch, roll)))
    angles = np.stack([yaw.ravel(), pitch.ravel(), roll.ravel()], axis=-1)
    mats = Rotation.from_euler(_SEQ, angles, degrees=True).as_matrix()
    return mats.reshape(yaw.shape + (3, 3))


def matrix_to_euler(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation matrices ``(..., 3, 3)`` to yaw, pitch, roll in degrees, each ``(...)``.

    Pitch is in [-90, 90]; yaw and roll in (-180, 180].
    """
    rot, batch = _to_scipy(R)
    angles = rot.as_euler(_SEQ, degrees=True).reshape(batch + (3,))
    return angles[..., 0], angles[..., 1], angles[..., 2]


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)``, scalar last, w >= 0."""
    rot, batch = _to_scipy(R)
    q = rot.as_quat(canonical=True)
    return q.reshape(batch + (4,))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` scalar last (``(x, y, z, w)``; normalised here) to matrices ``(..., 3, 3)``."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"q must be (..., 4) scalar-last, got {q.shape}")
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(q.shape[:-1] + (3, 3))


def rotvec_to_matrix(rv: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` (axis times angle in radians) to matrices ``(..., 3, 3)``."""
    rv = np.asarray(rv, dtype=np.float64)
    if rv.shape[-1] != 3:
        raise ValueError(f"rotation vectors must be (..., 3), got {rv.shape}")
    return Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(rv.shape[:-1] + (3, 3))


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to rotation vectors ``(..., 3)`` in radians."""
    rot, batch = _to_scipy(R)
    return rot.as_rotvec().reshape(batch + (3,))


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between rotations ``Ra`` and ``Rb`` (broadcast ``(..., 3, 3)``)."""
    Ra = check_rotations(Ra)
    Rb = check_rotations(Rb)
    rel = np.swapaxes(Ra, -1, -2) @ Rb
    # arccos of the trace loses precision near 0; the rotation vector's norm does not.
    rot, batch = _to_scipy(rel)
    ang = np.degrees(np.linalg.norm(rot.as_rotvec(), axis=-1)).reshape(batch)
    return ang


def slerp(Ra: np.ndarray, Rb: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Spherical linear interpolation from ``Ra`` (t = 0) to ``Rb`` (t = 1) of two ``(3, 3)`` rotations."""
    key = Rotation.from_matrix(np.stack([check_rotations(Ra), check_rotations(Rb)]))
    t = np.asarray(t, dtype=np.float64)
    out = Slerp([0.0, 1.0], key)(np.clip(t.ravel(), 0.0, 1.0)).as_matrix()
    return out.reshape(t.shape + (3, 3))


def interpolate_rotations(times: np.ndarray, R: np.ndarray, query: np.ndarray) -> np.ndarray:
    """SLERP a rotation sequence ``R (N, 3, 3)`` at ``times (N,)`` to ``query (M,)``; clamped at the ends."""
    times = np.asarray(times, dtype=np.float64)
    R = check_rotations(R)
    if R.shape[0] != times.shape[0]:
        raise ValueError(f"times {times.shape} and R {R.shape} disagree in length")
    query = np.clip(np.asarray(query, dtype=np.float64), times[0], times[-1])
    if len(times) == 1:
        return np.repeat(R[:1], len(query), axis=0)
    return Slerp(times, Rotation.from_matrix(R))(query).as_matrix()


def smooth_rotations(times: np.ndarray, R: np.ndarray, tau_s: float) -> np.ndarray:
    """Smooth a rotation sequence with a forward-backward exponential SLERP (time constant ``tau_s``).

    Each pass moves the running estimate toward the next sample by ``alpha = 1 - exp(-dt / tau)``,
    as Gyroflow's plain smoother does; running it forward then backward cancels the lag.
    ``tau_s <= 0`` returns the input unchanged.
    """
    R = check_rotations(R)
    times = np.asarray(times, dtype=np.float64)
    if tau_s <= 0 or len(R) < 2:
        return R.copy()
    q = Rotation.from_matrix(R).as_quat()
    dt = np.abs(np.diff(times))
    alpha = 1.0 - np.exp(-dt / tau_s)

    def one_pass(quats: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        out = quats.copy()
        for i in range(1, len(out)):
            prev = Rotation.from_quat(out[i - 1])
            cur = Rotation.from_quat(quats[i])
            delta = (prev.inv() * cur).as_rotvec()
            out[i] = (prev * Rotation.from_rotvec(delta * alphas[i - 1])).as_quat()
        return out

    fwd = one_pass(q, alpha)
    bwd = one_pass(fwd[::-1], alpha[::-1])[::-1]
    return Rotation.from_quat(bwd).as_matrix()


def orthonormalize(R: np.ndarray) -> np.ndarray:
    """The nearest rotation matrices (SVD projection onto SO(3)) of ``(..., 3, 3)`` arrays."""
    R = check_rotations(R)
    U, _, Vt = np.linalg.svd(R)
    D = np.ones(R.shape[:-1])
    D[..., -1] = np.sign(np.linalg.det(U @ Vt))
    return (U * D[..., None, :]) @ Vt


def best_rotation(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The rotations ``R (..., 3, 3)`` that best map directions ``b`` onto ``a``: ``a ~ R @ b``.

    Wahba's problem, solved as Kabsch does: the nearest rotation to ``sum w a b^T``. ``a, b``
    are ``(..., n, 3)`` (normalised here), batched over leading axes; ``weights (..., n)`` optional.

    >>> R = euler_to_matrix(30.0, -10.0, 5.0)
    >>> b = np.eye(3)
    >>> bool(np.allclose(best_rotation(b @ R.T, b), R))
    True
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(f"a and b must both be (..., n, 3), got {a.shape} and {b.shape}")
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    if weights is not None:
        a = a * np.asarray(weights, dtype=np.float64)[..., None]
    return orthonormalize(np.swapaxes(a, -1, -2) @ b)
