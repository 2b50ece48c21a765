"""LoRA adapters for the Wan transformer: read any common key format, inject with peft, save.

Accepted files (safetensors): peft/diffusers keys (``transformer.blocks.N.attn1.to_q.lora_A.weight``),
original Wan / DiffSynth / ComfyUI keys (``diffusion_model.blocks.N.self_attn.q.lora_A.weight``) and
musubi-tuner keys (``lora_unet_blocks_N_self_attn_q.lora_down.weight``); diffusers'
``WanLoraLoaderMixin.lora_state_dict`` converts the last two. A file whose keys match nothing (e.g.
DiffSynth keys without the ``diffusion_model.`` prefix, which diffusers loads "fine" with only a
warning) is refused: we count the tensors that really landed in the transformer.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pano360.errors import Pano360Error

__all__ = [
    "PANOLORA_TARGETS",
    "add_lora",
    "count_lora_tensors",
    "inject_lora",
    "lora_state_dict",
    "read_lora",
    "save_lora",
]

# PanoLora / Matrix-3D: rank 16 on attention q, k, v, o and both FFN linears.
PANOLORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2")

_FORMATS = (
    "expected peft/diffusers keys 'transformer.blocks.N.attn1.to_q.lora_A.weight', original Wan/DiffSynth/"
    "ComfyUI keys 'diffusion_model.blocks.N.self_attn.q.lora_A.weight' or musubi keys 'lora_unet_...'"
)


# Original Wan / musubi names of the modules in a VACE block -> diffusers names.
_VACE_MODULES = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v", "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k", "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0",
    "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2", "before_proj": "proj_in", "after_proj": "proj_out",
}
_VACE_KEY = re.compile(
    r"^(?:diffusion_model\.|lora_unet_)vace_blocks[._](\d+)[._]"
    r"(self_attn[._][qkvo]|cross_attn[._][qkvo]|ffn[._][02]|before_proj|after_proj)"
    r"\.(lora_A\.weight|lora_B\.weight|lora_down\.weight|lora_up\.weight|alpha)$"
)


def _split_vace_keys(sd: dict) -> tuple[dict, dict]:
    """Take the VACE-block keys of an original-Wan or musubi LoRA out of ``sd`` and convert them.

    diffusers' converters stop at ``vace_blocks`` keys ("state_dict should be empty"); a LoRA trained
    on a VACE model has them. Returns ``(rest, converted)``, ``converted`` in diffusers keys with a
    musubi ``alpha`` folded into ``lora_A`` (scale alpha / rank), as peft then uses alpha = rank.
    """
    rest, parts = {}, {}
    for key, val in sd.items():
        m = _VACE_KEY.match(key)
        if m is None:
            rest[key] = val
            continue
        block, module, kind = m.groups()
        module = module.replace("_attn_", "_attn.").replace("ffn_", "ffn.")
        target = f"transformer.vace_blocks.{block}.{_VACE_MODULES[module]}"
        parts.setdefault(target, {})[kind.split(".")[0].replace("lora_down", "lora_A").replace("lora_up", "lora_B")] = val
    out = {}
    for target, p in parts.items():
        if "lora_A" not in p or "lora_B" not in p:
            raise Pano360Error(f"LoRA module {target} lacks its {'lora_B' if 'lora_A' in p else 'lora_A'} weight")
        a = p["lora_A"]
        if "alpha" in p:
            a = a * (float(p["alpha"]) / a.shape[0])
        out[f"{target}.lora_A.weight"], out[f"{target}.lora_B.weight"] = a, p["lora_B"]
    return rest, out


def read_lora(path: str | Path) -> tuple[dict, dict | None]:
    """Read a LoRA safetensors file and return ``(state_dict in diffusers keys, metadata or None)``.

    Keys come back as ``transformer.<module>.lora_A.weight`` / ``lora_B.weight``; ``metadata`` is
    the peft ``LoraConfig`` (rank, alpha, targets) when the file carries one.
    """
    from diffusers.loaders import WanLoraLoaderMixin

    path = Path(path)
    if not path.is_file():
        raise Pano360Error(f"LoRA file not found: {path}")
    try:
        from safetensors.torch import load_file

        raw = load_file(str(path))
        rest, vace = _split_vace_keys(raw)
        if vace:  # no diffusers metadata in these formats
            sd, meta = (WanLoraLoaderMixin.lora_state_dict(rest) if rest else {}), None
            sd = {**sd, **vace}
        else:
            sd, meta = WanLoraLoaderMixin.lora_state_dict(str(path), return_lora_metadata=True)
    except Pano360Error:
        raise
    except Exception as exc:
        raise Pano360Error(f"could not read LoRA {path} (not a safetensors file, or corrupt or truncated): "
                           f"{type(exc).__name__}: {_first_line(exc)}") from exc
    if not sd:
        raise Pano360Error(f"LoRA {path} holds no tensors")
    return sd, meta


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if len(text) <= limit else text[:limit] + "..."


def count_lora_tensors(transformer: Any, adapter_name: str) -> int:
    """How many LoRA A/B weight tensors of ``adapter_name`` the transformer holds."""
    tag_a, tag_b = f".lora_A.{adapter_name}.", f".lora_B.{adapter_name}."
    return sum(1 for name, _ in transformer.named_parameters() if tag_a in name or tag_b in name)


_LORA_KEY = re.compile(r"^transformer\.(.+)\.lora_([AB])\.weight$")


def _check_fit(transformer: Any, sd: dict, where: str) -> None:
    """Refuse, in one line, a LoRA whose A/B pairs are incomplete or whose shapes do not fit the
    transformer's layers (one made for another model: diffusers would print every mismatch).

    ``lora_A`` is ``(rank, in_features)`` and ``lora_B`` ``(out_features, rank)``; modules the
    transformer does not have are left to the injected count (a partial match is a note).
    """
    modules = dict(transformer.named_modules())
    pairs: dict[str, set] = {}
    bad, example = 0, ""
    for key, t in sd.items():
        m = _LORA_KEY.match(key)
        if m is None:
            continue
        name, ab = m.groups()
        pairs.setdefault(name, set()).add(ab)
        layer = modules.get(name)
        if layer is None or not hasattr(layer, "in_features"):
            continue
        want = layer.in_features if ab == "A" else layer.out_features
        if t.ndim != 2 or t.shape[1 if ab == "A" else 0] != want:
            bad += 1
            example = example or (f"{name}.lora_{ab} is {tuple(t.shape)}, the model's layer is "
                                  f"{layer.in_features} -> {layer.out_features}")
    lone = sorted(n for n, ab in pairs.items() if len(ab) == 1)
    if lone:
        missing = "lora_B" if pairs[lone[0]] == {"A"} else "lora_A"
        raise Pano360Error(f"LoRA {where} is incomplete: {len(lone)} of its {len(pairs)} modules lack a weight "
                           f"(e.g. {lone[0]} has no {missing})")
    if bad:
        raise Pano360Error(f"LoRA {where} was made for another model: {bad} of its {2 * len(pairs)} tensors do not fit "
                           f"this transformer (e.g. {example})")


@contextmanager
def _diffusers_logs_off() -> Iterator[None]:
    """diffusers' log messages below CRITICAL hidden for the time of the block (restored after)."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity(dlog.CRITICAL)
    try:
        yield
    finally:
        dlog.set_verbosity(level)


def inject_lora(transformer: Any, lora: str | Path | dict, scale: float = 1.0, adapter_name: str = "pano360") -> int:
    """Inject a LoRA into ``transformer`` with peft, active at ``scale``; return the injected tensor count.

    ``lora`` is a file (any format in the module docstring) or a diffusers-keyed state dict.
    Raises ``Pano360Error`` when no tensor was injected, naming the key format it found.
    """
    if isinstance(lora, dict):
        sd, meta, where = dict(lora), None, "state dict"
    else:
        (sd, meta), where = read_lora(lora), str(lora)
    n_file = sum(1 for k in sd if ".lora_A." in k or ".lora_B." in k or ".lora_down." in k or ".lora_up." in k)
    ours = {k: v for k, v in sd.items() if k.startswith("transformer.")}
    if not ours:
        example = next(iter(sd))
        raise Pano360Error(f"LoRA {where}: none of its {len(sd)} tensors fit the Wan transformer (keys like {example!r}); {_FORMATS}")
    _check_fit(transformer, ours, where)
    if adapter_name in getattr(transformer, "peft_config", {}):
        transformer.delete_adapters(adapter_name)
    try:
        with _diffusers_logs_off():  # it logs the whole failure (one line per tensor) before raising
            transformer.load_lora_adapter(ours, adapter_name=adapter_name, prefix="transformer", metadata=meta)
    except Exception as exc:
        raise Pano360Error(f"could not inject LoRA {where}: {type(exc).__name__}: {_first_line(exc)}") from exc
    injected = count_lora_tensors(transformer, adapter_name)
    if injected == 0:
        raise Pano360Error(f"LoRA {where}: 0 of its {n_file} tensors were injected into the transformer; {_FORMATS}")
    if injected < n_file:
        from pano360.console import note

        note(f"LoRA {where}: only {injected} of {n_file} tensors matched the transformer")
    transformer.set_adapters([adapter_name], weights=[float(scale)])
    return injected


def add_lora(
    transformer: Any,
    rank: int = 16,
    alpha: float | None = None,
    targets: tuple[str, ...] = PANOLORA_TARGETS,
    adapter_name: str = "default",
    seed: int | None = None,
):
    """Add a fresh trainable LoRA (peft, B = 0 so the model is unchanged) and return its ``LoraConfig``.

    peft draws ``lora_A`` (Kaiming uniform) from torch's global CPU generator (the layers are made on
    the CPU, then moved). With ``seed`` they are drawn from a generator seeded with it, so the same
    seed gives the same adapter, and the global generator is left as it was.
    """
    import torch
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, init_lora_weights=True, target_modules=list(targets))
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.random.default_generator.manual_seed(int(seed))
        transformer.add_adapter(config, adapter_name=adapter_name)
    return config


def lora_state_dict(transformer: Any, adapter_name: str = "default") -> dict:
    """The adapter's weights in peft module keys (``blocks.0.attn1.to_q.lora_A.weight``, no prefix)."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=adapter_name)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset, tuple, list)):
        return [_jsonable(v) for v in (sorted(obj) if isinstance(obj, (set, frozenset)) else obj)]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def save_lora(transformer: Any, path: str | Path, adapter_name: str = "default") -> Path:
    """Save the adapter as a safetensors file diffusers' ``load_lora_weights`` (and :func:`inject_lora`) accepts.

    Keys are ``transformer.blocks.N.attn1.to_q.lora_A.weight``; the peft config (rank, alpha,
    targets) goes into the safetensors metadata so alpha != rank survives the round trip.
    """
    from diffusers.loaders import WanLoraLoaderMixin

    path = Path(path)
    if path.suffix != ".safetensors":
        raise Pano360Error(f"LoRA output must end in .safetensors, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = lora_state_dict(transformer, adapter_name)
    if not sd:
        raise Pano360Error(f"the transformer has no LoRA adapter named {adapter_name!r} to save")
    meta = _jsonable(transformer.peft_config[adapter_name].to_dict())
    json.dumps(meta)  # fail here, not inside the writer
    WanLoraLoaderMixin.save_lora_weights(
        save_directory=str(path.parent),
        transformer_lora_layers=sd,
        weight_name=path.name,
        transformer_lora_adapter_metadata=meta,
    )
    return path
