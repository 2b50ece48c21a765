"""VACE conditioning of a masked ERP clip: input checks, VAE latents, mask latents.

Follows diffusers' ``WanVACEPipeline`` (``prepare_video_latents`` / ``prepare_masks``): the clip in
[-1, 1] with unknown pixels grey (0), the mask with 1 = generate, the "inactive" (known) and
"reactive" (to generate) parts VAE-encoded and normalised (16 + 16 channels), and the pixel mask
folded into 64 channels (one per position in the 8x8 VAE cell) at the latent size: 96 channels.
"""

from __future__ import annotations

import numpy as np

from pano360.errors import Pano360Error

__all__ = ["check_inputs", "latent_stats", "mask_latents", "to_video_tensor", "vace_conditioning", "vae_encode"]


def check_inputs(video: np.ndarray, mask: np.ndarray, base: int = 16) -> None:
    """Fail before any model runs: ``video (F, H, W, 3)``, ``mask (F, H, W)``, W == 2H, sizes % 16, F = 4k+1."""
    if video.ndim != 4 or video.shape[-1] != 3:
        raise Pano360Error(f"video must be (frames, height, width, 3), got {video.shape}")
    f, h, w = video.shape[:3]
    if w != 2 * h:
        raise Pano360Error(f"an ERP clip needs width == 2 * height, got {w}x{h}")
    if h % base or w % base:
        raise Pano360Error(f"height and width have to be divisible by {base} but are {h} and {w}")
    if f % 4 != 1:
        raise Pano360Error(f"the number of frames has to be 4k+1 (e.g. 81, 17, 5) but is {f}")
    if mask.shape != (f, h, w):
        raise Pano360Error(f"mask must be shaped like the clip {(f, h, w)}, got {mask.shape}")


def to_video_tensor(video: np.ndarray, mask: np.ndarray, device):
    """``(1, 3, F, H, W)`` float32 in [-1, 1] with generate-pixels grey (0), and mask ``(1, 1, F, H, W)`` in {0, 1}."""
    import torch

    v = torch.from_numpy(np.ascontiguousarray(video)).to(device)
    v = v.float() / 127.5 - 1.0 if video.dtype == np.uint8 else v.float() * 2.0 - 1.0
    m = torch.from_numpy(np.ascontiguousarray(mask)).to(device).float()
    m = (m > 0.5).float()
    v = v.permute(3, 0, 1, 2)[None] * (1 - m)[None, None]
    return v, m[None, None]


def latent_stats(vae, device):
    """The VAE's per-channel ``(mean, std)`` as ``(1, z, 1, 1, 1)`` float32 tensors."""
    import torch

    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=device).view(1, z, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=device).view(1, z, 1, 1, 1)
    return mean, std


def vae_encode(vae, video):
    """Normalised latents ``(1, z, (F-1)/4+1, H/8, W/8)`` float32 of ``video (1, 3, F, H, W)`` in [-1, 1]."""
    import torch

    with torch.no_grad():
        lat = vae.encode(video.to(vae.dtype)).latent_dist.mode().float()
    mean, std = latent_stats(vae, lat.device)
    return (lat - mean) / std


def mask_latents(mask, scale: int = 8):
    """Fold a pixel mask ``(1, 1, F, H, W)`` into ``(1, scale*scale, (F+3)//4, H/scale, W/scale)``.

    Channel ``a*scale + b`` holds pixel ``(a, b)`` of each VAE cell; time is resampled with
    nearest-exact as diffusers does.
    """
    import torch

    _, _, f, h, w = mask.shape
    m = mask[0, 0].reshape(f, h // scale, scale, w // scale, scale)
    m = m.permute(2, 4, 0, 1, 3).flatten(0, 1)
    m = torch.nn.functional.interpolate(m[None], size=((f + 3) // 4, h // scale, w // scale), mode="nearest-exact")
    return m


def vace_conditioning(vae, video, mask):
    """The 96-channel VACE conditioning ``(1, 2z + 64, F', h, w)``: inactive, reactive, mask latents."""
    import torch

    inactive = vae_encode(vae, video * (1 - mask))
    reactive = vae_encode(vae, video * mask)
    return torch.cat([inactive, reactive, mask_latents(mask).to(inactive)], dim=1)
