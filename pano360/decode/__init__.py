"""Seam closure (blended 180-degree-rotated decoding, latent wrap padding) and compositing the
real pixels back at full resolution. numpy in, numpy out; torch only where latents are decoded."""

from pano360.decode.blend import blend_weights, blended_decode, roll_width, wrap_padded_decode
from pano360.decode.composite import StatsSmoother, border_band, color_match_stats, composite, offset_field, resize_erp

__all__ = [
    "StatsSmoother",
    "blend_weights",
    "blended_decode",
    "border_band",
    "color_match_stats",
    "composite",
    "offset_field",
    "resize_erp",
    "roll_width",
    "wrap_padded_decode",
]
