"""Put the real pixels back at full resolution over the upscaled generated sphere.

The model works at e.g. 1024x512; the output is e.g. 4096x2048. Real pixels are copied exactly
(every mask-True pixel is the input's), the generated sphere is upscaled wrap-aware, and its colour
is matched to the real pixels where they meet, since VACE outpainting drifts in colour:

1. a global per-channel mean/std match, measured in the band of real pixels along the mask border
   (there the generated frame and the real frame show the same content);
2. a low-frequency offset field: the remaining real-minus-generated difference in that band,
   spread outward by normalised Gaussian smoothing and faded to zero ``feather`` px from the
   border, so the generated side meets the real side without a step and relaxes to itself farther away.

All of it is measured at the generation size (the field is low-frequency) and applied at full size.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["StatsSmoother", "border_band", "color_match_stats", "composite", "offset_field", "resize_erp"]


def resize_erp(img: np.ndarray, width: int, height: int, interpolation: int | None = None) -> np.ndarray:
    """Resize an ERP image ``(H, W, C)`` to ``(height, width, C)`` seam-aware (columns wrap around)."""
    import cv2

    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img.copy()
    if interpolation is None:
        interpolation = cv2.INTER_AREA if width < w else cv2.INTER_CUBIC
    pad = max(2, int(np.ceil(4 * w / width)))  # source columns each side
    padded = np.concatenate([img[:, -pad:], img, img[:, :pad]], axis=1)
    out_pad = int(round(pad * width / w))
    out = cv2.resize(padded, (width + 2 * out_pad, height), interpolation=interpolation)
    return out[:, out_pad : out_pad + width]


def border_band(mask: np.ndarray, width_px: float) -> np.ndarray:
    """Real pixels (mask True) within ``width_px`` of an unknown pixel, ``(H, W) bool``, seam-aware."""
    import cv2

    m = mask.astype(np.uint8)
    pad = int(np.ceil(width_px)) + 1
    padded = np.concatenate([m[:, -pad:], m, m[:, :pad]], axis=1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[:, pad:-pad]
    return mask & (dist <= width_px)


def color_match_stats(real: np.ndarray, gen: np.ndarray, band: np.ndarray, max_gain: float = 1.5):
    """Per-channel ``(gain, offset)`` mapping ``gen`` to ``real`` in ``band``: ``real ≈ gain * gen + offset``."""
    if band.sum() < 16:
        return np.ones(3, np.float32), np.zeros(3, np.float32)
    r = real[band].astype(np.float32)
    g = gen[band].astype(np.float32)
    gain = np.clip(r.std(0) / np.maximum(g.std(0), 1.0), 1 / max_gain, max_gain)
    offset = r.mean(0) - gain * g.mean(0)
    return gain.astype(np.float32), offset.astype(np.float32)


def offset_field(diff: np.ndarray, band: np.ndarray, known: np.ndarray, sigma: float, feather: float) -> np.ndarray:
    """Low-frequency correction ``(H, W, 3)`` for the generated side from ``diff`` measured in ``band``.

    Normalised convolution (blur(diff * band) / blur(band)) with Gaussian ``sigma`` px, columns
    wrapping; multiplied by a fade that is 1 at the mask border and 0 at ``feather`` px from it.
    """
    import cv2

    h, w = band.shape
    pad = int(min(w, np.ceil(3 * sigma)))
    wb = band.astype(np.float32)
    num = diff.astype(np.float32) * wb[..., None]

    def blur(a):
        p = np.concatenate([a[:, -pad:], a, a[:, :pad]], axis=1) if pad else a
        out = cv2.GaussianBlur(p, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        return out[:, pad : pad + w] if pad else out

    den = blur(wb)
    field = blur(num) / np.maximum(den, 1e-4)[..., None]
    field[den < 1e-4] = 0.0
    unknown = (~known).astype(np.uint8)
    pad_k = int(np.ceil(feather)) + 1
    pu = np.concatenate([unknown[:, -pad_k:], unknown, unknown[:, :pad_k]], axis=1)
    dist = cv2.distanceTransform(pu, cv2.DIST_L2, 5)[:, pad_k:-pad_k]
    fade = np.clip(1.0 - dist / max(feather, 1e-6), 0.0, 1.0)
    return field * fade[..., None]


def composite(
    real: np.ndarray,
    mask: np.ndarray,
    generated: np.ndarray,
    feather_frac: float = 1 / 16,
    band_frac: float = 1 / 128,
    color_match: bool = True,
    stats_filter: Callable | None = None,
) -> np.ndarray:
    """Full-size ERP ``(H, W, 3) uint8``: ``real`` where ``mask``, the matched, upscaled ``generated`` elsewhere.

    ``real (H, W, 3) uint8`` and ``mask (H, W) bool`` (True = real pixel) at the output size;
    ``generated (h, w, 3) uint8`` at the generation size (any ERP size). ``feather_frac`` and
    ``band_frac`` are fractions of the generation width (the field's fade length and the
    measuring band). ``stats_filter(gain, offset) -> (gain, offset)`` may smooth the global match
    over time (see :class:`StatsSmoother`). Every mask-True pixel of the result equals ``real``.
    """
    import cv2

    H, W = mask.shape
    if real.shape != (H, W, 3) or generated.ndim != 3 or generated.shape[2] != 3:
        raise ValueError(f"real must be (H, W, 3) like mask {mask.shape}, generated (h, w, 3); got {real.shape}, {generated.shape}")
    h, w = generated.shape[:2]
    gen = generated.astype(np.float32)
    if color_match and mask.any() and not mask.all():
        real_s = resize_erp(real, w, h, cv2.INTER_AREA).astype(np.float32)
        cover = resize_erp(mask.astype(np.float32), w, h, cv2.INTER_AREA)
        known = cover > 0.999
        band = border_band(known, max(1.0, band_frac * w))
        gain, offset = color_match_stats(real_s, gen, band)
        if stats_filter is not None:
            gain, offset = stats_filter(gain, offset)
        gen = gen * gain + offset
        gen = gen + offset_field(real_s - gen, band, known, sigma=max(1.0, 2 * band_frac * w), feather=feather_frac * w)
    up = resize_erp(np.clip(gen, 0, 255), W, H, cv2.INTER_CUBIC)
    out = np.clip(np.rint(up), 0, 255).astype(np.uint8)
    out[mask] = real[mask]
    return out


class StatsSmoother:
    """Exponential moving average of the per-frame ``(gain, offset)`` colour match, so the generated
    part does not flicker with the noise of each frame's border band. ``rate`` is the weight of the
    newest frame (0.25: a time constant of about 4 frames)."""

    def __init__(self, rate: float = 0.25):
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self.rate = rate
        self.state: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, gain: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.state is None:
            self.state = (gain, offset)
        else:
            g, o = self.state
            self.state = (g + self.rate * (gain - g), o + self.rate * (offset - o))
        return self.state
