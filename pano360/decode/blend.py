"""Seam-free decoding of ERP latents: blended 180°-rotated decoding and latent wrap padding.

The Wan VAE pads with zeros inside its causal 3-D convolutions, so a plain decode of an ERP latent
leaves a seam at the +-180° column. Two remedies (research/NOTES.md), usable together:

- **Blended decoding** (Argus): decode ``z`` and ``z`` rolled by half its width, roll the second
  result back, and blend with a weight that is 0 at the left/right image edges and rises linearly
  to 1 over ``W / ratio`` pixels. The rolled decode has its own seam at the image centre, where its
  weight is 0; the weights sum to one everywhere.
- **Latent wrap padding** (PanoWan): pad the latent circularly by a few columns before decoding
  and crop the matching pixels afterwards, so the convolutions see the other side of the seam.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["blend_weights", "blended_decode", "roll_width", "wrap_padded_decode"]


def blend_weights(width: int, ratio: float = 16.0) -> np.ndarray:
    """Weight ``(width,)`` of the plain decode: 0 at the edges, a linear ramp to 1 over ``width / ratio`` px.

    The rolled decode gets ``1 - w``. Pixel centres: column ``x`` is at ``x + 0.5`` from the left
    edge, so with ``width = 64, ratio = 16`` (ramp 4 px) the weights start 0.125, 0.375, 0.625,
    0.875, 1, ... and mirror at the right edge. ``ratio = 2`` gives Argus' ``1 - 2|x/W - 1/2|``.

    >>> blend_weights(16, ratio=4)[:5]
    array([0.125, 0.375, 0.625, 0.875, 1.   ])
    """
    if width < 2 or ratio < 2:
        raise ValueError(f"need width >= 2 and ratio >= 2, got width={width}, ratio={ratio}")
    ramp = width / ratio
    x = np.arange(width) + 0.5
    return np.clip(np.minimum(x, width - x) / ramp, 0.0, 1.0)


def roll_width(x, shift: int):
    """Roll a tensor (torch or numpy) by ``shift`` columns along its last axis (ERP yaw)."""
    if isinstance(x, np.ndarray):
        return np.roll(x, shift, axis=-1)
    import torch

    return torch.roll(x, shifts=int(shift), dims=-1)


def wrap_padded_decode(decode: Callable, z, pad: int = 2, scale: int = 8):
    """Decode ``z (..., h, w)`` padded circularly by ``pad`` latent columns each side; crop ``pad*scale`` px.

    ``decode`` maps a latent ``(..., h, w')`` to pixels ``(..., h*scale, w'*scale)``.
    """
    if pad <= 0:
        return decode(z)
    import torch

    padded = torch.cat([z[..., -pad:], z, z[..., :pad]], dim=-1)
    out = decode(padded)
    return out[..., pad * scale : out.shape[-1] - pad * scale]


def blended_decode(decode: Callable, z, ratio: float = 16.0, pad: int = 0, scale: int = 8):
    """Blended 180°-rotated decoding of an ERP latent ``z (..., h, w)`` -> pixels ``(..., h*scale, w*scale)``.

    ``decode`` is the plain VAE decode (latent -> pixels). Away from the ±180° seam (more than
    ``W / ratio`` px from the left/right edge) the result equals the plain decode exactly.
    ``pad`` > 0 adds latent wrap padding to both decodes.
    """
    import torch

    w = z.shape[-1]
    if w % 2:
        raise ValueError(f"latent width must be even for a half-turn roll, got {w}")
    plain = wrap_padded_decode(decode, z, pad, scale)
    rolled = wrap_padded_decode(decode, roll_width(z, w // 2), pad, scale)
    W = plain.shape[-1]
    if W != w * scale:
        raise ValueError(f"decode gave width {W}, expected {w} * {scale}")
    rolled = roll_width(rolled, -(W // 2))
    weight = torch.as_tensor(blend_weights(W, ratio), dtype=plain.dtype, device=plain.device)
    return plain * weight + rolled * (1 - weight)
