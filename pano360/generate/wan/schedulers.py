"""Flow-matching schedulers for Wan, and rolling their internal state with the latents."""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEDULERS", "make_scheduler", "roll_scheduler_state"]

SCHEDULERS = ("euler", "unipc")


def make_scheduler(base: Any, kind: str = "euler", shift: float | None = None):
    """A fresh scheduler of ``kind`` with the model's flow shift (or ``shift``).

    ``base`` is the scheduler the model folder ships (Wan: UniPC, ``flow_shift`` 3.0 at 480p);
    ``euler`` gives ``FlowMatchEulerDiscreteScheduler``, which has no history to keep aligned.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    cfg = dict(getattr(base, "config", {}) or {})
    if shift is None:
        shift = cfg.get("flow_shift") or cfg.get("shift") or 3.0
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    n_train = cfg.get("num_train_timesteps", 1000)
    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=n_train, shift=float(shift))
    if kind == "unipc":
        return UniPCMultistepScheduler(
            num_train_timesteps=n_train, prediction_type="flow_prediction", use_flow_sigmas=True,
            flow_shift=float(shift), solver_order=2,
        )
    raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {kind!r}")


def roll_scheduler_state(scheduler: Any, shift: int) -> None:
    """Roll every spatial tensor a multistep scheduler keeps (UniPC's model-output history,
    its last sample) by ``shift`` columns, in place, so it stays aligned with rolled latents."""
    import torch

    outs = getattr(scheduler, "model_outputs", None)
    if isinstance(outs, list):
        scheduler.model_outputs = [torch.roll(o, shift, dims=-1) if torch.is_tensor(o) else o for o in outs]
    for name in ("last_sample", "sample"):
        val = getattr(scheduler, name, None)
        if torch.is_tensor(val):
            setattr(scheduler, name, torch.roll(val, shift, dims=-1))
