"""Load the components of a Wan2.1 VACE model (a local diffusers folder or a hub id), checked.

Real weights and the tiny test model take the same path: resolve the folder (a hub id through the
local Hugging Face cache, downloading only when not offline), check its layout, then
``from_pretrained`` each component. Every failure a user can act on is one ``Pano360Error`` line.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pano360.errors import Pano360Error, UsageError

__all__ = [
    "COMPONENTS",
    "MODEL_ENV",
    "OOM_HINT",
    "WanComponents",
    "check_device",
    "check_finite",
    "check_settings",
    "model_name",
    "check_model_folder",
    "read_config",
    "require_model",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_folder",
    "load_wan_components",
    "out_of_memory",
    "quiet_progress",
]

COMPONENTS = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")
OOM_HINT = "try --offload (model CPU offload) or a smaller --gen-width (e.g. 768 or 512)"
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass
class WanComponents:
    """The five parts of a Wan2.1 VACE model, plus where they run.

    ``device``/``dtype`` are where the transformer and text encoder compute (the VAE runs in
    float32 for colour fidelity). With ``offload`` the modules live on the CPU and
    :meth:`resident` moves one to ``device`` for the time it is used (model CPU offload).
    """

    tokenizer: Any
    text_encoder: Any
    vae: Any
    transformer: Any
    scheduler: Any
    device: Any
    dtype: Any
    offload: bool = False
    folder: Path | None = None

    @contextmanager
    def resident(self, module: Any) -> Iterator[Any]:
        """Context in which ``module`` is on ``device`` (no-op without offload)."""
        if not self.offload:
            yield module
            return
        import torch

        module.to(self.device)
        try:
            yield module
        finally:
            module.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


MODEL_ENV = "PANO360_MODEL"


def model_name(model: str | os.PathLike | None) -> str:
    """The Wan model to use: ``--model``, else ``$PANO360_MODEL``, else ``""``."""
    return str(model) if model else os.environ.get(MODEL_ENV, "")


def require_model(model: str | os.PathLike | None) -> str:
    """:func:`model_name`, or UsageError when there is none (the Wan backend cannot run without one)."""
    name = model_name(model)
    if not name:
        raise UsageError(f"the Wan backend needs --model DIR|HUB_ID (or {MODEL_ENV})")
    return name


@contextmanager
def quiet_progress(quiet: bool = True) -> Iterator[None]:
    """Hide transformers', diffusers' and huggingface_hub's tqdm bars ("Loading weights", "Fetching
    files") for the time of the block when ``quiet``; their settings are restored afterwards."""
    if not quiet:
        yield
        return
    import diffusers.utils.logging as dlog
    import huggingface_hub.utils as hub
    import transformers.utils.logging as tlog

    before = (tlog.is_progress_bar_enabled(), dlog.is_progress_bar_enabled(), hub.are_progress_bars_disabled())
    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    hub.disable_progress_bars()
    try:
        yield
    finally:
        if before[0]:
            tlog.enable_progress_bar()  # (enables huggingface_hub's too)
        if before[1]:
            dlog.enable_progress_bar()
        if before[2]:
            hub.disable_progress_bars()
        elif hub.are_progress_bars_disabled():
            hub.enable_progress_bars()


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a (CUDA) out-of-memory error."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def check_device(device: str | None) -> None:
    """Raise UsageError unless ``device`` (the ``--device`` flag) is None, ``cuda``, ``cuda:N`` or ``cpu``.

    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    pano360.errors.UsageError: --device must be cuda, cuda:N or cpu, got 'tpu'
    """
    if device is not None and not _DEVICE.match(str(device)):
        raise UsageError(f"--device must be cuda, cuda:N or cpu, got {device!r}")


def check_finite(**flags: float | None) -> None:
    """Raise UsageError unless every given number is finite: ``--lr nan`` or ``--guidance inf`` pass
    every ``x <= 0`` check. Keyword names are the flags' (``lora_scale`` is ``--lora-scale``); None is skipped.

    >>> check_finite(guidance=5.0, shift=None)
    >>> check_finite(lora_scale=float("nan"))
    Traceback (most recent call last):
    ...
    pano360.errors.UsageError: --lora-scale must be a finite number, got nan
    """
    for name, value in flags.items():
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number, got {value}")



def check_settings(steps: int, guidance: float, shift: float | None, gen_width: int, lora_scale: float = 1.0,
                   blend_ratio: float = 16.0, scheduler: str = "euler") -> None:
    """Raise UsageError unless the Wan backend's numbers make sense; called by the commands before any
    work (batch: before any job) and by :class:`~pano360.generate.wan.backend.WanBackend`.

    >>> check_settings(30, 5.0, None, 1024)
    >>> check_settings(0, 5.0, None, 1024)
    Traceback (most recent call last):
    ...
    pano360.errors.UsageError: --steps must be >= 1, got 0
    """
    check_finite(lora_scale=lora_scale, guidance=guidance, shift=shift, blend_ratio=blend_ratio)
    if gen_width < 64 or gen_width % 32:
        raise UsageError(f"--gen-width must be a multiple of 32 and >= 64 (height = width / 2), got {gen_width}")
    if steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    if guidance < 0:
        raise UsageError(f"--guidance must be >= 0, got {guidance}")
    if shift is not None and shift <= 0:
        raise UsageError(f"--shift must be > 0, got {shift}")
    if blend_ratio and blend_ratio < 2:
        raise UsageError(f"blend ratio must be 0 (off) or >= 2, got {blend_ratio}")
    if scheduler not in ("euler", "unipc"):
        raise UsageError(f"scheduler must be euler or unipc, got {scheduler!r}")

def resolve_device(device: str | None):
    """``torch.device`` to run on: ``cuda`` when present; the CPU only when asked for by name."""
    import torch

    check_device(device)
    if device is None or str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise Pano360Error(
                "the Wan backend needs a CUDA GPU and none was found; pass --device cpu to run it on the "
                "CPU (very slow), or use --backend mosaic"
            )
        return torch.device(device or "cuda")
    return torch.device("cpu")


def resolve_model_folder(model: str | Path, local_only: bool = False) -> Path:
    """The local folder of ``model``: a directory, or a hub id ``owner/name`` from the HF cache.

    A hub id is looked up with ``local_files_only`` when ``HF_HUB_OFFLINE`` is set (the tests, and
    anyone offline) or ``local_only`` (a check that must not download), and downloaded otherwise.
    """
    text = str(model).strip()
    if not text:
        raise Pano360Error("no Wan model given: pass --model DIR|HUB_ID or set PANO360_MODEL")
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise Pano360Error(f"--model {text} is a file; it must be a diffusers model folder (with model_index.json)")
    parts = text.split("/")
    if isinstance(model, Path) or text.startswith((".", "/", "~")) or len(parts) != 2 or not all(parts):
        raise Pano360Error(f"model folder not found: {text}")
    from huggingface_hub import constants, snapshot_download

    offline = bool(constants.HF_HUB_OFFLINE) or local_only
    try:
        return Path(snapshot_download(text, local_files_only=offline))
    except Exception as exc:  # huggingface_hub raises several types for "not there"
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "not downloaded by this check"
        where = f"in the local Hugging Face cache ({why})" if offline else "on the Hugging Face hub"
        raise Pano360Error(f"model {text!r} not found {where}: {type(exc).__name__}") from exc


def read_config(path: Path) -> dict:
    """A component's JSON config (``transformer/config.json``, ``scheduler/scheduler_config.json``) as a
    dict; raises ``Pano360Error`` naming the file when it is unreadable, not JSON or not an object."""
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = f"not valid JSON ({exc})" if isinstance(exc, ValueError) else f"unreadable ({exc})"
        raise Pano360Error(f"broken model config {path}: {why}".splitlines()[0]) from None
    if not isinstance(cfg, dict):
        raise Pano360Error(f"broken model config {path}: a JSON object was expected, found {type(cfg).__name__}")
    return cfg


def check_model_folder(folder: Path) -> dict:
    """Check that ``folder`` is a complete diffusers Wan2.1 VACE folder; return the transformer config."""
    if not (folder / "model_index.json").is_file():
        raise Pano360Error(f"{folder} is not a diffusers model folder: model_index.json is missing")
    for name in COMPONENTS:
        sub = folder / name
        if not sub.is_dir() or not any(sub.iterdir()):
            raise Pano360Error(f"model folder {folder} is incomplete: subfolder {name}/ is missing or empty")
    cfg_path = folder / "transformer" / "config.json"
    if not cfg_path.is_file():
        raise Pano360Error(f"model folder {folder} is incomplete: transformer/config.json is missing")
    cfg = read_config(cfg_path)
    cls = cfg.get("_class_name", "?")
    if cls != "WanVACETransformer3DModel" or not cfg.get("vace_layers"):
        raise Pano360Error(
            f"{folder} is not a Wan2.1 VACE model (transformer is {cls}, without vace_layers); "
            "use e.g. Wan-AI/Wan2.1-VACE-1.3B-diffusers"
        )
    if not any(p.suffix in (".safetensors", ".bin") for p in (folder / "transformer").iterdir()):
        raise Pano360Error(f"model folder {folder} is incomplete: no weights in transformer/")
    return cfg


_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "half": "float16",
           "fp32": "float32", "float32": "float32", "float": "float32"}


def resolve_dtype(dtype, device):
    """A torch dtype from ``None`` (bf16 on a GPU, fp32 on the CPU), a torch dtype or a name like ``"bf16"``."""
    import torch

    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise Pano360Error(f"unknown dtype {dtype!r}: use bf16, fp16 or fp32")
    return getattr(torch, name)


def load_wan_components(model: str | Path, device: str | None = None, dtype=None, offload: bool = False,
                        quiet: bool = False) -> WanComponents:
    """Load a Wan2.1 VACE model (folder or hub id) onto ``device``; see the module docstring.

    ``dtype`` defaults to bfloat16 on a GPU and float32 on the CPU. With ``offload`` the weights stay
    on the CPU until used; with ``quiet`` the libraries draw no progress bars (``-q``, ``--json``).
    Raises ``Pano360Error`` for a missing/incomplete folder, a broken config (named), a model that
    is not VACE, no GPU without ``device="cpu"``, and out of GPU memory (with the flags that help).
    """
    import diffusers
    import torch
    from transformers import AutoTokenizer, UMT5EncoderModel

    dev = resolve_device(device)
    dtype = resolve_dtype(dtype, dev)
    with quiet_progress(quiet):
        folder = resolve_model_folder(model)
    check_model_folder(folder)
    sched_cfg = read_config(folder / "scheduler" / "scheduler_config.json")
    sched_cls = getattr(diffusers, str(sched_cfg.get("_class_name", "FlowMatchEulerDiscreteScheduler")), None)
    if sched_cls is None:
        raise Pano360Error(f"unknown scheduler {sched_cfg.get('_class_name')!r} in {folder}/scheduler")
    loaders = {
        "tokenizer": lambda p: AutoTokenizer.from_pretrained(p),
        "text_encoder": lambda p: UMT5EncoderModel.from_pretrained(p, dtype=dtype).eval(),
        "vae": lambda p: diffusers.AutoencoderKLWan.from_pretrained(p, torch_dtype=torch.float32).eval(),
        "transformer": lambda p: diffusers.WanVACETransformer3DModel.from_pretrained(p, torch_dtype=dtype).eval(),
        "scheduler": lambda p: sched_cls.from_pretrained(p),
    }
    parts = {}
    with quiet_progress(quiet):
        for name, load in loaders.items():
            try:
                parts[name] = load(folder / name)
            except Exception as exc:  # broken configs and weights raise many types; name the part
                if isinstance(exc, MemoryError) or out_of_memory(exc):
                    raise
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise Pano360Error(f"could not load the Wan model's {name} from {folder / name}: "
                                   f"{type(exc).__name__}: {why[:300]}") from exc
    tokenizer, text_encoder, vae, transformer, scheduler = (parts[n] for n in COMPONENTS)
    for module in (text_encoder, vae, transformer):
        module.requires_grad_(False)
    comps = WanComponents(tokenizer, text_encoder, vae, transformer, scheduler, dev, dtype, offload, folder)
    if not offload:
        try:
            for module in (text_encoder, vae, transformer):
                module.to(dev)
        except Exception as exc:
            if out_of_memory(exc):
                raise Pano360Error(f"out of GPU memory loading the Wan model: {OOM_HINT}") from exc
            raise
    return comps
