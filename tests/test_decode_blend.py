"""Blended 180°-rotated decoding and latent wrap padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pano360.decode.blend import blend_weights, blended_decode, roll_width, wrap_padded_decode


def _zero_padded_decode(z):
    """A decoder with the Wan VAE's flaw: nearest 8x upsampling then a 5x5 blur that pads with zeros."""
    up = torch.nn.functional.interpolate(z, scale_factor=8, mode="nearest")
    k = torch.ones(z.shape[1], 1, 5, 5, dtype=z.dtype) / 25
    return torch.nn.functional.conv2d(up, k, padding=2, groups=z.shape[1])


def _circular_decode(z):
    up = torch.nn.functional.interpolate(z, scale_factor=8, mode="nearest")
    k = torch.ones(z.shape[1], 1, 5, 5, dtype=z.dtype) / 25
    up = torch.nn.functional.pad(up, (2, 2, 0, 0), mode="circular")
    return torch.nn.functional.conv2d(up, k, padding=(2, 0), groups=z.shape[1])


def _smooth_latent(h=8, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    lon = torch.linspace(0, 2 * np.pi, w + 1)[:-1]
    base = torch.randn(1, 3, h, 1, generator=g)
    return base + torch.sin(lon)[None, None, None] * torch.randn(1, 3, h, 1, generator=g)


@pytest.mark.parametrize("width, ratio", [(64, 16), (128, 16), (100, 2), (1024, 16), (64, 4)])
def test_weights_ramp_from_zero_at_the_edges_and_pair_sums_to_one(width, ratio):
    w = blend_weights(width, ratio)
    ramp = width / ratio
    assert w.shape == (width,)
    assert w[0] == pytest.approx(0.5 / ramp) and w[-1] == pytest.approx(0.5 / ramp)  # ~0 at the seam
    assert np.all((w >= 0) & (w <= 1)) and np.allclose(w, w[::-1])  # symmetric
    inner = (np.arange(width) + 0.5 >= ramp) & (np.arange(width) + 0.5 <= width - ramp)
    assert np.all(w[inner] == 1.0)
    # the rolled decode's weight 1 - w, rolled back into place, is 0 exactly where w is 1
    assert np.allclose(w + (1 - w), 1.0)
    if ratio == 2:  # Argus' closed form h(x) = 1 - 2|x/W - 1/2|
        x = (np.arange(width) + 0.5) / width
        assert np.allclose(w, 1 - 2 * np.abs(x - 0.5))


def test_blended_equals_plain_away_from_the_seam_and_closes_it():
    z = _smooth_latent()
    plain = _zero_padded_decode(z)
    blended = blended_decode(_zero_padded_decode, z, ratio=16)
    W = plain.shape[-1]
    ramp = W // 16
    assert torch.equal(blended[..., ramp:W - ramp], plain[..., ramp:W - ramp])
    truth = _circular_decode(z)

    def seam_error(x):
        return (x[..., :3] - truth[..., :3]).abs().mean() + (x[..., -3:] - truth[..., -3:]).abs().mean()

    # measured: plain 0.315 (zero padding darkens both edges), blended 0.033 (the plain decode keeps
    # weight 1/16, 3/16, 5/16 on the three edge columns at ratio 16; the rolled one is exact there)
    assert seam_error(plain) > 0.25
    assert seam_error(blended) < 0.05
    assert (blended - truth).abs().max() < 0.15 < (plain - truth).abs().max()


def test_a_decoder_without_seam_is_unchanged():
    z = _smooth_latent(seed=3)
    assert torch.allclose(blended_decode(_circular_decode, z, ratio=16), _circular_decode(z), atol=1e-6)


def test_wrap_padding_gives_the_circular_decode():
    z = _smooth_latent(seed=1)
    padded = wrap_padded_decode(_zero_padded_decode, z, pad=2)
    truth = _circular_decode(z)
    assert padded.shape == truth.shape
    assert torch.allclose(padded[..., 3:-3, :], truth[..., 3:-3, :], atol=1e-6)  # rows: the top/bottom pad stays
    assert torch.allclose(blended_decode(_zero_padded_decode, z, pad=2)[..., 3:-3, :], truth[..., 3:-3, :], atol=1e-6)


def test_roll_and_unroll_return_the_original_alignment():
    z = torch.arange(2 * 3 * 16.0).reshape(1, 2, 3, 16)
    q = 16 // 4
    rolled = z
    for _ in range(7):
        rolled = roll_width(rolled, q)
    assert torch.equal(roll_width(rolled, -7 * q), z)
    assert torch.equal(roll_width(z, q)[..., q], z[..., 0])  # +W/4: column 0 moves a quarter turn right
    assert np.array_equal(roll_width(z.numpy(), 16), z.numpy())  # a full turn


def test_blended_decode_of_the_tiny_wan_vae_matches_plain_inside():
    from diffusers import AutoencoderKLWan

    from pano360.generate.wan.tiny import TINY_VAE

    torch.manual_seed(0)
    vae = AutoencoderKLWan(**TINY_VAE).eval()
    z = torch.randn(1, 16, 2, 4, 8)

    def dec(lat):
        with torch.no_grad():
            return vae.decode(lat, return_dict=False)[0]

    plain, blended = dec(z), blended_decode(dec, z, ratio=4)
    assert blended.shape == plain.shape == (1, 3, 5, 32, 64)
    assert torch.equal(blended[..., 16:48], plain[..., 16:48])
    assert not torch.allclose(blended[..., :4], plain[..., :4])
