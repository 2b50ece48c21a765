"""Load the components of a Wan2.1 VACE model (a local diffusers folder or a hub id), checked.

Real weights and the tiny test model take the same path: resolve the folder (a hub id through the
local Hugging Face cache, downloading only when not offline), check its layout, then
``from_pretrained`` each component. Every failure a user can act on is one ``Pano360Error`` line.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pano360.errors import Pano360Error

__all__ = [
    "COMPONENTS",
    "OOM_HINT",
    "WanComponents",
    "check_model_folder",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_folder",
    "load_wan_components",
    "out_of_memory",
]

COMPONENTS = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")
OOM_HINT = "try --offload (model CPU offload) or a smaller --gen-width (e.g. 768 or 512)"


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


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a (CUDA) out-of-memory error."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def resolve_device(device: str | None):
    """``torch.device`` to run on: ``cuda`` when present; the CPU only when asked for by name."""
    import torch

    if device is None or str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise Pano360Error(
                "the Wan backend needs a CUDA GPU and none was found; pass --device cpu to run it on the "
                "CPU (very slow), or use --backend mosaic"
            )
        return torch.device(device or "cuda")
    if str(device) == "cpu":
        return torch.device("cpu")
    raise Pano360Error(f"unknown --device {device!r}: use cuda, cuda:N or cpu")


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
    cfg = json.loads(cfg_path.read_text())
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


def load_wan_components(model: str | Path, device: str | None = None, dtype=None, offload: bool = False) -> WanComponents:
    """Load a Wan2.1 VACE model (folder or hub id) onto ``device``; see the module docstring.

    ``dtype`` defaults to bfloat16 on a GPU and float32 on the CPU. With ``offload`` the weights stay
    on the CPU until used. Raises ``Pano360Error`` for a missing/incomplete folder, a model that is
    not VACE, no GPU without ``device="cpu"``, and out of GPU memory (with the flags that help).
    """
    import diffusers
    import torch
    from transformers import AutoTokenizer, UMT5EncoderModel

    dev = resolve_device(device)
    dtype = resolve_dtype(dtype, dev)
    folder = resolve_model_folder(model)
    check_model_folder(folder)
    sched_cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    sched_cls = getattr(diffusers, sched_cfg.get("_class_name", "FlowMatchEulerDiscreteScheduler"), None)
    if sched_cls is None:
        raise Pano360Error(f"unknown scheduler {sched_cfg.get('_class_name')!r} in {folder}/scheduler")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        text_encoder = UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=dtype).eval()
        vae = diffusers.AutoencoderKLWan.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
        transformer = diffusers.WanVACETransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=dtype).eval()
        scheduler = sched_cls.from_pretrained(folder / "scheduler")
    except (OSError, ValueError, KeyError) as exc:
        raise Pano360Error(f"could not load the Wan model in {folder}: {exc}".splitlines()[0]) from exc
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
