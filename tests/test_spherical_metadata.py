"""Spherical Video V1 + V2 metadata: injection into H.264/HEVC, mono/stereo, moov first/last, co64,
read back by our reader, ffprobe, exiftool and PyAV, media untouched."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from pano360.errors import Pano360Error
from pano360.io import mp4box
from pano360.io.mp4box import Box
from pano360.io.spherical import (
    V1_UUID, finalize_360, inject_spherical, read_spherical, spherical_output, v2_boxes,
)
from pano360.io.writer import VideoWriter
from conftest import shared_file


def _clip(path: Path, codec: str, moov_first: bool, frames: int = 8) -> Path:
    opts = {"movflags": "+faststart"} if moov_first else {}
    with av.open(str(path), "w", options=opts) as c:
        s = c.add_stream({"h264": "libx264", "hevc": "libx265"}[codec], rate=10)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.options = {"preset": "ultrafast", **({"x265-params": "log-level=error"} if codec == "hevc" else {})}
        if codec == "hevc":
            s.codec_tag = "hvc1"
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        rng = np.random.default_rng(0)
        for i in range(frames):
            img = rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for i in range(13):
            af = av.AudioFrame.from_ndarray(rng.standard_normal((1, 1024)).astype(np.float32) * 0.1,
                                            format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, i * 1024
            for p in a.encode(af):
                c.mux(p)
        for st in (s, a):
            for p in st.encode():
                c.mux(p)
    return path


def _top(path: Path) -> list[bytes]:
    return [t.type for t in mp4box.top_level(path)]


def _packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as c:
        return [(p.stream.index, bytes(p)) for p in c.demux() if p.size]


def _frames(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p").tobytes() for f in c.decode(video=0)]


def _ffprobe_sphere(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json", "-show_entries",
                          "stream_side_data=side_data_type,projection,type,yaw,pitch,roll", str(path)],
                         capture_output=True, text=True, check=True).stdout
    side = json.loads(out)["streams"][0].get("side_data_list", [])
    return {d["side_data_type"]: d for d in side}


STEREO_FFPROBE = {"none": "2D", "top-bottom": "top and bottom", "left-right": "side by side"}


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("moov_first", [True, False], ids=["moov-first", "moov-last"])
@pytest.mark.parametrize("stereo", ["none", "top-bottom", "left-right"])
def test_inject_roundtrip(tmp_path, codec, moov_first, stereo):
    src = _clip(tmp_path / "src.mp4", codec, moov_first)
    assert (_top(src).index(b"moov") < _top(src).index(b"mdat")) == moov_first
    before = src.read_bytes()
    out = tmp_path / "out.mp4"
    view = (30.0, -10.0, 0.0) if stereo == "none" else (0.0, 0.0, 0.0)
    inject_spherical(src, out, stereo=stereo, initial_view_deg=view)
    assert src.read_bytes() == before
    assert (_top(out).index(b"moov") < _top(out).index(b"mdat")) == moov_first  # layout kept

    info = read_spherical(out)
    assert info is not None and info.supported
    assert (info.projection, info.stereo, info.source, info.initial_view_deg) == ("equirectangular", stereo, "V1+V2", view)
    side = _ffprobe_sphere(out)
    assert side["Spherical Mapping"]["projection"] == "equirectangular"
    assert side["Stereo 3D"]["type"] == STEREO_FFPROBE[stereo]
    assert int(side["Spherical Mapping"]["yaw"]) == int(view[0])
    # media untouched: every packet (video and audio) byte-identical, so the decoded frames are too
    assert _packets(out) == _packets(src)
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert any("SPHERICAL" in str(sd.type) for sd in frame.side_data)
    # V1 box in the video trak, V2 boxes at the end of the avc1/hvc1 sample entry
    tops = mp4box.top_level(out)
    moov_top = next(t for t in tops if t.type == b"moov")
    with open(out, "rb") as f:
        f.seek(moov_top.offset)
        moov = mp4box.parse_boxes(f.read(moov_top.size))[0]
    trak = mp4box.video_trak(moov)
    assert [c.payload[:16] for c in trak.children if c.type == b"uuid"] == [V1_UUID]
    entry = mp4box.sample_entry(trak)
    assert entry.type == {"h264": b"avc1", "hevc": b"hvc1"}[codec]
    assert [c.type for c in entry.children][-2:] == [b"st3d", b"sv3d"]


def test_faststart_moves_moov_first_and_retag_replaces(tmp_path):
    src = _clip(tmp_path / "src.mp4", "h264", moov_first=False)
    first = tmp_path / "first.mp4"
    inject_spherical(src, first, stereo="top-bottom", faststart=True)
    assert _top(first).index(b"moov") < _top(first).index(b"mdat")
    assert _packets(first) == _packets(src) and _frames(first) == _frames(src)
    again = tmp_path / "again.mp4"
    inject_spherical(first, again, stereo="none")
    assert read_spherical(again).stereo == "none"
    dropped = len("<GSpherical:StereoMode>top-bottom</GSpherical:StereoMode>")
    assert again.stat().st_size == first.stat().st_size - dropped  # boxes replaced, not duplicated
    assert _packets(again) == _packets(src)


def _to_co64(path: Path, out: Path) -> None:
    """Rewrite every stco of a moov-last file as co64 (same offsets): a valid file needing no 4 GiB."""
    tops = mp4box.top_level(path)
    moov_top = next(t for t in tops if t.type == b"moov")
    assert tops[-1] is moov_top
    data = path.read_bytes()
    moov = mp4box.parse_boxes(data[moov_top.offset:])[0]
    n = 0
    for stbl in mp4box.find_all(moov, "trak/mdia/minf/stbl"):
        for b in stbl.children:
            if b.type == b"stco":
                offs = mp4box.chunk_offsets(b)
                b.type = b"co64"
                b.payload = b.payload[:4] + struct.pack(">I", len(offs)) + struct.pack(">%dQ" % len(offs), *offs)
                n += 1
    assert n == 2
    out.write_bytes(data[:moov_top.offset] + mp4box.serialize(moov))


def test_co64_tables_shifted(tmp_path):
    src = _clip(tmp_path / "src.mp4", "h264", moov_first=False)
    co = tmp_path / "co64.mp4"
    _to_co64(src, co)
    assert _packets(co) == _packets(src)  # the co64 file itself is valid
    out = tmp_path / "out.mp4"
    inject_spherical(co, out, stereo="left-right", faststart=True)  # moov moves in front: offsets grow
    assert _top(out).index(b"moov") < _top(out).index(b"mdat")
    moov_top = next(t for t in mp4box.top_level(out) if t.type == b"moov")
    moov = mp4box.parse_boxes(out.read_bytes()[moov_top.offset:moov_top.offset + moov_top.size])[0]
    kinds = {b.type for s in mp4box.find_all(moov, "trak/mdia/minf/stbl") for b in s.children}
    assert b"co64" in kinds and b"stco" not in kinds
    assert _packets(out) == _packets(src) and _frames(out) == _frames(src)
    assert read_spherical(out).stereo == "left-right"


def test_stco_upgraded_to_co64_past_4gib():
    """A synthetic moov whose chunks sit just under 4 GiB: a shift past 2**32 turns stco into co64."""
    offs = [0xFFFF_F000, 0xFFFF_FF00, 100]
    stco = Box(b"stco", payload=b"\0\0\0\0" + struct.pack(">I", 3) + struct.pack(">3I", *offs))
    co64 = Box(b"co64", payload=b"\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">Q", 5 << 32))
    hdlr = Box(b"hdlr", payload=b"\0" * 8 + b"vide" + b"\0" * 13)

    def trak(table):
        return Box(b"trak", children=[Box(b"mdia", children=[hdlr, Box(b"minf", children=[
            Box(b"stbl", children=[table])])])])

    moov = Box(b"moov", children=[trak(stco), trak(co64)])
    raw = mp4box.serialize(moov)
    assert mp4box.serialize(mp4box.parse_boxes(raw)[0]) == raw  # byte-exact round trip
    upgraded = mp4box.shift_chunk_offsets(moov, lambda o: o + 0x2000)
    assert upgraded and stco.type == b"co64" and co64.type == b"co64"
    assert mp4box.chunk_offsets(stco) == [o + 0x2000 for o in offs]
    assert mp4box.chunk_offsets(co64) == [(5 << 32) + 0x2000]
    assert mp4box.serialize(moov).__len__() == len(raw) + 3 * 4
    assert not mp4box.shift_chunk_offsets(moov, lambda o: o)  # already 64-bit: nothing to upgrade


def test_v2_box_layout():
    st3d, sv3d = v2_boxes("top-bottom", (90.0, 0.0, 0.0))
    assert mp4box.serialize(st3d) == struct.pack(">I4sIB", 13, b"st3d", 0, 1)
    raw = mp4box.serialize(sv3d)
    assert raw[4:8] == b"sv3d" and b"equi" in raw and b"prhd" in raw
    prhd = mp4box.find(sv3d, "proj/prhd")
    assert struct.unpack(">iii", prhd.payload[4:16]) == (90 << 16, 0, 0)


def test_read_real_files():
    congo = read_spherical(shared_file("video360/congo.mp4"))
    assert (congo.projection, congo.stereo, congo.source, congo.supported) == ("equirectangular", "top-bottom", "V1", True)
    mesh = read_spherical(shared_file("video360/sphericalv2.mp4"))
    assert (mesh.projection, mesh.source, mesh.supported) == ("mesh", "V1+V2", False) and "mesh" in mesh.reason
    assert read_spherical(shared_file("video360/testRoom1_1920Mono.mp4")) is None
    assert read_spherical(shared_file("clips/vtest.avi")) is None


def test_mesh_input_refused(tmp_path):
    with pytest.raises(Pano360Error, match="mesh"):
        inject_spherical(shared_file("video360/sphericalv2.mp4"), tmp_path / "o.mp4")


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exiftool_reads_v1_and_v2(tmp_path):
    src = _clip(tmp_path / "src.mp4", "hevc", moov_first=True)
    out = tmp_path / "out.mp4"
    inject_spherical(src, out, stereo="top-bottom", initial_view_deg=(45.0, 0.0, 0.0))
    tags = json.loads(subprocess.run(["exiftool", "-j", "-G1", "-a", str(out)], capture_output=True, text=True,
                                     check=True).stdout)[0]
    assert tags["XMP-GSpherical:Spherical"] is True or tags["XMP-GSpherical:Spherical"] == "true"
    assert tags["XMP-GSpherical:ProjectionType"] == "equirectangular"
    assert tags["XMP-GSpherical:StereoMode"] == "top-bottom"
    assert tags["XMP-GSpherical:InitialViewHeadingDegrees"] == 45
    v2 = {k.split(":", 1)[1]: v for k, v in tags.items() if k.startswith("Track1:")}
    assert v2["Stereoscopic3D"] == "Stereoscopic Top-Bottom" and v2["MetadataSource"] == "pano360"
    assert v2["PoseYawDegrees"] == 45 and v2["ProjectionBoundsTop"] == 0  # bounds exist only in `equi`


def test_spherical_output_helper(tmp_path):
    out = tmp_path / "pano.mp4"
    with spherical_output(out, stereo="none") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4"
        with VideoWriter(tmp, 64, 32, 10, preset="ultrafast", faststart=False) as w:
            for i in range(5):
                w.write(np.full((32, 64, 3), 40 * i, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["pano.mp4"]
    info = read_spherical(out)
    assert info.projection == "equirectangular" and _top(out).index(b"moov") < _top(out).index(b"mdat")
    with pytest.raises(RuntimeError):
        with spherical_output(tmp_path / "b.mp4") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("encoder died")
    assert [p.name for p in tmp_path.iterdir()] == ["pano.mp4"]
    enc = _clip(tmp_path / "enc.mp4", "h264", moov_first=False)
    finalize_360(enc, out, stereo="left-right", overwrite=True)
    assert not enc.exists() and read_spherical(out).stereo == "left-right"
