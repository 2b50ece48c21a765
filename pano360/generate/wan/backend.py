"""``WanBackend``: the generative FillBackend (Wan2.1 VACE outpainting + LoRA + blended decoding).

Streams canvases through overlapping windows (``windows.plan_windows``): each window's canvases are
shrunk to the generation size (``gen_width`` x ``gen_width/2``), outpainted by
``WanOutpaintPipeline`` (unknown pixels grey, mask 1 = generate; frames carried over from the
previous window fully known), decoded with blended 180°-rotated decoding, and composited under the
real pixels at the canvas size (``decode.composite``). Memory holds one window.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pano360.canvas import Canvas
from pano360.errors import Pano360Error, UsageError
from pano360.generate.wan.loading import MODEL_ENV, check_device, check_settings, model_name, require_model
from pano360.generate.wan.windows import check_window, round_up_4k1

__all__ = ["MODEL_ENV", "WanBackend", "wan_available"]

def wan_available(model: str | Path | None = None) -> tuple[bool, str]:
    """Whether ``--backend auto`` can pick Wan: a model (arg or ``PANO360_MODEL``) that resolves
    to a complete VACE folder, and a CUDA GPU. Returns ``(ok, reason)``; loads no weights."""
    name = model_name(model)
    if not name:
        return False, f"no Wan model configured (--model or {MODEL_ENV})"
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA GPU"
    from pano360.generate.wan.loading import check_model_folder, resolve_model_folder

    try:
        check_model_folder(resolve_model_folder(name, local_only=True))  # auto never downloads
    except Pano360Error as exc:
        return False, str(exc)
    return True, f"Wan model {name} on {torch.cuda.get_device_name(0)}"


def _crop_rows(canvas: Canvas) -> tuple:
    """Keep only the rows of a canvas that hold real pixels (a full 4096x2048 canvas is 33 MB and
    a window holds up to 81 of them): ``(shape, r0, rgb_rows, mask_rows)``."""
    rows = np.flatnonzero(canvas.mask.any(axis=1))
    r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
    return canvas.rgb.shape, r0, canvas.rgb[r0:r1].copy(), canvas.mask[r0:r1].copy()


def _uncrop_rows(kept: tuple) -> tuple[np.ndarray, np.ndarray]:
    shape, r0, rgb_rows, mask_rows = kept
    rgb = np.zeros(shape, np.uint8)
    mask = np.zeros(shape[:2], bool)
    rgb[r0 : r0 + len(rgb_rows)] = rgb_rows
    mask[r0 : r0 + len(mask_rows)] = mask_rows
    return rgb, mask


class WanBackend:
    """Fill the unseen sphere with Wan2.1 VACE. Loads the model (and LoRA) when constructed.

    ``model``: a diffusers Wan2.1 VACE folder or hub id (default ``$PANO360_MODEL``).
    ``device``: ``None`` = CUDA (error without a GPU), or ``"cpu"``; ``dtype``: bf16 on GPU, fp32 on CPU.
    ``gen_width``: generation ERP width (height is half; multiple of 32). ``window``/``overlap``:
    frames per generation window (4k+1) and frames carried over. ``blend_ratio``: ramp of the
    blended decoding (W/ratio, 0 = plain decode). ``scheduler``: ``"euler"`` or ``"unipc"``.
    ``components``: already loaded ``WanComponents`` (tests; skips loading). ``progress``: optional
    ``callable(frames_done, steps_done_in_window, steps)`` called after every denoising step.
    ``quiet``: no library progress bars while loading (``-q``, ``--json``).
    """

    name = "wan"

    def __init__(
        self,
        model: str | Path | None = None,
        lora: str | Path | None = None,
        lora_scale: float = 1.0,
        prompt: str = "",
        negative_prompt: str = "",
        steps: int = 30,
        guidance: float = 5.0,
        shift: float | None = None,
        seed: int = 0,
        gen_width: int = 1024,
        offload: bool = False,
        device: str | None = None,
        dtype=None,
        window: int = 81,
        overlap: int = 8,
        blend_ratio: float = 16.0,
        scheduler: str = "euler",
        wrap_pad: int = 0,
        rotate: bool = True,
        components=None,
        progress=None,
        quiet: bool = False,
    ):
        check_settings(steps, guidance, shift, gen_width, lora_scale, blend_ratio, scheduler)
        check_device(device)
        check_window(window, overlap)
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.steps, self.guidance, self.seed = int(steps), float(guidance), int(seed)
        self.gen_width, self.gen_height = int(gen_width), int(gen_width) // 2
        self.window, self.overlap = int(window), int(overlap)
        self.blend_ratio, self.wrap_pad, self.rotate = float(blend_ratio), int(wrap_pad), bool(rotate)

        from pano360.generate.wan.loading import load_wan_components
        from pano360.generate.wan.pipeline import WanOutpaintPipeline

        if components is None:
            components = load_wan_components(require_model(model), device=device, dtype=dtype, offload=offload, quiet=quiet)
        self.components = components
        self.lora_tensors = 0
        if lora:
            from pano360.generate.wan.lora import inject_lora

            self.lora_tensors = inject_lora(components.transformer, lora, scale=lora_scale)
        self.pipe = WanOutpaintPipeline(components, scheduler=scheduler, shift=shift)
        self.progress = progress
        self._embeds = None

    def _prompt_embeds(self):
        if self._embeds is None:
            c = self.components
            self._embeds = self.pipe.encode_prompts(self.prompt, self.negative_prompt, self.guidance)
            if not c.offload and c.device.type == "cuda":
                c.text_encoder.to("cpu")  # embeddings are cached: free the GPU for the transformer
        return self._embeds

    def _small(self, canvas: Canvas) -> tuple[np.ndarray, np.ndarray]:
        """Canvas at the generation size: rgb uint8 and the generate-mask (True = not fully real)."""
        import cv2

        from pano360.decode.composite import resize_erp

        w, h = self.gen_width, self.gen_height
        rgb = resize_erp(canvas.rgb, w, h, cv2.INTER_AREA)
        cover = resize_erp(canvas.mask.astype(np.float32), w, h, cv2.INTER_AREA)
        return rgb, cover < 0.999

    def fill(self, canvases: Iterable[Canvas]) -> Iterator[np.ndarray]:
        """One ``(H, 2H, 3) uint8`` frame per canvas, in order; mask-True pixels unchanged."""
        import torch

        from pano360.decode.composite import StatsSmoother

        generator = torch.Generator("cpu").manual_seed(self.seed)
        self._smoother = StatsSmoother()
        small: deque = deque(maxlen=self.window)  # (index, rgb_small, generate_mask_small)
        made: dict[int, np.ndarray] = {}  # generated frames (gen size) that a later window may know
        pending: dict[int, tuple] = {}  # full-size canvases not yet output (real rows only)
        start = done = n = 0
        size = None
        for idx, canvas in enumerate(canvases):
            if size is None:
                size = canvas.rgb.shape
            elif canvas.rgb.shape != size:
                raise Pano360Error(f"canvas {idx} is {canvas.rgb.shape}, the first was {size}")
            small.append((idx, *self._small(canvas)))
            pending[idx] = _crop_rows(canvas)
            n = idx + 1
            if n == start + self.window:
                yield from self._window(start, n, done, small, made, pending, generator)
                done, start = n, n - self.overlap
        if done < n:
            start = max(0, n - self.window)
            yield from self._window(start, n, done, small, made, pending, generator)

    def _step_callback(self, done: int):
        progress = getattr(self, "progress", None)
        if progress is None:
            return None

        def on_step(pipe, i, t, kwargs):
            progress(done, i + 1, self.steps)
            return {}

        return on_step

    def _window(self, start, stop, done, small, made, pending, generator) -> Iterator[np.ndarray]:
        from pano360.decode.composite import composite

        frames = {i: (rgb, gm) for i, rgb, gm in small if start <= i < stop}
        video, mask = [], []
        for i in range(start, stop):
            rgb, gm = frames[i]
            if i < done:  # carried over: fully known; real pixels over what we generated, colour-matched as output
                video.append(composite(rgb, ~gm, made[i]))
                mask.append(np.zeros_like(gm))
            else:
                video.append(rgb)
                mask.append(gm)
        length = round_up_4k1(stop - start)
        video += [video[-1]] * (length - len(video))
        mask += [mask[-1]] * (length - len(mask))
        out = self.pipe(
            np.stack(video), np.stack(mask).astype(np.float32), self._prompt_embeds(),
            num_inference_steps=self.steps, guidance_scale=self.guidance, generator=generator,
            rotate=self.rotate, blend_ratio=self.blend_ratio, wrap_pad=self.wrap_pad,
            callback_on_step_end=self._step_callback(done),
        )
        for i in [k for k in made if k < stop - self.window]:
            del made[i]
        for i in range(done, stop):
            made[i] = out[i - start]
            rgb, mask = _uncrop_rows(pending.pop(i))
            yield composite(rgb, mask, out[i - start], stats_filter=self._smoother)
