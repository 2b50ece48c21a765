"""The ERP mapping and rotations pin the conventions of CONVENTIONS.md with numbers."""

import numpy as np
import pytest

from pano360.project.erp import dirs_to_uv, uv_to_dirs
from pano360.project.rotation import euler_to_matrix, matrix_to_euler


@pytest.mark.parametrize(
    "d, uv",
    [
        ((0, 0, 1), (1023.5, 511.5)),  # straight ahead: the ERP centre
        ((1, 0, 0), (1535.5, 511.5)),  # yaw +90: u = 3W/4 - 0.5
        ((-1, 0, 0), (511.5, 511.5)),  # yaw -90: u = W/4 - 0.5
        ((0, -1, 0), (None, -0.5)),  # straight up: row -0.5
        ((0, 1, 0), (None, 1023.5)),  # straight down: row H - 0.5
    ],
)
def test_known_directions_land_where_the_conventions_say(d, uv):
    u, v = dirs_to_uv(np.array(d, dtype=float), 2048, 1024)
    if uv[0] is not None:
        assert float(u) == pytest.approx(uv[0])
    assert float(v) == pytest.approx(uv[1])


def test_columns_zero_and_last_are_seam_neighbours():
    d0 = uv_to_dirs(np.array(0.0), np.array(511.5), 2048, 1024)
    d1 = uv_to_dirs(np.array(2047.0), np.array(511.5), 2048, 1024)
    ang = np.degrees(np.arccos(np.clip(d0 @ d1, -1, 1)))
    assert ang == pytest.approx(360.0 / 2048, rel=1e-6)


def test_euler_axes_follow_the_conventions():
    z = np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(euler_to_matrix(90, 0, 0) @ z, [1, 0, 0], atol=1e-12)  # yaw right
    np.testing.assert_allclose(euler_to_matrix(0, 90, 0) @ z, [0, -1, 0], atol=1e-12)  # pitch up
    x = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(euler_to_matrix(0, 0, 90) @ x, [0, 1, 0], atol=1e-12)  # roll clockwise
    yaw, pitch, roll = matrix_to_euler(euler_to_matrix(12.0, -34.0, 56.0))
    np.testing.assert_allclose([yaw, pitch, roll], [12.0, -34.0, 56.0], atol=1e-9)
