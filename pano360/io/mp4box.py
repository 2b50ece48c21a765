"""ISO base media (MP4/MOV) boxes: walk the top level of a file, parse ``moov`` into a tree, write it back.

Only what 360 metadata needs: container boxes are parsed into children, every other box keeps its
payload as bytes, so ``serialize(parse(b)) == b`` for any well-formed box. Chunk offsets
(``stco``/``co64``) can be shifted when boxes before ``mdat`` change size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

__all__ = [
    "TopBox", "Box", "iter_top_level", "top_level", "parse_box", "parse_boxes", "serialize", "find", "find_all",
    "video_trak", "sample_entry", "chunk_offsets", "shift_chunk_offsets", "Mp4Error",
    "VISUAL_SAMPLE_ENTRIES",
]


class Mp4Error(ValueError):
    """The bytes are not a well-formed MP4 box structure (truncated, bad sizes)."""


# Boxes whose payload is a plain list of child boxes.
_CONTAINERS = {
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex", b"udta",
    b"sv3d", b"proj", b"moof", b"traf", b"sinf", b"schi",
}
# Full boxes (4 bytes version/flags + a 4-byte entry count) whose entries are boxes.
_ENTRY_CONTAINERS = {b"stsd": 8}
# Visual sample entries: 8 bytes SampleEntry + 70 bytes VisualSampleEntry before the child boxes.
VISUAL_SAMPLE_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v", b"av01", b"vp09", b"dvh1", b"dvhe"}
_VISUAL_HEADER = 78


@dataclass(frozen=True)
class TopBox:
    """A top-level box as found in the file: its 4-character type, where it starts, its total size."""

    type: bytes
    offset: int
    size: int
    header_size: int


@dataclass
class Box:
    """A parsed box. Containers have ``children`` (and ``prefix``: bytes before the children, e.g.
    stsd's version/count or a sample entry's fixed fields); leaves keep ``payload``."""

    type: bytes
    payload: bytes = b""
    children: list["Box"] | None = None
    prefix: bytes = b""
    large: bool = False  # written with a 64-bit size (kept as found)

    def body(self) -> bytes:
        """The box's contents after its header."""
        if self.children is None:
            return self.payload
        return self.prefix + b"".join(serialize(c) for c in self.children)

    def size(self) -> int:
        """Total size in bytes, header included."""
        return len(serialize(self))


def iter_top_level(f: BinaryIO, file_size: int) -> Iterator[TopBox]:
    """Walk the top-level boxes of an open file. Raises Mp4Error if a box runs past the end."""
    pos = 0
    while pos < file_size:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            raise Mp4Error(f"truncated box header at byte {pos}")
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            ext = f.read(8)
            if len(ext) < 8:
                raise Mp4Error(f"truncated box header at byte {pos}")
            size = struct.unpack(">Q", ext)[0]
            header = 16
        elif size == 0:  # box runs to the end of the file
            size = file_size - pos
        if size < header:
            raise Mp4Error(f"bad size {size} for box {kind!r} at byte {pos}")
        if pos + size > file_size:
            raise Mp4Error(f"box {kind.decode('latin-1')!r} at byte {pos} needs {size} bytes, "
                           f"only {file_size - pos} left (file truncated)")
        yield TopBox(kind, pos, size, header)
        pos += size


def top_level(path: str | Path) -> list[TopBox]:
    """The top-level boxes of a file (Mp4Error if it is not a whole box structure)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        return list(iter_top_level(f, size))


def parse_boxes(data: bytes) -> list[Box]:
    """Parse a run of boxes that fills ``data`` exactly."""
    out: list[Box] = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 8:
            raise Mp4Error(f"{n - pos} stray bytes after the last box")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        large = False
        if size == 1:
            if n - pos < 16:
                raise Mp4Error("truncated 64-bit box size")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
            large = True
        elif size == 0:
            size = n - pos
        if size < header or pos + size > n:
            raise Mp4Error(f"box {kind!r} of size {size} does not fit in its parent")
        out.append(parse_box(kind, data[pos + header:pos + size], large))
        pos += size
    return out


def parse_box(kind: bytes, body: bytes, large: bool = False) -> Box:
    """Parse one box's body (recursively for the containers we know)."""
    if kind in _CONTAINERS:
        return Box(kind, children=parse_boxes(body), large=large)
    if kind in _ENTRY_CONTAINERS:
        skip = _ENTRY_CONTAINERS[kind]
        return Box(kind, prefix=body[:skip], children=parse_boxes(body[skip:]), large=large)
    if kind in VISUAL_SAMPLE_ENTRIES and len(body) >= _VISUAL_HEADER:
        try:
            return Box(kind, prefix=body[:_VISUAL_HEADER], children=parse_boxes(body[_VISUAL_HEADER:]), large=large)
        except Mp4Error:  # some writers pad sample entries with junk: keep the bytes as they are
            return Box(kind, payload=body, large=large)
    return Box(kind, payload=body, large=large)


def serialize(box: Box) -> bytes:
    """The bytes of a box, header included."""
    body = box.body()
    if box.large or len(body) + 8 > 0xFFFFFFFF:
        return struct.pack(">I4sQ", 1, box.type, len(body) + 16) + body
    return struct.pack(">I4s", len(body) + 8, box.type) + body


def find(box: Box, path: str) -> Box | None:
    """The first descendant along a slash path of types, e.g. ``find(trak, "mdia/minf/stbl/stsd")``."""
    found = find_all(box, path)
    return found[0] if found else None


def find_all(box: Box, path: str) -> list[Box]:
    """Every descendant along a slash path of types."""
    level = [box]
    for part in path.split("/"):
        kind = part.encode("latin-1")
        level = [c for b in level for c in (b.children or []) if c.type == kind]
    return level


def _handler(trak: Box) -> bytes:
    hdlr = find(trak, "mdia/hdlr")
    if hdlr is None or len(hdlr.payload) < 12:
        return b""
    return hdlr.payload[8:12]


def video_trak(moov: Box) -> Box | None:
    """The first video track (handler ``vide``) of a parsed moov box."""
    for trak in find_all(moov, "trak"):
        if _handler(trak) == b"vide":
            return trak
    return None


def sample_entry(trak: Box) -> Box | None:
    """The first sample entry (e.g. ``avc1``/``hvc1``) of a track."""
    stsd = find(trak, "mdia/minf/stbl/stsd")
    if stsd is None or not stsd.children:
        return None
    return stsd.children[0]


def chunk_offsets(box: Box) -> list[int]:
    """The chunk offsets of one ``stco`` or ``co64`` box."""
    count = struct.unpack_from(">I", box.payload, 4)[0]
    fmt = ">%dI" % count if box.type == b"stco" else ">%dQ" % count
    return list(struct.unpack_from(fmt, box.payload, 8))


def _set_offsets(box: Box, offsets: list[int]) -> None:
    head = box.payload[:4] + struct.pack(">I", len(offsets))
    if box.type == b"stco":
        box.payload = head + struct.pack(">%dI" % len(offsets), *offsets)
    else:
        box.payload = head + struct.pack(">%dQ" % len(offsets), *offsets)


def shift_chunk_offsets(moov: Box, shift: Callable[[int], int]) -> bool:
    """Replace every chunk offset ``o`` in the moov by ``shift(o)``.

    A 32-bit ``stco`` whose new offsets pass 4 GiB becomes a ``co64`` (and the moov grows by
    4 bytes per chunk: the caller must recompute the shift and call again). Returns True when
    some table was upgraded so.
    """
    upgraded = False
    for stbl in find_all(moov, "trak/mdia/minf/stbl"):
        for box in stbl.children or []:
            if box.type not in (b"stco", b"co64"):
                continue
            new = [shift(o) for o in chunk_offsets(box)]
            if any(o < 0 for o in new):
                raise Mp4Error("chunk offset moved before the start of the file")
            if box.type == b"stco" and any(o > 0xFFFFFFFF for o in new):
                box.type = b"co64"
                upgraded = True
            _set_offsets(box, new)
    return upgraded
