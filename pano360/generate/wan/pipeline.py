"""Our Wan2.1 VACE outpainting loop for ERP clips, with rotation during inference.

Same components and steps as diffusers' ``WanVACEPipeline``, but the loop is ours, because the
seam needs what its ``callback_on_step_end`` cannot reach: after every denoising step the noisy
latents AND the VACE conditioning latents (video + mask latents, and a multistep scheduler's
history) are rolled by a quarter turn (W/4 latent columns), so the ±180° seam never sits at the
same longitude twice; the total roll is undone at the end. Decoding is blended 180°-rotated
decoding (``pano360.decode.blend``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pano360.errors import Pano360Error
from pano360.generate.wan.conditioning import check_inputs, latent_stats, to_video_tensor, vace_conditioning
from pano360.generate.wan.loading import OOM_HINT, WanComponents, out_of_memory
from pano360.generate.wan.schedulers import make_scheduler, roll_scheduler_state
from pano360.generate.wan.text import encode_prompt

__all__ = ["PromptEmbeds", "WanOutpaintPipeline", "quarter_turn"]


def quarter_turn(latent_width: int) -> int:
    """Columns a quarter turn of yaw takes in a latent of ``latent_width`` columns (W/4)."""
    if latent_width % 4:
        raise Pano360Error(f"latent width must be divisible by 4 to roll a quarter turn, got {latent_width}")
    return latent_width // 4


@dataclass
class PromptEmbeds:
    """Text embeddings for the prompt and (for guidance) the negative prompt, ``(1, L, text_dim)``."""

    positive: Any
    negative: Any | None


class WanOutpaintPipeline:
    """Outpaint a masked ERP clip with Wan2.1 VACE. Components come in loaded (real or tiny).

    ``model_cpu_offload_seq = "text_encoder->vae->transformer->vae"``: with ``components.offload``
    each is moved to the GPU only while it runs.
    """

    model_cpu_offload_seq = "text_encoder->vae->transformer->vae"

    def __init__(self, components: WanComponents, scheduler: str = "euler", shift: float | None = None):
        self.c = components
        self.scheduler_kind = scheduler
        self.shift = shift
        make_scheduler(components.scheduler, scheduler, shift)  # validate early

    def encode_prompts(self, prompt: str = "", negative_prompt: str = "", guidance: float = 5.0) -> PromptEmbeds:
        """Embed ``prompt`` (and ``negative_prompt`` when guidance > 1) once; reuse for every window."""
        c = self.c
        with c.resident(c.text_encoder):
            pos = encode_prompt(c.tokenizer, c.text_encoder, prompt, c.device, c.dtype)
            neg = encode_prompt(c.tokenizer, c.text_encoder, negative_prompt, c.device, c.dtype) if guidance > 1 else None
        return PromptEmbeds(pos, neg)

    def __call__(
        self,
        video: np.ndarray,
        mask: np.ndarray,
        prompt_embeds: PromptEmbeds,
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        generator=None,
        rotate: bool = True,
        output_type: str = "np",
        blend_ratio: float = 16.0,
        wrap_pad: int = 0,
        conditioning_scale: float = 1.0,
        callback_on_step_end: Callable | None = None,
    ) -> np.ndarray:
        """Generate the masked part of ``video (F, H, W, 3) uint8``; ``mask (F, H, W)`` 1 = generate.

        Returns ``(F, H, W, 3) uint8`` frames (``output_type="np"``) or the final latents
        ``(1, 16, (F-1)/4+1, H/8, W/8)`` float32 (``"latent"``, the hook for ``decode/``).
        ``callback_on_step_end(pipe, i, t, {"latents", "conditioning"})`` may return replacements.
        """
        try:
            return self._run(video, mask, prompt_embeds, num_inference_steps, guidance_scale, generator, rotate,
                             output_type, blend_ratio, wrap_pad, conditioning_scale, callback_on_step_end)
        except Exception as exc:
            if out_of_memory(exc):
                hint = "try a smaller --gen-width (e.g. 768 or 512)" if self.c.offload else OOM_HINT
                raise Pano360Error(f"out of GPU memory generating {video.shape[2]}x{video.shape[1]}x{video.shape[0]}: {hint}") from exc
            raise

    def _run(self, video, mask, prompt_embeds, steps, guidance, generator, rotate, output_type, blend_ratio,
             wrap_pad, conditioning_scale, callback):
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        c = self.c
        # 1. Check inputs. Raise error if not correct
        check_inputs(video, mask)
        if steps < 1:
            raise Pano360Error(f"steps must be >= 1, got {steps}")
        if output_type not in ("np", "latent"):
            raise ValueError(f"output_type must be 'np' or 'latent', got {output_type!r}")
        do_cfg = guidance > 1.0
        if do_cfg and prompt_embeds.negative is None:
            raise ValueError("guidance > 1 needs negative prompt embeddings (encode_prompts with the same guidance)")

        # 2. Conditioning latents: inactive/reactive VAE latents + 64 mask channels
        with c.resident(c.vae):
            v, m = to_video_tensor(video, mask, c.device)
            cond = vace_conditioning(c.vae, v, m).to(c.dtype)
            del v, m
        n_vace = len(c.transformer.config.vace_layers)
        cond_scale = torch.full((n_vace,), float(conditioning_scale), device=c.device, dtype=c.dtype)

        # 3. Timesteps
        scheduler = make_scheduler(c.scheduler, self.scheduler_kind, self.shift)
        scheduler.set_timesteps(steps, device=c.device)
        timesteps = scheduler.timesteps

        # 4. Initial noise (generator on the CPU: same seed, same noise on any device)
        shape = (1, c.transformer.config.in_channels, *cond.shape[2:])
        latents = randn_tensor(shape, generator=generator, device=c.device, dtype=torch.float32)
        shift = quarter_turn(shape[-1]) if rotate else 0
        total_roll = 0

        # 5. Denoising loop, rolling everything spatial a quarter turn after each step
        with c.resident(c.transformer), torch.no_grad():
            for i, t in enumerate(timesteps):
                x = latents.to(c.dtype)
                ts = t.expand(1)
                pred = c.transformer(x, ts, prompt_embeds.positive, control_hidden_states=cond,
                                     control_hidden_states_scale=cond_scale, return_dict=False)[0]
                if do_cfg:
                    unc = c.transformer(x, ts, prompt_embeds.negative, control_hidden_states=cond,
                                        control_hidden_states_scale=cond_scale, return_dict=False)[0]
                    pred = unc + guidance * (pred - unc)
                latents = scheduler.step(pred.float(), t, latents, return_dict=False)[0].float()
                if shift and i < len(timesteps) - 1:
                    latents = torch.roll(latents, shift, dims=-1)
                    cond = torch.roll(cond, shift, dims=-1)
                    roll_scheduler_state(scheduler, shift)
                    total_roll += shift
                if callback is not None:
                    out = callback(self, i, t, {"latents": latents, "conditioning": cond}) or {}
                    latents, cond = out.get("latents", latents), out.get("conditioning", cond)
        latents = torch.roll(latents, -total_roll, dims=-1)
        if output_type == "latent":
            return latents
        return self.decode(latents, blend_ratio, wrap_pad)

    def decode(self, latents, blend_ratio: float = 16.0, wrap_pad: int = 0) -> np.ndarray:
        """Normalised latents ``(1, 16, f, h, w)`` -> ``(4(f-1)+1, 8h, 8w, 3) uint8`` via blended decoding.

        ``blend_ratio = 0`` decodes plainly.
        """
        import torch

        from pano360.decode.blend import blended_decode, wrap_padded_decode

        c = self.c
        with c.resident(c.vae), torch.no_grad():
            mean, std = latent_stats(c.vae, c.device)
            z = (latents.to(c.device).float() * std + mean).to(c.vae.dtype)

            def decode(lat):
                return c.vae.decode(lat, return_dict=False)[0].float()

            if blend_ratio:
                pix = blended_decode(decode, z, ratio=blend_ratio, pad=wrap_pad)
            else:
                pix = wrap_padded_decode(decode, z, wrap_pad)
            pix = ((pix[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pix.permute(1, 2, 3, 0).cpu().numpy()
