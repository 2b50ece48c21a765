"""`pano360 train`: fit the panorama LoRA for Wan2.1 VACE on a folder of 360 videos.

Multi-GPU: run the same command under ``accelerate launch``, e.g.
``accelerate launch --multi_gpu --num_processes 4 -m pano360.cli train DATA --model DIR --out lora.safetensors``
(gradients are all-reduced; each GPU draws its own samples; ``--batch`` is per GPU). ``torchrun
--nproc_per_node N -m pano360.cli train ...`` works the same (with ``--device cpu``: several CPU
processes over gloo, how the multi-process path was checked without a GPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pano360.commands._options import JsonOpt, QuietOpt

HELP = """Fit the panorama LoRA for Wan2.1 VACE on a folder of 360 videos.

Every equirectangular video under DATA_DIR is used (stereo ones by their left eye; untagged 2:1
videos count as mono ERP; anything else is skipped with a warning), with the caption in
VIDEO.txt beside it if there is one. Each sample films a random clip with a simulated phone
(Argus's walking sway, drift and jitter, FOV 30-120 degrees, landscape or portrait), puts the
view back on the ERP canvas as `convert` does, and learns to fill the rest.

Checkpoints (LoRA, optimizer, step, RNG state) and loss.png go to OUT_STEM-checkpoints/ (or
--ckpt-dir); --resume continues one exactly, with the same model, data and adapter. A new run
into a folder holding another run's checkpoints needs -y (which replaces them). Several GPUs:
accelerate launch --multi_gpu --num_processes N -m pano360.cli train DATA_DIR --model DIR --out lora.safetensors
"""


def command(
    data_dir: Annotated[Path, typer.Argument(help="Folder of 360 videos (searched recursively).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The LoRA to write (.safetensors).", show_default=False)],
    model: Annotated[str, typer.Option("--model", help="Wan2.1 VACE diffusers folder (or hub id), e.g. Wan-AI/Wan2.1-VACE-1.3B-diffusers.", envvar="PANO360_MODEL")] = "",
    rank: Annotated[Optional[int], typer.Option(help="LoRA rank (default 16; a resumed run: its checkpoint's).", show_default=False)] = None,
    alpha: Annotated[Optional[float], typer.Option(help="LoRA alpha, scale = alpha / rank (default 16; a resumed run: its checkpoint's).", show_default=False)] = None,
    targets: Annotated[Optional[str], typer.Option(help="Where the LoRA goes: full (attention q,k,v,out + FFN; the default), attn or ffn (a resumed run: its checkpoint's).", show_default=False)] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps in all (a resumed run continues up to it).")] = 2000,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-4,
    batch: Annotated[int, typer.Option(help="Clips per step per process.")] = 1,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="Micro-batches accumulated per optimizer step.")] = 1,
    width: Annotated[int, typer.Option(help="Training ERP width (height = width / 2), a multiple of 32.")] = 1024,
    frames: Annotated[int, typer.Option(help="Frames per clip, 4k+1.")] = 81,
    resume: Annotated[Optional[Path], typer.Option(help="Continue from a checkpoint folder (a step-* folder, or the checkpoints folder for its latest).")] = None,
    save_every: Annotated[int, typer.Option("--save-every", help="Write a checkpoint every N steps.")] = 250,
    seed: Annotated[int, typer.Option(help="Seed of every random choice (samples, noise, timesteps).")] = 0,
    device: Annotated[Optional[str], typer.Option(help="cuda (default), cuda:N or cpu (tests; very slow for real models). Several GPUs: run under `accelerate launch --multi_gpu --num_processes N -m pano360.cli train ...`.")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Size of the cached sample pool (default: one per step, at most 256).")] = None,
    ckpt_dir: Annotated[Optional[Path], typer.Option("--ckpt-dir", help="Where checkpoints go (default OUT_STEM-checkpoints beside --out).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace OUT if it exists, and another run's checkpoints in the checkpoint folder.")] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    from pano360.train.trainer import TrainConfig, train

    cfg = TrainConfig(
        data_dir=data_dir, model=model, out=out, rank=rank, alpha=alpha, targets=targets, steps=steps, lr=lr,
        batch=batch, grad_accum=grad_accum, width=width, frames=frames, resume=resume, save_every=save_every,
        seed=seed, device=device, samples=samples, ckpt_dir=ckpt_dir, overwrite=overwrite,
        quiet=quiet or json_output, progress=not (quiet or json_output),
    )
    from pano360.console import note

    result = train(cfg, warn=lambda m: note(f"warning: {m}"))
    if not result.info.get("main_process", True):
        return  # under accelerate launch / torchrun only the main process reports
    if json_output:
        typer.echo(json.dumps(result.to_dict()))
    else:
        final = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
        typer.echo(f"{result.out}: {result.step} steps, final loss {final}, checkpoints in {result.ckpt_dir}")


command.__doc__ = HELP  # the command's docstring is its long help
