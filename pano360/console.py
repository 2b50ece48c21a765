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
