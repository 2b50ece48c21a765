"""Remap tables of a moving virtual camera, one per frame, built from a coarse grid.

A new view every frame makes the table the cost, not the remap (``research/NOTES.md``): the exact
table of a 1920x1080 view takes ~0.13 s on this machine. The table is smooth away from the poles,
so it is computed exactly (``project.erp.dirs_to_uv``) on nodes every ``step`` pixels and
interpolated bilinearly in between (``cv2.resize`` of the node grid, which is ~5x cheaper than a
remap of it), with the longitude
unwrapped so that the interpolation never crosses the +-180 deg seam (``sample_erp`` wraps columns
anyway). Each table is checked at its cell centres against the exact value; a view whose error
exceeds ``tol_px`` (a pole in or near the picture, a fisheye past 360 deg) gets the exact table.

Measured for a 90 deg 1920x1080 view of a 4096x2048 ERP: max error 0.009 px at step 8, 0.035 px at
step 16 (the default), ~5 ms with the chroma table (the exact table: ~130 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pano360.project.projections import projection_rays, rays_at
from pano360.project.erp import dirs_to_uv
from pano360.project.remap import erp_to_persp_map
from pano360.project.rotation import check_rotations

__all__ = ["ViewMap", "view_map", "coarse_nodes", "sample_yuv420_coarse", "chroma_map", "sample"]


@dataclass(frozen=True)
class ViewMap:
    """ERP coordinates ``xy (h, w, 2)`` float32 (u, v) of every output pixel, ``valid (h, w)`` bool
    or None when all are valid, and whether the table is exact.

    ``u`` may run past ``[0, W)`` (sample with wrapping columns); ``v`` is already clamped to
    ``[0, H - 1]`` as ``project.remap.sample_erp`` does, so :func:`sample` needs no copy.
    """

    xy: np.ndarray
    valid: np.ndarray | None
    exact: bool

    @property
    def map_x(self) -> np.ndarray:
        return self.xy[..., 0]

    @property
    def map_y(self) -> np.ndarray:
        return self.xy[..., 1]


def sample(plane: np.ndarray, vm: ViewMap, fill: int | tuple = 0, interpolation: int = cv2.INTER_LINEAR,
           out: np.ndarray | None = None) -> np.ndarray:
    """Sample an ERP image (or one plane) through a table: columns wrap across the seam, rows are
    clamped (done once in the table, where ``project.remap.sample_erp`` would pad past the pole;
    the two differ only within half a pixel of a pole); invalid pixels get ``fill``. ``out``: a
    contiguous array of the result's shape and type to write into."""
    out = cv2.remap(plane, vm.xy, None, interpolation, dst=out, borderMode=cv2.BORDER_WRAP)
    if vm.valid is not None:
        out[~vm.valid] = fill
    return out


def _table(u: np.ndarray, v: np.ndarray, erp_h: int) -> np.ndarray:
    xy = np.empty(u.shape + (2,), dtype=np.float32)
    xy[..., 0] = u
    np.clip(v, 0.0, erp_h - 1.0, out=xy[..., 1])
    return xy


def _node_uv(R: np.ndarray, projection: str, hfov_deg: float, x: np.ndarray, y: np.ndarray,
             width: int, height: int, erp_w: int, erp_h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rays, valid = rays_at(projection, x, y, width, height, hfov_deg)
    u, v = dirs_to_uv(rays @ R.T, erp_w, erp_h)
    return u, v, valid


def _unwrap(u: np.ndarray, period: float) -> np.ndarray:
    """Unwrap a 2-D longitude grid: down the first column, then along every row from it."""
    u = np.unwrap(u, period=period, axis=1)
    first = np.unwrap(u[:, 0], period=period)
    u += (first - u[:, 0])[:, None]
    return u


def view_map(R: np.ndarray, hfov_deg: float, projection: str, width: int, height: int, erp_w: int, erp_h: int,
             step: int = 16, tol_px: float = 0.05, chroma: bool = False) -> tuple[ViewMap, ViewMap | None]:
    """The tables of one view: rotation ``R (3, 3)`` (camera to world), FOV, projection and size.

    Coarse nodes every ``step`` pixels, bilinear in between, exact fallback when the cell-centre
    check exceeds ``tol_px`` (``step <= 1`` forces the exact table). With ``chroma`` also the table
    of the 4:2:0 chroma planes (see :func:`chroma_map`; sizes must be even), else None.
    """
    R = check_rotations(R)
    if R.shape != (3, 3):
        raise ValueError(f"R must be (3, 3), got {R.shape}")
    if chroma and (width % 2 or height % 2 or erp_w % 2 or erp_h % 2 or (step > 1 and step % 2)):
        raise ValueError(f"4:2:0 tables need even sizes and step, got {width}x{height} from {erp_w}x{erp_h}, step {step}")
    nodes = coarse_nodes(R, hfov_deg, projection, width, height, erp_w, erp_h, step, tol_px) if step > 1 else None
    if nodes is not None:
        big = nodes.shape[1] * step
        up = cv2.resize(nodes, (big, nodes.shape[0] * step), interpolation=cv2.INTER_LINEAR)
        luma = ViewMap(up[step:step + height, step:step + width], None, exact=False)
        if not chroma:
            return luma, None
        # Chroma sample a sits at full-size position 2a + 0.5; its ERP plane is half size.
        up = cv2.resize((nodes - 0.5) * 0.5, (big // 2, nodes.shape[0] * step // 2), interpolation=cv2.INTER_LINEAR)
        o = step // 2
        return luma, ViewMap(up[o:o + height // 2, o:o + width // 2], None, exact=False)
    if projection == "rectilinear":
        mx, my = erp_to_persp_map(R, hfov_deg, width, height, erp_w, erp_h, any_aspect=True)  # as the coarse path
        luma = ViewMap(_table(mx, my, erp_h), None, exact=True)
    else:
        rays, valid = projection_rays(projection, width, height, float(hfov_deg))
        mx, my = dirs_to_uv(rays @ R.T.astype(np.float32), erp_w, erp_h)
        luma = ViewMap(_table(mx, my, erp_h), None if valid.all() else valid, exact=True)
    return luma, (chroma_map(luma, erp_w, erp_h) if chroma else None)


def coarse_nodes(R: np.ndarray, hfov_deg: float, projection: str, width: int, height: int, erp_w: int, erp_h: int,
                 step: int = 16, tol_px: float = 0.05) -> np.ndarray | None:
    """The coarse table of a view: ERP ``(u, v)`` float32 ``(ny + 2, nx + 2, 2)`` at nodes every
    ``step`` output pixels (one node of margin all round), or None when bilinear interpolation
    between them would err by more than ``tol_px`` at a cell centre (then build the exact table).

    Nodes sit at ``x_k = (k + 0.5) step - 0.5`` for ``k = -1 .. n``: exactly where ``cv2.resize``'s
    bilinear upsampling by ``step`` puts its source samples, so resizing the nodes (or any run of
    node rows) by ``step`` gives the table.
    """
    R = check_rotations(R)
    nx, ny = -(-width // step), -(-height // step)
    xs = (np.arange(-1, nx + 1) + 0.5) * step - 0.5
    ys = (np.arange(-1, ny + 1) + 0.5) * step - 0.5
    u, v, valid = _node_uv(R, projection, hfov_deg, xs[None, :], ys[:, None], width, height, erp_w, erp_h)
    if not valid.all():
        return None
    # The cell centres, where bilinear interpolation errs most.
    cx, cy = xs[:-1] + step / 2.0, ys[:-1] + step / 2.0
    uc, vc, _ = _node_uv(R, projection, hfov_deg, cx[None, :], cy[:, None], width, height, erp_w, erp_h)
    u = _unwrap(u, erp_w)
    u_mid = (u[:-1, :-1] + u[1:, :-1] + u[:-1, 1:] + u[1:, 1:]) / 4.0
    v_mid = (v[:-1, :-1] + v[1:, :-1] + v[:-1, 1:] + v[1:, 1:]) / 4.0
    du = (u_mid - uc + erp_w / 2.0) % erp_w - erp_w / 2.0
    if max(np.abs(du).max(), np.abs(v_mid - vc).max()) > tol_px:
        return None
    return _table(u, v, erp_h)  # rows clamped at the nodes stay clamped in between


def sample_yuv420_coarse(planes: tuple[np.ndarray, np.ndarray, np.ndarray], nodes: np.ndarray, step: int,
                         out: tuple[np.ndarray, np.ndarray, np.ndarray], band: int = 8) -> None:
    """Remap 4:2:0 ERP planes ``(y, u, v)`` through :func:`coarse_nodes` into ``out`` (the output's
    ``y (h, w)``, ``u, v (h/2, w/2)``), ``band`` node rows at a time.

    The same pixels as :func:`view_map` + :func:`sample`, but the full-size table (16 MB at 1080p)
    never exists: each strip's table is made, used and dropped while it is in cache, which leaves
    the cache to the decoder and encoder running beside.
    """
    h, w = out[0].shape
    rows_n, cols_n = nodes.shape[:2]
    big = cols_n * step
    half = (nodes - 0.5) * 0.5  # chroma coordinates (see view_map)
    o = step // 2
    for k in range(0, rows_n - 2, band):
        kb = min(rows_n - 2, k + band)
        r0, r1 = k * step, min(h, kb * step)
        up = cv2.resize(nodes[k:kb + 2], (big, (kb - k + 2) * step), interpolation=cv2.INTER_LINEAR)
        cv2.remap(planes[0], up[step:step + r1 - r0, step:step + w], None, cv2.INTER_LINEAR, dst=out[0][r0:r1],
                  borderMode=cv2.BORDER_WRAP)
        up = cv2.resize(half[k:kb + 2], (big // 2, (kb - k + 2) * o), interpolation=cv2.INTER_LINEAR)
        table = up[o:o + (r1 - r0) // 2, o:o + w // 2]
        for src, dst in zip(planes[1:], out[1:]):
            cv2.remap(src, table, None, cv2.INTER_LINEAR, dst=dst[r0 // 2:r1 // 2], borderMode=cv2.BORDER_WRAP)


def chroma_map(vm: ViewMap, erp_w: int, erp_h: int) -> ViewMap:
    """The table for 4:2:0 chroma planes (half size each way) of an even-sized full-size table.

    Chroma sample ``a`` covers full-size pixels ``2a, 2a + 1``: its source is the mean of their
    sources, moved to chroma coordinates (``(u - 0.5) / 2``). Each 2x2 block is made continuous
    across the seam first, so that the mean never lands mid-panorama.
    """
    mx = vm.map_x
    ref = np.repeat(np.repeat(mx[::2, ::2], 2, 0), 2, 1)
    mx = mx + np.round((ref - mx) / erp_w) * erp_w
    cw, ch = mx.shape[1] // 2, mx.shape[0] // 2
    cx = cv2.resize(mx, (cw, ch), interpolation=cv2.INTER_AREA)
    cy = cv2.resize(vm.map_y, (cw, ch), interpolation=cv2.INTER_AREA)
    valid = None
    if vm.valid is not None:
        v = vm.valid
        valid = v[::2, ::2] & v[1::2, ::2] & v[::2, 1::2] & v[1::2, 1::2]
    return ViewMap(_table((cx - 0.5) * 0.5, (cy - 0.5) * 0.5, erp_h // 2), valid, vm.exact)
