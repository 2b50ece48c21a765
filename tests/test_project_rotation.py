"""Property tests on random rotations (hypothesis, derandomized): composition, inverse, Euler and
quaternion round trips, 360 deg yaw = identity, SLERP; and the same on ERP images."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pano360.project import rotation as Rot
from pano360.project.erp import dirs_to_uv, uv_to_dirs
from pano360.project.remap import rotate_erp_map

angle = st.floats(-180.0, 180.0, allow_nan=False)
pitch = st.floats(-89.0, 89.0, allow_nan=False)  # away from gimbal lock, where yaw and roll merge
ypr = st.tuples(angle, pitch, angle)
PROPS = settings(max_examples=60, deadline=None, derandomize=True)


def _is_rotation(R: np.ndarray) -> bool:
    return np.allclose(R @ np.swapaxes(R, -1, -2), np.eye(3), atol=1e-12) and np.allclose(np.linalg.det(R), 1.0)


@PROPS
@given(ypr, ypr)
def test_composition_is_a_rotation_with_consistent_angles(a, b):
    Ra, Rb = Rot.euler_to_matrix(*a), Rot.euler_to_matrix(*b)
    Rab = Ra @ Rb
    assert _is_rotation(Rab)
    # quaternion product = matrix product (up to sign)
    qa, qb = Rot.matrix_to_quat(Ra), Rot.matrix_to_quat(Rb)
    x1, y1, z1, w1 = qa
    x2, y2, z2, w2 = qb
    q = np.array([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                  w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2])
    np.testing.assert_allclose(Rot.quat_to_matrix(q), Rab, atol=1e-9)
    # the geodesic distance is a metric: triangle inequality through the identity
    assert Rot.rotation_angle_deg(Ra, Rb) <= Rot.rotation_angle_deg(Ra, np.eye(3)) + Rot.rotation_angle_deg(np.eye(3), Rb) + 1e-9


@PROPS
@given(ypr)
def test_inverse_is_transpose(a):
    R = Rot.euler_to_matrix(*a)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    Rinv = Rot.rotvec_to_matrix(-Rot.matrix_to_rotvec(R))
    np.testing.assert_allclose(Rinv, R.T, atol=1e-9)
    assert Rot.rotation_angle_deg(R, R) < 1e-6


@PROPS
@given(ypr)
def test_euler_and_quaternion_round_trips(a):
    R = Rot.euler_to_matrix(*a)
    yaw, p, roll = Rot.matrix_to_euler(R)
    np.testing.assert_allclose([p], [a[1]], atol=1e-7)
    dy = (float(yaw) - a[0] + 180) % 360 - 180
    dr = (float(roll) - a[2] + 180) % 360 - 180
    assert abs(dy) < 1e-7 and abs(dr) < 1e-7
    np.testing.assert_allclose(Rot.quat_to_matrix(Rot.matrix_to_quat(R)), R, atol=1e-12)


@PROPS
@given(ypr)
def test_full_turn_of_yaw_is_the_identity(a):
    np.testing.assert_allclose(Rot.euler_to_matrix(a[0] + 360.0, a[1], a[2]), Rot.euler_to_matrix(*a), atol=1e-12)
    assert Rot.rotation_angle_deg(Rot.euler_to_matrix(360.0, 0, 0), np.eye(3)) < 1e-6


@PROPS
@given(ypr, ypr, st.floats(0.0, 1.0))
def test_slerp_moves_at_constant_angular_speed(a, b, t):
    Ra, Rb = Rot.euler_to_matrix(*a), Rot.euler_to_matrix(*b)
    Rt = Rot.slerp(Ra, Rb, t)
    total = float(Rot.rotation_angle_deg(Ra, Rb))
    assert abs(float(Rot.rotation_angle_deg(Ra, Rt)) - t * total) < 1e-6 * max(1.0, total)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(ypr, ypr)
def test_erp_tables_compose_like_rotations(a, b):
    # Re-orienting by Ra @ Rb looks up direction Ra @ Rb @ d: its table equals the directions of
    # Rb's table rotated by Ra (to 0.01 px; longitude is left out within a pixel of the poles).
    Ra, Rb = Rot.euler_to_matrix(*a), Rot.euler_to_matrix(*b)
    W, H = 128, 64
    ub, vb = rotate_erp_map(Rb, W, H)
    uab, vab = rotate_erp_map(Ra @ Rb, W, H)
    u, v = dirs_to_uv(uv_to_dirs(ub.astype(np.float64), vb.astype(np.float64), W, H) @ Ra.T, W, H)
    near_pole = (v < 1) | (v > H - 2)
    du = np.abs((u - uab + W / 2) % W - W / 2)
    assert du[~near_pole].max() < 0.01 and np.abs(v - vab).max() < 0.01
    # a 360 deg yaw leaves every pixel where it was
    u0, v0 = rotate_erp_map(Rot.euler_to_matrix(360.0, 0, 0), W, H)
    np.testing.assert_allclose(u0, np.arange(W)[None].repeat(H, 0), atol=1e-3)
    np.testing.assert_allclose(v0, np.arange(H)[:, None].repeat(W, 1), atol=1e-3)
