"""Prompt -> UMT5 embeddings, as Wan2.1 takes them (padded to 226 tokens, zeros past the prompt)."""

from __future__ import annotations

import html
import re

__all__ = ["MAX_TOKENS", "clean_prompt", "encode_prompt"]

MAX_TOKENS = 226  # Wan2.1's text length


def clean_prompt(text: str) -> str:
    """Unescape HTML entities and collapse whitespace (ftfy's fixes too, when it is installed)."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # optional: only changes mojibake
        pass
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def encode_prompt(tokenizer, text_encoder, prompt: str, device, dtype, max_tokens: int = MAX_TOKENS):
    """Embeddings ``(1, max_tokens, text_dim)`` of ``prompt``; rows past its last token are zero.

    This is what the Wan transformer was trained with (diffusers ``WanPipeline._get_t5_prompt_embeds``).
    """
    import torch

    tok = tokenizer(
        [clean_prompt(prompt)],
        padding="max_length",
        max_length=max_tokens,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids, mask = tok.input_ids, tok.attention_mask
    enc_device = next(text_encoder.parameters()).device
    with torch.no_grad():
        emb = text_encoder(ids.to(enc_device), mask.to(enc_device)).last_hidden_state
    emb = emb * mask.to(emb.device, emb.dtype)[..., None]
    return emb.to(device=device, dtype=dtype)
