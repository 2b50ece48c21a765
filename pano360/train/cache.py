"""The sample cache: a pool of training samples made once, kept as VAE latents on disk.

Sample ``i`` is drawn from its own generator (``seed``, ``i``), so the pool is the same whichever
process makes it and whenever (a resumed run finds or remakes exactly the same samples). Each
file holds the target latents ``(16, F', h, w)`` float32 and the 96-channel VACE conditioning
``(96, F', h, w)`` (in the model dtype, its 0/1 mask channels as bool) made by :func:`pano360.generate.wan.conditioning.vace_conditioning`, the code
inference runs, plus the index of its caption. Prompt embeddings are cached once per caption.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pano360.train.sample import make_sample
from pano360.train.videos import TrainVideo, read_erp_clip

__all__ = ["CacheSpec", "draw_sample", "cache_key", "build_cache", "load_cached", "load_prompts"]


@dataclass(frozen=True)
class CacheSpec:
    """What the pool depends on: training ERP ``width`` (height ``width/2``), ``frames`` per clip,
    ``count`` samples, ``seed``."""

    width: int
    frames: int
    count: int
    seed: int


def draw_sample(videos: Sequence[TrainVideo], spec: CacheSpec, index: int):
    """Sample ``index`` of the pool: a random video, clip start and phone camera (see
    :func:`pano360.train.sample.make_sample`), from the generator seeded ``(seed, index)``."""
    rng = np.random.default_rng([spec.seed, 7, index])
    video = videos[int(rng.integers(len(videos)))]
    start = int(rng.integers(0, max(1, video.frame_count - spec.frames + 1)))
    clip = read_erp_clip(video, start, spec.frames, spec.width)
    sample = make_sample(clip, rng, fps=video.fps or 30.0, prompt=video.caption)
    sample.info.update(video=str(video.path), start=start)
    return sample


def cache_key(videos: Sequence[TrainVideo], spec: CacheSpec, model_folder: Path | str) -> str:
    """A hash of the spec, the model (folder, VAE and text encoder configs) and every video (path, size, mtime, caption)."""
    folder = Path(model_folder)
    parts = [json.dumps(asdict(spec), sort_keys=True), str(folder.resolve())]
    for sub in ("vae/config.json", "text_encoder/config.json"):
        parts.append((folder / sub).read_text() if (folder / sub).is_file() else "")
    for v in videos:
        st = v.path.stat()
        parts.append(f"{v.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{v.stereo}|{v.caption}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _sample_path(folder: Path, index: int) -> Path:
    return folder / f"sample-{index:05d}.pt"


def build_cache(folder: Path, videos: Sequence[TrainVideo], spec: CacheSpec, key: str, components,
                indices: Sequence[int] | None = None, on_sample: Callable[[int], None] | None = None) -> None:
    """Make the pool's missing samples ``indices`` (default all) in ``folder`` with the loaded
    ``components`` (VAE and text encoder; see :class:`pano360.generate.wan.loading.WanComponents`).

    A folder made for another key is emptied first. Writes ``prompts.pt`` (caption -> embedding
    ``(1, L, text_dim)``) and ``meta.json``; ``on_sample(i)`` is called after each sample.
    """
    import torch

    from pano360.generate.wan.conditioning import to_video_tensor, vace_conditioning, vae_encode
    from pano360.generate.wan.text import encode_prompt

    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("key") != key:
        for old in folder.glob("sample-*.pt"):
            old.unlink()
        (folder / "prompts.pt").unlink(missing_ok=True)
    captions = sorted({v.caption for v in videos})
    prompts_path = folder / "prompts.pt"
    if not prompts_path.is_file():
        with components.resident(components.text_encoder):
            embeds = {c: encode_prompt(components.tokenizer, components.text_encoder, c, "cpu", components.dtype)
                      for c in captions}
        _atomic_save(embeds, prompts_path)
    meta_path.write_text(json.dumps({"key": key, "spec": asdict(spec), "captions": captions}, indent=1))
    dev = components.device
    for i in indices if indices is not None else range(spec.count):
        path = _sample_path(folder, i)
        if path.is_file():
            continue
        s = draw_sample(videos, spec, i)
        with components.resident(components.vae), torch.no_grad():
            target, _ = to_video_tensor(s.target, np.zeros(s.mask.shape, bool), dev)
            x0 = vae_encode(components.vae, target)[0].cpu()
            video, gen_mask = to_video_tensor(s.canvas, ~s.mask, dev)
            cond = vace_conditioning(components.vae, video, gen_mask).to(components.dtype)[0].cpu()
        z = x0.shape[0]
        mask_ch = cond[2 * z:]
        if not bool(((mask_ch == 0) | (mask_ch == 1)).all()):
            raise RuntimeError("VACE mask channels are not 0/1")  # stored as bool below
        item = {"x0": x0, "cond_latents": cond[: 2 * z], "cond_mask": mask_ch.bool(), "caption": s.prompt,
                "info": s.info, "seen": float(s.mask.mean())}
        _atomic_save(item, path)
        if on_sample is not None:
            on_sample(i)


def _atomic_save(obj, path: Path) -> None:
    """``torch.save`` beside ``path``, renamed into place; a stop while writing leaves no ``.part`` file."""
    import torch

    tmp = path.with_suffix(".part")
    try:
        torch.save(obj, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_cached(folder: Path, index: int) -> dict:
    """Sample ``index`` from the cache: ``{"x0", "cond", "caption", "info", "seen"}`` (``cond`` the
    full 96-channel conditioning; its 64 mask channels are stored as bool, a third of the bytes)."""
    import torch

    item = torch.load(_sample_path(folder, index), map_location="cpu", weights_only=False)
    lat = item.pop("cond_latents")
    item["cond"] = torch.cat([lat, item.pop("cond_mask").to(lat.dtype)])
    return item


def load_prompts(folder: Path) -> dict:
    """Caption -> prompt embedding ``(1, L, text_dim)`` from the cache."""
    import torch

    return torch.load(folder / "prompts.pt", map_location="cpu", weights_only=False)
