"""Shared test fixtures: the real data in ../shared/data, offline Hugging Face, temp folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PANO360_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(rel: str) -> Path:
    """Path of a file in ../shared/data, skipping the test with a reason when it is absent."""
    path = SHARED_DATA / rel
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (tests read ../shared/data beside the checkout)")
    return path


@pytest.fixture
def shared() -> "callable":
    """Fixture form of :func:`shared_file`."""
    return shared_file
