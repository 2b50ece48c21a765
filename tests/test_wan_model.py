"""The Wan backend on a tiny random-weight VACE model saved and loaded like a real one (CPU, offline)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from pano360.errors import Pano360Error, UsageError
from pano360.generate.wan.loading import load_wan_components
from pano360.generate.wan.pipeline import WanOutpaintPipeline
from pano360.generate.wan.tiny import TINY_TRANSFORMER, save_tiny_wan


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "Wan2.1-VACE-tiny-diffusers")


@pytest.fixture(scope="module")
def comps(tiny_dir):
    return load_wan_components(tiny_dir, device="cpu")


def _clip(frames=5, h=32, seed=0):
    """A smooth random ERP clip and a mask (1 = generate) with a known window in the middle."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (frames, h // 8, h // 4, 3)).astype(np.uint8)
    video = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)
    mask = np.ones(video.shape[:3], np.float32)
    mask[:, h // 4 : 3 * h // 4, 3 * h // 4 : 5 * h // 4] = 0
    return video, mask


# ---------- model folder and loading ----------

def test_tiny_folder_has_the_real_layout_and_loads_back(tiny_dir, comps):
    index = json.loads((tiny_dir / "model_index.json").read_text())
    assert index["_class_name"] == "WanVACEPipeline"
    assert index["transformer"] == ["diffusers", "WanVACETransformer3DModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    for sub in ("tokenizer", "text_encoder", "vae", "transformer", "scheduler"):
        assert (tiny_dir / sub).is_dir()
    assert type(comps.transformer).__name__ == "WanVACETransformer3DModel"
    assert list(comps.transformer.config.vace_layers) == TINY_TRANSFORMER["vace_layers"]
    assert comps.dtype == torch.float32 and comps.device.type == "cpu"
    # the weights that came back are the ones that were saved (same seed builds the same model)
    from pano360.generate.wan.tiny import build_tiny_wan

    ref = build_tiny_wan()["transformer"].state_dict()
    got = comps.transformer.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def _break(folder, how):
    if how == "incomplete":
        shutil.rmtree(folder / "vae")
    elif how == "not_vace":
        cfg_path = folder / "transformer" / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["_class_name"] = "WanTransformer3DModel"
        cfg.pop("vace_layers")
        cfg_path.write_text(json.dumps(cfg))
    elif how == "no_index":
        (folder / "model_index.json").unlink()
    elif how == "bad_transformer_json":
        (folder / "transformer" / "config.json").write_text("{bad")
    elif how == "bad_scheduler_json":
        (folder / "scheduler" / "scheduler_config.json").write_text("[1]")
    elif how == "bad_config_value":
        cfg_path = folder / "transformer" / "config.json"
        cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "num_layers": "three"}))


@pytest.mark.parametrize(
    "how, message",
    [
        ("missing", "model folder not found"),
        ("incomplete", "subfolder vae/ is missing"),
        ("not_vace", "not a Wan2.1 VACE model"),
        ("no_index", "model_index.json is missing"),
        ("bad_transformer_json", "broken model config .*transformer/config.json: not valid JSON"),
        ("bad_scheduler_json", "broken model config .*scheduler/scheduler_config.json: a JSON object was expected"),
        ("bad_config_value", "could not load the Wan model's transformer from .*transformer: TypeError"),
    ],
)
def test_bad_model_folders_fail_with_one_clear_line(tiny_dir, tmp_path, how, message):
    folder = tmp_path / "model"
    if how != "missing":
        shutil.copytree(tiny_dir, folder)
        _break(folder, how)
    with pytest.raises(Pano360Error, match=message) as err:
        load_wan_components(folder, device="cpu")
    assert "\n" not in str(err.value)


def test_hub_id_goes_through_the_offline_cache(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(Pano360Error, match="not found in the local Hugging Face cache"):
        load_wan_components("nobody-here/Wan2.1-VACE-none-diffusers", device="cpu")


def test_no_gpu_needs_device_cpu(tiny_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(Pano360Error, match="--device cpu"):
        load_wan_components(tiny_dir)


def test_out_of_memory_suggests_offload_and_smaller_width(comps, monkeypatch):
    pipe = WanOutpaintPipeline(comps)
    embeds = pipe.encode_prompts("", "", guidance=1.0)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(comps.transformer, "forward", oom)
    video, mask = _clip()
    with pytest.raises(Pano360Error, match="--offload.*--gen-width"):
        pipe(video, mask, embeds, num_inference_steps=1, guidance_scale=1.0)


# ---------- the denoising loop ----------

def test_loop_shapes_and_same_seed_same_output(comps):
    pipe = WanOutpaintPipeline(comps)
    embeds = pipe.encode_prompts("a 360 degree panorama of a room", "blurry", guidance=5.0)
    video, mask = _clip()
    run = lambda seed: pipe(video, mask, embeds, 2, 5.0, torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(7), run(7), run(8)
    assert a.shape == (5, 32, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 1.0
    lat = pipe(video, mask, embeds, 2, 5.0, torch.Generator().manual_seed(7), output_type="latent")
    assert tuple(lat.shape) == (1, 16, 2, 4, 8)
    assert np.array_equal(pipe.decode(lat), a)


@pytest.mark.parametrize("check", ["inputs"])
def test_check_inputs_reports_the_values(comps, check):
    pipe = WanOutpaintPipeline(comps)
    embeds = pipe.encode_prompts("", "", guidance=1.0)
    video, mask = _clip()
    cases = [
        (video[:4], mask[:4], "4k\\+1.*but is 4"),
        (video[:, :, :48], mask[:, :, :48], "width == 2 \\* height, got 48x32"),
        (np.zeros((5, 40, 80, 3), np.uint8), np.ones((5, 40, 80)), "divisible by 16 but are 40 and 80"),
        (video, mask[:, :16], "mask must be shaped like the clip"),
    ]
    for v, m, msg in cases:
        with pytest.raises(Pano360Error, match=msg):
            pipe(v, m, embeds, 1, 1.0)


def _pointwise_model(comps, monkeypatch):
    """Replace the transformer by a per-location function of latents and conditioning: it commutes
    with rolls, so rotation during inference must give exactly the unrotated result."""

    def forward(hidden_states, timestep, encoder_hidden_states, control_hidden_states=None, **kw):
        return (0.3 * hidden_states - 0.5 * control_hidden_states[:, :16] + 0.1 * control_hidden_states[:, 40:56],)

    monkeypatch.setattr(comps.transformer, "forward", forward)


@pytest.mark.parametrize("scheduler", ["euler", "unipc"])
def test_rotation_during_inference_is_undone(comps, monkeypatch, scheduler):
    _pointwise_model(comps, monkeypatch)
    pipe = WanOutpaintPipeline(comps, scheduler=scheduler, shift=3.0)
    embeds = pipe.encode_prompts("", "", guidance=1.0)
    video, mask = _clip()
    conds = []
    run = lambda rotate, cb=None: pipe(  # noqa: E731
        video, mask, embeds, 4, 1.0, torch.Generator().manual_seed(3), rotate=rotate, output_type="latent",
        callback_on_step_end=cb,
    )
    plain = run(False)
    rolled = run(True, lambda p, i, t, kw: conds.append(kw["conditioning"].clone()))
    assert torch.equal(plain, rolled)  # exact: rolls and pointwise ops do not round
    # the conditioning turned a quarter turn (2 of 8 latent columns) after each step but the last
    assert torch.equal(conds[1], torch.roll(conds[0], 2, dims=-1))
    assert torch.equal(conds[2], torch.roll(conds[0], 4, dims=-1))
    assert not torch.equal(conds[1], conds[0])


def test_unipc_history_must_be_rolled_too(comps, monkeypatch):
    """Without rolling UniPC's model-output history the result changes: the roll is needed."""
    _pointwise_model(comps, monkeypatch)
    import pano360.generate.wan.pipeline as pl

    pipe = WanOutpaintPipeline(comps, scheduler="unipc", shift=3.0)
    embeds = pipe.encode_prompts("", "", guidance=1.0)
    video, mask = _clip()
    run = lambda: pipe(video, mask, embeds, 4, 1.0, torch.Generator().manual_seed(3), output_type="latent")  # noqa: E731
    good = run()
    monkeypatch.setattr(pl, "roll_scheduler_state", lambda s, k: None)
    assert not torch.allclose(good, run(), atol=1e-4)


# ---------- LoRA ----------

ORIG_NAMES = [("attn1.", "self_attn."), ("attn2.", "cross_attn."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
              ("to_out.0.", "o."), ("ffn.net.0.proj.", "ffn.0."), ("ffn.net.2.", "ffn.2.")]


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    from pano360.generate.wan.lora import add_lora, save_lora
    from pano360.generate.wan.tiny import build_tiny_wan

    tr = build_tiny_wan()["transformer"]
    add_lora(tr, rank=4, alpha=4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in tr.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return save_lora(tr, tmp_path_factory.mktemp("lora") / "pano_lora.safetensors")


def _forward(tr):
    g = torch.Generator().manual_seed(1)
    x, ctrl, enc = torch.randn(1, 16, 2, 4, 8, generator=g), torch.randn(1, 96, 2, 4, 8, generator=g), torch.randn(1, 6, 32, generator=g)
    with torch.no_grad():
        return tr(x, torch.tensor([500]), enc, control_hidden_states=ctrl, return_dict=False)[0]


def test_lora_saved_then_injected_changes_the_output(tiny_dir, lora_file):
    from diffusers import WanVACETransformer3DModel

    from pano360.generate.wan.lora import inject_lora

    tr = WanVACETransformer3DModel.from_pretrained(tiny_dir / "transformer")
    before = _forward(tr)
    n = inject_lora(tr, lora_file, scale=1.0)
    assert n == 100  # 5 linears x 2 attentions + 2 FFN ... : 10 targets x (3 blocks + 2 VACE blocks) x (A, B)
    after = _forward(tr)
    assert (after - before).abs().max() > 1e-3
    inject_lora(tr, lora_file, scale=0.0)
    assert torch.allclose(_forward(tr), before, atol=1e-6)


def test_lora_file_loads_in_diffusers_pipeline(tiny_dir, lora_file):
    from diffusers import WanVACEPipeline

    pipe = WanVACEPipeline.from_pretrained(tiny_dir)
    pipe.load_lora_weights(str(lora_file), adapter_name="pano")
    from pano360.generate.wan.lora import count_lora_tensors

    assert count_lora_tensors(pipe.transformer, "pano") == 100


def _rewrite(lora_file, out, fmt):
    """The same LoRA in another trainer's key format (VACE blocks included)."""
    from safetensors.torch import load_file, save_file

    new = {}
    for k, v in load_file(lora_file).items():
        key = k.replace("transformer.", "diffusion_model.", 1)
        for a, b in ORIG_NAMES:
            key = key.replace(a, b)
        if fmt == "original":
            new[key] = v
        elif fmt == "musubi":  # alpha 8 at rank 4: scale 2
            mod, ab = key[len("diffusion_model."):].rsplit(".lora_", 1)
            base = "lora_unet_" + mod.replace(".", "_")
            new[f"{base}.lora_{'down' if ab.startswith('A') else 'up'}.weight"] = v
            new[f"{base}.alpha"] = torch.tensor(8.0)
        elif fmt == "diffsynth_no_prefix":
            new[key[len("diffusion_model."):]] = v
    save_file(new, out)
    return out


@pytest.mark.parametrize("fmt, scale", [("original", 1.0), ("musubi", 2.0)])
def test_other_key_formats_inject_the_same_weights(tiny_dir, lora_file, tmp_path, fmt, scale):
    """Original Wan/DiffSynth and musubi keys, including the VACE blocks that diffusers' own
    converters stop at, land on the same modules with the same scale as the diffusers-keyed file."""
    from diffusers import WanVACETransformer3DModel

    from pano360.generate.wan.lora import inject_lora

    ref = WanVACETransformer3DModel.from_pretrained(tiny_dir / "transformer")
    assert inject_lora(ref, lora_file, scale=scale) == 100
    tr = WanVACETransformer3DModel.from_pretrained(tiny_dir / "transformer")
    assert inject_lora(tr, _rewrite(lora_file, tmp_path / f"{fmt}.safetensors", fmt)) == 100
    assert torch.allclose(_forward(tr), _forward(ref), atol=1e-5)


def test_lora_without_prefix_is_refused(tiny_dir, lora_file, tmp_path):
    from diffusers import WanVACETransformer3DModel

    from pano360.generate.wan.lora import inject_lora

    tr = WanVACETransformer3DModel.from_pretrained(tiny_dir / "transformer")
    bad = _rewrite(lora_file, tmp_path / "bad.safetensors", "diffsynth_no_prefix")
    with pytest.raises(Pano360Error, match="none of its 100 tensors fit.*diffusion_model"):
        inject_lora(tr, bad)
    with pytest.raises(Pano360Error, match="LoRA file not found"):
        inject_lora(tr, tmp_path / "missing.safetensors")


def test_lora_of_another_model_or_damaged_is_one_line(tiny_dir, tmp_path, capfd):
    """A LoRA made for another model (other widths, more blocks) is refused before peft sees it (diffusers
    would log a line per tensor); incomplete and corrupt files name themselves."""
    from diffusers import WanVACETransformer3DModel
    from safetensors.torch import save_file

    from pano360.generate.wan.lora import add_lora, count_lora_tensors, inject_lora, save_lora

    other = WanVACETransformer3DModel(**{**TINY_TRANSFORMER, "attention_head_dim": 8, "num_layers": 4, "vace_layers": [0, 3]})
    add_lora(other, rank=4)
    other_file = save_lora(other, tmp_path / "other.safetensors")
    tr = WanVACETransformer3DModel.from_pretrained(tiny_dir / "transformer")
    capfd.readouterr()
    with pytest.raises(Pano360Error, match=r"other.safetensors was made for another model: 90 of its 120 tensors do not "
                                           r"fit this transformer \(e.g. blocks.0.* is \(4, 16\), the model's layer is 24 -> 24\)"):
        inject_lora(tr, other_file)
    assert capfd.readouterr().err == "" and count_lora_tensors(tr, "pano360") == 0
    half = tmp_path / "half.safetensors"
    save_file({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 24)}, half)
    with pytest.raises(Pano360Error, match="half.safetensors is incomplete: 1 of its 1 modules lack a weight .e.g. "
                                           "blocks.0.attn1.to_q has no lora_B"):
        inject_lora(tr, half)
    for name, data in (("junk", b"junk" * 100), ("truncated", other_file.read_bytes()[:3000])):
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(data)
        with pytest.raises(Pano360Error, match=f"could not read LoRA .*{name}.safetensors .not a safetensors file, or corrupt") as err:
            inject_lora(tr, bad)
        assert "\n" not in str(err.value)


def test_quiet_loading_draws_no_library_progress_bars(tiny_dir, capfd):
    import transformers.utils.logging as tlog

    load_wan_components(tiny_dir, device="cpu")
    assert "Loading weights" in capfd.readouterr().err  # transformers' bar, as a user sees it
    load_wan_components(tiny_dir, device="cpu", quiet=True)
    assert capfd.readouterr().err == ""
    assert tlog.is_progress_bar_enabled()  # restored afterwards


# ---------- the backend on real canvases ----------

def _box_canvases(n):
    from conftest import shared_file

    from pano360.canvas import Canvas
    from pano360.io.reader import iter_frames
    from pano360.project.remap import persp_to_erp

    out = []
    for f in iter_frames(shared_file("clips/box.mp4"), max_width=160, max_frames=n):
        rgb, mask = persp_to_erp(f.rgb, np.eye(3), 80.0, 256, 128)
        out.append(Canvas(rgb, mask, f.time_s))
    return out


def test_backend_keeps_real_pixels_and_fills_the_rest(comps, lora_file):
    from pano360.generate.wan.backend import WanBackend

    canvases = _box_canvases(7)
    calls = []
    backend = WanBackend(components=comps, lora=lora_file, steps=2, gen_width=64, window=5, overlap=2, seed=5,
                         prompt="a room with a box", negative_prompt="blurry", progress=lambda *a: calls.append(a))
    assert backend.name == "wan" and backend.lora_tensors == 100
    out = list(backend.fill(canvases))
    assert len(out) == len(canvases)
    assert calls == [(0, 1, 2), (0, 2, 2), (5, 1, 2), (5, 2, 2)]  # windows [0, 5) and [2, 7), 2 steps each
    for frame, cv in zip(out, canvases):
        assert frame.shape == cv.rgb.shape and frame.dtype == np.uint8
        assert np.array_equal(frame[cv.mask], cv.rgb[cv.mask])  # real pixels exactly the input's
        rest = frame[~cv.mask].astype(float)
        assert rest.mean() > 20 and rest.std() > 2  # filled, not black, not flat
    comps.transformer.delete_adapters("pano360")


def test_backend_availability_and_device(tiny_dir, monkeypatch):
    from pano360.generate.wan.backend import MODEL_ENV, WanBackend, wan_available

    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert wan_available() == (False, f"no Wan model configured (--model or {MODEL_ENV})")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(MODEL_ENV, str(tiny_dir))
    assert wan_available() == (False, "no CUDA GPU")
    with pytest.raises(Pano360Error, match="--device cpu"):
        WanBackend()
    backend = WanBackend(device="cpu", dtype="fp32", gen_width=64, steps=1)  # model from the environment
    assert backend.components.folder == tiny_dir and backend.components.dtype == torch.float32
    with pytest.raises(Pano360Error, match="unknown dtype"):
        WanBackend(device="cpu", dtype="int8")
    for bad in (dict(gen_width=100), dict(steps=0), dict(window=80), dict(overlap=81), dict(shift=0)):
        with pytest.raises(UsageError):
            WanBackend(device="cpu", **bad)
    nan, inf = float("nan"), float("inf")
    for bad in (dict(shift=nan), dict(guidance=nan), dict(guidance=inf), dict(lora_scale=nan), dict(blend_ratio=inf)):
        with pytest.raises(UsageError, match="must be a finite number"):
            WanBackend(device="cpu", **bad)
    with pytest.raises(UsageError, match="--device must be cuda, cuda:N or cpu, got 'tpu'"):
        WanBackend(device="tpu")
