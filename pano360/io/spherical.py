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
    "STEREO_MODES", "V1_UUID", "v1_xml", "v2_boxes",
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


# ---------------------------------------------------------------------------------------------
# Writing


def _stereo_name(stereo: str) -> str:
    name = _STEREO_ALIASES.get(str(stereo).lower())
    if name is None:
        raise Pano360Error(f"unknown stereo mode {stereo!r}; choose one of {', '.join(STEREO_MODES)}")
    return name


def v1_xml(stereo: str = "none", initial_view_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> bytes:
    """The V1 ``rdf:SphericalVideo`` XML for a full-sphere equirectangular video."""
    stereo = _stereo_name(stereo)
    tags = [("Spherical", "true"), ("Stitched", "true"), ("StitchingSoftware", SOFTWARE),
            ("ProjectionType", "equirectangular")]
    if stereo != "none":
        tags.append(("StereoMode", stereo))
    yaw, pitch, roll = (float(a) for a in initial_view_deg)
    if (yaw, pitch, roll) != (0.0, 0.0, 0.0):
        tags += [("InitialViewHeadingDegrees", str(int(round(yaw)) % 360)),
                 ("InitialViewPitchDegrees", str(int(round(pitch)))),
                 ("InitialViewRollDegrees", str(int(round(roll))))]
    body = "".join(f"<GSpherical:{k}>{v}</GSpherical:{k}>" for k, v in tags)
    return ('<?xml version="1.0"?><rdf:SphericalVideo\n'
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"\n'
            'xmlns:GSpherical="http://ns.google.com/videos/1.0/spherical/">'
            f"{body}</rdf:SphericalVideo>").encode("utf-8")


def _full(kind: bytes, body: bytes) -> Box:
    """A full box (version 0, flags 0)."""
    return Box(kind, payload=b"\x00\x00\x00\x00" + body)


def _fixed(v: float) -> int:
    return int(round(float(v) * 65536.0))


def v2_boxes(stereo: str = "none", initial_view_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list[Box]:
    """``st3d`` and ``sv3d`` (svhd, proj{prhd, equi with zero bounds = full sphere}) boxes."""
    stereo = _stereo_name(stereo)
    yaw, pitch, roll = initial_view_deg
    st3d = _full(b"st3d", bytes([_ST3D_CODES[stereo]]))
    svhd = _full(b"svhd", SOFTWARE.encode("utf-8") + b"\x00")
    prhd = _full(b"prhd", struct.pack(">iii", _fixed(yaw), _fixed(pitch), _fixed(roll)))
    equi = _full(b"equi", struct.pack(">IIII", 0, 0, 0, 0))
    sv3d = Box(b"sv3d", children=[svhd, Box(b"proj", children=[prhd, equi])])
    return [st3d, sv3d]


def _tag_moov(moov: Box, stereo: str, initial_view_deg: tuple[float, float, float], where: str) -> None:
    """Replace any 360 metadata of the video track by V1 + V2 boxes (in place)."""
    trak = mp4box.video_trak(moov)
    if trak is None:
        raise Pano360Error(f"no video track in {where}")
    entry = mp4box.sample_entry(trak)
    if entry is None or entry.type not in mp4box.VISUAL_SAMPLE_ENTRIES or entry.children is None:
        kind = entry.type.decode("latin-1") if entry is not None else "none"
        raise Pano360Error(f"cannot tag video sample entry {kind!r} in {where} (H.264/HEVC MP4 expected)")
    trak.children = [c for c in trak.children if not (c.type == b"uuid" and c.payload[:16] == V1_UUID)]
    trak.children.append(Box(b"uuid", payload=V1_UUID + v1_xml(stereo, initial_view_deg)))
    entry.children = [c for c in entry.children if c.type not in (b"st3d", b"sv3d")]
    entry.children.extend(v2_boxes(stereo, initial_view_deg))


def _copy_range(src, dst, offset: int, size: int, chunk: int = 8 << 20) -> None:
    src.seek(offset)
    left = size
    while left:
        buf = src.read(min(chunk, left))
        if not buf:
            raise Pano360Error("input ended early while copying (file changed or truncated)")
        dst.write(buf)
        left -= len(buf)


def inject_spherical(src: str | Path, dst: str | Path, stereo: str = "none",
                     initial_view_deg: tuple[float, float, float] = (0.0, 0.0, 0.0), *,
                     faststart: bool | None = None) -> None:
    """Copy an MP4 to ``dst`` with Spherical Video V1 and V2 metadata (full-sphere equirectangular).

    No re-encoding: the media data is copied byte for byte, the ``moov`` gets the V1 ``uuid`` box
    in the video ``trak`` and ``st3d``/``sv3d`` in its ``avc1``/``hvc1`` sample entry, and every
    ``stco``/``co64`` chunk offset is moved with the data (a 32-bit table that would pass 4 GiB
    becomes ``co64``). ``faststart``: True puts the moov first, False keeps the input's layout
    (None, the default). Existing 360 metadata is replaced; a mesh/cubemap video is refused.
    ``dst`` is written directly: wrap it in :func:`pano360.io.atomic.atomic_output`.
    """
    src, dst = Path(src), Path(dst)
    stereo = _stereo_name(stereo)
    if len(tuple(initial_view_deg)) != 3:
        raise Pano360Error(f"initial view must be (yaw, pitch, roll) degrees, got {initial_view_deg}")
    try:
        tops, moov = _read_moov(src)
    except Mp4Error as exc:
        raise Pano360Error(f"not a complete MP4 ({exc}): {src}") from None
    if any(t.type in (b"moof", b"mvex") for t in tops) or mp4box.find(moov, "mvex") is not None:
        raise Pano360Error(f"fragmented MP4 is not supported: {src}")
    existing = read_spherical(src)
    if existing is not None and existing.projection not in ("equirectangular", "unknown"):
        raise Pano360Error(f"{src} is a {existing.projection}-projection 360 video; only equirectangular can be tagged")
    _tag_moov(moov, stereo, tuple(float(a) for a in initial_view_deg), str(src))

    moov_top = next(t for t in tops if t.type == b"moov")
    others = [t for t in tops if t is not moov_top]
    if faststart:
        first_media = next((i for i, t in enumerate(others) if t.type == b"mdat"), len(others))
        order = others[:first_media] + [moov_top] + others[first_media:]
    else:
        order = tops
    original = mp4box.serialize(moov)
    moov_size = len(original)
    for _ in range(4):  # converges in <= 2 passes (only a stco -> co64 upgrade changes the size)
        new_pos: dict[int, int] = {}
        pos = 0
        for t in order:
            new_pos[t.offset] = pos
            pos += moov_size if t is moov_top else t.size
        starts = sorted((t.offset, t.offset + t.size, new_pos[t.offset]) for t in others)

        def move(offset: int) -> int:
            for a, b, new in starts:
                if a <= offset < b:
                    return offset - a + new
            raise Pano360Error(f"chunk offset {offset} points outside the media boxes of {src}")

        candidate = mp4box.parse_boxes(original)[0]
        mp4box.shift_chunk_offsets(candidate, move)
        data = mp4box.serialize(candidate)
        if len(data) == moov_size:
            break
        moov_size = len(data)
    else:  # pragma: no cover - defensive
        raise Pano360Error(f"could not lay out the tagged moov of {src}")
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for t in order:
            if t is moov_top:
                fout.write(data)
            else:
                _copy_range(fin, fout, t.offset, t.size)


def finalize_360(encoded: str | Path, out: str | Path, stereo: str = "none", overwrite: bool = False,
                 initial_view_deg: tuple[float, float, float] = (0.0, 0.0, 0.0), *,
                 remove_encoded: bool = True) -> Path:
    """Turn an encoded temporary MP4 into the final 360 file: inject V1 + V2 metadata (moov first)
    into an atomic output at ``out``; the temporary file is removed afterwards (and on failure)."""
    from pano360.io.atomic import atomic_output

    encoded = Path(encoded)
    try:
        with atomic_output(out, overwrite=overwrite) as tmp:
            inject_spherical(encoded, tmp, stereo=stereo, initial_view_deg=initial_view_deg, faststart=True)
    finally:
        if remove_encoded:
            encoded.unlink(missing_ok=True)
    return Path(out)


@contextmanager
def spherical_output(out: str | Path, overwrite: bool = False, stereo: str = "none",
                     initial_view_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Iterator[Path]:
    """Yield a temporary ``.mp4`` path beside ``out`` for an encoder; on success the file becomes
    ``out`` tagged as 360 (via :func:`finalize_360`), on any error nothing is left behind.

    >>> with spherical_output("pano.mp4", overwrite=True) as tmp:   # doctest: +SKIP
    ...     with VideoWriter(tmp, 2048, 1024, 30) as w:
    ...         w.write(rgb)
    """
    import os
    import tempfile

    from pano360.io.atomic import check_output_path, naming_output
    from pano360.signals import held_stop_signals

    out = Path(out)
    check_output_path(out, overwrite)
    _stereo_name(stereo)
    parent = out.parent if str(out.parent) else Path(".")
    tmp = None
    try:
        with held_stop_signals():  # the file exists only once something is there to remove it
            fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".enc.mp4", dir=parent)
            tmp = Path(name)
            os.close(fd)
        yield tmp
    except BaseException as exc:
        if tmp is None:
            raise
        tmp.unlink(missing_ok=True)
        raise naming_output(exc, tmp, out)
    finalize_360(tmp, out, stereo=stereo, overwrite=overwrite, initial_view_deg=initial_view_deg)
