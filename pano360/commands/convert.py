"""`pano360 convert IN OUT`: a perspective video to a full 360 equirectangular MP4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pano360.commands._options import JsonOpt, OverwriteOpt, QuietOpt

BackendOpt = Annotated[str, typer.Option("--backend", help="auto (Wan when a model and a GPU are there, else mosaic), mosaic or wan.")]
WidthOpt = Annotated[int, typer.Option("--width", help="Output ERP width in pixels (height = width / 2).")]
HfovOpt = Annotated[Optional[float], typer.Option("--hfov", help="Horizontal field of view of the input in degrees (estimated when not given).")]
TrajOpt = Annotated[Optional[Path], typer.Option("--trajectory", help="Use this trajectory file instead of estimating the rotations.")]
SaveTrajOpt = Annotated[Optional[Path], typer.Option("--save-trajectory", help="Write the trajectory used to this file.")]
OrientOpt = Annotated[str, typer.Option("--orientation", help="world: locked to the first frame (stabilised); follow: the centre follows the smoothed heading.")]
LevelOpt = Annotated[bool, typer.Option("--level", help="Estimate gravity and make the output's horizon level.")]
PreviewOpt = Annotated[Optional[Path], typer.Option("--preview", help="Also write a PNG contact sheet of the result.")]
CrfOpt = Annotated[int, typer.Option("--crf", help="x264 quality (lower is better, bigger).")]
PresetOpt = Annotated[str, typer.Option("--preset", help="x264 speed preset (ultrafast, the default, encodes fastest; veryfast makes files 2-5x smaller for ~1.4-1.8x the encoding time).")]
# The Wan backend's options (used with --backend wan, or auto when it picks Wan).
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="Wan2.1 VACE model: a diffusers folder or hub id (or PANO360_MODEL).")]
LoraOpt = Annotated[Optional[Path], typer.Option("--lora", help="Panorama LoRA safetensors for the Wan backend.")]
LoraScaleOpt = Annotated[float, typer.Option("--lora-scale", help="LoRA strength.")]
PromptOpt = Annotated[str, typer.Option("--prompt", help="Text prompt for the Wan backend.")]
NegPromptOpt = Annotated[str, typer.Option("--negative-prompt", help="Negative prompt for the Wan backend.")]
StepsOpt = Annotated[int, typer.Option("--steps", help="Denoising steps (Wan).")]
GuidanceOpt = Annotated[float, typer.Option("--guidance", help="Classifier-free guidance scale (Wan).")]
ShiftOpt = Annotated[Optional[float], typer.Option("--shift", help="Flow-matching shift (Wan; the model's default when not given).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (Wan): same seed, same output.")]
GenWidthOpt = Annotated[int, typer.Option("--gen-width", help="Generation ERP width for Wan (height = width / 2).")]
OffloadOpt = Annotated[bool, typer.Option("--offload", help="Model CPU offload (Wan; for 24 GB GPUs).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="Torch device for Wan (default cuda; 'cpu' is very slow).")]


def wan_kwargs(lora: Optional[Path], lora_scale: float, prompt: str, negative_prompt: str, steps: int, guidance: float,
               shift: Optional[float], seed: int, gen_width: int, offload: bool, quiet: bool = False) -> dict:
    """The WanBackend keyword arguments from the command's Wan flags, whose numbers are checked up front
    (``--steps 0``, ``--gen-width 100`` or a NaN ``--guidance`` is a usage error before any work)."""
    from pano360.generate.wan.loading import check_settings

    check_settings(steps, guidance, shift, gen_width, lora_scale)
    return dict(lora=str(lora) if lora else None, lora_scale=lora_scale, prompt=prompt, negative_prompt=negative_prompt,
                steps=steps, guidance=guidance, shift=shift, seed=seed, gen_width=gen_width, offload=offload, quiet=quiet)


def command(
    input: Annotated[Path, typer.Argument(help="Input video (a perspective clip).")],
    output: Annotated[Path, typer.Argument(help="Output 360 MP4.")],
    backend: BackendOpt = "auto",
    width: WidthOpt = 4096,
    hfov: HfovOpt = None,
    trajectory: TrajOpt = None,
    save_trajectory: SaveTrajOpt = None,
    orientation: OrientOpt = "world",
    level: LevelOpt = False,
    preview: PreviewOpt = None,
    crf: CrfOpt = 20,
    preset: PresetOpt = "ultrafast",
    overwrite: OverwriteOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    model: ModelOpt = None,
    lora: LoraOpt = None,
    lora_scale: LoraScaleOpt = 1.0,
    prompt: PromptOpt = "",
    negative_prompt: NegPromptOpt = "",
    steps: StepsOpt = 30,
    guidance: GuidanceOpt = 5.0,
    shift: ShiftOpt = None,
    seed: SeedOpt = 0,
    gen_width: GenWidthOpt = 1024,
    offload: OffloadOpt = False,
    device: DeviceOpt = None,
) -> None:
    """Turn a perspective video into a full 360 equirectangular MP4 (Spherical Video V1 + V2)."""
    from pano360.console import count, progress_enabled
    from pano360.generate.wan.loading import check_device
    from pano360.pipeline.convert import ConvertOptions, convert_video

    check_device(device)
    opts = ConvertOptions(
        backend=backend, width=width, hfov_deg=hfov, trajectory=trajectory, save_trajectory=save_trajectory,
        orientation=orientation, level=level, preview=preview, crf=crf, preset=preset, overwrite=overwrite,
        model=model, device=device,
        wan=wan_kwargs(lora, lora_scale, prompt, negative_prompt, steps, guidance, shift, seed, gen_width, offload,
                       quiet=quiet or json_output),
    )
    result = convert_video(input, output, opts, show_progress=progress_enabled(quiet, json_output), quiet=quiet or json_output)
    if json_output:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"wrote {result['output']} ({result['width']}x{result['height']}, {count(result['frames'], 'frame')}, "
                   f"{result['backend']} backend, {result['coverage_pct']:.1f}% of the sphere seen) "
                   f"in {result['timings_s']['total']:.1f} s")
