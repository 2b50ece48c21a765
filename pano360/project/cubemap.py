"""ERP <-> cubemap: six 90 deg pinhole faces, and the horizontal and dice layouts.

Faces are listed in the order ``FACES = (front, right, back, left, up, down)`` (py360convert's
horizontal-layout order F R B L U D). Each face is the perspective view (``CONVENTIONS.md``
pinhole, hfov 90 deg, square) of the rotation ``FACE_YPR``: front looks along +z, right along +x
(yaw +90), back along -z, left along -x, up along -y (pitch +90) and down along +y (pitch -90).
So every face shows the world upright as a viewer turning on the spot sees it: the up face's
bottom edge and the down face's top edge meet the front face, the left face's right edge meets
the front's left edge, and the dice layout is the unfolded cross::

    .  U  .  .
    L  F  R  B
    .  D  .  .

Cube -> ERP samples each face over its exact footprint, with every face first padded by two
pixels taken from its neighbours, so interpolation runs continuously across face edges.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from pano360.project.camera import focal_from_hfov
from pano360.project.erp import check_erp_size
from pano360.project.footprint import paste_region, persp_footprint_region
from pano360.project.remap import erp_to_persp
from pano360.project.rotation import euler_to_matrix

__all__ = [
    "FACES",
    "FACE_YPR",
    "face_rotations",
    "erp_to_cube",
    "cube_to_erp",
    "cube_to_horizon",
    "horizon_to_cube",
    "cube_to_dice",
    "dice_to_cube",
]

FACES = ("front", "right", "back", "left", "up", "down")
FACE_YPR = ((0.0, 0.0, 0.0), (90.0, 0.0, 0.0), (180.0, 0.0, 0.0), (-90.0, 0.0, 0.0), (0.0, 90.0, 0.0), (0.0, -90.0, 0.0))
_DICE = ((1, 1), (1, 2), (1, 3), (1, 0), (0, 1), (2, 1))  # (row, col) of each face in the 3x4 dice
_PAD = 2


@lru_cache(maxsize=1)
def face_rotations() -> np.ndarray:
    """The six face rotations ``(6, 3, 3)`` (camera to world), in :data:`FACES` order; read-only."""
    R = np.stack([euler_to_matrix(*ypr) for ypr in FACE_YPR])
    R = np.round(R, 12)  # exact 0 / +-1 entries: the faces meet without float slivers
    R.flags.writeable = False
    return R


def _check_faces(faces: list[np.ndarray] | tuple[np.ndarray, ...]) -> int:
    if len(faces) != 6:
        raise ValueError(f"a cubemap has 6 faces ({', '.join(FACES)}), got {len(faces)}")
    w = faces[0].shape[0]
    for f in faces:
        if f.shape[:2] != (w, w) or f.shape != faces[0].shape or f.dtype != faces[0].dtype:
            raise ValueError(f"cube faces must be square and alike, got {[x.shape for x in faces]}")
    return w


def erp_to_cube(erp: np.ndarray, face_w: int, interpolation: int = cv2.INTER_LINEAR) -> list[np.ndarray]:
    """The six ``(face_w, face_w[, C])`` faces of an ERP ``(H, W[, C])``, in :data:`FACES` order.

    ``face_w ~ W / 4`` keeps the ERP's resolution at the face centres.
    """
    check_erp_size(erp.shape[1], erp.shape[0])
    return [erp_to_persp(erp, R, 90.0, face_w, face_w, interpolation) for R in face_rotations()]


def _padded_faces(faces: list[np.ndarray], pad: int) -> list[np.ndarray]:
    """Each face grown by ``pad`` pixels on every side, the ring filled from the neighbouring faces."""
    w = faces[0].shape[0]
    f = focal_from_hfov(w, 90.0)
    c = w / 2 - 0.5
    R = face_rotations()
    n = w + 2 * pad
    idx = np.arange(n) - pad
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    ring = (xx < 0) | (xx >= w) | (yy < 0) | (yy >= w)
    ry, rx = np.nonzero(ring)
    rays = np.stack([(rx - pad - c) / f, (ry - pad - c) / f, np.ones(len(rx))], 1)
    out = []
    for i, face in enumerate(faces):
        padded = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        world = rays @ R[i].T
        cam = np.einsum("kji,nj->kni", R, world)  # (6, n, 3): R_k^T d
        k = np.argmax(cam[..., 2], axis=0)
        d = cam[k, np.arange(len(k))]
        mx = (f * d[:, 0] / d[:, 2] + c).astype(np.float32)[None]
        my = (f * d[:, 1] / d[:, 2] + c).astype(np.float32)[None]
        vals = np.zeros((len(k),) + face.shape[2:], face.dtype)
        for j in np.unique(k):
            sel = k == j
            s = cv2.remap(faces[j], mx[:, sel], my[:, sel], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            vals[sel] = s.reshape((-1,) + face.shape[2:])
        padded[ry, rx] = vals
        out.append(padded)
    return out


def cube_to_erp(faces: list[np.ndarray], erp_h: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """The ``(erp_h, 2 erp_h[, C])`` ERP of six faces (:data:`FACES` order, each ``(w, w[, C])``)."""
    w = _check_faces(faces)
    erp_w = 2 * erp_h
    check_erp_size(erp_w, erp_h)
    padded = _padded_faces(list(faces), _PAD)
    out = np.zeros((erp_h, erp_w) + faces[0].shape[2:], faces[0].dtype)
    for R, face in zip(face_rotations(), padded):
        reg = persp_footprint_region(R, 90.0, w, w, erp_w, erp_h, clamp=False)
        patch = cv2.remap(face, reg.map_x + np.float32(_PAD), reg.map_y + np.float32(_PAD), interpolation,
                          borderMode=cv2.BORDER_REPLICATE)
        paste_region(out, patch, reg)
    return out


def cube_to_horizon(faces: list[np.ndarray]) -> np.ndarray:
    """Faces side by side in :data:`FACES` order: ``(w, 6 w[, C])``."""
    _check_faces(faces)
    return np.concatenate(list(faces), axis=1)


def horizon_to_cube(horizon: np.ndarray) -> list[np.ndarray]:
    """Inverse of :func:`cube_to_horizon`."""
    w = horizon.shape[0]
    if horizon.shape[1] != 6 * w:
        raise ValueError(f"a horizontal cubemap is (w, 6w), got {horizon.shape}")
    return [horizon[:, i * w:(i + 1) * w].copy() for i in range(6)]


def cube_to_dice(faces: list[np.ndarray]) -> np.ndarray:
    """Faces unfolded as a cross ``(3 w, 4 w[, C])`` (module docstring), zeros elsewhere."""
    w = _check_faces(faces)
    out = np.zeros((3 * w, 4 * w) + faces[0].shape[2:], faces[0].dtype)
    for face, (r, c) in zip(faces, _DICE):
        out[r * w:(r + 1) * w, c * w:(c + 1) * w] = face
    return out


def dice_to_cube(dice: np.ndarray) -> list[np.ndarray]:
    """Inverse of :func:`cube_to_dice`."""
    w = dice.shape[0] // 3
    if dice.shape[:2] != (3 * w, 4 * w):
        raise ValueError(f"a dice cubemap is (3w, 4w), got {dice.shape}")
    return [dice[r * w:(r + 1) * w, c * w:(c + 1) * w].copy() for r, c in _DICE]
