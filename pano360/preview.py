"""A contact sheet of a convert result a person can look at: ERP frames over time, the four
horizontal views (front, right, back, left), the coverage of seen pixels, and yaw/pitch/roll."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pano360.trajectory import Trajectory

__all__ = ["contact_sheet", "save_png", "four_views"]

VIEWS = (("front", 0.0), ("right", 90.0), ("back", 180.0), ("left", -90.0))


def four_views(erp: np.ndarray, size: int = 256, hfov_deg: float = 90.0) -> list[tuple[str, np.ndarray]]:
    """The front/right/back/left ``(size, size, 3)`` views of an ERP frame (yaw 0, 90, 180, -90)."""
    from pano360.project.remap import erp_to_persp
    from pano360.project.rotation import euler_to_matrix

    return [(name, erp_to_persp(erp, euler_to_matrix(yaw, 0.0, 0.0), hfov_deg, size, size)) for name, yaw in VIEWS]


def contact_sheet(frames: list[tuple[float, np.ndarray]], seen: np.ndarray, traj: Trajectory, dpi: int = 100) -> np.ndarray:
    """Render the sheet as an ``(h, w, 3) uint8`` image.

    ``frames``: ``(time_s, erp rgb)`` samples of the output; ``seen``: ``(H, W) bool`` pixels any
    frame saw; ``traj``: the trajectory used (yaw/pitch/roll plotted over time).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pano360.project.rotation import matrix_to_euler

    n = max(1, len(frames))
    erp_rows = (n + 1) // 2
    fig = plt.figure(figsize=(16, 4.1 * erp_rows + 4.2 + 3.6), dpi=dpi)
    rows = erp_rows + 2
    gs = fig.add_gridspec(rows, 4, height_ratios=[4.1] * erp_rows + [4.2, 3.6])
    for k, (t, erp) in enumerate(frames):
        ax = fig.add_subplot(gs[k // 2, (k % 2) * 2:(k % 2) * 2 + 2])
        ax.imshow(erp)
        ax.set_title(f"ERP at {t:.1f} s", fontsize=9)
        ax.axis("off")
    last = frames[len(frames) // 2][1] if frames else np.zeros((64, 128, 3), np.uint8)
    for j, (name, view) in enumerate(four_views(last)):
        ax = fig.add_subplot(gs[rows - 2, j])
        ax.imshow(view)
        ax.set_title(f"{name} (t = {frames[len(frames) // 2][0]:.1f} s)" if frames else name, fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(gs[rows - 1, 0:2])
    h = seen.shape[0]
    lat = (0.5 - (np.arange(h) + 0.5) / h) * np.pi
    cov = float((seen.mean(axis=1) * np.cos(lat)).sum() / np.cos(lat).sum())
    ax.imshow(seen[::max(1, seen.shape[0] // 256), ::max(1, seen.shape[1] // 512)], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"seen by the clip: {100 * cov:.1f}% of the sphere", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(gs[rows - 1, 2:4])
    yaw, pitch, roll = matrix_to_euler(traj.R)
    ax.plot(traj.time_s, np.degrees(np.unwrap(np.radians(yaw))), label="yaw")
    ax.plot(traj.time_s, pitch, label="pitch")
    ax.plot(traj.time_s, roll, label="roll")
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("degrees", fontsize=8)
    ax.set_title(f"camera rotation (hfov {traj.hfov_deg:.1f} deg)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image as PNG, atomically."""
    import cv2

    from pano360.io.atomic import atomic_output

    with atomic_output(Path(path).with_suffix(Path(path).suffix or ".png"), overwrite=True) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("PNG encoding failed")
        Path(tmp).write_bytes(buf.tobytes())
