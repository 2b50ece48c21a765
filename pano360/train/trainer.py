"""The LoRA training loop for Wan2.1 VACE panoramas (see ``pano360 train``).

1. Find the 360 videos; load the model with the loader inference uses.
2. Make (or find) the sample cache: target latents, VACE conditioning, prompt embeddings; then
   free the VAE and the text encoder.
3. Add a peft LoRA to the frozen transformer (trainable weights in float32, base in bf16 on a GPU).
4. Each step: pick cached samples, draw shifted noise levels and noise, predict the velocity on
   the VACE objective exactly as inference calls the transformer, latitude-weighted MSE, AdamW.
5. Checkpoints every ``save_every`` steps (LoRA, optimizer, step, losses, RNG states) and at the
   end; a loss curve PNG beside them; the LoRA written to ``out`` atomically.

The loop runs under ``accelerate``: one process on a CPU or a GPU, or several through
``accelerate launch`` (gradients all-reduced, each process its own samples and noise).
"""

from __future__ import annotations

import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from pano360.console import note
from pano360.errors import Pano360Error, UsageError
from pano360.generate.wan.loading import check_device, check_finite

__all__ = ["TARGETS", "TrainConfig", "TrainResult", "lora_targets", "step_loss", "train"]

_ATTN = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
_FFN = ("ffn.net.0.proj", "ffn.net.2")
TARGETS = {"full": _ATTN + _FFN, "attn": _ATTN, "ffn": _FFN}
# Settings a resumed run takes from its checkpoint (they shape the data or the RNG streams); the run's
# identity (model, data folder, rank, alpha, targets: checkpoint.RUN_KEYS) must match it instead.
_FROM_CHECKPOINT = ("lr", "batch", "grad_accum", "width", "frames", "seed", "samples", "weight_decay", "max_grad_norm")
# The adapter's shape when not given: a new run's defaults, a resumed run's from its checkpoint.
_ADAPTER_DEFAULTS = {"rank": 16, "alpha": 16.0, "targets": "full"}


def lora_targets(name: str) -> tuple[str, ...]:
    """peft target module names of a ``--targets`` choice: ``full`` (PanoLora's best: self- and
    cross-attention q, k, v, out and both FFN linears), ``attn`` or ``ffn``. They match in the
    main blocks and the VACE blocks alike."""
    if name not in TARGETS:
        raise UsageError(f"--targets must be one of {', '.join(TARGETS)}, got {name!r}")
    return TARGETS[name]


@dataclass
class TrainConfig:
    """Everything ``pano360 train`` takes. ``samples``: size of the cached sample pool (None:
    ``steps * batch * grad_accum`` processes-wide, at least one per video, at most 256).
    ``gradient_checkpointing`` None means on a GPU only. ``dtype`` of the frozen weights
    ("bfloat16"/"float32"; None: bfloat16 on a GPU, float32 on the CPU; LoRA weights are float32). ``ckpt_dir`` None: beside ``out``
    (``<stem>-checkpoints``), or the resumed checkpoint's folder. ``rank``/``alpha``/``targets`` None:
    16, 16 and "full" for a new run, the checkpoint's for a resumed one (given ones must match it).
    ``overwrite`` replaces ``out`` and another run's checkpoints in the checkpoint folder."""

    data_dir: Path
    model: str
    out: Path
    rank: int | None = None
    alpha: float | None = None
    targets: str | None = None
    steps: int = 1000
    lr: float = 1e-4
    batch: int = 1
    grad_accum: int = 1
    width: int = 1024
    frames: int = 81
    resume: Path | None = None
    save_every: int = 250
    seed: int = 0
    device: str | None = None
    samples: int | None = None
    ckpt_dir: Path | None = None
    overwrite: bool = False
    gradient_checkpointing: bool | None = None
    dtype: str | None = None
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    quiet: bool = False
    progress: bool = True

    def check(self) -> None:
        """Reject bad settings with one line, before anything is loaded."""
        if self.width < 64 or self.width % 32:
            raise UsageError(f"--width must be a multiple of 32 (height width/2 divisible by 16) and >= 64, got {self.width}")
        if self.frames < 5 or self.frames % 4 != 1:
            raise UsageError(f"--frames must be 4k+1 and >= 5 (e.g. 81, 49, 17), got {self.frames}")
        for name in ("rank", "steps", "batch", "grad_accum", "save_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        check_finite(alpha=self.alpha, lr=self.lr, weight_decay=self.weight_decay, max_grad_norm=self.max_grad_norm)
        for name in ("alpha", "lr"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise UsageError(f"--{name} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise UsageError(f"weight decay and max grad norm must be >= 0, got {self.weight_decay} and {self.max_grad_norm}")
        check_device(self.device)
        if self.dtype not in (None, "bfloat16", "float32", "float16"):
            raise UsageError(f"dtype must be bfloat16, float16 or float32, got {self.dtype!r}")
        if self.samples is not None and self.samples < 1:
            raise UsageError(f"--samples must be >= 1, got {self.samples}")
        if self.targets is not None:
            lora_targets(self.targets)
        if Path(self.out).suffix != ".safetensors":
            raise UsageError(f"--out must end in .safetensors, got {Path(self.out).name}")


@dataclass
class TrainResult:
    """What a run did: the LoRA file, the step reached, the per-step losses, where the
    checkpoints and the loss curve are, the data it used, and the warnings it gave."""

    out: Path
    step: int
    losses: list[float]
    ckpt_dir: Path
    loss_png: Path
    videos: int
    samples: int
    seconds: float
    resumed_from: int = 0
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("out", "ckpt_dir", "loss_png"):
            d[k] = str(d[k])
        d["final_loss"] = self.losses[-1] if self.losses else None
        return d


# ----------------------------------------------------------------------------------------------
# Pieces of the step


def _trainable(transformer) -> list:
    return [p for _, p in transformer.named_parameters() if p.requires_grad]


def _lora_tensors(transformer) -> dict:
    """The trainable LoRA weights by full parameter name (exact copies, for checkpoints)."""
    return {n: p.detach().cpu().clone() for n, p in transformer.named_parameters() if p.requires_grad}


def _make_batch(items: list[dict], prompts: dict, device, dtype):
    import torch

    x0 = torch.stack([it["x0"] for it in items]).to(device, torch.float32)
    cond = torch.stack([it["cond"] for it in items]).to(device, dtype)
    emb = torch.cat([prompts[it["caption"]] for it in items]).to(device, dtype)
    return x0, cond, emb


def step_loss(model, x0, cond, emb, sigmas, noise, row_weights, n_train_timesteps: int, dtype):
    """The latitude-weighted flow-matching loss of one batch (a scalar tensor with grad).

    The transformer is called as inference calls it (``pano360.generate.wan.pipeline``): noisy
    latents in the model dtype, timestep ``sigma * n_train_timesteps``, prompt embeddings, the
    96-channel VACE conditioning at scale 1 in every VACE layer.
    """
    import torch

    from pano360.train.objective import flow_loss, noisy_latents

    x_t, velocity = noisy_latents(x0, noise, sigmas)
    inner = model.module if hasattr(model, "module") else model
    n_vace = len(inner.config.vace_layers)
    scale = torch.ones(n_vace, device=x0.device, dtype=dtype)
    pred = model(x_t.to(dtype), sigmas * n_train_timesteps, emb, control_hidden_states=cond,
                 control_hidden_states_scale=scale, return_dict=False)[0]
    return flow_loss(pred, velocity, row_weights)


# ----------------------------------------------------------------------------------------------
# The run


def _auto_samples(cfg: TrainConfig, n_videos: int, world: int) -> int:
    return int(min(max(n_videos, cfg.steps * cfg.batch * cfg.grad_accum * world), max(256, n_videos)))


def _run_settings(cfg: TrainConfig) -> dict:
    """What makes checkpoints one run (``checkpoint.RUN_KEYS``); folders as absolute paths (a hub id as it is)."""
    model = str(cfg.model).strip()
    if model and Path(model).expanduser().is_dir():
        model = str(Path(model).expanduser().resolve())
    return {"model": model, "data_dir": str(Path(cfg.data_dir).expanduser().resolve()),
            "rank": cfg.rank, "alpha": float(cfg.alpha), "targets": cfg.targets}


def _other_checkpoints(root: Path, run: dict, resuming: bool) -> list[Path]:
    """The checkpoints in ``root`` this run must not mix with: all of them for a new run, those of
    other settings for a resumed one."""
    from pano360.train import checkpoint as ck

    found = ck.checkpoints(root) if root.is_dir() else []
    return [p for p in found if not resuming or ck.run_differences(ck.read_run(p), run)]


def _resolve_ckpt_root(cfg: TrainConfig, resume_dir: Path | None) -> Path:
    if cfg.ckpt_dir is not None:
        return Path(cfg.ckpt_dir)
    if resume_dir is not None:
        return resume_dir.parent
    out = Path(cfg.out)
    return out.parent / f"{out.stem}-checkpoints"


def train(cfg: TrainConfig, warn: Callable[[str], None] | None = None) -> TrainResult:
    """Train a panorama LoRA as ``cfg`` says and write it to ``cfg.out``; see the module docstring.

    Raises ``Pano360Error``/``UsageError`` with one line for bad settings, an empty data folder, no
    360 videos, a missing model folder or checkpoint, a damaged checkpoint, a checkpoint of another
    run (model, data folder, rank, alpha, targets) to resume, another run's checkpoints in the
    checkpoint folder without ``overwrite``, and out of GPU memory.
    """
    try:
        return _train(cfg, warn)
    except Exception as exc:
        from pano360.generate.wan.loading import out_of_memory

        if not isinstance(exc, Pano360Error) and out_of_memory(exc):
            raise Pano360Error(
                f"out of GPU memory training at {cfg.width}x{cfg.width // 2} x {cfg.frames} frames: "
                "try fewer --frames (e.g. 49), a smaller --width (e.g. 768) or --batch 1"
            ) from exc
        raise


def _train(cfg: TrainConfig, warn: Callable[[str], None] | None) -> TrainResult:
    import torch
    from accelerate import Accelerator

    from pano360.generate.wan.loading import check_model_folder, load_wan_components, resolve_device, resolve_model_folder
    from pano360.generate.wan.lora import add_lora, save_lora
    from pano360.generate.wan.schedulers import make_scheduler
    from pano360.io.atomic import atomic_output, check_output_path
    from pano360.train import cache as cache_mod
    from pano360.train import checkpoint as ck
    from pano360.train.objective import latitude_weights, sample_sigmas
    from pano360.train.plot import plot_loss
    from pano360.train.videos import find_videos

    t_start = time.perf_counter()
    cfg.check()

    # 1. Check inputs. Raise error if not correct
    resume_dir = ck.resolve_resume(cfg.resume) if cfg.resume is not None else None
    resume_state = ck.load_trainer_state(resume_dir) if resume_dir is not None else None
    if resume_state is not None:
        saved = resume_state["config"]
        cfg = replace(cfg, **{k: saved[k] for k in _ADAPTER_DEFAULTS if getattr(cfg, k) is None and k in saved})
        changed = [k for k in _FROM_CHECKPOINT if k in saved and saved[k] != getattr(cfg, k) and not (k == "samples" and cfg.samples is None)]
        cfg = replace(cfg, **{k: saved[k] for k in _FROM_CHECKPOINT if k in saved})
        if changed and not cfg.quiet:
            note(f"resuming with the checkpoint's {', '.join(f'{k}={saved[k]}' for k in changed)}")
        if cfg.steps <= resume_state["step"]:
            raise UsageError(f"--steps {cfg.steps} is not past the checkpoint's step {resume_state['step']}")
    cfg = replace(cfg, **{k: v for k, v in _ADAPTER_DEFAULTS.items() if getattr(cfg, k) is None})
    if cfg.device != "cpu" and not torch.cuda.is_available():
        raise Pano360Error("training needs a CUDA GPU and none was found; pass --device cpu to train on the CPU "
                           "(tiny models and tests only)")
    if not Path(cfg.data_dir).is_dir():
        raise Pano360Error(f"training data folder not found: {cfg.data_dir}")
    run = _run_settings(cfg)
    if resume_dir is not None:
        diffs = ck.run_differences(ck.read_run(resume_dir, resume_state), run)
        if diffs:
            raise UsageError(f"checkpoint {resume_dir} is of another run: {'; '.join(diffs)}; resume it with its settings, "
                             "or start a new run without --resume")
    out = check_output_path(cfg.out, cfg.overwrite, (cfg.data_dir,))
    ckpt_root = _resolve_ckpt_root(cfg, resume_dir)
    stale = _other_checkpoints(ckpt_root, run, resume_dir is not None)  # replaced at the first checkpoint (-y)
    if stale and not cfg.overwrite:
        if resume_dir is None:
            raise UsageError(f"checkpoint folder {ckpt_root} already holds a run's checkpoints (up to {stale[-1].name}): "
                             f"--resume {ckpt_root} continues it, -y/--overwrite replaces them, or use another --ckpt-dir")
        why = "; ".join(ck.run_differences(ck.read_run(stale[-1]), run))
        raise UsageError(f"checkpoint folder {ckpt_root} holds another run's checkpoints ({stale[-1].name}: {why}): "
                         "-y/--overwrite replaces them, or use another --ckpt-dir")
    # We place the model ourselves: one process honours --device cuda:N, several use their local GPU.
    accelerator = Accelerator(cpu=(cfg.device == "cpu"), device_placement=False)
    main = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    say = (lambda m: note(m, cfg.quiet)) if main else (lambda m: None)
    warnings: list[str] = []  # for TrainResult (--json)
    show_warning = (warn or say) if main else (lambda m: None)

    def warn(message: str) -> None:
        warnings.append(message)
        show_warning(message)

    videos = find_videos(cfg.data_dir, warn=warn)
    short = [v.path.name for v in videos if v.frame_count < cfg.frames]
    if short:
        warn(f"{len(short)} video(s) shorter than --frames {cfg.frames} (their last frame is repeated): {', '.join(short[:5])}")
    folder = resolve_model_folder(cfg.model)
    check_model_folder(folder)
    n_samples = cfg.samples if cfg.samples is not None else _auto_samples(cfg, len(videos), world)
    cfg = replace(cfg, samples=n_samples)
    dev = accelerator.device if world > 1 else resolve_device(cfg.device)
    comps = load_wan_components(folder, device="cpu" if dev.type == "cpu" else str(dev),
                                dtype=getattr(torch, cfg.dtype) if cfg.dtype else None, quiet=cfg.quiet)
    dtype = comps.dtype
    say(f"training a rank-{cfg.rank} '{cfg.targets}' LoRA on {len(videos)} video(s), {n_samples} cached samples, "
        f"{cfg.width}x{cfg.width // 2} x {cfg.frames} frames, {world} process(es) on {comps.device}")

    # 2. Sample cache: latents and prompt embeddings, made once
    ckpt_root.mkdir(parents=True, exist_ok=True)
    cache_dir = ckpt_root / "cache"
    spec = cache_mod.CacheSpec(cfg.width, cfg.frames, n_samples, cfg.seed)
    key = cache_mod.cache_key(videos, spec, folder)
    if resume_state is not None and resume_state.get("cache_key") != key:
        warn("the videos or the model changed since the checkpoint: its samples are remade, so the run will not "
             "repeat the original exactly")
    if main:
        cache_mod.build_cache(cache_dir, videos, spec, key, comps, indices=[])
    accelerator.wait_for_everyone()
    mine = [i for i in range(n_samples) if i % world == rank]
    with _progress(_show_bar(cfg, main)) as bar:
        task = bar.add_task("caching samples", total=len(mine), info="")
        cache_mod.build_cache(cache_dir, videos, spec, key, comps, indices=mine, on_sample=lambda i: bar.advance(task))
    accelerator.wait_for_everyone()
    prompts = cache_mod.load_prompts(cache_dir)
    sched = make_scheduler(comps.scheduler, "euler")
    shift, n_train_t = float(sched.config.shift), int(sched.config.num_train_timesteps)
    transformer = comps.transformer
    comps.vae = comps.text_encoder = None
    del comps
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    # 3. LoRA on the frozen transformer
    transformer.requires_grad_(False)
    add_lora(transformer, rank=cfg.rank, alpha=cfg.alpha, targets=lora_targets(cfg.targets), seed=cfg.seed)
    for p in _trainable(transformer):
        p.data = p.data.float()
    if cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else transformer.device.type == "cuda":
        transformer.enable_gradient_checkpointing()
    transformer.train()
    params = _trainable(transformer)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, losses = 0, []
    pick_rng = np.random.default_rng([cfg.seed, 11, rank])
    gen = torch.Generator("cpu").manual_seed(cfg.seed * 1000003 + 17 * rank + 1)
    if resume_state is not None:
        named = dict(transformer.named_parameters())
        for name, t in resume_state["lora"].items():
            if name not in named:
                raise Pano360Error(f"checkpoint {resume_dir} does not fit this model (no parameter {name})")
            if not torch.is_tensor(t) or named[name].shape != t.shape:
                raise Pano360Error(f"checkpoint {resume_dir} does not fit this model ({name} is "
                                   f"{tuple(getattr(t, 'shape', ()))}, the model's {tuple(named[name].shape)})")
            named[name].data.copy_(t)
        rng = ck.load_rng_state(resume_dir, rank)
        try:
            optimizer.load_state_dict(resume_state["optimizer"])
            step, losses = int(resume_state["step"]), [float(v) for v in resume_state["losses"]]
            pick_rng.bit_generator.state = rng["numpy"]
            gen.set_state(rng["torch"])
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise Pano360Error(f"checkpoint {resume_dir} is damaged or of another trainer: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
        say(f"resuming from {resume_dir} at step {step}")
    model, optimizer = accelerator.prepare(transformer, optimizer)
    row_w = torch.from_numpy(latitude_weights(cfg.width // 2 // 8))
    start_step = step

    def save_checkpoint() -> Path:
        final = ck.step_dir(ckpt_root, step)
        tmp = final.with_name(final.name + ".part")
        accelerator.wait_for_everyone()
        try:  # a stop (Ctrl-C, SIGTERM) or failure while writing leaves no step-N.part folder
            if main:
                # -y: another run's checkpoints go when this run has one to replace them; and what a killed
                # run left half-written.
                for old in [*stale, *ckpt_root.glob("step-*.part")]:
                    shutil.rmtree(old, ignore_errors=True)
                stale.clear()
                tmp.mkdir(parents=True)
            accelerator.wait_for_everyone()
            torch.save({"numpy": pick_rng.bit_generator.state, "torch": gen.get_state()}, tmp / f"rng-{rank}.pt")
            accelerator.wait_for_everyone()
            if main:
                inner = accelerator.unwrap_model(model)
                save_lora(inner, tmp / "lora.safetensors")
                ck.save_trainer_state(tmp, {
                    "step": step, "losses": losses, "lora": _lora_tensors(inner),
                    "optimizer": optimizer.state_dict(), "config": _jsonable_config(cfg), "cache_key": key,
                })
                ck.save_run(tmp, run)
                ck.finish_checkpoint(tmp, final)
                plot_loss(losses, ckpt_root / "loss.png")
        except BaseException:
            if main:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        accelerator.wait_for_everyone()
        return final

    # 4. Training loop
    step_times: list[float] = []
    show_bar = _show_bar(cfg, main)
    with _progress(show_bar) as bar:
        task = bar.add_task("training", total=cfg.steps, completed=step, info="")
        while step < cfg.steps:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            total = torch.zeros((), device=dev)
            for micro in range(cfg.grad_accum):
                idx = pick_rng.integers(0, n_samples, size=cfg.batch)
                items = [cache_mod.load_cached(cache_dir, int(i)) for i in idx]
                x0, cond, emb = _make_batch(items, prompts, dev, dtype)
                sigmas = sample_sigmas(cfg.batch, shift, gen).to(dev)
                noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(dev)
                sync = nullcontext() if micro == cfg.grad_accum - 1 else accelerator.no_sync(model)
                with sync:
                    loss = step_loss(model, x0, cond, emb, sigmas, noise, row_w, n_train_t, dtype)
                    accelerator.backward(loss / cfg.grad_accum)
                total += loss.detach().float() / cfg.grad_accum
            if cfg.max_grad_norm:
                accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            step += 1
            value = float(accelerator.gather(total[None]).mean())
            if not math.isfinite(value):
                raise Pano360Error(f"the loss became {value} at step {step}: lower --lr (now {cfg.lr})")
            losses.append(value)
            step_times.append(time.perf_counter() - t0)
            bar.update(task, completed=step, info=f"loss {value:.4f}  {step_times[-1]:.2f} s/step")
            if step % cfg.save_every == 0 or step == cfg.steps:
                where = save_checkpoint()
                if not show_bar:
                    say(f"step {step}/{cfg.steps} loss {value:.4f} ({np.mean(step_times[-cfg.save_every:]):.2f} s/step): {where}")

    # 5. The LoRA, written atomically
    if main:
        with atomic_output(out, overwrite=cfg.overwrite) as tmp:
            save_lora(accelerator.unwrap_model(model), tmp)
    accelerator.wait_for_everyone()
    return TrainResult(
        out=out, step=step, losses=losses, ckpt_dir=ckpt_root, loss_png=ckpt_root / "loss.png",
        videos=len(videos), samples=n_samples, seconds=round(time.perf_counter() - t_start, 3), resumed_from=start_step,
        info={"processes": world, "main_process": main, "device": str(dev), "shift": shift,
              "mean_step_s": round(float(np.mean(step_times)), 4) if step_times else None},
        warnings=warnings,
    )


def _jsonable_config(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    for k, v in d.items():
        if isinstance(v, Path):
            d[k] = str(v)
    return d


def _show_bar(cfg: TrainConfig, main: bool) -> bool:
    from pano360.console import progress_enabled

    return bool(cfg.progress and main and progress_enabled(cfg.quiet))


def _progress(enabled: bool):
    """A rich progress bar on stderr with the loss, the step time and the ETA in it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from pano360.console import stderr

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=stderr, disable=not enabled, transient=False,
    )
