"""Training checkpoints: ``<root>/step-00000100/`` with the LoRA, the optimizer and the RNG states.

A checkpoint holds ``lora.safetensors`` (the adapter, loadable on its own like the final output),
``trainer.pt`` (optimizer state, step, loss history, the run's settings), ``run.json`` (what makes
it one run: model, data folder, rank, alpha, targets) and ``rng-<rank>.pt`` for each process (its
numpy and torch generator states), written to a temporary folder and renamed into place, so a
checkpoint folder is complete or absent. Checkpoints written before ``run.json`` existed are read
through the settings in their ``trainer.pt``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from pano360.errors import Pano360Error

__all__ = ["RUN_KEYS", "step_dir", "checkpoints", "latest_checkpoint", "resolve_resume", "save_trainer_state",
           "load_trainer_state", "load_rng_state", "save_run", "read_run", "run_differences", "finish_checkpoint"]

_STEP = re.compile(r"^step-(\d{8})$")
# What makes checkpoints one run: a checkpoint of another model, data folder or adapter shape is another run's.
RUN_KEYS = ("model", "data_dir", "rank", "alpha", "targets")
# What trainer.pt must hold for a run to continue from it.
_STATE_KEYS = ("step", "losses", "lora", "optimizer", "config")


def step_dir(root: Path, step: int) -> Path:
    """``root/step-NNNNNNNN``."""
    return Path(root) / f"step-{step:08d}"


def checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints under ``root`` (``step-*`` folders with a ``trainer.pt``), by step."""
    found = []
    for p in Path(root).glob("step-*"):
        m = _STEP.match(p.name)
        if m and (p / "trainer.pt").is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``root``, or None."""
    found = checkpoints(root)
    return found[-1] if found else None


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


def _load(path: Path):
    """``torch.load`` of a checkpoint file, any failure one line naming it (corrupt, truncated, not torch)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling raises many types
        why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise Pano360Error(f"cannot read checkpoint file {path} (corrupt or truncated?): {why}") from exc


def load_trainer_state(folder: Path) -> dict:
    """Read ``trainer.pt`` of a checkpoint folder, checking that it holds what a resume needs."""
    path = Path(folder) / "trainer.pt"
    state = _load(path)
    missing = [k for k in _STATE_KEYS if k not in state] if isinstance(state, dict) else list(_STATE_KEYS)
    if missing or not isinstance(state.get("config"), dict) or not isinstance(state.get("lora"), dict):
        raise Pano360Error(f"{path} is not a pano360 training checkpoint (no {', '.join(missing) or 'valid config'})")
    return state


def load_rng_state(folder: Path, rank: int) -> dict:
    """``rng-<rank>.pt`` of a checkpoint folder: ``{"numpy": state, "torch": ByteTensor}``."""
    path = Path(folder) / f"rng-{rank}.pt"
    if not path.is_file():
        raise Pano360Error(f"checkpoint {folder} has no RNG state for process {rank} (trained with fewer processes?)")
    rng = _load(path)
    if not isinstance(rng, dict) or not {"numpy", "torch"} <= rng.keys():
        raise Pano360Error(f"{path} is not a pano360 RNG state")
    return rng


def save_run(folder: Path, run: dict) -> None:
    """Write ``run.json`` (the run's :data:`RUN_KEYS`) into ``folder``."""
    (Path(folder) / "run.json").write_text(json.dumps({k: run[k] for k in RUN_KEYS}, indent=1))


def read_run(folder: Path, state: dict | None = None) -> dict:
    """The run settings of a checkpoint: its ``run.json``, or (older checkpoints) the settings in its
    ``trainer.pt`` (``state`` when already loaded). Keys it lacks are absent."""
    path = Path(folder) / "run.json"
    if path.is_file():
        try:
            run = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise Pano360Error(f"cannot read checkpoint file {path} (corrupt?): {exc}".splitlines()[0]) from None
    else:
        run = (state if state is not None else load_trainer_state(folder))["config"]
    return {k: run[k] for k in RUN_KEYS if isinstance(run, dict) and k in run}


def _same_path(a, b) -> bool:
    return str(a) == str(b) or Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()


def run_differences(saved: dict, run: dict) -> list[str]:
    """How the settings ``saved`` in a checkpoint differ from ``run``'s, one phrase each (empty: same run).

    >>> run_differences({"rank": 8, "targets": "full"}, {"rank": 16, "targets": "full", "alpha": 16.0})
    ['--rank 8 (this run: 16)']
    """
    out = []
    for key in RUN_KEYS:
        if key not in saved or key not in run:
            continue
        a, b = saved[key], run[key]
        if key in ("model", "data_dir"):
            same = _same_path(str(a).strip(), str(b).strip())
        elif key == "alpha":
            same = float(a) == float(b)
        else:
            same = a == b
        if not same:
            label = {"model": "model", "data_dir": "data folder"}.get(key, f"--{key}")
            out.append(f"{label} {a} (this run: {b})")
    return out


def finish_checkpoint(tmp: Path, final: Path) -> None:
    """Rename a fully written temporary checkpoint folder onto ``final`` (replacing an old one)."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
