"""Which videos a batch converts, where each output goes, and whether it is already done."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from pano360.errors import UsageError

__all__ = ["Job", "VIDEO_SUFFIXES", "discover_jobs", "is_complete"]

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".mts", ".m2ts", ".wmv", ".flv", ".mpg", ".mpeg"}


@dataclass(frozen=True)
class Job:
    """One conversion: ``input`` under the batch's input folder, ``output`` at the mirrored place
    under the output folder (``rel`` with the suffix ``.mp4``; ``rel + ".mp4"`` when two inputs
    would otherwise share an output)."""

    input: Path
    output: Path
    rel: str


def discover_jobs(in_dir: str | Path, out_dir: str | Path, pattern: str | None = None) -> list[Job]:
    """Every video under ``in_dir`` (recursive, sorted), optionally filtered by a glob ``pattern``
    matched against the path relative to ``in_dir`` (and its file name); hidden files and the
    output folder itself are skipped."""
    src = Path(in_dir)
    dst = Path(out_dir)
    if not src.is_dir():
        raise UsageError(f"input is a file, not a folder: {src}" if src.exists() else f"input folder not found: {src}")
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"output folder is a file: {dst}")
    dst_resolved = dst.resolve()
    if dst_resolved == src.resolve():
        raise UsageError(f"the output folder is the input folder: {dst} (outputs go to a folder of their own)")
    jobs = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if dst_resolved in path.resolve().parents:
            continue
        if pattern:
            # "dir/**/*.mp4" means any depth below dir, none included (as in shells with globstar);
            # fnmatch's "*" crosses "/", so "**/" may stand for no folder as well.
            flat = pattern.replace("**/", "")
            if not any(fnmatch.fnmatch(rel.as_posix(), p) for p in (pattern, flat)) and not fnmatch.fnmatch(path.name, pattern):
                continue
        elif path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        jobs.append(Job(input=path, output=dst / rel.with_suffix(".mp4"), rel=rel.as_posix()))
    # Two inputs that differ only in their suffix (clip.mov, clip.mp4) keep it in the output's name.
    seen: dict[Path, int] = {}
    for job in jobs:
        seen[job.output] = seen.get(job.output, 0) + 1
    return [Job(j.input, dst / (j.rel + ".mp4"), j.rel) if seen[j.output] > 1 else j for j in jobs]


def is_complete(output: Path) -> bool:
    """An output is complete when it exists as a tagged 360 MP4 (outputs appear atomically, so a
    half-written one never has the final name)."""
    if not output.is_file() or output.stat().st_size == 0:
        return False
    try:
        from pano360.io.spherical import read_spherical

        return read_spherical(output) is not None
    except Exception:  # noqa: BLE001 - anything unreadable is redone
        return False
