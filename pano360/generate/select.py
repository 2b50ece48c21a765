"""Which fill backend a convert uses (``--backend auto|mosaic|wan``), and why, in one sentence."""

from __future__ import annotations

from pano360.errors import UsageError
from pano360.generate.wan.loading import MODEL_ENV, model_name

__all__ = ["BACKENDS", "MODEL_ENV", "choose_backend"]

BACKENDS = ("auto", "mosaic", "wan")


def choose_backend(requested: str, model: str | None = None, device: str | None = None) -> tuple[str, str]:
    """``(name, reason)`` for the ``--backend`` flag.

    ``auto`` picks ``wan`` only when a model is configured (``--model`` or ``PANO360_MODEL``) and
    usable on a GPU (or ``--device`` names one), else ``mosaic``. torch is only imported when a model
    is configured, so the common CPU case starts fast.
    """
    if requested not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "mosaic":
        return "mosaic", "asked for with --backend mosaic"
    if requested == "wan":
        return "wan", "asked for with --backend wan"
    name = model_name(model)
    if not name:
        return "mosaic", f"no Wan model configured (--model or {MODEL_ENV})"
    if device is not None and device.startswith("cpu"):
        return "mosaic", "a Wan model is configured but --device cpu would be far too slow for auto; use --backend wan to force it"
    try:
        from pano360.generate.wan.backend import wan_available
    except ImportError as exc:  # pragma: no cover - the Wan extra is part of the install
        return "mosaic", f"the Wan backend cannot be imported ({exc})"
    ok, why = wan_available(name)
    if ok:
        return "wan", why
    return "mosaic", f"Wan model configured but not usable: {why}"
