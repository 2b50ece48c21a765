"""`--backend auto|mosaic|wan`: which backend and the sentence saying why."""

from __future__ import annotations

import pytest

from pano360.errors import UsageError
from pano360.generate.select import choose_backend


def test_auto_without_a_model_is_mosaic(monkeypatch):
    monkeypatch.delenv("PANO360_MODEL", raising=False)
    assert choose_backend("auto") == ("mosaic", "no Wan model configured (--model or PANO360_MODEL)")


def test_explicit_choices_are_kept():
    assert choose_backend("mosaic")[0] == "mosaic"
    assert choose_backend("wan", model=None)[0] == "wan"
    with pytest.raises(UsageError):
        choose_backend("gan")


def test_auto_with_a_model_but_no_gpu_says_so(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    monkeypatch.setenv("PANO360_MODEL", str(tmp_path))
    name, why = choose_backend("auto")
    assert name == "mosaic" and "no CUDA GPU" in why
    name, why = choose_backend("auto", model=str(tmp_path), device="cpu")
    assert name == "mosaic" and "--device cpu" in why
