"""Which videos a batch converts, where each output goes, and whether it is already done."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pano360.errors import Pano360Error, UsageError
from pano360.io.folders import VIDEO_SUFFIXES, walk_files

__all__ = ["Job", "VIDEO_SUFFIXES", "discover_jobs", "expand_braces", "glob_matches", "is_complete"]



@dataclass(frozen=True)
class Job:
    """One conversion: ``input`` under the batch's input folder, ``output`` at the mirrored place
    under the output folder (``rel`` with the suffix ``.mp4``; see :func:`discover_jobs` for the
    names taken when that one is not free)."""

    input: Path
    output: Path
    rel: str


def expand_braces(pattern: str) -> list[str]:
    """The patterns a shell's brace alternatives stand for (nested ones too), in order.

    >>> expand_braces("trip/*.{mp4,MOV}")
    ['trip/*.mp4', 'trip/*.MOV']
    >>> expand_braces("{a,b{1,2}}.mp4")
    ['a.mp4', 'b1.mp4', 'b2.mp4']
    """
    m = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)  # an innermost group with alternatives
    if m is None:
        return [pattern]
    out: list[str] = []
    for alt in m.group(1).split(","):
        for p in expand_braces(pattern[: m.start()] + alt + pattern[m.end() :]):
            if p not in out:
                out.append(p)
    return out


def glob_matches(rel: str, pattern: str) -> bool:
    """Whether the path ``rel`` (relative to the input folder, with ``/``) or its file name matches
    the ``--glob`` ``pattern``: case-insensitive (``*.mp4`` takes ``CLIP.MP4``), with ``{a,b}``
    alternatives, and ``dir/**/*.mp4`` taking the files of ``dir`` itself too (as shells with
    globstar do; fnmatch's ``*`` crosses ``/``, so ``**/`` may stand for no folder as well).

    >>> glob_matches("Trip/Day2/C.MP4", "trip/**/*.{mp4,mov}"), glob_matches("trip/b.mov", "*.mp4")
    (True, False)
    """
    rel = rel.lower()
    name = rel.rsplit("/", 1)[-1]
    for p in expand_braces(pattern.lower()):
        if any(fnmatch.fnmatchcase(rel, q) for q in (p, p.replace("**/", ""))) or fnmatch.fnmatchcase(name, p):
            return True
    return False


def _walk_files(src: Path, skip: Path, notes: list[str]) -> list[Path]:
    """:func:`~pano360.io.folders.walk_files` of ``src`` without the folder ``skip``; a folder that
    cannot be read is named in ``notes``, not silently passed."""

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else src
        if where == src:
            raise Pano360Error(f"cannot read the input folder {src}: {exc.strerror or exc}")
        notes.append(f"cannot read the folder {where.relative_to(src).as_posix()} ({exc.strerror or exc}): "
                     "the videos in it are skipped")

    return walk_files(src, skip, unreadable)


def _output_names(rels: list[str], dst: Path) -> list[str]:
    """Output paths (relative to ``dst``) for the inputs ``rels``, all different (also when names
    differ only in case: one file on macOS and Windows) and none on a folder: the mirrored
    folders of the inputs, or one already in ``dst``.

    An input keeps ``rel`` with the suffix ``.mp4`` when no other input wants that name; the
    others, in order, take the first free one of ``rel + ".mp4"``, ``rel + " (2).mp4"``, ...
    (every renamed name checked again against all names taken). The names depend only on the
    inputs (and folders in ``dst``), so a later run finds the outputs of an earlier one.

    >>> _output_names(["x.mov", "x.mp4", "x.mp4.mov", "y.mp4"], Path("/nonexistent"))
    ['x.mov.mp4', 'x.mp4 (2).mp4', 'x.mp4.mp4', 'y.mp4']
    """
    key = str.casefold
    # The folders the outputs go in (an output file there would block them).
    taken = {key(Path(*Path(r).parts[:k]).as_posix()) for r in rels for k in range(1, len(Path(r).parts))}

    def free(name: str) -> bool:
        return key(name) not in taken and not (dst / name).is_dir()

    plain = [Path(r).with_suffix(".mp4").as_posix() for r in rels]
    wanted = Counter(key(p) for p in plain)
    names: list[str | None] = [p if wanted[key(p)] == 1 and free(p) else None for p in plain]
    taken |= {key(n) for n in names if n is not None}
    for i, rel in enumerate(rels):
        k = 1
        while names[i] is None:
            cand = f"{rel}.mp4" if k == 1 else f"{rel} ({k}).mp4"
            if free(cand):
                names[i] = cand
                taken.add(key(cand))
            k += 1
    return [n for n in names if n is not None]


def discover_jobs(in_dir: str | Path, out_dir: str | Path, pattern: str | None = None,
                  notes: list[str] | None = None) -> list[Job]:
    """Every video under ``in_dir`` (recursive, sorted: a file with a video suffix), optionally
    only those matching a ``--glob`` ``pattern`` (see :func:`glob_matches`); hidden files and the
    output folder itself are skipped. Things a person should know (an unreadable folder, files
    the pattern matches that are no videos) are appended to ``notes``, one line each."""
    src = Path(in_dir)
    dst = Path(out_dir)
    notes = [] if notes is None else notes
    if not src.is_dir():
        raise UsageError(f"input is a file, not a folder: {src}" if src.exists() else f"input folder not found: {src}")
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"output folder is a file: {dst}")
    dst_resolved = dst.resolve()
    if dst_resolved == src.resolve():
        raise UsageError(f"the output folder is the input folder: {dst} (outputs go to a folder of their own)")
    rels: list[str] = []
    not_videos: list[str] = []
    for path in _walk_files(src, dst_resolved, notes):
        rel = path.relative_to(src).as_posix()
        if dst_resolved in path.resolve().parents:  # our outputs are never inputs (OUT_DIR inside IN_DIR)
            continue
        if pattern and not glob_matches(rel, pattern):
            continue
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            if pattern:
                not_videos.append(rel)
            continue
        rels.append(rel)
    if not_videos:
        shown = ", ".join(not_videos[:3]) + (f" and {len(not_videos) - 3} more" if len(not_videos) > 3 else "")
        notes.append(f"--glob {pattern!r} matches {len(not_videos)} file{'s' if len(not_videos) != 1 else ''} "
                     f"without a video suffix, skipped: {shown}")
    return [Job(src / rel, dst / name, rel) for rel, name in zip(rels, _output_names(rels, dst))]


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
