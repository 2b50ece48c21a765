"""Phone-like degradations for synthetic clips: motion blur, sensor noise, exposure, a moving object.

Rolling shutter is geometric, so it lives in the renderer (``render.py``: one rotation per row);
its readout time is set here in :class:`Degradations` with the rest.
Every function takes and returns ``(h, w, 3) uint8`` RGB; randomness comes from a ``generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Degradations", "HARD", "motion_blur", "sensor_noise", "exposure", "MovingObject", "paste_object", "random_texture"]


@dataclass(frozen=True)
class Degradations:
    """What to do to a clean render.

    Attributes:
        exposure_s: shutter time for motion blur (0 = no blur); the blur is the image motion of the
            frame centre over that time.
        noise_sigma: sensor noise standard deviation in 8-bit levels (plus shot noise scaled alike).
        exposure_swing: peak relative gain change of the slow auto-exposure wobble (0.2 = +-20%).
        readout_s: rolling-shutter readout time top to bottom row (0 = global shutter).
        moving_object: paste a textured object that crosses the view.
        object_frac: the object's side as a fraction of the frame's shorter side.
    """

    exposure_s: float = 0.0
    noise_sigma: float = 0.0
    exposure_swing: float = 0.0
    readout_s: float = 0.0
    moving_object: bool = False
    object_frac: float = 0.4


HARD = Degradations(exposure_s=1 / 60, noise_sigma=4.0, exposure_swing=0.25, readout_s=0.02, moving_object=True)


def motion_blur(rgb: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Blur along the image motion ``(dx, dy)`` pixels during the exposure (a line kernel)."""
    length = float(np.hypot(dx, dy))
    if length < 1.0:
        return rgb
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    ux, uy = dx / length, dy / length
    for s in np.linspace(-length / 2, length / 2, 2 * size + 1):
        kernel[int(round(c + s * uy)), int(round(c + s * ux))] += 1.0
    kernel /= kernel.sum()
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)


def sensor_noise(rgb: np.ndarray, sigma: float, generator: np.random.Generator) -> np.ndarray:
    """Add read noise (``sigma`` levels) and shot noise (grows with brightness), clip to 8 bits."""
    if sigma <= 0:
        return rgb
    img = rgb.astype(np.float32)
    std = sigma * np.sqrt(0.5 + img / 255.0)
    noise = generator.standard_normal(img.shape, dtype=np.float32) * std
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def exposure(rgb: np.ndarray, gain: float) -> np.ndarray:
    """Scale brightness by ``gain`` in linear light (gamma 2.2), clip to 8 bits."""
    if abs(gain - 1.0) < 1e-6:
        return rgb
    lut = np.clip(255.0 * ((np.arange(256) / 255.0) ** 2.2 * gain) ** (1 / 2.2), 0, 255).astype(np.uint8)
    return cv2.LUT(rgb, lut)


def random_texture(size: int, generator: np.random.Generator) -> np.ndarray:
    """A strongly textured ``(size, size, 3)`` patch (blobs and stripes): features latch onto it."""
    small = generator.integers(0, 256, (max(size // 8, 2), max(size // 8, 2), 3), dtype=np.uint8)
    tex = cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = (((xx + yy) // max(size // 16, 1)) % 2 * 60).astype(np.uint8)
    return cv2.add(tex, np.repeat(stripes[..., None], 3, axis=2))


@dataclass(frozen=True)
class MovingObject:
    """A textured square moving in image space from ``start`` to ``end`` (fractions of w, h) over the clip."""

    texture: np.ndarray
    start: tuple[float, float]
    end: tuple[float, float]

    @classmethod
    def random(cls, width: int, height: int, frac: float, generator: np.random.Generator) -> "MovingObject":
        """An object crossing the frame left to right or right to left at a random height."""
        side = max(8, int(frac * min(width, height)))
        y0, y1 = generator.uniform(0.3, 0.7, 2)
        if generator.random() < 0.5:
            return cls(random_texture(side, generator), (0.0, y0), (1.0, y1))
        return cls(random_texture(side, generator), (1.0, y0), (0.0, y1))

    def position(self, s: float, width: int, height: int) -> tuple[int, int]:
        """Top-left corner in pixels at clip fraction ``s`` in [0, 1]."""
        side = self.texture.shape[0]
        x = (self.start[0] + (self.end[0] - self.start[0]) * s) * (width + side) - side
        y = (self.start[1] + (self.end[1] - self.start[1]) * s) * height - side / 2
        return int(round(x)), int(round(y))


def paste_object(rgb: np.ndarray, obj: MovingObject, s: float) -> np.ndarray:
    """Draw ``obj`` at clip fraction ``s`` (clipped to the frame)."""
    h, w = rgb.shape[:2]
    x, y = obj.position(s, w, h)
    side = obj.texture.shape[0]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, w), min(y + side, h)
    if x1 <= x0 or y1 <= y0:
        return rgb
    out = rgb.copy()
    out[y0:y1, x0:x1] = obj.texture[y0 - y:y1 - y, x0 - x:x1 - x]
    return out
