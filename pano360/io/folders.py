"""Finding the video files of a folder tree: the suffixes taken for videos, and the walk itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

__all__ = ["VIDEO_SUFFIXES", "walk_files"]

# What `batch` and `train` take for a video (lower case; anything PyAV/FFmpeg reads as one).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".3gp", ".mts", ".m2ts", ".wmv", ".flv", ".mpg", ".mpeg")


def walk_files(root: Path, skip: Path | None = None, on_unreadable: Callable[[OSError], None] | None = None) -> list[Path]:
    """Every file under ``root``, sorted, hidden entries left out.

    Symlinked folders are followed (a data folder assembled from links to other disks), each real
    folder once, so a link to a folder above it is no endless loop. The folder ``skip`` (resolved;
    e.g. an output folder inside the input folder) is left out. A folder that cannot be read is
    passed to ``on_unreadable`` (default: skipped silently, as ``os.walk`` does).
    """
    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    for folder, dirs, names in os.walk(root, onerror=on_unreadable, followlinks=True):
        here = Path(folder)
        st = os.stat(here)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip))
        files += [here / n for n in names if not n.startswith(".") and (here / n).is_file()]
    return sorted(files)
