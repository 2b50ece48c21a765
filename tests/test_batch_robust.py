"""`pano360 batch` when things go wrong: a worker killed, names that collide, unreadable files and
folders, globs, flags checked before any job, signals to the process group, old outputs as inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pano360.batch import Job, discover_jobs, run_batch
from pano360.cli import main
from tests.conftest import shared_file

ARGS = ["--width", "128", "--backend", "mosaic", "--hfov", "65", "--crf", "30", "--preset", "ultrafast"]
ROOT = Path(__file__).resolve().parents[1]


def _clips(folder: Path, names: list[str], frames: int = 10) -> None:
    from pano360.synth import load_erp, phone_path, write_clip

    erp = load_erp(shared_file("erp/puydesancy.jpg"), max_width=1024)
    for k, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        t, R = phone_path(0.08 * frames, frames, np.random.default_rng(k))
        write_clip(folder / name, erp, t, R, 65.0, 160, 90, 10, crf=20)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*")) if folder.exists() else []


def _work_or_die(input_path: str, output_path: str, opts: dict) -> dict:
    """A worker's job for the test: a video named die.* leaves its temp twins and is SIGKILLed."""
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if Path(input_path).name.startswith("die."):
        (out.parent / f".{out.stem}.ab12cd34.part.mp4").write_bytes(b"half")
        (out.parent / f".{out.stem}.x_9y8z7w.enc.mp4").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    out.write_bytes(b"done")
    return {"status": "done", "seconds": 0.0, "error": None}


def test_a_killed_worker_fails_its_own_job_and_the_others_go_on(tmp_path):
    from pano360.batch.run import _run_local

    out = tmp_path / "out"
    out.mkdir()
    keep = out / ".die.mp4.ab12cd34.part.mp4"  # the twin of another output (die.mp4.mp4): not ours
    keep.write_bytes(b"other")
    jobs = [Job(tmp_path / n, out / (Path(n).stem + ".mp4"), n) for n in ("a.mp4", "die.mp4", "b.mp4", "c.mp4")]
    done: dict[str, dict] = {}
    _run_local(jobs, {}, 2, lambda job, res: done.__setitem__(job.rel, res), work=_work_or_die)
    assert {rel: r["status"] for rel, r in done.items()} == {"a.mp4": "done", "die.mp4": "failed", "b.mp4": "done",
                                                             "c.mp4": "done"}
    assert done["die.mp4"]["error"].startswith("worker process died: killed by SIGKILL")
    assert _hidden(out) == [keep.name]  # the dead worker's temp twins are gone, nothing else
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mp4", "b.mp4", "c.mp4"]


def test_output_names_never_collide(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("x.mp4", "x.mov", "x.mp4.mov", "A.MOV", "a.mp4", "y.mov", "y.mp4/z.mov", "w.mov"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"x")
    (out / "w.mp4").mkdir(parents=True)  # a folder already where w.mov's output would go
    names = {j.rel: j.output.relative_to(out).as_posix() for j in discover_jobs(src, out)}
    assert names == {"A.MOV": "A.MOV.mp4", "a.mp4": "a.mp4.mp4", "w.mov": "w.mov.mp4", "x.mov": "x.mov.mp4",
                     "x.mp4": "x.mp4 (2).mp4", "x.mp4.mov": "x.mp4.mp4", "y.mov": "y.mov.mp4", "y.mp4/z.mov": "y.mp4/z.mp4"}
    assert len({n.casefold() for n in names.values()}) == len(names)


def test_an_output_blocked_by_a_folder_or_a_file_is_one_failed_line(tmp_path):
    (tmp_path / "out" / "v.mp4").mkdir(parents=True)
    (tmp_path / "out" / "trip").write_text("a file where a folder goes")
    jobs = [Job(tmp_path / "v.mov", tmp_path / "out" / "v.mp4", "v.mov"),
            Job(tmp_path / "trip" / "w.mov", tmp_path / "out" / "trip" / "w.mp4", "trip/w.mov")]
    recs = run_batch(jobs, {})
    assert [r["status"] for r in recs] == ["failed", "failed"]
    assert recs[0]["error"] == f"a folder is in the output's place: {tmp_path / 'out' / 'v.mp4'} (move it away)"
    assert recs[1]["error"].startswith(f"a file is in the place of the output's folder: {tmp_path / 'out' / 'trip'}")


def test_unreadable_folders_are_named_and_unreadable_files_fail_in_one_line(tmp_path, monkeypatch, capsys):
    import builtins

    src = tmp_path / "in"
    _clips(src, ["ok.mp4", "locked/x.mp4"])
    (src / "secret.mp4").write_bytes(b"x")
    (src / "locked").chmod(0)
    (src / "secret.mp4").chmod(0)
    if os.geteuid() == 0:  # root reads them anyway: make them unreadable as they are for a user
        real_scandir, real_open = os.scandir, builtins.open

        def scandir(path="."):
            if Path(path) == src / "locked":
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        def open_(path, *args, **kwargs):
            if Path(str(path)) == src / "secret.mp4":
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(builtins, "open", open_)
    try:
        rc = main(["batch", str(src), str(tmp_path / "out"), *ARGS, "--json"])
    finally:
        (src / "locked").chmod(0o755)
    printed = capsys.readouterr()
    rep = json.loads(printed.out)
    warning = "cannot read the folder locked (Permission denied): the videos in it are skipped"
    assert rc == 1 and rep["warnings"] == [warning] and f"warning: {warning}" in printed.err
    assert {Path(j["input"]).name: (j["status"], j["error"]) for j in rep["jobs"]} == {
        "ok.mp4": ("done", None), "secret.mp4": ("failed", "cannot read the input: Permission denied")}


def test_glob_is_case_insensitive_takes_braces_and_only_videos(tmp_path, capsys):
    src = tmp_path / "in"
    for name in ("A.MP4", "b.mov", "c.mkv", "notes.txt", "trip/D.Mp4"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"x")
    out = tmp_path / "out"

    def rels(pattern: str, notes: list | None = None) -> list[str]:
        return [j.rel for j in discover_jobs(src, out, pattern, notes)]

    assert rels("*.mp4") == ["A.MP4", "trip/D.Mp4"]
    assert rels("*.{MP4,mov}") == ["A.MP4", "b.mov", "trip/D.Mp4"]
    assert rels("TRIP/**/*.mp4") == ["trip/D.Mp4"]
    notes: list[str] = []
    assert rels("*", notes) == ["A.MP4", "b.mov", "c.mkv", "trip/D.Mp4"]
    assert notes == ["--glob '*' matches 1 file without a video suffix, skipped: notes.txt"]
    assert main(["batch", str(src), str(out), "--glob", "*.TXT"]) == 1
    assert capsys.readouterr().err.strip() == (f"Error: no videos found under {src} matching '*.TXT' (--glob '*.TXT' "
                                               "matches 1 file without a video suffix, skipped: notes.txt)")
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--orientation", "foo"], "--orientation must be one of world, follow, got 'foo'"),
    (["--backend", "wan"], "the Wan backend needs --model DIR|HUB_ID (or PANO360_MODEL)"),
    (["--backend", "gan"], "--backend must be one of auto, mosaic, wan, got 'gan'"),
    (["--ray-address", "garbage"], "not a Ray address: 'garbage' (expected host:port or ray://host:port)"),
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--gen-width", "100"], "--gen-width must be a multiple of 32 and >= 64 (height = width / 2), got 100"),
])
def test_bad_flags_are_usage_errors_before_any_job(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.delenv("PANO360_MODEL", raising=False)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"x")
    assert main(["batch", str(tmp_path / "in"), str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"Error: {message}"
    assert not (tmp_path / "out").exists()


def test_old_outputs_among_the_inputs_are_skipped_and_failures_are_named_by_their_path(tmp_path, capsys):
    src = tmp_path / "in"
    _clips(src, ["a.mp4"])
    assert main(["batch", str(src), str(src / "out"), *ARGS, "-q"]) == 0  # OUT_DIR inside IN_DIR
    (src / "old").mkdir()
    (src / "out" / "a.mp4").rename(src / "old" / "a.mp4")  # an old output among the inputs
    (src / "sub").mkdir()
    (src / "sub" / "a.mp4").write_text("not a video\n")
    capsys.readouterr()
    assert main(["batch", str(src), str(src / "out"), *ARGS, "--json"]) == 1
    printed = capsys.readouterr()
    rep = json.loads(printed.out)
    jobs = {Path(j["input"]).relative_to(src).as_posix(): j for j in rep["jobs"]}
    assert sorted(jobs) == ["a.mp4", "old/a.mp4", "sub/a.mp4"]  # nothing from out/
    assert jobs["old/a.mp4"]["status"] == "skipped" and "already a 360 video" in jobs["old/a.mp4"]["note"]
    assert not (src / "out" / "old").exists()
    assert "(first: sub/a.mp4: " in printed.err.strip().splitlines()[-1]
    rc = main(["batch", str(src), str(src / "out"), *ARGS, "--glob", "old/*"])
    assert rc == 0 and "0 converted, 1 skipped (1 already 360), 0 failed" in capsys.readouterr().out


def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.mp4").write_bytes(b"x")
    out.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root may write anyway: the folder is read-only as a read-only mount is
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (not (Path(p) == out and mode & os.W_OK)
                                                                 and real_access(p, mode, **kw)))
    assert main(["batch", str(src), str(out), *ARGS]) == 2
    assert capsys.readouterr().err.strip() == f"Error: output folder is not writable: {out}"
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def longer(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("sig") / "in"
    _clips(src, ["v0.mp4", "v1.mp4", "v2.mp4"], frames=40)
    return src


@pytest.mark.skipif(not hasattr(signal, "SIGHUP") or not hasattr(os, "killpg"), reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, getattr(signal, "SIGHUP", signal.SIGTERM)])
def test_a_signal_to_the_process_group_stops_the_batch_in_one_line(longer, tmp_path, signum):
    """As a closed terminal (SIGHUP) or Ctrl-C (SIGINT) does: every process gets it, and only the
    parent speaks; nothing half-written is left."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "pano360.cli", "batch", str(longer), str(out), *ARGS,
                             "--width", "1024", "--jobs", "2", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not _hidden(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until a worker writes its temp file
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    expected = "Error: interrupted" if signum == signal.SIGINT else f"Error: stopped by {signal.Signals(signum).name}"
    assert (proc.returncode, err.strip()) == (128 + signum, expected)
    assert _hidden(out) == []
