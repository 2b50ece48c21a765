"""Outputs appear complete or not at all: write beside the target, then ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pano360.errors import Pano360Error, UsageError
from pano360.signals import held_stop_signals

__all__ = ["check_output_path", "atomic_output", "naming_output", "MP4_OUTPUT_SUFFIXES"]

# What the video writer makes (MP4, where the Spherical Video boxes live), under the names players
# and editors take for it.
MP4_OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov")


# File names are at most 255 bytes on common file systems; a temporary twin ".NAME.xxxxxxxx.enc.mp4"
# adds up to 19 (mkstemp's 8 random characters and the longest suffix).
MAX_NAME_BYTES = 255 - 19


def check_output_path(output: str | Path, overwrite: bool, inputs: tuple[str | Path, ...] = (),
                      suffixes: tuple[str, ...] = (), *, what: str = "output",
                      other_outputs: tuple[tuple[str, str | Path | None], ...] = ()) -> Path:
    """Check that ``output`` may be written: its folder exists, it is no input, and ``-y`` if it exists;
    with ``suffixes`` (e.g. :data:`MP4_OUTPUT_SUFFIXES`), that its name ends in one of them.

    A command's second outputs (``--preview``, ``--save-trajectory``, ``--report``) are checked the
    same way before any work: ``what`` names the flag in the messages, and ``other_outputs`` lists
    ``(name, path)`` of the command's other outputs, which it must not be either.
    Raises UsageError with one line saying what is wrong.
    """
    out = Path(output)
    if suffixes and out.suffix.lower() not in suffixes:
        kinds = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
        what_file = "an MP4 file is written" if suffixes == MP4_OUTPUT_SUFFIXES else f"a {suffixes[0][1:].upper()} file is written"
        raise UsageError(f"{what} must be named {kinds} ({what_file}), got {out.name!r}")
    if out.exists() and out.is_dir():
        raise UsageError(f"{what} is a folder, not a file: {out}")
    if len(out.name.encode()) > MAX_NAME_BYTES:  # its hidden temporary twin must fit too
        raise UsageError(f"{what} file name is too long ({len(out.name.encode())} bytes; at most {MAX_NAME_BYTES}): {out.name}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        if parent.exists():
            raise UsageError(f"{what} folder is a file: {parent}")
        raise UsageError(f"{what} folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} folder is not writable: {parent}")
    for inp in inputs:
        if _same_file(Path(inp), out):
            raise UsageError(f"{what} is the same file as the input: {out}")
    for name, other in other_outputs:
        if other is not None and _same_file(Path(other), out):
            raise UsageError(f"{what} is the same file as the {name}: {out}")
    if out.exists() and not overwrite:
        raise UsageError(f"{what} exists: {out} (use -y/--overwrite to replace it)")
    return out


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links included), whether or not it exists yet."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


@contextmanager
def atomic_output(output: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``output`` only on success.

    On any exception, KeyboardInterrupt included, the temporary file is removed and nothing is
    left at ``output``. The temporary name keeps the extension (muxers choose formats by it).
    """
    out = Path(output)
    if out.exists() and not overwrite:
        raise UsageError(f"output exists: {out} (use -y/--overwrite to replace it)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output folder does not exist: {parent}")
    if out.is_dir():
        raise UsageError(f"output is a folder, not a file: {out}")
    tmp = None
    try:
        with held_stop_signals():  # the file exists only once something is there to remove it
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".part{out.suffix}", dir=parent)
            except OSError as exc:
                raise Pano360Error(f"cannot write in {parent}: {exc.strerror}") from None
            tmp = Path(tmp_name)
            os.close(fd)
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise Pano360Error(f"nothing was written for {out}")
        # mkstemp makes the file private (0600); a finished output gets the usual mode (0666 - umask).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except BaseException as exc:
        if tmp is None:
            raise
        tmp.unlink(missing_ok=True)
        raise naming_output(exc, tmp, out)


def naming_output(exc: BaseException, tmp: Path, out: Path) -> BaseException:
    """``exc`` with the hidden temporary file's name in its message replaced by the output's:
    "encoding out.mp4 failed", not ".out.x1y2.part.mp4" (a file the user never sees)."""
    if isinstance(exc, Pano360Error) and str(tmp) in str(exc):
        renamed = type(exc)(str(exc).replace(str(tmp), str(out)))
        renamed.__cause__ = exc.__cause__
        renamed.__suppress_context__ = True
        return renamed
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) == str(tmp):
        exc.filename = str(out)  # "No space left on device: out.mp4"
    return exc


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
