"""`pano360 train` end to end on a tiny random Wan2.1 VACE model (CPU): the loss goes down, the
LoRA loads with our loader and with diffusers' ``load_lora_weights`` and changes the output, and a
resumed run continues at the right step with identical losses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import shared_file
from pano360.io.reader import iter_frames
from pano360.io.writer import VideoWriter

torch = pytest.importorskip("torch")

STEPS, SAVE_EVERY, LR = 24, 12, 2e-3


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models are all overhead: one thread is several times faster on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _write(path, frames):
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, 30, crf=12, preset="ultrafast") as out:
        for f in frames:
            out.write(f)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread):
    """A tiny model folder and three short 360 clips: two panoramas turning slowly (one captioned)
    and the first 9 frames of a real 360 video, downscaled."""
    from pano360.generate.wan.tiny import save_tiny_wan

    root = tmp_path_factory.mktemp("train")
    model = save_tiny_wan(root / "model")
    data = root / "data"
    data.mkdir()
    for name in ("sechelt.jpg", "sphere_small.jpg"):
        img = cv2.cvtColor(cv2.imread(str(shared_file(f"erp/{name}"))), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (128, 64), interpolation=cv2.INTER_AREA)
        _write(data / f"{name.split('.')[0]}.mp4", [np.roll(img, 2 * i, axis=1) for i in range(9)])
    (data / "sechelt.txt").write_text("a 360 degree panorama")
    room = [f.rgb for f in iter_frames(shared_file("video360/testRoom1_1920Mono.mp4"), max_width=128, max_frames=9)]
    _write(data / "room.mp4", room)
    return root, model, data


def _config(root, model, data, name, **kw):
    from pano360.train.trainer import TrainConfig

    args = dict(data_dir=data, model=str(model), out=root / f"{name}.safetensors", steps=STEPS, lr=LR, width=64,
                frames=5, save_every=SAVE_EVERY, device="cpu", samples=4, seed=0, quiet=True, progress=False)
    args.update(kw)
    return TrainConfig(**args)


@pytest.fixture(scope="module")
def run_a(setup):
    from pano360.train.trainer import train

    root, model, data = setup
    return train(_config(root, model, data, "a"))


def _fixed_batch(cache_dir):
    """All four cached samples with fixed noise levels and noise: the same batch before and after."""
    from pano360.train.cache import load_cached, load_prompts
    from pano360.train.trainer import _make_batch

    items = [load_cached(cache_dir, i) for i in range(4)]
    x0, cond, emb = _make_batch(items, load_prompts(cache_dir), "cpu", torch.float32)
    gen = torch.Generator().manual_seed(123)
    sigmas = torch.tensor([0.35, 0.55, 0.75, 0.9])
    noise = torch.randn(x0.shape, generator=gen)
    return x0, cond, emb, sigmas, noise


def _loss(transformer, batch):
    from pano360.train.objective import latitude_weights
    from pano360.train.trainer import step_loss

    x0, cond, emb, sigmas, noise = batch
    w = torch.from_numpy(latitude_weights(x0.shape[-2]))
    with torch.no_grad():
        return step_loss(transformer, x0, cond, emb, sigmas, noise, w, 1000, torch.float32).item()


def _forward(transformer, batch):
    x0, cond, emb, sigmas, noise = batch
    with torch.no_grad():
        return transformer(noise[:1], sigmas[:1] * 1000, emb[:1], control_hidden_states=cond[:1],
                           control_hidden_states_scale=torch.ones(2), return_dict=False)[0]


def test_training_lowers_the_loss_and_writes_its_files(run_a):
    from pano360.generate.wan.loading import load_wan_components
    from pano360.generate.wan.lora import inject_lora

    r = run_a
    assert r.step == STEPS and len(r.losses) == STEPS and r.videos == 3 and r.samples == 4
    assert all(np.isfinite(r.losses))
    assert r.out.is_file() and r.loss_png.is_file() and r.loss_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in r.ckpt_dir.glob("step-*")) == ["step-00000012", "step-00000024"]
    # The loss on one fixed batch (the training pool itself, fixed noise levels and noise) drops.
    comps = load_wan_components(r.ckpt_dir.parent / "model", device="cpu")
    batch = _fixed_batch(r.ckpt_dir / "cache")
    before = _loss(comps.transformer, batch)
    assert inject_lora(comps.transformer, r.out) == 100  # 5 blocks (3 + 2 VACE) x 10 linears x A, B
    after = _loss(comps.transformer, batch)
    assert after < 0.9 * before, f"fixed-batch loss {before:.4f} -> {after:.4f}"


def test_lora_loads_in_diffusers_and_changes_the_output(run_a, setup):
    from diffusers import WanVACEPipeline

    from pano360.generate.wan.loading import load_wan_components
    from pano360.generate.wan.lora import count_lora_tensors, inject_lora

    _, model, _ = setup
    batch = _fixed_batch(run_a.ckpt_dir / "cache")
    pipe = WanVACEPipeline.from_pretrained(model)
    base = _forward(pipe.transformer, batch)
    pipe.load_lora_weights(str(run_a.out), adapter_name="pano")
    assert count_lora_tensors(pipe.transformer, "pano") == 100
    with_lora = _forward(pipe.transformer, batch)
    change = (with_lora - base).abs().mean().item()
    assert change > 1e-3 * base.abs().mean().item()
    # Our loader gives the same model as diffusers' (same keys, same alpha / rank scale).
    comps = load_wan_components(model, device="cpu")
    inject_lora(comps.transformer, run_a.out)
    torch.testing.assert_close(_forward(comps.transformer, batch), with_lora, rtol=1e-5, atol=1e-6)


def test_resume_continues_at_the_step_with_identical_losses(run_a, setup):
    from pano360.generate.wan.lora import read_lora
    from pano360.train.trainer import train

    root, model, data = setup
    ckpt = run_a.ckpt_dir / f"step-{SAVE_EVERY:08d}"
    # Another cache folder (remade, identically), the checkpoint's rank and lr over the ones passed, and
    # gradient checkpointing on (recomputing activations does not change a bit on the CPU).
    b = train(_config(root, model, data, "b", resume=ckpt, ckpt_dir=root / "b-ckpt", rank=4, lr=1.0,
                      gradient_checkpointing=True))
    assert b.resumed_from == SAVE_EVERY and b.step == STEPS
    assert b.losses[:SAVE_EVERY] == run_a.losses[:SAVE_EVERY]  # history carried over
    assert b.losses[SAVE_EVERY:] == run_a.losses[SAVE_EVERY:]  # bit-identical continuation
    lora_a, _ = read_lora(run_a.out)
    lora_b, _ = read_lora(b.out)
    assert lora_a.keys() == lora_b.keys()
    for k in lora_a:
        assert torch.equal(lora_a[k], lora_b[k]), k


def test_cli_trains_and_prints_one_json_object(setup, capsys):
    import json

    from pano360.cli import main

    root, model, data = setup
    out = root / "cli.safetensors"
    args = ["train", str(data), "--model", str(model), "--out", str(out), "--steps", "3", "--width", "64",
            "--frames", "5", "--samples", "2", "--save-every", "2", "--device", "cpu", "--targets", "attn", "--rank", "4"]
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["step"] == 3 and len(result["losses"]) == 3 and result["videos"] == 3
    assert out.is_file() and (root / "cli-checkpoints" / "step-00000002" / "lora.safetensors").is_file()
    from pano360.generate.wan.lora import read_lora

    sd, meta = read_lora(out)
    assert len(sd) == 5 * 8 * 2 and all(".attn" in k for k in sd)  # attention only: 8 linears per block
    assert sd[next(k for k in sd if "lora_A" in k)].shape[0] == 4
    assert main(args) == 2  # exists, no -y
    assert "output exists" in capsys.readouterr().err


def test_bf16_weights_with_float32_lora_train(setup):
    """The GPU configuration (frozen bf16 weights, float32 LoRA), run on the CPU for a few steps."""
    from pano360.generate.wan.lora import read_lora
    from pano360.train.trainer import train

    root, model, data = setup
    r = train(_config(root, model, data, "bf16", steps=4, save_every=4, dtype="bfloat16", gradient_checkpointing=True,
                      ckpt_dir=root / "bf16-ckpt"))
    assert len(r.losses) == 4 and all(np.isfinite(r.losses))
    sd, _ = read_lora(r.out)
    assert all(t.dtype == torch.float32 for t in sd.values())
    assert any(t.abs().max() > 0 for k, t in sd.items() if "lora_B" in k)  # B moved off its zero init


def test_trained_lora_changes_what_the_outpainting_pipeline_generates(run_a, setup):
    """Through the inference code (`generate.wan.pipeline`) on a training canvas: the frames it
    generates with the LoRA differ from those without."""
    from pano360.generate.wan.loading import load_wan_components
    from pano360.generate.wan.lora import inject_lora
    from pano360.generate.wan.pipeline import WanOutpaintPipeline
    from pano360.train.cache import CacheSpec, draw_sample
    from pano360.train.videos import find_videos

    _, model, data = setup
    sample = draw_sample(find_videos(data), CacheSpec(64, 5, 4, 0), 0)
    outs = []
    for lora in (None, run_a.out):
        comps = load_wan_components(model, device="cpu")
        if lora is not None:
            inject_lora(comps.transformer, lora)
        pipe = WanOutpaintPipeline(comps)
        emb = pipe.encode_prompts("", guidance=1.0)
        outs.append(pipe(sample.canvas, ~sample.mask, emb, num_inference_steps=2, guidance_scale=1.0,
                         generator=torch.Generator().manual_seed(0), blend_ratio=0))
    base, tuned = outs
    assert base.shape == tuned.shape == sample.target.shape
    assert np.abs(base.astype(int) - tuned.astype(int)).mean() > 0.5  # measured 7.6 grey levels
