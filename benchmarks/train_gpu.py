"""GPU benchmark of `pano360 train`: one LoRA training step of a real-size Wan2.1-VACE-1.3B.

Random weights cost exactly what the real ones cost, so this needs no download. Latents come from
the sample cache in real training, so the step is what is timed here: the frozen bf16 transformer
with the rank-16 ``full`` LoRA (float32 weights), forward and backward on the VACE objective
(``pano360.train.trainer.step_loss``: latitude-weighted flow matching), gradient clipping and one
AdamW step; gradient checkpointing on, as the trainer does on a GPU. Random latents of the real
shapes stand in for the cache: target ``(1, 16, (F-1)/4+1, H/8, W/8)``, VACE conditioning with 96
channels, prompt embeddings ``(1, 226, 4096)``.

    python benchmarks/train_gpu.py                       # GPU: 1024x512 x 49 and x 81 frames
    python benchmarks/train_gpu.py --frames 81 --no-checkpointing
    python benchmarks/train_gpu.py --tiny                # the same code on the CPU, tiny model, seconds
    python benchmarks/train_gpu.py --device cpu --width 128 --frames 5 --steps 1   # real size, CPU wiring check
    python benchmarks/train_gpu.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

# Wan2.1-VACE-1.3B (diffusers scripts/convert_wan_to_diffusers.py, "Wan-VACE-1.3B").
VACE_13B = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
    vace_layers=list(range(0, 30, 2)), vace_in_channels=96,
)
TEXT_TOKENS = 226


@dataclass
class Result:
    frames: int
    width: int
    height: int
    tokens: int
    ok: bool = True
    error: str = ""
    first_step_s: float = 0.0
    step_s: list = field(default_factory=list)
    step_median_s: float = 0.0
    peak_gib: float = 0.0
    peak_rss_gib: float = 0.0
    loss: float = float("nan")


def build(tiny: bool, device: torch.device, dtype: torch.dtype, rank: int, checkpointing: bool):
    """The transformer (random weights) with a trainable LoRA, as the trainer sets it up."""
    from diffusers import WanVACETransformer3DModel

    from pano360.generate.wan.lora import add_lora
    from pano360.generate.wan.tiny import TINY_TRANSFORMER
    from pano360.train.trainer import lora_targets

    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the compute dtype: no float32 copy of 1.7B weights
    try:
        with torch.device(device):
            model = WanVACETransformer3DModel(**(TINY_TRANSFORMER if tiny else VACE_13B))
    finally:
        torch.set_default_dtype(old)
    # As from_pretrained(torch_dtype=bf16) loads it (what the trainer gets): some modules stay float32.
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point():
            t.data = t.data.to(torch.float32 if keep & set(name.split(".")) else dtype)
    model.requires_grad_(False)
    add_lora(model, rank=rank, alpha=rank, targets=lora_targets("full"))
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    return model, params


def run_one(model, params, frames: int, width: int, device, dtype, steps: int) -> Result:
    from pano360.train.objective import latitude_weights, sample_sigmas
    from pano360.train.trainer import step_loss

    cfg = model.config
    h, w, t = width // 16, width // 8, (frames - 1) // 4 + 1
    res = Result(frames, width, width // 2, tokens=t * (h // 2) * (w // 2))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, cfg.in_channels, t, h, w, generator=gen).to(device)
    cond = torch.randn(1, cfg.vace_in_channels, t, h, w, generator=gen).to(device, dtype)
    emb = torch.randn(1, TEXT_TOKENS, cfg.text_dim, generator=gen).to(device, dtype)
    row_w = torch.from_numpy(latitude_weights(h))
    opt = torch.optim.AdamW(params, lr=1e-4)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        sigmas = sample_sigmas(1, 3.0, gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        loss = step_loss(model, x0, cond, emb, sigmas, noise, row_w, 1000, dtype)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return float(loss.detach())

    try:
        for i in range(steps + 1):
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            res.loss = step()
            if cuda:
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            if i == 0:
                res.first_step_s = round(dt, 4)
            else:
                res.step_s.append(round(dt, 4))
        res.step_median_s = round(statistics.median(res.step_s), 4) if res.step_s else res.first_step_s
    except Exception as exc:  # out of memory is a result, not a crash
        res.ok, res.error = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if cuda:
        res.peak_gib = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    res.peak_rss_gib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    del opt
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny model on the CPU (checks the code, times nothing real)")
    ap.add_argument("--frames", type=int, nargs="+", default=None, help="clip lengths (4k+1); default 49 81 (tiny: 5 9)")
    ap.add_argument("--width", type=int, default=None, help="ERP width (height = width/2); default 1024 (tiny: 64)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--no-checkpointing", action="store_true", help="keep every activation (more memory, faster)")
    ap.add_argument("--device", default=None, help="cuda (default) or cpu (a real-size CPU run is a wiring check only)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    if args.tiny:
        device, dtype = torch.device(args.device or "cpu"), torch.float32
    elif args.device == "cpu":
        device, dtype = torch.device("cpu"), torch.bfloat16
    elif torch.cuda.is_available():
        device, dtype = torch.device("cuda"), torch.bfloat16
    else:
        print("no CUDA GPU: run with --tiny for the CPU check", file=sys.stderr)
        return 1
    frames = args.frames or ([5, 9] if args.tiny else [49, 81])
    width = args.width or (64 if args.tiny else 1024)
    t0 = time.perf_counter()
    model, params = build(args.tiny, device, dtype, args.rank, checkpointing=not args.no_checkpointing)
    n_total = sum(p.numel() for p in model.parameters())
    n_lora = sum(p.numel() for p in params)
    head = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": "tiny" if args.tiny else "Wan2.1-VACE-1.3B config, random weights",
        "dtype": str(dtype).replace("torch.", ""), "params_total": n_total, "params_lora": n_lora,
        "gradient_checkpointing": not args.no_checkpointing, "build_s": round(time.perf_counter() - t0, 2),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    print(json.dumps(head))
    results = []
    for f in frames:
        r = run_one(model, params, f, width, device, dtype, args.steps)
        results.append(asdict(r))
        print(json.dumps(asdict(r)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"setup": head, "results": results}, fh, indent=1)
    return 0 if all(r["ok"] for r in results) else 2


if __name__ == "__main__":
    sys.exit(main())
