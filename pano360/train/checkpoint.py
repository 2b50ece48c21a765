"""Training checkpoints: ``<root>/step-00000100/`` with the LoRA, the optimizer and the RNG states.

A checkpoint holds ``lora.safetensors`` (the adapter, loadable on its own like the final output),
``trainer.pt`` (optimizer state, step, loss history, the run's settings) and ``rng-<rank>.pt``
for each process (its numpy and torch generator states), written to a temporary folder and
renamed into place, so a checkpoint folder is complete or absent.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pano360.errors import Pano360Error

__all__ = ["step_dir", "latest_checkpoint", "resolve_resume", "save_trainer_state", "load_trainer_state", "finish_checkpoint"]

_STEP = re.compile(r"^step-(\d{8})$")


def step_dir(root: Path, step: int) -> Path:
    """``root/step-NNNNNNNN``."""
    return Path(root) / f"step-{step:08d}"


def latest_checkpoint(root: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``root``, or None."""
    best = None
    for p in Path(root).glob("step-*"):
        m = _STEP.match(p.name)
        if m and (p / "trainer.pt").is_file() and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return best[1] if best else None


def resolve_resume(path: str | Path) -> Path:
    """The checkpoint folder ``--resume`` names: a ``step-*`` folder, or a checkpoint root (its latest)."""
    p = Path(path)
    if not p.is_dir():
        raise Pano360Error(f"checkpoint folder not found: {p}")
    if (p / "trainer.pt").is_file():
        return p
    latest = latest_checkpoint(p)
    if latest is None:
        raise Pano360Error(f"no checkpoint in {p} (expected step-NNNNNNNN/trainer.pt)")
    return latest


def save_trainer_state(folder: Path, state: dict) -> None:
    """Write ``trainer.pt`` into ``folder``."""
    import torch

    torch.save(state, Path(folder) / "trainer.pt")


def load_trainer_state(folder: Path) -> dict:
    """Read ``trainer.pt`` of a checkpoint folder."""
    import torch

    try:
        return torch.load(Path(folder) / "trainer.pt", map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise Pano360Error(f"cannot read checkpoint {folder}: {exc}".splitlines()[0]) from exc


def finish_checkpoint(tmp: Path, final: Path) -> None:
    """Rename a fully written temporary checkpoint folder onto ``final`` (replacing an old one)."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
