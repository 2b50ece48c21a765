"""Input and output at the edges: video decoding/encoding, 360 metadata, atomic output files.

The names below are imported lazily (``from pano360.io import probe_video``), so importing
``pano360.io.atomic`` alone does not load PyAV or OpenCV.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Frame": "reader", "iter_frames": "reader", "upright": "reader",
    "VideoWriter": "writer",
    "ColourInfo": "colour", "read_colour": "colour",
    "VideoInfo": "probe", "probe_video": "probe", "validate_video_input": "probe",
    "SphericalInfo": "spherical", "read_spherical": "spherical", "inject_spherical": "spherical",
    "finalize_360": "spherical", "spherical_output": "spherical",
    "atomic_output": "atomic", "check_output_path": "atomic",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"pano360.io.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pano360.io' has no attribute {name!r}")
