"""Run a batch: skip finished outputs, convert the rest (in-process, in worker processes, or as
Ray tasks), never let one failure stop the others, and report."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator

from pano360.batch.jobs import Job, is_complete

__all__ = ["convert_one", "run_batch", "summarize", "write_report"]


def convert_one(input_path: str, output_path: str, opts_dict: dict[str, Any]) -> dict:
    """Convert one file; never raises: returns ``{"status": "done"|"failed", ...}`` (runs in workers)."""
    from pano360.errors import Pano360Error
    from pano360.pipeline.convert import ConvertOptions, convert_video
    from pano360.signals import Terminated

    t0 = time.perf_counter()
    try:
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


# HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise Pano360Error unless a Ray head at ``address`` ("host:port" or "ray://host:port")
    accepts a connection and speaks gRPC: ray.init itself retries an unreachable head, or one
    that is not Ray, for ever, printing its own warnings every few seconds."""
    import socket
    from urllib.parse import urlsplit

    from pano360.errors import Pano360Error

    if address == "auto" or address.startswith("local"):
        return  # Ray finds (or fails to find) the local cluster by itself
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parts.hostname, parts.port or (10001 if parts.scheme == "ray" else 6379)
    except ValueError:
        raise Pano360Error(f"not a Ray address: {address!r} (expected host:port or ray://host:port)") from None
    if not host:
        raise Pano360Error(f"not a Ray address: {address!r} (expected host:port or ray://host:port)")
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
                on_done(refs[ref], res)
    finally:
        if started_here:
            ray.shutdown()


def run_batch(jobs: list[Job], opts_dict: dict[str, Any], n_jobs: int = 1, ray_address: str | None = None,
              use_ray: bool = False, on_done: Callable[[Job, dict], None] | None = None, redo: bool = False) -> list[dict]:
    """Run every job; returns one record per job in the jobs' order:
    ``{"input", "output", "warnings", "status": "done"|"skipped"|"failed", "seconds", "error"}``.
    A job whose output is complete is skipped, unless ``redo``."""
    records: dict[str, dict] = {}

    def done(job: Job, res: dict) -> None:
        records[job.rel] = {"input": str(job.input), "output": str(job.output), "warnings": [], **res}
        if on_done is not None:
            on_done(job, records[job.rel])

    todo = []
    for job in jobs:
        if not redo and is_complete(job.output):
            done(job, {"status": "skipped", "seconds": 0.0, "error": None})
        elif not redo and job.output.exists():
            # Outputs appear atomically, so this file is not a conversion of ours: never replaced without -y.
            done(job, {"status": "failed", "seconds": 0.0,
                       "error": f"output exists and is no 360 video: {job.output} (use -y/--overwrite to replace it)"})
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
        from pano360.signals import install_signal_handlers

        # Workers unwind on SIGTERM too, so a stopped batch leaves no temp file behind.
        pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=install_signal_handlers)
        try:
            futures = {pool.submit(convert_one, str(j.input), str(j.output), opts_dict): j for j in todo}
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker is one failed job
                    res = {"status": "failed", "seconds": 0.0, "error": f"worker crashed: {type(exc).__name__}"}
                done(futures[fut], res)
        except BaseException:
            # Ctrl-C or SIGTERM: the queued jobs are dropped and the running ones stopped (each
            # removes its own temp file), instead of leaving the pool block only when all are done.
            if hasattr(pool, "terminate_workers"):  # Python >= 3.14 (it shuts the pool down too)
                pool.terminate_workers()
            else:  # no public way before: the pool's own table of its processes, read before shutdown clears it
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [records[j.rel] for j in jobs]


def summarize(records: list[dict]) -> dict:
    """Counts per status."""
    out = {"total": len(records), "done": 0, "skipped": 0, "failed": 0}
    for r in records:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def write_report(path: Path, records: list[dict], opts_dict: dict, seconds: float) -> dict:
    """Write the JSON report atomically; returns it."""
    from pano360.io.atomic import atomic_output

    report = {"summary": summarize(records), "seconds": round(seconds, 2),
              "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in opts_dict.items()}, "jobs": records}
    with atomic_output(path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1, default=str))
    return report
