"""The loss curve as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["moving_average", "plot_loss"]


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values, same length as ``values``.

    >>> moving_average([1.0, 3.0, 5.0], 2).tolist()
    [1.0, 2.0, 4.0]
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_loss(losses: Sequence[float], path: str | Path, title: str = "pano360 train") -> Path:
    """Plot the per-step loss (step 1 first) and its moving average to ``path`` (PNG), written beside
    it and renamed into place (a stop leaves the old curve or the new one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = np.arange(1, len(losses) + 1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, losses, lw=0.8, alpha=0.45, label="loss")
    if len(losses) > 1:
        ax.plot(steps, moving_average(losses, max(2, len(losses) // 20)), lw=1.8, label="moving average")
    ax.set_xlabel("step")
    ax.set_ylabel("latitude-weighted flow-matching loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.part.png")
    try:  # a stop (Ctrl-C, SIGTERM) or failure while writing leaves no .part file
        fig.savefig(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path
