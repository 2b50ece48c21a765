"""The docstring examples of pano360.post pin conventions with numbers: run them."""

import doctest
import importlib

import pytest

MODULES = ["keyframes", "metrics", "sphere_motion", "smoothing", "level", "reframe", "stabilize"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"pano360.post.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
