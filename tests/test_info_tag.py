"""`pano360 info` and `pano360 tag` on the project's real 360 videos."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import av

from pano360.cli import main
from conftest import shared_file


def _run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_info_json_congo_v1_top_bottom(capsys):
    code, out, err = _run(["info", "--json", str(shared_file("video360/congo.mp4"))], capsys)
    assert code == 0 and err == ""
    d = json.loads(out)  # exactly one JSON object, nothing else on stdout
    assert out.count("\n") == 1
    assert (d["width"], d["height"], d["frame_count"], d["codec"], d["rotation_deg"]) == (1920, 1080, 300, "h264", 0)
    assert abs(d["fps"] - 29.9636) < 1e-3 and abs(d["duration_s"] - 10.012) < 0.01
    assert d["has_audio"] and d["audio_codec"] == "aac" and d["is_360"]
    sph = d["spherical"]
    assert (sph["projection"], sph["stereo"], sph["source"], sph["supported"]) == ("equirectangular", "top-bottom", "V1", True)
    assert sph["initial_view_deg"] == [0.0, 0.0, 0.0]


def test_info_mesh_unsupported(capsys):
    code, out, _ = _run(["info", "--json", str(shared_file("video360/sphericalv2.mp4"))], capsys)
    sph = json.loads(out)["spherical"]
    assert code == 0 and sph["projection"] == "mesh" and sph["supported"] is False and "mesh" in sph["reason"]
    code, out, _ = _run(["info", str(shared_file("video360/sphericalv2.mp4"))], capsys)
    assert "projection: mesh" in out and "UNSUPPORTED" in out


def test_info_plain_clip_is_not_360(capsys):
    code, out, _ = _run(["info", str(shared_file("clips/box.mp4"))], capsys)
    assert code == 0
    assert "360:        no" in out and "640x480" in out and "audio:      mp3" in out and "frames:     456" in out
    code, out, _ = _run(["info", "--json", str(shared_file("clips/box.mp4"))], capsys)
    d = json.loads(out)
    assert d["is_360"] is False and d["spherical"] is None


def _yuv_digests(path, n: int) -> list[str]:
    out = []
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        for f in c.decode(video=0):
            out.append(hashlib.sha1(f.to_ndarray(format="yuv420p").tobytes()).hexdigest())
            if len(out) == n:
                break
    return out


def _packet_digests(path) -> list[tuple[int, int | None, str]]:
    with av.open(str(path)) as c:
        return [(p.stream.index, p.pts, hashlib.sha1(bytes(p)).hexdigest()) for p in c.demux() if p.size]


def test_tag_real_video(tmp_path, capsys):
    src = shared_file("video360/testRoom1_1920Mono.mp4")
    before = src.stat().st_mtime_ns, src.stat().st_size
    out = tmp_path / "out.mp4"
    code, stdout, err = _run(["tag", str(src), str(out), "-q"], capsys)
    assert code == 0 and err == "" and stdout.strip() == f"wrote {out} (360 equirectangular, stereo none)"  # -q: the result line only
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temp file left
    assert (src.stat().st_mtime_ns, src.stat().st_size) == before
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json", "-show_entries",
                            "stream_side_data=side_data_type,projection", str(out)],
                           capture_output=True, text=True, check=True).stdout
    side = json.loads(probe)["streams"][0]["side_data_list"]
    assert {"side_data_type": "Spherical Mapping", "projection": "equirectangular"} in side
    # every packet byte-identical with the same timestamps (so every frame decodes the same), and
    # the first 60 decoded frames compared bit for bit (all 360: 4 s on an idle 2-core machine)
    pa, pb = _packet_digests(src), _packet_digests(out)
    assert len(pa) == 360 and pa == pb
    a, b = _yuv_digests(src, 60), _yuv_digests(out, 60)
    assert len(a) == 60 and a == b
    if shutil.which("exiftool"):
        tags = json.loads(subprocess.run(["exiftool", "-j", "-G1", "-a", str(out)], capture_output=True,
                                         text=True, check=True).stdout)[0]
        assert tags["XMP-GSpherical:ProjectionType"] == "equirectangular"
        assert tags["Track1:Stereoscopic3D"] == "Monoscopic" and "Track1:ProjectionBoundsTop" in tags
    code, out_json, _ = _run(["info", "--json", str(out)], capsys)
    sph = json.loads(out_json)["spherical"]
    assert (sph["projection"], sph["stereo"], sph["source"]) == ("equirectangular", "none", "V1+V2")
    # -y replaces, with another stereo mode
    code, _, _ = _run(["tag", str(src), str(out), "--stereo", "top-bottom", "-y", "-q"], capsys)
    code2, out_json, _ = _run(["info", "--json", str(out)], capsys)
    assert code == 0 and json.loads(out_json)["spherical"]["stereo"] == "top-bottom"
    # --json: one object, like every command's
    code, out_json, _ = _run(["tag", str(src), str(out), "--stereo", "left-right", "-y", "--json"], capsys)
    assert code == 0 and json.loads(out_json) == {"output": str(out), "input": str(src), "projection": "equirectangular",
                                                 "stereo": "left-right", "initial_view_deg": [0.0, 0.0, 0.0], "warnings": []}


def test_retagging_keeps_the_stereo_layout_and_initial_view(tmp_path, capsys):
    from pano360.io.spherical import inject_spherical, read_spherical

    # congo.mp4 has V1 metadata only, top-bottom stereo: tagging it again adds V2 of the same layout
    out = tmp_path / "congo.mp4"
    code, stdout, _ = _run(["tag", str(shared_file("video360/congo.mp4")), str(out), "-q"], capsys)
    assert code == 0 and "stereo top-bottom" in stdout
    assert (read_spherical(out).stereo, read_spherical(out).source) == ("top-bottom", "V1+V2")
    # an initial view survives tag and stabilize
    viewed = tmp_path / "viewed.mp4"
    inject_spherical(shared_file("video360/testRoom1_1920Mono.mp4"), viewed, initial_view_deg=(90.0, 10.0, 0.0))
    again = tmp_path / "again.mp4"
    assert _run(["tag", str(viewed), str(again), "-q"], capsys)[0] == 0
    assert read_spherical(again).initial_view_deg == (90.0, 10.0, 0.0)
    assert _run(["tag", str(viewed), str(again), "-y", "-q", "--stereo", "none"], capsys)[0] == 0
    assert read_spherical(again).stereo == "none"
