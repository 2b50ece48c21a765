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
    # Another cache folder (remade, identically), the checkpoint's rank (not given) and lr over the one
    # passed, and gradient checkpointing on (recomputing activations does not change a bit on the CPU).
    b = train(_config(root, model, data, "b", resume=ckpt, ckpt_dir=root / "b-ckpt", lr=1.0,
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
    assert result["step"] == 3 and len(result["losses"]) == 3 and result["videos"] == 3 and result["warnings"] == []
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


# ---------- one run per checkpoint folder, same seed same run, clean stops ----------

def _small(root, model, data, name, **kw):
    """A one- or two-step run on one cached sample (about a second)."""
    return _config(root, model, data, name, **{"steps": 2, "save_every": 1, "samples": 1, **kw})


def test_a_checkpoint_folder_holds_one_run(setup, tmp_path):
    """A new run into another run's checkpoints is refused unless -y (which replaces them), and --resume
    refuses a checkpoint of another model, data folder or adapter; the adapter it does not name is the
    checkpoint's."""
    import json
    import os

    from pano360.errors import UsageError
    from pano360.train.trainer import train

    _, model, data = setup
    ckpt = tmp_path / "ckpt"
    x = train(_small(tmp_path, model, data, "x", ckpt_dir=ckpt, rank=4))
    assert json.loads((ckpt / "step-00000002" / "run.json").read_text())["rank"] == 4
    with pytest.raises(UsageError, match="already holds a run's checkpoints .*step-00000002.*--resume.*-y/--overwrite"):
        train(_small(tmp_path, model, data, "y", ckpt_dir=ckpt))
    other = tmp_path / "other-data"
    other.mkdir()
    os.symlink(data / "room.mp4", other / "room.mp4")
    for kw, why in [(dict(rank=8), "--rank 4 .this run: 8."), (dict(targets="attn"), "--targets full .this run: attn."),
                    (dict(alpha=4.0), "--alpha 16.0 .this run: 4.0."), (dict(data_dir=other), "data folder .*this run: .*other-data"),
                    (dict(model=str(tmp_path / "another-model")), "model .*this run: .*another-model")]:
        with pytest.raises(UsageError, match=f"checkpoint .*step-00000002 is of another run: {why}"):
            train(_small(tmp_path, kw.pop("model", model), data, "z", resume=ckpt, steps=3, **kw))
    assert not (tmp_path / "y.safetensors").exists() and not (tmp_path / "z.safetensors").exists()
    z = train(_small(tmp_path, model, data, "z", resume=ckpt, steps=3))  # rank 4 from the checkpoint
    assert z.resumed_from == 2 and json.loads((ckpt / "step-00000003" / "run.json").read_text())["rank"] == 4
    y = train(_small(tmp_path, model, data, "y", ckpt_dir=ckpt, steps=1, overwrite=True))
    assert y.step == 1 and sorted(p.name for p in ckpt.glob("step-*")) == ["step-00000001"]
    assert json.loads((ckpt / "step-00000001" / "run.json").read_text())["rank"] == 16
    assert x.out.is_file()


def test_old_checkpoints_without_run_json_are_read_from_trainer_pt(setup, tmp_path, run_a):
    import shutil

    from pano360.errors import UsageError
    from pano360.train.trainer import train

    root, model, data = setup
    old = tmp_path / "old" / "step-00000012"
    shutil.copytree(run_a.ckpt_dir / "step-00000012", old)
    (old / "run.json").unlink()
    with pytest.raises(UsageError, match="--rank 16 .this run: 2."):
        train(_config(root, model, data, "old", resume=old, rank=2))


def test_same_seed_gives_the_same_initial_adapter(setup, tmp_path):
    """peft draws lora_A from torch's global generator: the run seeds it (and leaves it as it was)."""
    from pano360.generate.wan.lora import add_lora
    from pano360.generate.wan.tiny import build_tiny_wan
    from pano360.train.trainer import train

    adapters = []
    for seed, noise in ((3, 1), (3, 2), (4, 1)):
        torch.manual_seed(noise)  # whatever ran before
        tr = build_tiny_wan()["transformer"]
        add_lora(tr, rank=2, seed=seed)
        after = torch.rand(1)
        torch.manual_seed(noise)
        build_tiny_wan()
        assert torch.equal(after, torch.rand(1))  # the global generator is as if nothing was drawn
        adapters.append({n: p.detach().clone() for n, p in tr.named_parameters() if "lora_A" in n})
    assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])
    assert not any(torch.equal(adapters[0][k], adapters[2][k]) for k in adapters[0])
    # Through the trainer: two runs of one seed write the same LoRA, whatever the global generator held.
    _, model, data = setup
    outs = []
    for name, noise in (("s1", 1), ("s2", 2)):
        torch.manual_seed(noise)
        outs.append(train(_small(tmp_path, model, data, name, steps=1, ckpt_dir=tmp_path / name, seed=7)).out)
    from safetensors.torch import load_file

    a, b = load_file(outs[0]), load_file(outs[1])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("where", ["trainer.pt", "loss.png"])
def test_a_stop_while_checkpointing_leaves_no_part_files(setup, tmp_path, monkeypatch, where):
    """SIGTERM unwinds as Terminated (pano360.signals): the half-written checkpoint folder and loss
    curve are removed on the way out, and no output is left."""
    from matplotlib.figure import Figure

    from pano360.signals import Terminated
    from pano360.train.trainer import train

    def stop(*args, **kwargs):
        raise Terminated(15)

    if where == "trainer.pt":
        monkeypatch.setattr("pano360.train.checkpoint.save_trainer_state", stop)
    else:
        savefig = Figure.savefig

        def write_then_stop(fig, path, *args, **kwargs):
            savefig(fig, path, *args, **kwargs)
            stop()

        monkeypatch.setattr(Figure, "savefig", write_then_stop)
    _, model, data = setup
    with pytest.raises(Terminated):
        train(_small(tmp_path, model, data, "t", steps=1, ckpt_dir=tmp_path / "t-ckpt"))
    left = sorted(p.name for p in (tmp_path / "t-ckpt").iterdir())
    assert not [n for n in left if "part" in n], left
    assert not (tmp_path / "t.safetensors").exists()


def test_damaged_checkpoint_files_give_one_line_naming_them(setup, tmp_path, run_a):
    import shutil

    from pano360.errors import Pano360Error
    from pano360.train.trainer import train

    root, model, data = setup
    for name, content, message in [("trainer.pt", b"junk", "cannot read checkpoint file .*trainer.pt .corrupt or truncated"),
                                   ("trainer.pt", None, "trainer.pt is not a pano360 training checkpoint .no step, losses"),
                                   ("rng-0.pt", b"junk", "cannot read checkpoint file .*rng-0.pt")]:
        ckpt = tmp_path / f"{name}-{content is None}"
        shutil.copytree(run_a.ckpt_dir, ckpt)  # the cache too: nothing is remade
        step = ckpt / "step-00000012"
        if content is None:
            torch.save({"config": {}}, step / name)
        else:
            (step / name).write_bytes(content)
        with pytest.raises(Pano360Error, match=message) as err:
            train(_config(root, model, data, "damaged", resume=step))
        assert "\n" not in str(err.value)


def test_json_lists_the_warnings(setup, tmp_path, capsys):
    import json
    import os

    from conftest import shared_file
    from pano360.cli import main

    _, model, data = setup
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    os.symlink(data / "room.mp4", mixed / "room.mp4")
    os.symlink(shared_file("clips/box.mp4"), mixed / "box.mp4")  # not a 360 video: skipped, with a warning
    args = ["train", str(mixed), "--model", str(model), "--out", str(tmp_path / "w.safetensors"), "--steps", "1",
            "--width", "64", "--frames", "5", "--samples", "1", "--device", "cpu", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    warnings = json.loads(captured.out)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("skipping ") and "box.mp4" in warnings[0]
    assert captured.err.strip() == f"warning: {warnings[0]}"  # shown on stderr too, and nothing else (no bars)
