"""A tiny random-weight Wan2.1 VACE model, built offline, laid out like the real diffusers folder.

``save_tiny_wan(folder)`` writes ``model_index.json`` plus the ``tokenizer``, ``text_encoder``,
``vae``, ``transformer`` and ``scheduler`` subfolders exactly as
``Wan-AI/Wan2.1-VACE-1.3B-diffusers`` has them, so tests (and the trainer's tests) load it through
the same code path as real weights (:func:`pano360.generate.wan.loading.load_wan_components`).
The configs are the ones diffusers' own VACE tests use (see research/NOTES.md); the tokenizer
is a word-level ``tokenizers`` model and the text encoder a 1-layer UMT5, both built here.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TINY_TRANSFORMER", "TINY_VAE", "TINY_TEXT_ENCODER", "TINY_WORDS", "build_tiny_wan", "save_tiny_wan"]

TINY_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=256,
    ffn_dim=32,
    num_layers=3,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
    vace_layers=[0, 2],
    vace_in_channels=96,
)
TINY_VAE = dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
TINY_TEXT_ENCODER = dict(
    d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
    relative_attention_num_buckets=8, relative_attention_max_distance=16,
    dropout_rate=0.0, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
)
# A small vocabulary: enough for test prompts; anything else maps to <unk>.
TINY_WORDS = (
    "a the of and in on with 360 degree panorama equirectangular video view sky ground room street "
    "indoor outdoor blurry low quality distorted seam bright dark table box wall floor ceiling"
).split()


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(dict.fromkeys(TINY_WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def build_tiny_wan(seed: int = 0) -> dict:
    """The five components of a tiny random-weight Wan2.1 VACE model, seeded (CPU, float32).

    Returns ``{"tokenizer", "text_encoder", "vae", "transformer", "scheduler"}``: the transformer has
    3 layers (VACE layers 0 and 2), 16 latent channels, text dim 32; the VAE compresses 8x spatially
    and 4x in time like the real one, so every shape rule of the real model holds.
    """
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanVACETransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = _tiny_tokenizer()
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), **TINY_TEXT_ENCODER)).eval()
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(**TINY_VAE).eval()
    torch.manual_seed(seed + 2)
    transformer = WanVACETransformer3DModel(**TINY_TRANSFORMER).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    return dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)


def save_tiny_wan(folder: str | Path, seed: int = 0) -> Path:
    """Build the tiny model and ``save_pretrained`` it as a diffusers ``WanVACEPipeline`` folder.

    Returns the folder. It holds ``model_index.json`` and one subfolder per component, like
    ``Wan-AI/Wan2.1-VACE-1.3B-diffusers`` (about 1 MB, a few seconds on a CPU).
    """
    from diffusers import WanVACEPipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    WanVACEPipeline(**build_tiny_wan(seed)).save_pretrained(folder, safe_serialization=True)
    return folder


if __name__ == "__main__":  # python -m pano360.generate.wan.tiny DIR  (a model for CLI smoke tests)
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m pano360.generate.wan.tiny OUTPUT_DIR")
    print(save_tiny_wan(sys.argv[1]))
