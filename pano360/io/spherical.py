"""Spherical Video metadata in MP4: read V1 (XML ``uuid``) and V2 (``st3d``/``sv3d``), inject both.

V1 (google/spatial-media docs/spherical-video-rfc.md): a ``uuid`` box
``ffcc8263-f855-4a93-8814-587a02521fdd`` directly in the video ``trak`` holding
``rdf:SphericalVideo`` XML. V2 (spherical-video-v2-rfc.md): ``st3d`` (stereo mode byte) and
``sv3d { svhd, proj { prhd, equi | cbmp | mshp } }`` inside the video sample entry
(``avc1``/``hvc1``) after its decoder configuration. Inserting boxes moves ``mdat`` when the
moov comes first, so every ``stco``/``co64`` chunk offset is rewritten.
"""

from __future__ import annotations

import re
import shutil
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pano360.errors import Pano360Error
from pano360.io import mp4box
from pano360.io.mp4box import Box, Mp4Error

__all__ = [
    "SphericalInfo", "read_spherical", "inject_spherical", "finalize_360", "spherical_output",
    "STEREO_MODES", "V1_UUID",
]

V1_UUID = bytes.fromhex("ffcc8263f8554a938814587a02521fdd")
STEREO_MODES = ("none", "top-bottom", "left-right")
_STEREO_ALIASES = {"mono": "none", "none": "none", "top-bottom": "top-bottom", "left-right": "left-right",
                   "tb": "top-bottom", "lr": "left-right"}
_ST3D_CODES = {"none": 0, "top-bottom": 1, "left-right": 2}
_ST3D_NAMES = {0: "none", 1: "top-bottom", 2: "left-right", 3: "custom"}
_PROJ_NAMES = {b"equi": "equirectangular", b"cbmp": "cubemap", b"mshp": "mesh"}
SOFTWARE = "pano360"


@dataclass(frozen=True)
class SphericalInfo:
    """The 360 metadata of a video.

    ``projection``: "equirectangular", "cubemap", "mesh" or "unknown". ``stereo``: "none",
    "top-bottom", "left-right" (or "custom"). ``initial_view_deg``: (yaw, pitch, roll).
    ``source``: "V2", "V1" or "V1+V2" (V2 wins where both are present, as players do).
    ``supported``: pano360 can process it (a full-sphere equirectangular); ``reason`` says why not.
    """

    projection: str
    stereo: str
    initial_view_deg: tuple[float, float, float]
    source: str
    supported: bool
    reason: str = ""

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return {"projection": self.projection, "stereo": self.stereo,
                "initial_view_deg": list(self.initial_view_deg), "source": self.source,
                "supported": self.supported, "reason": self.reason}


# ---------------------------------------------------------------------------------------------
# Reading


def _read_moov(path: Path) -> tuple[list[mp4box.TopBox], Box]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        tops = list(mp4box.iter_top_level(f, size))
        moovs = [t for t in tops if t.type == b"moov"]
        if not moovs:
            raise Mp4Error("no moov box")
        t = moovs[0]
        f.seek(t.offset)
        data = f.read(t.size)
    return tops, mp4box.parse_boxes(data)[0]


def _v1_fields(xml: str) -> dict[str, str]:
    """GSpherical:* tags of a V1 XML document, values stripped (tolerant of sloppy XML)."""
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"<GSpherical:(\w+)>(.*?)</GSpherical:\1>", xml, re.S)}


def _fixed16(v: int) -> float:
    return v / 65536.0


def _read_v2(entry: Box) -> dict | None:
    st3d = mp4box.find(entry, "st3d")
    sv3d = mp4box.find(entry, "sv3d")
    if st3d is None and sv3d is None:
        return None
    out: dict = {"stereo": "none", "projection": "unknown", "view": (0.0, 0.0, 0.0), "cropped": False}
    if st3d is not None and len(st3d.payload) >= 5:
        out["stereo"] = _ST3D_NAMES.get(st3d.payload[4], "custom")
    if sv3d is not None:
        proj = mp4box.find(sv3d, "proj")
        for child in (proj.children if proj is not None else []) or []:
            if child.type == b"prhd" and len(child.payload) >= 16:
                yaw, pitch, roll = struct.unpack_from(">iii", child.payload, 4)
                out["view"] = (_fixed16(yaw), _fixed16(pitch), _fixed16(roll))
            elif child.type in _PROJ_NAMES:
                out["projection"] = _PROJ_NAMES[child.type]
                if child.type == b"equi" and len(child.payload) >= 20:
                    out["cropped"] = any(struct.unpack_from(">IIII", child.payload, 4))
    elif st3d is not None:
        out["projection"] = "none"
    return out


def _read_v1(trak: Box) -> dict | None:
    for child in trak.children or []:
        if child.type == b"uuid" and child.payload[:16] == V1_UUID:
            fields = _v1_fields(child.payload[16:].decode("utf-8", "replace"))
            if fields.get("Spherical", "").lower() != "true":
                continue
            stereo = _STEREO_ALIASES.get(fields.get("StereoMode", "mono").lower(), "custom")
            view = tuple(float(fields.get(k, 0) or 0) for k in
                         ("InitialViewHeadingDegrees", "InitialViewPitchDegrees", "InitialViewRollDegrees"))
            cropped = False
            try:
                fw, fh = int(fields["FullPanoWidthPixels"]), int(fields["FullPanoHeightPixels"])
                cw = int(fields.get("CroppedAreaImageWidthPixels", fw))
                ch = int(fields.get("CroppedAreaImageHeightPixels", fh))
                cropped = (cw, ch) != (fw, fh)
            except (KeyError, ValueError):
                pass
            return {"stereo": stereo, "projection": fields.get("ProjectionType", "unknown").lower(),
                    "view": view, "cropped": cropped}
    return None


def read_spherical(path: str | Path) -> SphericalInfo | None:
    """The Spherical Video metadata of an MP4/MOV, or None when it has none (or is no MP4).

    V2 boxes take precedence over the V1 XML. A mesh or cubemap projection, a cropped
    (partial-sphere) ERP or a custom stereo layout is reported with ``supported=False``.
    """
    try:
        _, moov = _read_moov(Path(path))
    except (Mp4Error, OSError):
        return None
    trak = mp4box.video_trak(moov)
    if trak is None:
        return None
    entry = mp4box.sample_entry(trak)
    v2 = _read_v2(entry) if entry is not None and entry.children is not None else None
    v1 = _read_v1(trak)
    if v1 is None and (v2 is None or v2["projection"] == "none"):
        return None
    if v2 is not None and v2["projection"] != "none":
        main, source = v2, "V1+V2" if v1 is not None else "V2"
    else:
        main, source = v1, "V1"
        if v2 is not None:  # st3d alone next to V1 XML: the st3d stereo mode wins
            main = dict(v1, stereo=v2["stereo"])
            source = "V1+V2"
    projection = main["projection"]
    reason = ""
    if projection != "equirectangular":
        reason = f"{projection} projection is not supported (only equirectangular)"
    elif main["cropped"]:
        reason = "partial-sphere (cropped) equirectangular is not supported"
    elif main["stereo"] not in STEREO_MODES:
        reason = f"stereo mode {main['stereo']} is not supported"
    view = tuple(round(float(a), 4) for a in main["view"])
    return SphericalInfo(projection, main["stereo"], view, source, supported=not reason, reason=reason)
