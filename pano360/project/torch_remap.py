"""The remap tables as torch ``grid_sample`` calls, for batches of frames on a GPU.

Same geometry and conventions as the OpenCV path (``remap.py``, ``footprint.py``); tensors are
``(B, C, H, W)`` float, rotations ``(B, 3, 3)`` (camera to world). The ERP is padded by two
columns on each side taken across the seam and two rows past each pole (the rows next to the
pole rolled by W / 2), then sampled with ``align_corners=True``, so pixel centres sit at the
conventions' integer coordinates and the seam and poles interpolate exactly as ``sample_erp``.
torch is imported inside the functions so that importing ``pano360.project`` stays cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pano360.project.camera import focal_from_hfov

if TYPE_CHECKING:
    import torch

__all__ = ["pad_erp_torch", "sample_erp_torch", "erp_to_persp_torch", "rotate_erp_torch", "persp_to_erp_torch"]

_PAD = 2


def _rotations(R, batch: int, device, dtype) -> "torch.Tensor":
    import torch

    R = torch.as_tensor(np.asarray(R) if not isinstance(R, torch.Tensor) else R, device=device, dtype=dtype)
    if R.ndim == 2:
        R = R.expand(batch, 3, 3)
    if R.shape != (batch, 3, 3):
        raise ValueError(f"R must be (3, 3) or ({batch}, 3, 3), got {tuple(R.shape)}")
    return R


def pad_erp_torch(erp: "torch.Tensor", pad: int = _PAD) -> "torch.Tensor":
    """``(B, C, H + 2 pad, W + 2 pad)``: columns wrapped across the seam, rows continued over the poles."""
    import torch

    if erp.ndim != 4 or erp.shape[-1] != 2 * erp.shape[-2]:
        raise ValueError(f"erp must be (B, C, H, 2H), got {tuple(erp.shape)}")
    w = erp.shape[-1]
    top = torch.roll(erp[..., :pad, :].flip(-2), w // 2, dims=-1)
    bottom = torch.roll(erp[..., -pad:, :].flip(-2), w // 2, dims=-1)
    rows = torch.cat([top, erp, bottom], dim=-2)
    return torch.cat([rows[..., -pad:], rows, rows[..., :pad]], dim=-1)


def sample_erp_torch(erp: "torch.Tensor", u: "torch.Tensor", v: "torch.Tensor", mode: str = "bilinear") -> "torch.Tensor":
    """Sample ``erp (B, C, H, W)`` at ERP pixel coordinates ``u, v (B, h, w)``; returns ``(B, C, h, w)``.

    ``u`` may be any real (it is wrapped into ``[-0.5, W - 0.5)``); ``v`` in ``[-0.5, H - 0.5]``.
    """
    import torch
    import torch.nn.functional as F

    h, w = erp.shape[-2:]
    padded = pad_erp_torch(erp)
    u = torch.remainder(u + 0.5, w) - 0.5
    gx = (u + _PAD) * (2.0 / (w + 2 * _PAD - 1)) - 1.0
    gy = (v + _PAD) * (2.0 / (h + 2 * _PAD - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(erp.dtype)
    return F.grid_sample(padded, grid, mode=mode, padding_mode="border", align_corners=True)


def _uv_of_dirs(d: "torch.Tensor", erp_w: int, erp_h: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    import torch

    x, y, z = d.unbind(-1)
    lon = torch.atan2(x, z)
    lat = torch.atan2(-y, torch.hypot(x, z))
    return (lon / (2 * math.pi) + 0.5) * erp_w - 0.5, (0.5 - lat / math.pi) * erp_h - 0.5


def erp_to_persp_torch(erp: "torch.Tensor", R, hfov_deg: float, out_w: int, out_h: int, mode: str = "bilinear") -> "torch.Tensor":
    """Views ``(B, C, out_h, out_w)`` of a batch of ERPs ``(B, C, H, W)`` with rotations ``R`` ((3, 3) or (B, 3, 3))."""
    import torch

    b, dev = erp.shape[0], erp.device
    R = _rotations(R, b, dev, torch.float64 if dev.type == "cpu" else torch.float32)
    f = focal_from_hfov(out_w, hfov_deg)
    x = (torch.arange(out_w, device=dev, dtype=R.dtype) - (out_w / 2 - 0.5)) / f
    y = (torch.arange(out_h, device=dev, dtype=R.dtype) - (out_h / 2 - 0.5)) / f
    rays = torch.stack(torch.broadcast_tensors(x[None, :], y[:, None], torch.ones((), device=dev, dtype=R.dtype)), -1)
    d = torch.einsum("hwj,bij->bhwi", rays, R)
    u, v = _uv_of_dirs(d, erp.shape[-1], erp.shape[-2])
    return sample_erp_torch(erp, u, v, mode)


def rotate_erp_torch(erp: "torch.Tensor", R, mode: str = "bilinear") -> "torch.Tensor":
    """Re-orient a batch of ERPs: output direction ``d`` shows the input's ``R @ d`` (as ``rotate_erp``)."""
    import torch

    b, h, w, dev = erp.shape[0], erp.shape[-2], erp.shape[-1], erp.device
    R = _rotations(R, b, dev, torch.float64 if dev.type == "cpu" else torch.float32)
    lon = ((torch.arange(w, device=dev, dtype=R.dtype) + 0.5) / w - 0.5) * (2 * math.pi)
    lat = (0.5 - (torch.arange(h, device=dev, dtype=R.dtype) + 0.5) / h) * math.pi
    lat, lon = torch.meshgrid(lat, lon, indexing="ij")
    dirs = torch.stack([torch.cos(lat) * torch.sin(lon), -torch.sin(lat), torch.cos(lat) * torch.cos(lon)], -1)
    u, v = _uv_of_dirs(torch.einsum("hwj,bij->bhwi", dirs, R), w, h)
    return sample_erp_torch(erp, u, v, mode)


def persp_to_erp_torch(frames: "torch.Tensor", R, hfov_deg: float, erp_w: int, erp_h: int,
                       mode: str = "bilinear") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Place frames ``(B, C, h, w)`` on black ERPs; returns ``(erp (B, C, H, W), valid (B, 1, H, W) bool)``.

    ``valid`` follows ``persp_footprint_region``: the pixel centre sees the frame's area
    ``[-0.5, w - 0.5] x [-0.5, h - 0.5]`` in front of the camera; edge samples replicate the border.
    """
    import torch
    import torch.nn.functional as F

    b, (fh, fw), dev = frames.shape[0], frames.shape[-2:], frames.device
    R = _rotations(R, b, dev, torch.float64 if dev.type == "cpu" else torch.float32)
    f = focal_from_hfov(fw, hfov_deg)
    lon = ((torch.arange(erp_w, device=dev, dtype=R.dtype) + 0.5) / erp_w - 0.5) * (2 * math.pi)
    lat = (0.5 - (torch.arange(erp_h, device=dev, dtype=R.dtype) + 0.5) / erp_h) * math.pi
    lat, lon = torch.meshgrid(lat, lon, indexing="ij")
    dirs = torch.stack([torch.cos(lat) * torch.sin(lon), -torch.sin(lat), torch.cos(lat) * torch.cos(lon)], -1)
    cam = torch.einsum("hwj,bji->bhwi", dirs, R)  # R^T d
    z = cam[..., 2]
    front = z > 1e-9
    zs = torch.where(front, z, torch.ones_like(z))
    x = f * cam[..., 0] / zs + (fw / 2 - 0.5)
    y = f * cam[..., 1] / zs + (fh / 2 - 0.5)
    valid = front & (x >= -0.5) & (x <= fw - 0.5) & (y >= -0.5) & (y <= fh - 0.5)
    gx = x.clamp(0, fw - 1) * (2.0 / max(fw - 1, 1)) - 1.0
    gy = y.clamp(0, fh - 1) * (2.0 / max(fh - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], -1).to(frames.dtype)
    out = F.grid_sample(frames, grid, mode=mode, padding_mode="border", align_corners=True)
    valid = valid[:, None]
    return out * valid.to(out.dtype), valid
