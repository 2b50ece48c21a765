"""Bad input gets one line on stderr, the right exit code, no traceback, no file left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from pano360.cli import main
from conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]


def _clip(path: Path, moov_first: bool, frames: int = 12) -> Path:
    opts = {"movflags": "+faststart"} if moov_first else {}
    with av.open(str(path), "w", options=opts) as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.options = {"preset": "ultrafast"}
        rng = np.random.default_rng(0)
        for _ in range(frames):
            img = rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for i in range(8):
            frame.pts = i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _bad_inputs(d: Path) -> dict[str, Path]:
    import cv2

    d.mkdir()
    good_first = _clip(d / "good_first.mp4", moov_first=True)
    good_last = _clip(d / "good_last.mp4", moov_first=False)
    cases = {"missing": d / "missing.mp4"}
    (d / "empty.mp4").write_bytes(b"")
    cases["empty"] = d / "empty.mp4"
    (d / "text.mp4").write_text("this is not a video\n")
    cases["text"] = d / "text.mp4"
    data = good_first.read_bytes()
    (d / "truncated_moov_first.mp4").write_bytes(data[: len(data) * 2 // 3])
    cases["truncated_moov_first"] = d / "truncated_moov_first.mp4"
    data = good_last.read_bytes()
    (d / "truncated_moov_last.mp4").write_bytes(data[: len(data) - 200])
    cases["truncated_moov_last"] = d / "truncated_moov_last.mp4"
    cases["audio_only"] = _audio_only(d / "audio_only.m4a")
    img = np.random.default_rng(1).integers(0, 255, (32, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(d / "still.png"), img)
    cv2.imwrite(str(d / "still.jpg"), img)
    cases["still_png"] = d / "still.png"
    cases["still_jpg"] = d / "still.jpg"
    shutil.copy(d / "still.png", d / "still_named.mp4")
    cases["still_named_mp4"] = d / "still_named.mp4"
    (d / "folder.mp4").mkdir()
    cases["folder"] = d / "folder.mp4"
    good_first.unlink()
    good_last.unlink()
    return cases


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return _bad_inputs(tmp_path_factory.mktemp("bad") / "in")


EXPECTED_CODE = {"missing": 2, "folder": 2}  # a path the user mistyped is a usage error; bad content fails (1)
WORDS = {"missing": "not found", "empty": "empty", "text": "not a video", "truncated_moov_first": "truncated",
         "truncated_moov_last": "truncated", "audio_only": "audio-only", "still_png": "still image",
         "still_jpg": "still image", "still_named_mp4": "still image", "folder": "folder"}


def _digest(p: Path) -> str | None:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("case", sorted(WORDS))
@pytest.mark.parametrize("cmd", ["info", "tag"])
def test_bad_input_one_line(case, cmd, bad, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PANO360_DEBUG", raising=False)
    src = bad[case]
    before = _digest(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    argv = ["info", str(src)] if cmd == "info" else ["tag", str(src), str(out_dir / "x.mp4")]
    code, out, err = _run(argv, capsys)
    assert code == EXPECTED_CODE.get(case, 1), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert WORDS[case] in lines[0]
    assert "Traceback" not in err and out == ""
    assert list(out_dir.iterdir()) == []
    assert _digest(src) == before


def test_usage_errors_for_outputs(tmp_path, capsys):
    src = _clip(tmp_path / "eq.mp4", moov_first=False)
    before = _digest(src)
    # OUT == IN, missing folder, existing OUT without -y: exit 2, one line, input untouched
    for argv, word in ([["tag", str(src), str(src)], "same file"],
                       [["tag", str(src), str(tmp_path / "nope" / "o.mp4")], "folder does not exist"],
                       [["tag", str(src), str(tmp_path / "same.mp4"), "--stereo", "sideways"], "sideways"]):
        code, out, err = _run(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and word in err, (argv, err)
    (tmp_path / "exists.mp4").write_bytes(b"keep me")
    for cmd in (["tag"], ["convert"], ["reframe"], ["stabilize"]):
        # An MP4 under another name would mislead players and editors: refused before any work.
        code, out, err = _run(cmd + [str(src), str(tmp_path / "out.mkv")], capsys)
        assert code == 2 and err.strip() == "Error: output must be named .mp4, .m4v or .mov (an MP4 file is written), got 'out.mkv'", (cmd, err)
    code, _, err = _run(["tag", str(src), str(tmp_path / "exists.mp4")], capsys)
    assert code == 2 and "-y" in err
    assert (tmp_path / "exists.mp4").read_bytes() == b"keep me"
    assert _digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eq.mp4", "exists.mp4"]


def test_pipes_long_names_and_full_disks_are_named_plainly(tmp_path, capsys):
    import errno
    import os

    from pano360.io.atomic import atomic_output

    src = _clip(tmp_path / "eq.mp4", moov_first=False)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    code, _, err = _run(["info", str(fifo)], capsys)
    assert code == 2 and "must be a regular file, not a pipe" in err
    code, _, err = _run(["info", "-"], capsys)
    assert code == 2 and "standard input is not supported" in err
    long = tmp_path / ("a" * 240 + ".mp4")  # a valid name, but its hidden temporary twin would not be
    code, _, err = _run(["tag", str(src), str(long)], capsys)
    assert code == 2 and "file name is too long (244 bytes; at most 236)" in err
    target = tmp_path / "out.mp4"
    with pytest.raises(OSError) as caught:
        with atomic_output(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert caught.value.filename == str(target)  # the CLI prints "No space left on device: out.mp4"


def test_mesh_video_refused(tmp_path, capsys):
    mesh = shared_file("video360/sphericalv2.mp4")
    code, _, err = _run(["tag", str(mesh), str(tmp_path / "o.mp4")], capsys)
    assert code == 1 and "mesh" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_installed_script_one_line(bad, tmp_path):
    """The real console script: exit code and exactly one stderr line, no traceback."""
    exe = Path(sys.executable).with_name("pano360")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from pano360.cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if k != "PANO360_DEBUG"}
    r = subprocess.run(cmd + ["info", str(bad["text"])], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"Error: not a video file (unknown or damaged format): {bad['text']}"]
    r = subprocess.run(cmd + ["info", str(bad["text"])], capture_output=True, text=True, timeout=60,
                       env={**env, "PANO360_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_debug_flag_and_unexpected_errors(bad, capsys, monkeypatch):
    monkeypatch.delenv("PANO360_DEBUG", raising=False)
    with pytest.raises(Exception, match="not a video"):
        main(["--debug", "info", str(bad["text"])])
    capsys.readouterr()
    code, _, err = _run(["info", str(bad["text"])], capsys)  # the flag does not stick
    assert code == 1 and err.count("\n") == 1

    import pano360.io.probe as probe

    def boom(path):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(probe, "validate_video_input", boom)
    code, out, err = _run(["info", str(bad["text"])], capsys)
    assert code == 1 and err == "Error: unexpected RuntimeError: kaboom second line (run with --debug for the traceback)\n"

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(probe, "validate_video_input", denied)
    code, out, err = _run(["info", str(bad["text"])], capsys)
    assert code == 1 and err == f"Error: Permission denied: {bad['text']}\n"


def test_a_commands_exit_code_reaches_the_shell():
    """`typer.Exit(code)` inside a command is returned by main(), not swallowed as 0."""
    import typer

    from pano360 import cli

    def failing() -> None:
        raise typer.Exit(code=3)

    cli.app.command("_exit_probe", hidden=True)(failing)
    try:
        assert cli.main(["_exit_probe"]) == 3
    finally:
        cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.name != "_exit_probe"]


def test_convert_refuses_a_360_video(tmp_path, capsys):
    """A 360 video given to convert (which makes one from a flat clip) is refused, not wrapped again."""
    congo = shared_file("video360/congo.mp4")
    before = _digest(congo)
    code, out, err = _run(["convert", str(congo), str(tmp_path / "o.mp4")], capsys)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "already a 360 video (equirectangular, stereo top-bottom" in err and "reframe" in err
    assert list(tmp_path.iterdir()) == [] and _digest(congo) == before


def test_second_outputs_are_checked_like_the_first_before_any_work(tmp_path, capsys):
    """--save-trajectory, --preview and --report may be no input, no other output, no existing file
    without -y, and have their own kind of name: refused (exit 2) before anything is written."""
    src = _clip(tmp_path / "clip.mp4", moov_first=False)
    (tmp_path / "old.json").write_text("keep me")
    before = _digest(src)
    out = str(tmp_path / "o.mp4")
    for extra, word in ([["--save-trajectory", str(src)], "--save-trajectory must be named .json"],
                        [["--preview", str(src)], "--preview must be named .png"],
                        [["--preview", out[:-4] + ".png", "--save-trajectory", out[:-4] + ".png"], "is the same file as the --save-trajectory"],
                        [["--save-trajectory", str(tmp_path / "old.json")], "--save-trajectory exists"],
                        [["--preview", str(tmp_path / "no" / "p.png")], "--preview folder does not exist"]):
        code, _, err = _run(["convert", str(src), out, "--width", "256"] + extra, capsys)
        assert code == 2 and err.strip().splitlines() == [err.strip()] and word in err, (extra, err)
    code, _, err = _run(["stabilize", str(src), out, "--save-trajectory", str(tmp_path / "old.json")], capsys)
    assert code == 2  # the input is no 360 video or the trajectory exists: either way, nothing written
    batch_in = tmp_path / "in"
    batch_in.mkdir()
    shutil.copy(src, batch_in / "a.mp4")
    for argv, word in ([["batch", str(batch_in), str(tmp_path / "bo"), "--report", str(batch_in / "a.mp4")], "--report must be named .json"],
                       [["batch", str(batch_in), str(batch_in)], "the output folder is the input folder"],
                       [["batch", str(src), str(tmp_path / "bo")], "input is a file"]):
        code, _, err = _run(argv, capsys)
        assert code == 2 and word in err, (argv, err)
    assert _digest(src) == before and _digest(batch_in / "a.mp4") == before
    assert (tmp_path / "old.json").read_text() == "keep me"
    assert not (tmp_path / "o.mp4").exists() and not list((tmp_path / "bo").glob("*.mp4"))


def test_a_trajectory_of_another_clip_or_no_rotations_is_refused(tmp_path, capsys):
    import json

    from pano360.trajectory import Trajectory

    src = _clip(tmp_path / "clip.mp4", moov_first=False)  # 12 frames at 10 fps
    full = Trajectory(np.arange(12) / 10.0, np.repeat(np.eye(3)[None], 12, 0), 60.0, 64, 32)
    full.save(tmp_path / "full.json")
    Trajectory(full.time_s[:2], full.R[:2], 60.0, 64, 32).save(tmp_path / "two.json")
    data = full.to_json()
    data["frames"][3]["R"][0][0] = 2.0
    (tmp_path / "skew.json").write_text(json.dumps(data))
    data["frames"][3]["R"][0][0] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps(data))
    data["frames"][3]["R"] = [[1, 0], [0, 1]]
    (tmp_path / "ragged.json").write_text(json.dumps(data))
    (tmp_path / "keys.json").write_text(json.dumps({"keyframes": [{"t": 0, "yaw": 10}]}))
    (tmp_path / "nohfov.json").write_text(json.dumps({**data, "hfov_deg": None}))
    (tmp_path / "video.json").write_bytes(src.read_bytes())
    (tmp_path / "v2.json").write_text(json.dumps({**full.to_json(), "version": 2}))
    Trajectory(full.time_s, full.R, 360.0, 64, 32).save(tmp_path / "sphere.json")  # stabilize's, of a 360 video
    Trajectory(full.time_s, full.R, 0.001, 64, 32).save(tmp_path / "tiny.json")
    for name, word in (("v2", "trajectory file version 2: this pano360 reads version 1 (written by a newer pano360?)"),
                       ("sphere", "is a 360 video's trajectory (hfov_deg 360), not a flat clip's"),
                       ("tiny", "hfov_deg 0.001 is no flat clip's field of view"),
                       ("two", "covers 0.00-0.10 s (2 frames), the video 0.00-1.10 s"), ("skew", "frame 3's R is no rotation"),
                       ("nan", "finite 3x3 rotation"), ("ragged", "finite 3x3 rotation"),
                       ("keys", "not a trajectory file but a keyframes file"), ("nohfov", "no 'hfov_deg'"),
                       ("video", "trajectory file is not text")):
        code, _, err = _run(["convert", str(src), str(tmp_path / "o.mp4"), "--width", "256",
                             "--trajectory", str(tmp_path / f"{name}.json")], capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1 and word in err, (name, err)
    assert not (tmp_path / "o.mp4").exists()


def test_reframe_refuses_angles_that_are_no_numbers(tmp_path, capsys):
    src = _clip(tmp_path / "eq.mp4", moov_first=False)  # 64x32: 2:1
    for flag in ("--yaw", "--pitch", "--roll"):
        code, _, err = _run(["reframe", str(src), str(tmp_path / "r.mp4"), flag, "nan"], capsys)
        assert code == 2 and f"{flag} must be a number of degrees" in err, err
    code, _, err = _run(["reframe", str(src), str(tmp_path / "r.mp4"), "--preset", "tiny-planet", "--projection", "rectilinear"], capsys)
    assert code == 2 and "tiny-planet preset's 270 deg FOV" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eq.mp4"]


@pytest.mark.parametrize("name, code, message", [("SIGTERM", 143, "Error: stopped by SIGTERM"),
                                                  ("SIGINT", 130, "Error: interrupted")])
def test_a_stop_removes_the_half_written_output(name, code, message, tmp_path):
    """A render farm's stop (SIGTERM) unwinds like Ctrl-C: its exit code, one line, no temp file, no output."""
    import signal
    import time

    src = _clip(tmp_path / "clip.mp4", moov_first=False, frames=300)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PANO360_DEBUG"}
    proc = subprocess.Popen([sys.executable, "-m", "pano360.cli", "convert", str(src), str(out_dir / "o.mp4"),
                             "--hfov", "60", "--width", "4096"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while not list(out_dir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until the encoder's temp file exists
    assert proc.poll() is None, "convert finished before it could be stopped"
    proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and err.strip().splitlines()[-1] == message, err
    assert list(out_dir.iterdir()) == []


def test_a_trajectory_with_other_frames_passes_with_a_warning():
    import numpy as np

    from pano360.trajectory import Trajectory

    def traj(n):
        return Trajectory(np.arange(n) / 30.0, np.repeat(np.eye(3)[None], n, 0), 60.0, 64, 36)

    assert traj(300).check_covers(10.0, 30.0, "t.json", frames=300) is None
    assert traj(299).check_covers(10.0, 30.0, "t.json", frames=300) is None  # a frame that does not decode
    assert traj(280).check_covers(10.0, 30.0, "t.json", frames=None) is None  # no exact count to hold it to
    warning = traj(280).check_covers(10.0, 30.0, "t.json", frames=300)
    assert "t.json has 280 frames, the video 300" in warning


def test_a_stop_while_a_temporary_file_is_made_is_held_until_it_can_be_removed(tmp_path, monkeypatch):
    """Ctrl-C the moment the hidden temp file appears (a loaded 2-core machine can pause the process
    right after mkstemp) left it behind: the signal is held until the file is in charge of someone,
    then delivered, and the file removed."""
    import signal
    import tempfile

    from pano360.io.atomic import atomic_output
    from pano360.io.spherical import spherical_output

    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_ctrl_c(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # arrives right after the file exists
        return made

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_ctrl_c)
    for make in (atomic_output, spherical_output):
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with make(tmp_path / "o.mp4"):
                reached.append(make.__name__)
        assert reached == [] and list(tmp_path.iterdir()) == [], make.__name__
