"""Keyframed virtual cameras: yaw/pitch/roll/FOV at given times, interpolated smoothly per frame.

The keyframes file (JSON)::

    {
      "interpolation": "smooth",
      "keyframes": [
        {"t": 0.0, "yaw": 0, "pitch": 0, "roll": 0, "hfov": 90},
        {"t": 2.0, "yaw": 90, "pitch": -10, "ease": "inout"},
        {"t": 4.0, "yaw": 180, "hfov": 110}
      ]
    }

- ``t``: seconds from the start of the video; keyframes must have increasing times.
- ``yaw``/``pitch``/``roll``: degrees, ``CONVENTIONS.md`` (positive yaw turns right, positive pitch
  looks up). ``hfov``: horizontal field of view in degrees. A missing value repeats the previous
  keyframe's (the first keyframe defaults to 0, 0, 0 and 90).
- ``ease``: how the segment that ENDS at this keyframe is timed: ``linear`` (constant speed, the
  default), ``in`` (starts slowly), ``out`` (arrives slowly) or ``inout`` (both).
- ``interpolation``: ``smooth`` (default: a C2 rotation spline through all keyframes, scipy's
  ``RotationSpline``, and a monotone cubic for the FOV) or ``linear`` (SLERP segment by segment).
  Rotations take the shortest way between consecutive keyframes, so a full turn needs at least
  three keyframes (0, 120, 240, 360...).

Before the first keyframe and after the last the camera holds still.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pano360.errors import Pano360Error
from pano360.io.jsonfile import read_json_file

__all__ = ["Keyframe", "EASINGS", "INTERPOLATIONS", "parse_keyframes", "load_keyframes", "ease", "camera_path", "KeyframePath"]

EASINGS = ("linear", "in", "out", "inout")
INTERPOLATIONS = ("smooth", "linear")


@dataclass(frozen=True)
class Keyframe:
    """One keyframe of the virtual camera (angles in degrees, ``t`` in seconds)."""

    t: float
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    hfov: float = 90.0
    ease: str = "linear"


def ease(s: np.ndarray, kind: str) -> np.ndarray:
    """Map segment progress ``s`` in [0, 1] through an easing curve (cubic ease in/out); shape kept.

    >>> ease(np.array([0.0, 0.5, 1.0]), "inout").tolist()
    [0.0, 0.5, 1.0]
    """
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, 1.0)
    if kind == "linear":
        return s
    if kind == "in":
        return s ** 3
    if kind == "out":
        return 1.0 - (1.0 - s) ** 3
    if kind == "inout":
        return s * s * (3.0 - 2.0 * s)
    raise ValueError(f"unknown easing {kind!r}; choose one of {', '.join(EASINGS)}")


MAX_TIME_S = 1e6  # keyframe times: about 11 days, past any video


def parse_keyframes(data: dict | list, defaults: dict[str, float] | None = None) -> tuple[list[Keyframe], str]:
    """Validate the keyframes JSON (a dict as documented above, or a bare list of keyframes).

    ``defaults`` (e.g. a preset's ``{"pitch": -90, "hfov": 270}``) stand where the first keyframe
    gives no value. Returns ``(keyframes, interpolation)``; raises Pano360Error with one line when
    malformed.
    """
    if isinstance(data, list):
        data = {"keyframes": data}
    if not isinstance(data, dict) or not isinstance(data.get("keyframes"), list) or not data["keyframes"]:
        raise Pano360Error('keyframes file needs a non-empty "keyframes" list')
    interp = str(data.get("interpolation", "smooth"))
    if interp not in INTERPOLATIONS:
        raise Pano360Error(f"unknown interpolation {interp!r}; choose one of {', '.join(INTERPOLATIONS)}")
    out: list[Keyframe] = []
    prev = Keyframe(t=0.0, **(defaults or {}))
    for i, kf in enumerate(data["keyframes"]):
        if not isinstance(kf, dict) or "t" not in kf:
            raise Pano360Error(f'keyframe {i} needs a time "t" in seconds')
        unknown = set(kf) - {"t", "yaw", "pitch", "roll", "hfov", "ease"}
        if unknown:
            raise Pano360Error(f"keyframe {i} has unknown fields: {', '.join(sorted(unknown))}")
        try:
            vals = {k: float(kf.get(k, getattr(prev, k))) for k in ("t", "yaw", "pitch", "roll", "hfov")}
        except (TypeError, ValueError):
            raise Pano360Error(f"keyframe {i} has a value that is not a number") from None
        if not all(np.isfinite(list(vals.values()))):
            raise Pano360Error(f"keyframe {i} has a value that is not finite")
        if abs(vals["t"]) > MAX_TIME_S:
            raise Pano360Error(f"keyframe {i}: time {vals['t']:g} s is beyond any video (at most {MAX_TIME_S:g} s)")
        easing = str(kf.get("ease", "linear"))
        if easing not in EASINGS:
            raise Pano360Error(f"keyframe {i}: unknown ease {easing!r}; choose one of {', '.join(EASINGS)}")
        if out and vals["t"] <= out[-1].t:
            raise Pano360Error(f"keyframe {i}: times must increase, got {vals['t']} after {out[-1].t}")
        if not 0.0 < vals["hfov"] < 360.0:
            raise Pano360Error(f"keyframe {i}: hfov must be in (0, 360) degrees, got {vals['hfov']}")
        prev = Keyframe(ease=easing, **vals)
        out.append(prev)
    return out, interp


def load_keyframes(path: str | Path, defaults: dict[str, float] | None = None) -> tuple[list[Keyframe], str]:
    """Read and validate a keyframes JSON file (see the module docstring and :func:`parse_keyframes`)."""
    return parse_keyframes(read_json_file(path, "keyframes"), defaults)


def _eased_knot_time(keyframes: list[Keyframe], times: np.ndarray) -> np.ndarray:
    """Each query time warped inside its segment by the easing of the keyframe that ends it."""
    kt = np.array([k.t for k in keyframes])
    q = np.clip(np.asarray(times, dtype=np.float64), kt[0], kt[-1])
    if len(kt) == 1:
        return q
    seg = np.clip(np.searchsorted(kt, q, side="right") - 1, 0, len(kt) - 2)
    t0, t1 = kt[seg], kt[seg + 1]
    s = (q - t0) / (t1 - t0)
    out = q.copy()
    for j, kf in enumerate(keyframes[1:]):
        sel = seg == j
        if np.any(sel):
            out[sel] = t0[sel] + (t1[sel] - t0[sel]) * ease(s[sel], kf.ease)
    return out


class KeyframePath:
    """The keyframed camera as a function of time, with its splines built once.

    ``path(times (N,))`` returns rotations ``(N, 3, 3)`` (camera to world) and hfov ``(N,)``;
    see :func:`camera_path`.
    """

    def __init__(self, keyframes: list[Keyframe], interpolation: str = "smooth") -> None:
        from scipy.interpolate import PchipInterpolator
        from scipy.spatial.transform import Rotation, RotationSpline, Slerp

        from pano360.project.rotation import euler_to_matrix

        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}")
        if not keyframes:
            raise ValueError("no keyframes")
        self.keyframes = list(keyframes)
        self.kt = np.array([k.t for k in keyframes])
        self.key_R = euler_to_matrix([k.yaw for k in keyframes], [k.pitch for k in keyframes], [k.roll for k in keyframes])
        self.key_f = np.array([k.hfov for k in keyframes])
        self._rot = self._fov = None
        if len(keyframes) >= 2:
            rots = Rotation.from_matrix(self.key_R)
            if interpolation == "smooth" and len(keyframes) >= 3:
                self._rot, self._fov = RotationSpline(self.kt, rots), PchipInterpolator(self.kt, self.key_f)
            else:
                self._rot, self._fov = Slerp(self.kt, rots), (lambda t: np.interp(t, self.kt, self.key_f))

    def __call__(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 1:
            raise ValueError(f"times must be (N,), got {times.shape}")
        if self._rot is None:
            return np.repeat(self.key_R, len(times), axis=0), np.full(len(times), self.key_f[0])
        warped = _eased_knot_time(self.keyframes, times)
        R = self._rot(warped).as_matrix()
        hfov = np.asarray(self._fov(warped), dtype=np.float64)
        # The spline's knots are exact only to rounding; snap frames that fall on a keyframe.
        rows, cols = np.nonzero(np.isclose(warped[:, None], self.kt[None, :], rtol=0.0, atol=1e-9))
        R[rows] = self.key_R[cols]
        hfov[rows] = self.key_f[cols]
        return R, hfov


def camera_path(keyframes: list[Keyframe], times: np.ndarray, interpolation: str = "smooth") -> tuple[np.ndarray, np.ndarray]:
    """The virtual camera at ``times (N,)``: rotations ``(N, 3, 3)`` (camera to world) and hfov ``(N,)``.

    Passes exactly through every keyframe; ``smooth`` is C2 in rotation between keyframes with
    linear easing. See the module docstring for the rules (and :class:`KeyframePath` to evaluate
    one path many times).
    """
    return KeyframePath(keyframes, interpolation)(times)
