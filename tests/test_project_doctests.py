"""The docstring examples of pano360.project pin conventions with numbers: run them."""

import doctest
import importlib

import pytest

MODULES = ["erp", "camera", "rotation", "_angles", "footprint", "remap", "cubemap", "torch_remap", "projections", "viewmap"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"pano360.project.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
