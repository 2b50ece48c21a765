"""Seam closure (blended 180-degree-rotated decoding) and compositing the real pixels back."""
