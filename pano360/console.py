"""Where messages and progress go: stderr, quiet under --json/--quiet or when not a terminal."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stderr = Console(stderr=True, highlight=False)


def progress_enabled(quiet: bool = False, json_output: bool = False) -> bool:
    """True when a progress bar may be drawn: a terminal on stderr and neither --quiet nor --json."""
    return not quiet and not json_output and sys.stderr.isatty()


@contextmanager
def stage_progress(enabled: bool) -> Iterator[Progress]:
    """A rich Progress on stderr for the stages of one job; disabled ones draw nothing."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


def note(message: str, quiet: bool = False) -> None:
    """A one-line note for a person on stderr (which backend was chosen, a skipped file, ...).

    Printed as it is: a file name with brackets is not rich markup, and a long line is not
    wrapped when stderr is a pipe (scripts grep these lines)."""
    if not quiet:
        stderr.print(message, markup=False, soft_wrap=True)


def frame_list(indices, limit: int = 6) -> str:
    """Frame indices as a person reads them: ``"frame 4"``, ``"frames 3-7, 9 and 2 more"``."""
    idx = sorted({int(i) for i in indices})
    runs: list[list[int]] = []
    for i in idx:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
    more = f" and {len(runs) - limit} more" if len(runs) > limit else ""
    return f"{'frame' if len(idx) == 1 else 'frames'} {text}{more}"


def count(n: int, noun: str) -> str:
    """``"1 frame"``, ``"2 frames"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
