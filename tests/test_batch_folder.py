"""`pano360 batch`: 4 tiny clips (one corrupt) -> 3 outputs, a report naming the failure, exit 1;
a second run skips the 3; `--ray` gives the same outputs with a local Ray instance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pano360.cli import main
from pano360.io.spherical import read_spherical
from tests.conftest import shared_file

ARGS = ["--width", "128", "--backend", "mosaic", "--hfov", "65", "--crf", "30", "--preset", "ultrafast"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from pano360.synth import load_erp, phone_path, write_clip

    root = tmp_path_factory.mktemp("batch")
    src = root / "in"
    (src / "trip" / "day2").mkdir(parents=True)
    erp = load_erp(shared_file("erp/puydesancy.jpg"), max_width=1024)
    names = ["a.mp4", "trip/b.mp4", "trip/day2/c.mp4"]
    for k, name in enumerate(names):
        t, R = phone_path(0.8, 10, np.random.default_rng(k))
        write_clip(src / name, erp, t, R, 65.0, 160, 90, 10, crf=20)
    (src / "trip" / "broken.mp4").write_text("this is not a video\n")
    (src / "notes.txt").write_text("ignored: not a video suffix\n")
    return root


def _outputs(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4"))


def test_batch_converts_the_good_files_reports_the_bad_one_and_resumes(folder, capsys):
    src, out = folder / "in", folder / "out"
    rc = main(["batch", str(src), str(out), *ARGS, "--jobs", "2", "-q"])
    assert rc == 1
    assert _outputs(out) == ["a.mp4", "trip/b.mp4", "trip/day2/c.mp4"]
    for rel in _outputs(out):
        assert read_spherical(out / rel).projection == "equirectangular"
    report = json.loads((out / "batch_report.json").read_text())
    assert report["summary"] == {"total": 4, "done": 3, "skipped": 0, "failed": 1}
    failed = [j for j in report["jobs"] if j["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["input"].endswith("trip/broken.mp4") and failed[0]["error"]
    assert all(j["warnings"] == [] for j in report["jobs"])  # every record has the field
    assert "1 failed" in capsys.readouterr().out

    stamps = {rel: (out / rel).stat().st_mtime_ns for rel in _outputs(out)}
    rc = main(["batch", str(src), str(out), *ARGS, "--json"])
    assert rc == 1
    again = json.loads(capsys.readouterr().out)
    assert again["summary"] == {"total": 4, "done": 0, "skipped": 3, "failed": 1}
    assert {rel: (out / rel).stat().st_mtime_ns for rel in _outputs(out)} == stamps


def test_glob_filter_and_missing_folder(folder, capsys):
    out = folder / "out_glob"
    rc = main(["batch", str(folder / "in"), str(out), *ARGS, "--glob", "a.*", "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["summary"]["total"] == 1 and _outputs(out) == ["a.mp4"]
    assert main(["batch", str(folder / "nope"), str(out)]) == 2


def test_ray_gives_the_same_outputs(folder, capsys):
    pytest.importorskip("ray")
    out = folder / "out_ray"
    rc = main(["batch", str(folder / "in"), str(out), *ARGS, "--ray", "--json"])
    assert rc == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["summary"] == {"total": 4, "done": 3, "skipped": 0, "failed": 1}
    assert _outputs(out) == ["a.mp4", "trip/b.mp4", "trip/day2/c.mp4"]
    for rel in _outputs(out):
        assert read_spherical(out / rel) is not None


def test_inputs_differing_only_in_suffix_get_separate_outputs(tmp_path):
    from pano360.batch import discover_jobs

    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("clip.mov", "clip.mp4", "sub/other.MP4", "sub/.hidden.mp4", "readme.txt"):
        (tmp_path / "in" / name).write_bytes(b"x")
    jobs = discover_jobs(tmp_path / "in", tmp_path / "out")
    assert [(j.rel, j.output.relative_to(tmp_path / "out").as_posix()) for j in jobs] == [
        ("clip.mov", "clip.mov.mp4"), ("clip.mp4", "clip.mp4.mp4"), ("sub/other.MP4", "sub/other.mp4")]


def test_globstar_includes_the_folder_itself_and_a_foreign_file_is_kept(folder, capsys):
    """'trip/**/*.mp4' takes trip/b.mp4 as well as trip/day2/c.mp4 (as a shell with globstar does);
    a file already at an output path that no conversion made is not replaced without -y."""
    from pano360.batch import discover_jobs

    jobs = discover_jobs(folder / "in", folder / "glob_out", "trip/**/*.mp4")
    assert sorted(j.rel for j in jobs) == ["trip/b.mp4", "trip/broken.mp4", "trip/day2/c.mp4"]
    out = folder / "foreign_out"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"someone else's file")
    rc = main(["batch", str(folder / "in"), str(out), *ARGS, "--glob", "a.mp4", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and report["summary"]["failed"] == 1 and "use -y" in report["jobs"][0]["error"]
    assert (out / "a.mp4").read_bytes() == b"someone else's file"
    assert main(["batch", str(folder / "in"), str(out), *ARGS, "--glob", "a.mp4", "-y", "-q"]) == 0
    assert read_spherical(out / "a.mp4").projection == "equirectangular"


def test_unreachable_ray_cluster_is_one_line_and_leaves_no_folder(folder, capsys):
    import socket

    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = folder / "out_noray"
    rc = main(["batch", str(folder / "in"), str(out), *ARGS, "--ray-address", f"127.0.0.1:{port}", "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip() == f"Error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"
    assert not out.exists()  # the folder the run made is taken away again
    for bad in ("a:b:c", "garbage", "http://head:8265", "localhost:abc"):  # usage errors, before any folder is made
        assert main(["batch", str(folder / "in"), str(out / "x" / "y"), *ARGS, "--ray-address", bad, "-q"]) == 2
        assert capsys.readouterr().err.strip() == (f"Error: not a Ray address: {bad!r} "
                                                   "(expected host:port or ray://host:port)") and not out.exists()


def test_warnings_of_a_job_go_to_the_report(tmp_path, capsys):
    import subprocess

    src = tmp_path / "in"
    src.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(shared_file("clips/cup.mp4")), "-t", "1",
                    "-vf", "scale=160:120", "-an", str(src / "still.mp4")], check=True)
    out = tmp_path / "out"
    assert main(["batch", str(src), str(out), "--width", "128", "--preset", "ultrafast", "--json"]) == 0
    printed = capsys.readouterr()
    job = json.loads(printed.out)["jobs"][0]
    assert job["status"] == "done" and any("cannot be measured" in w for w in job["warnings"])
    assert "warning: still.mp4: the field of view cannot be measured" in printed.err  # also with -q/--json


def test_a_port_that_is_not_ray_is_one_line_not_a_hang(folder, capsys):
    import socket
    import threading
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the server's own log lines would go to the captured stderr
            pass

    from pano360.batch.run import _check_reachable
    from pano360.errors import Pano360Error

    pytest.importorskip("ray")
    web = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{web.server_address[1]}"
        out = folder / "out_web"
        assert main(["batch", str(folder / "in"), str(out), *ARGS, "--ray-address", address, "-q"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"Error: {address} answers, but not as a Ray cluster")
        assert not out.exists()
    finally:
        web.shutdown()
    with socket.socket() as mute:  # accepts, never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        with pytest.raises(Pano360Error, match="not as a Ray cluster"):
            _check_reachable(f"127.0.0.1:{mute.getsockname()[1]}", timeout_s=0.3)


def test_a_real_ray_head_passes_the_check():
    ray = pytest.importorskip("ray")
    from pano360.batch.run import _check_reachable

    ctx = ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        _check_reachable(ctx.address_info["gcs_address"])
    finally:
        ray.shutdown()


def test_file_names_with_brackets_are_printed_as_they_are(tmp_path, capsys):
    # Names like "take [red].mp4" are not rich markup: kept whole in the job lines and the table.
    src = tmp_path / "in [v2]"
    (src / "day [1]").mkdir(parents=True)
    (src / "day [1]" / "take [red].mp4").write_text("not a video\n")
    assert main(["batch", str(src), str(tmp_path / "out"), "--width", "128"]) == 1
    err = capsys.readouterr().err
    assert "FAILED day [1]/take [red].mp4: " in err and "in [v2]" in err
    assert err.count("take [red].mp4") >= 2  # the job's line and the table's row


def test_notes_are_not_markup_and_not_wrapped(capsys):
    from pano360.console import note

    line = "warning: " + "x" * 150 + " [bold]kept[/bold] [/"
    note(line)
    assert capsys.readouterr().err == line + "\n"
