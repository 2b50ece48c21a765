"""The training objective: flow matching on Wan latents, with Argus's latitude weighting.

Flow matching as Wan was trained (rectified flow, ``flow_prediction``): for clean latents ``x0``,
noise ``n`` and ``sigma`` in (0, 1), ``x_t = (1 - sigma) x0 + sigma n``; the transformer, given
the timestep ``1000 sigma``, predicts the velocity ``n - x0``. ``sigma`` is uniform, then
shifted with the model's flow shift, ``s u / (1 + (s - 1) u)``, as the sampler spaces its steps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["latitude_weights", "shift_sigmas", "sample_sigmas", "noisy_latents", "flow_loss"]


def latitude_weights(rows: int) -> np.ndarray:
    """Argus's per-row loss weights ``(rows,)`` float32: ``sqrt(1 - h^2) + 0.25`` with
    ``h = |row + 0.5 - rows/2| / (rows/2)`` (row centres), renormalised to sum to ``rows``.

    The equator rows weigh most, the polar rows (stretched by the ERP) least.

    >>> w = latitude_weights(4)
    >>> round(float(w.sum()), 5), bool(w[1] == w[2] > w[0] == w[3])
    (4.0, True)
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    half = rows / 2.0
    h = np.abs(np.arange(rows) + 0.5 - half) / half
    w = np.sqrt(np.clip(1.0 - h * h, 0.0, None)) + 0.25
    return (w * rows / w.sum()).astype(np.float32)


def shift_sigmas(u, shift: float):
    """Shift uniform ``u`` in [0, 1] toward high noise: ``shift u / (1 + (shift - 1) u)`` (works on
    numpy arrays and torch tensors). ``shift = 1`` is the identity."""
    return shift * u / (1.0 + (shift - 1.0) * u)


def sample_sigmas(batch: int, shift: float, generator, device=None):
    """``(batch,)`` float32 noise levels in (0, 1): uniform, then :func:`shift_sigmas`.

    ``generator`` is a ``torch.Generator`` (on the CPU, so runs on any device draw the same values).
    """
    import torch

    u = torch.rand(batch, generator=generator, dtype=torch.float32)
    u = u.clamp(1e-4, 1.0 - 1e-4)
    return shift_sigmas(u, float(shift)).to(device)


def noisy_latents(x0, noise, sigmas):
    """``(x_t, target)``: ``x_t = (1 - sigma) x0 + sigma noise`` and the velocity ``noise - x0``;
    ``x0``/``noise`` ``(B, C, T, h, w)``, ``sigmas`` ``(B,)``."""
    s = sigmas.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1.0 - s) * x0 + s * noise, noise - x0


def flow_loss(pred, target, row_weights):
    """Latitude-weighted MSE: the mean over all elements of ``w[row] (pred - target)^2``, float32.

    ``pred``/``target`` ``(B, C, T, h, w)``; ``row_weights`` ``(h,)`` summing to ``h`` (so the
    loss of a uniform error equals the plain MSE).
    """
    err = (pred.float() - target.float()) ** 2
    w = row_weights.to(err.device, err.dtype).view(1, 1, 1, -1, 1)
    return (err * w).mean()
