"""The README's main command (`pano360 convert ../shared/data/clips/box.mp4 box360.mp4 -y`) on a
1.5 s cut of that real clip: rotations estimated, a 360 MP4 with the clip's own (MP3) audio."""

from __future__ import annotations

import json
import subprocess

from pano360.cli import main
from tests.conftest import shared_file


def test_readme_command_on_a_cut_of_a_real_clip(tmp_path, capsys):
    cut = tmp_path / "box_cut.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(shared_file("clips/box.mp4")), "-t", "1.5", "-c", "copy", str(cut)],
                   check=True)
    out = tmp_path / "box360.mp4"
    assert main(["convert", str(cut), str(out), "-y", "--width", "512"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out}")
    assert "backend: mosaic" in captured.err  # auto says what it chose, and why
    streams = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height:stream_side_data=projection",
         "-of", "json", str(out)], capture_output=True, text=True, check=True).stdout)["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = [s["codec_name"] for s in streams if s["codec_type"] == "audio"]
    assert (video["width"], video["height"]) == (512, 256)
    assert any(d.get("projection") == "equirectangular" for d in video.get("side_data_list", []))
    assert audio == ["mp3"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
