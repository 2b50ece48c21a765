"""Run a batch: skip finished outputs, convert the rest (in-process, in worker processes, or as
Ray tasks), never let one failure stop the others, and report."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Iterator

from pano360.batch.jobs import Job, is_complete
from pano360.signals import STOP_SIGNALS

__all__ = ["check_ray_address", "convert_one", "run_batch", "summarize", "write_report"]

# What a job's record says of an input that is a 360 video already (an output of an earlier run).
ALREADY_360 = "already a 360 video (an earlier output?): not converted"


def convert_one(input_path: str, output_path: str, opts_dict: dict[str, Any]) -> dict:
    """Convert one file; never raises: returns ``{"status": "done"|"failed", ...}`` (runs in workers)."""
    from pano360.errors import Pano360Error
    from pano360.io.spherical import read_spherical
    from pano360.pipeline.convert import ConvertOptions, convert_video
    from pano360.signals import Terminated

    t0 = time.perf_counter()
    try:
        if read_spherical(input_path) is not None:
            return {"status": "skipped", "seconds": 0.0, "error": None, "note": ALREADY_360}
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        opts = ConvertOptions(**opts_dict)
        # Warnings go to the report (and the job's line), not to a stderr shared by parallel jobs.
        result = convert_video(input_path, output_path, opts, show_progress=False, quiet=True, show_warnings=False)
        return {"status": "done", "seconds": round(time.perf_counter() - t0, 2), "backend": result["backend"],
                "frames": result["frames"], "coverage_pct": result["coverage_pct"], "error": None,
                "warnings": result["warnings"]}
    except Pano360Error as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except (KeyboardInterrupt, Terminated) as exc:
        if multiprocessing.parent_process() is None:
            raise  # in-process: the command stops
        # A pool worker: its output's temp file is gone (the exception unwound through it); end the
        # process, or the pool would hand it the next queued video.
        os._exit(130 if isinstance(exc, KeyboardInterrupt) else 128 + exc.signum)
    except MemoryError:
        msg = "out of memory"
    except OSError as exc:  # an unreadable input, a full disk: one line, as the command's own errors
        msg = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if os.environ.get("PANO360_DEBUG"):
            msg += "\n" + traceback.format_exc()
    return {"status": "failed", "seconds": round(time.perf_counter() - t0, 2), "error": msg}


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 (C/C++ code's stderr, not only Python's) to /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_ray_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address, ``"host:port"`` (a head's GCS) or ``"ray://host[:port]"``
    (Ray Client, port 10001 by default); None for ``"auto"`` and ``"local"``, which Ray resolves
    itself. Raises ValueError with one line for anything else.

    >>> check_ray_address("ray://head"), check_ray_address("localhost:6379"), check_ray_address("auto")
    (('head', 10001), ('localhost', 6379), None)
    """
    from urllib.parse import urlsplit

    if address in ("auto", "local"):
        return None
    bad = ValueError(f"not a Ray address: {address!r} (expected host:port or ray://host:port)")
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        port = parts.port or (10001 if parts.scheme == "ray" else None)
    except ValueError:  # a port that is no number, or out of range
        raise bad from None
    if parts.scheme not in ("gcs", "ray") or not parts.hostname or not port or parts.path not in ("", "/"):
        raise bad
    return parts.hostname, port


# HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise Pano360Error unless a Ray head at ``address`` ("host:port" or "ray://host:port")
    accepts a connection and speaks gRPC: ray.init itself retries an unreachable head, or one
    that is not Ray, for ever, printing its own warnings every few seconds."""
    import socket

    from pano360.errors import Pano360Error

    try:
        where = check_ray_address(address)
    except ValueError as exc:
        raise Pano360Error(str(exc)) from None
    if where is None:
        return  # Ray finds (or fails to find) the local cluster by itself
    host, port = where
    try:
        conn = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise Pano360Error(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):
            # A Ray head speaks gRPC, i.e. HTTP/2: it answers a client's preface with a SETTINGS
            # frame. Anything else (a web server, a proxy that never answers) would make ray.init
            # retry for minutes, its warnings hidden.
            try:
                conn.sendall(_HTTP2_PREFACE)
                head = b""
                while len(head) < 9 and (chunk := conn.recv(9 - len(head))):
                    head += chunk
            except OSError:
                head = b""
            if len(head) < 9 or head[3] != 0x04:
                raise Pano360Error(f"{address} answers, but not as a Ray cluster (no gRPC server there); "
                                   "give the head's GCS port (ray start --head prints it), or ray://host:10001")


def _ray_run(todo: list[Job], opts_dict: dict, address: str | None, gpus_per_task: float,
             on_done: Callable[[Job, dict], None]) -> None:
    try:
        import ray
    except ImportError:
        from pano360.errors import Pano360Error

        raise Pano360Error("--ray needs Ray: pip install 'pano360[ray]'") from None
    started_here = False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        import logging
        import warnings

        # Ray's own INFO lines and warnings would bury the one-line error of an unreachable cluster.
        if address:
            _check_reachable(address)
        # Ray's C++ client writes a warning to fd 2 every second while it tries a head that answers
        # but is not Ray (a proxy): the init is quiet, its error is ours.
        with warnings.catch_warnings(), _stderr_silenced():
            warnings.simplefilter("ignore")
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
                else:
                    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, TimeoutError) as exc:
                from pano360.errors import Pano360Error

                raise Pano360Error(f"cannot reach the Ray cluster at {address or 'localhost'}: {exc}") from None
        started_here = True
    try:
        if gpus_per_task and ray.cluster_resources().get("GPU", 0) < gpus_per_task:
            from pano360.errors import Pano360Error

            raise Pano360Error("the Ray cluster has no GPU for the Wan backend (each task asks for one); use --backend mosaic")
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_task, max_retries=0)(convert_one)
        # Absolute paths: a cluster's workers run in a folder of their own, where a relative
        # OUT_DIR would put the outputs somewhere else (and a relative input would not be found).
        refs = {task.remote(str(j.input.absolute()), str(j.output.absolute()), opts_dict): j for j in todo}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    res = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a lost worker is one failed job
                    res = {"status": "failed", "seconds": 0.0, "error": f"Ray task failed: {type(exc).__name__}"}
                    _remove_temp_files(refs[ref].output)  # a worker killed in the middle leaves them
                on_done(refs[ref], res)
    finally:
        if started_here:
            ray.shutdown()


def _remove_temp_files(output: Path) -> None:
    """Remove the hidden temporary twins of ``output`` a killed worker leaves beside it: atomic
    ``.STEM.xxxxxxxx.partSUFFIX`` and the encoder's ``.STEM.xxxxxxxx.enc.mp4`` (mkstemp's 8
    characters, see :mod:`pano360.io.atomic` and :func:`pano360.io.spherical.spherical_output`).
    The pattern matches no other output's twins."""
    twin = re.compile(rf"\.{re.escape(output.stem)}\.[a-z0-9_]{{8}}\.(?:part{re.escape(output.suffix)}|enc\.mp4)")
    with contextlib.suppress(OSError):
        for entry in os.scandir(output.parent):
            if twin.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _death(exitcode: int | None) -> str:
    """A job's error when its worker process ended without an answer."""

    def name(signum: int) -> str:
        try:
            return signal.Signals(signum).name
        except ValueError:
            return f"signal {signum}"

    if exitcode is not None and exitcode < 0:
        hint = " (the system's out-of-memory killer, or kill -9?)" if -exitcode == signal.SIGKILL else ""
        return f"worker process died: killed by {name(-exitcode)}{hint}"
    if exitcode is not None and exitcode - 128 in STOP_SIGNALS:  # it unwound on a signal (only its own)
        return f"worker process stopped by {name(exitcode - 128)}"
    return f"worker process died (exit code {exitcode}) before it reported"


def _stop_worker(signum: int, _frame: Any) -> None:
    """A worker's stop signal: unwind once (removing its temp files), deaf to the next ones (the
    parent's own SIGTERM follows a Ctrl-C or a signal to the process group). Not SIG_IGN: Python
    would raise "signal ignored due to race condition" for one already on its way."""
    from pano360.signals import Terminated

    for s in STOP_SIGNALS:
        signal.signal(s, _deaf)
    raise Terminated(signum)


def _deaf(_signum: int, _frame: Any) -> None:
    """A worker's handler for the stop signals after the first."""


def _worker(conn: Connection, work: Callable[[str, str, dict], dict], input_path: str, output_path: str,
            opts_dict: dict) -> None:
    """A worker process: run one job, send its record, and end without a word on stderr (the
    parent reports, and stops the batch on Ctrl-C/SIGTERM/SIGHUP)."""
    code = 1
    try:
        for s in STOP_SIGNALS:
            signal.signal(s, _stop_worker)
        conn.send(work(input_path, output_path, opts_dict))
        code = 0
    except BaseException as exc:  # noqa: BLE001 - stopped: the parent knows; no traceback
        code = 128 + getattr(exc, "signum", signal.SIGINT) if not isinstance(exc, Exception) else 1
    finally:
        sys.stdout.flush()
        os._exit(code)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C meanwhile (main thread only): a process started now inherits that, so a
    Ctrl-C while it imports stops it without a KeyboardInterrupt traceback (the parent stops it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old if old is not None else signal.SIG_DFL)


def _run_local(todo: list[Job], opts_dict: dict, n_jobs: int, on_done: Callable[[Job, dict], None],
               work: Callable[[str, str, dict], dict] = convert_one) -> None:
    """Run ``work`` for each job in a process of its own, ``n_jobs`` at once. A process that dies
    (the out-of-memory killer, ``kill -9``) fails its own job only, with the signal named; its
    temp files are removed and the other jobs go on. On Ctrl-C or SIGTERM/SIGHUP the running
    processes are stopped (each removes its own temp file) and the exception goes on up."""
    ctx = multiprocessing.get_context("spawn")
    queue = list(reversed(todo))
    running: dict[Connection, tuple[Job, Any, float]] = {}  # the answer's pipe -> (job, process, start)
    try:
        while queue or running:
            while queue and len(running) < n_jobs:
                job = queue.pop()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker, args=(send, work, str(job.input), str(job.output), opts_dict),
                                   name=f"pano360 {job.rel}")
                with _sigint_ignored():
                    proc.start()
                send.close()  # the worker's end: EOF here once it is gone
                running[recv] = (job, proc, time.perf_counter())
            for recv in wait(list(running)):
                job, proc, t0 = running.pop(recv)
                try:
                    res = recv.recv()
                except (EOFError, OSError):
                    res = None
                recv.close()
                proc.join()
                if res is None:
                    _remove_temp_files(job.output)
                    res = {"status": "failed", "seconds": round(time.perf_counter() - t0, 2),
                           "error": _death(proc.exitcode)}
                on_done(job, res)
    except BaseException:
        for _job, proc, _t0 in running.values():
            proc.terminate()
        for recv, (job, proc, _t0) in running.items():
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
            _remove_temp_files(job.output)
            recv.close()
        raise


def _blocked(job: Job) -> str | None:
    """Why ``job.output`` cannot be written whatever the options (a folder in its place, a file in
    place of one of its folders), or None."""
    if job.output.is_dir():
        return f"a folder is in the output's place: {job.output} (move it away)"
    for folder in job.output.parents:
        if folder.exists():
            if folder.is_dir():
                return None
            return f"a file is in the place of the output's folder: {folder} (move it away)"
    return None


def _unreadable(path: Path) -> str | None:
    """Why the input ``path`` cannot be read, or None."""
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"cannot read the input: {exc.strerror or exc}"


def run_batch(jobs: list[Job], opts_dict: dict[str, Any], n_jobs: int = 1, ray_address: str | None = None,
              use_ray: bool = False, on_done: Callable[[Job, dict], None] | None = None, redo: bool = False) -> list[dict]:
    """Run every job; returns one record per job in the jobs' order:
    ``{"input", "output", "warnings", "note", "status": "done"|"skipped"|"failed", "seconds", "error"}``.
    A job whose output is complete is skipped, unless ``redo``; so is an input that is a 360
    video already (``note`` says so)."""
    records: dict[str, dict] = {}

    def done(job: Job, res: dict) -> None:
        records[job.rel] = {"input": str(job.input), "output": str(job.output), "warnings": [], "note": None, **res}
        if on_done is not None:
            on_done(job, records[job.rel])

    def failed(job: Job, error: str) -> None:
        done(job, {"status": "failed", "seconds": 0.0, "error": error})

    todo = []
    for job in jobs:
        if (why := _blocked(job)) is not None:
            failed(job, why)
        elif not redo and is_complete(job.output):
            done(job, {"status": "skipped", "seconds": 0.0, "error": None})
        elif not redo and job.output.exists():
            # Outputs appear atomically, so this file is not a conversion of ours: never replaced without -y.
            failed(job, f"output exists and is no 360 video: {job.output} (use -y/--overwrite to replace it)")
        elif (why := _unreadable(job.input)) is not None:
            failed(job, why)
        else:
            todo.append(job)
    opts_dict = {**opts_dict, "overwrite": True}  # an incomplete output is redone
    if use_ray:
        gpus = 1.0 if opts_dict.get("backend") == "wan" else 0.0
        _ray_run(todo, opts_dict, ray_address, gpus, done)
    elif n_jobs <= 1 or len(todo) <= 1:
        for job in todo:
            done(job, convert_one(str(job.input), str(job.output), opts_dict))
    else:
        _run_local(todo, opts_dict, n_jobs, done)
    return [records[j.rel] for j in jobs]


def summarize(records: list[dict]) -> dict:
    """Counts per status."""
    out = {"total": len(records), "done": 0, "skipped": 0, "failed": 0}
    for r in records:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def write_report(path: Path, records: list[dict], opts_dict: dict, seconds: float, warnings: list[str] = ()) -> dict:
    """Write the JSON report atomically (``warnings``: the batch's own, e.g. an unreadable folder); returns it."""
    from pano360.io.atomic import atomic_output

    report = {"summary": summarize(records), "seconds": round(seconds, 2), "warnings": list(warnings),
              "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in opts_dict.items()}, "jobs": records}
    with atomic_output(path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1, default=str))
    return report
