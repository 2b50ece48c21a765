"""GPU benchmark of the Wan backend: a real-size Wan2.1-VACE-1.3B with random weights.

Random weights cost exactly what the real ones cost, so this needs no download. It times, on one
81-frame 1024x512 window (the backend's default): the VACE conditioning (two VAE encodes), one
denoising step (two transformer passes for classifier-free guidance, plus the quarter-turn rolls),
the plain VAE decode and the blended 180°-rotated decode, and the peak GPU memory; with and
without model CPU offload, for the attention backends diffusers offers (SDPA, its flash and cuDNN
kernels, flash-attn if installed) and with ``torch.compile`` on the repeated transformer blocks.

The text encoder (UMT5-XXL) runs once per clip and is left out: random prompt embeddings of the
real shape (1, 226, 4096) stand in for it.

    python benchmarks/wan_gpu.py                 # GPU, bf16, real size
    python benchmarks/wan_gpu.py --tiny          # the same code on the CPU with the tiny model, seconds
    python benchmarks/wan_gpu.py --json out.json --modes plain,flash,offload,compile
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

# Wan2.1-VACE-1.3B (diffusers scripts/convert_wan_to_diffusers.py, "Wan-VACE-1.3B").
VACE_13B = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
    vace_layers=list(range(0, 30, 2)), vace_in_channels=96,
)
WAN_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])

MODES = {
    "plain": dict(offload=False, attention=None, compile=False),
    "flash": dict(offload=False, attention="_native_flash", compile=False),
    "cudnn": dict(offload=False, attention="_native_cudnn", compile=False),
    "flash-attn": dict(offload=False, attention="flash", compile=False),
    "compile": dict(offload=False, attention=None, compile=True),
    "offload": dict(offload=True, attention=None, compile=False),
}


@dataclass
class Result:
    mode: str
    ok: bool = True
    error: str = ""
    warmup_s: float = 0.0
    conditioning_s: float = 0.0
    step_s: list = field(default_factory=list)
    step_median_s: float = 0.0
    decode_plain_s: float = 0.0
    decode_blended_s: float = 0.0
    window_estimate_s: float = 0.0
    peak_gib: float = 0.0


def build(tiny: bool, device, dtype):
    """Components: real-size (or tiny) transformer and VAE with random weights, an Euler scheduler."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanVACETransformer3DModel

    from pano360.generate.wan.loading import WanComponents
    from pano360.generate.wan.tiny import TINY_TRANSFORMER, TINY_VAE

    torch.manual_seed(0)
    init_device = device if device.type == "cuda" else "cpu"
    with torch.device(init_device):  # initialise on the GPU: seconds instead of minutes
        transformer = WanVACETransformer3DModel(**(TINY_TRANSFORMER if tiny else VACE_13B)).to(dtype).eval()
        vae = AutoencoderKLWan(**(TINY_VAE if tiny else WAN_VAE)).float().eval()
    transformer.requires_grad_(False)
    vae.requires_grad_(False)
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return WanComponents(None, None, vae, transformer, sched, device, dtype)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(device) -> float:
    """Peak GPU memory allocated (GiB); on the CPU the process's peak resident set so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_mode(name, comps, args, video, mask, embeds) -> Result:
    from pano360.generate.wan.pipeline import WanOutpaintPipeline

    cfg = MODES[name]
    res = Result(name)
    dev = comps.device
    tr = comps.transformer
    try:
        comps.offload = cfg["offload"]
        for m in (comps.transformer, comps.vae):
            m.to("cpu" if cfg["offload"] else dev)
        tr.set_attention_backend(cfg["attention"] or "native")
        if cfg["compile"]:
            tr.compile_repeated_blocks(fullgraph=True)
        pipe = WanOutpaintPipeline(comps)
        _peak_reset(dev)
        stamps = []

        def on_step(p, i, t, kw):
            _sync(dev)
            stamps.append(time.perf_counter())
            return {}

        _sync(dev)
        t0 = time.perf_counter()  # warm-up: one step (kernel selection, torch.compile)
        pipe(video, mask, embeds, num_inference_steps=1, guidance_scale=5.0, generator=torch.Generator().manual_seed(0),
             output_type="latent")
        _sync(dev)
        res.warmup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        latents = pipe(video, mask, embeds, num_inference_steps=args.steps, guidance_scale=5.0,
                       generator=torch.Generator().manual_seed(0), output_type="latent", callback_on_step_end=on_step)
        # conditioning time = until the first step started ~ first stamp minus one later step
        steps = np.diff(stamps).tolist()
        res.step_s = [round(s, 4) for s in steps]
        res.step_median_s = statistics.median(steps) if steps else stamps[0] - t0
        res.conditioning_s = max(0.0, (stamps[0] - t0) - res.step_median_s)
        _sync(dev)
        t1 = time.perf_counter()
        pipe.decode(latents, blend_ratio=0)
        _sync(dev)
        t2 = time.perf_counter()
        pipe.decode(latents, blend_ratio=16)
        _sync(dev)
        t3 = time.perf_counter()
        res.decode_plain_s, res.decode_blended_s = t2 - t1, t3 - t2
        res.window_estimate_s = res.conditioning_s + args.full_steps * res.step_median_s + res.decode_blended_s
        res.peak_gib = _peak(dev)
    except Exception as exc:  # a mode that cannot run here (no flash-attn, no compiler) is reported, not fatal
        res.ok, res.error = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        if "out of memory" in str(exc).lower():
            _peak_reset(dev)
    finally:
        tr.set_attention_backend("native")
        if cfg["compile"]:
            torch._dynamo.reset()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny random model on the CPU (the CI smoke run)")
    ap.add_argument("--width", type=int, default=None, help="ERP width (default 1024; tiny 64)")
    ap.add_argument("--frames", type=int, default=None, help="frames, 4k+1 (default 81; tiny 5)")
    ap.add_argument("--steps", type=int, default=None, help="timed denoising steps (default 4; tiny 3)")
    ap.add_argument("--full-steps", type=int, default=30, help="steps of a real run, for the window estimate")
    ap.add_argument("--modes", default="plain,flash,cudnn,flash-attn,offload,compile",
                    help=f"comma list of {list(MODES)}; compile last (it wraps the blocks for the rest of the run)")
    ap.add_argument("--lora-rank", type=int, default=0, help="add an (unfused) PanoLora-style LoRA of this rank")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    from diffusers.utils import logging as dlogging

    dlogging.set_verbosity_error()  # "attention backends are experimental" once per mode
    if args.tiny:
        device, dtype = torch.device("cpu"), torch.float32
    elif torch.cuda.is_available():
        device, dtype = torch.device("cuda"), torch.bfloat16
    else:
        print("no CUDA GPU: run with --tiny for the CPU smoke test", file=sys.stderr)
        return 2
    width = args.width or (64 if args.tiny else 1024)
    frames = args.frames or (5 if args.tiny else 81)
    args.steps = args.steps or (3 if args.tiny else 4)
    height = width // 2
    comps = build(args.tiny, device, dtype)
    if args.lora_rank:
        from pano360.generate.wan.lora import add_lora

        add_lora(comps.transformer, rank=args.lora_rank)
        comps.transformer.to(device=device, dtype=dtype)
    text_dim = comps.transformer.config.text_dim
    from pano360.generate.wan.pipeline import PromptEmbeds

    g = torch.Generator().manual_seed(1)
    embeds = PromptEmbeds(torch.randn(1, 226, text_dim, generator=g).to(device, dtype),
                          torch.randn(1, 226, text_dim, generator=g).to(device, dtype))
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    mask = np.ones((frames, height, width), np.float32)
    mask[:, height // 4 : 3 * height // 4, 3 * width // 8 : 5 * width // 8] = 0  # the seen part
    info = dict(
        device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        torch=torch.__version__, dtype=str(dtype), tiny=args.tiny, width=width, height=height, frames=frames,
        timed_steps=args.steps, transformer_params_m=round(sum(p.numel() for p in comps.transformer.parameters()) / 1e6, 2),
        lora_rank=args.lora_rank, vae_params_m=round(sum(p.numel() for p in comps.vae.parameters()) / 1e6, 2), threads=torch.get_num_threads(),
    )
    print(json.dumps(info), file=sys.stderr)
    results = []
    for name in [m.strip() for m in args.modes.split(",") if m.strip()]:
        if name not in MODES:
            print(f"unknown mode {name}; choose from {list(MODES)}", file=sys.stderr)
            return 2
        r = run_mode(name, comps, args, video, mask, embeds)
        results.append(r)
        line = (f"{name:10s} step {r.step_median_s:8.3f} s  cond {r.conditioning_s:7.3f} s  decode {r.decode_plain_s:7.3f} s"
                f"  blended {r.decode_blended_s:7.3f} s  window({args.full_steps} steps) {r.window_estimate_s:8.2f} s"
                f"  peak {r.peak_gib:6.2f} GiB  warm-up {r.warmup_s:6.1f} s" if r.ok else f"{name:10s} FAILED {r.error}")
        print(line, file=sys.stderr)
    out = dict(info=info, results=[asdict(r) for r in results])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
