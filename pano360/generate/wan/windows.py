"""Splitting a clip into overlapping generation windows of 4k+1 frames.

Window ``i > 0`` starts ``overlap`` frames before the previous one ended; those frames are already
generated and become fully known conditioning, so content does not jump between windows. The
last window is pulled back to end on the last frame (it then knows more frames); a clip shorter
than one window gets one window padded up to the next 4k+1 length. Every frame is output exactly
once, by the window that first generates it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Window", "plan_windows", "round_up_4k1", "check_window"]


@dataclass(frozen=True)
class Window:
    """Frames ``[start, stop)`` of the clip; the first ``known`` are given, the rest are output.

    ``length`` (>= stop - start, 4k+1) is how many frames the model runs; extra frames repeat the
    last one and are dropped.
    """

    start: int
    stop: int
    known: int
    length: int

    @property
    def new(self) -> range:
        """Clip frame indices this window outputs."""
        return range(self.start + self.known, self.stop)


def round_up_4k1(n: int) -> int:
    """Smallest 4k+1 >= n (n >= 1)."""
    return n if n % 4 == 1 else n + (1 - n) % 4


def check_window(window: int, overlap: int) -> None:
    """Reject a window that is not 4k+1 or an overlap outside [0, window)."""
    from pano360.errors import UsageError

    if window < 5 or window % 4 != 1:
        raise UsageError(f"window must be 4k+1 frames and >= 5 (e.g. 81, 49, 17), got {window}")
    if not 0 <= overlap < window:
        raise UsageError(f"overlap must be in [0, {window - 1}] for a {window}-frame window, got {overlap}")


def plan_windows(n_frames: int, window: int = 81, overlap: int = 8) -> list[Window]:
    """The windows covering ``n_frames`` frames (see module docstring).

    >>> [(w.start, w.stop, w.known) for w in plan_windows(20, window=9, overlap=2)]
    [(0, 9, 0), (7, 16, 2), (11, 20, 5)]
    """
    check_window(window, overlap)
    if n_frames < 1:
        return []
    out: list[Window] = []
    start = done = 0
    while done < n_frames:
        if start + window > n_frames:
            start = max(0, n_frames - window)
        stop = min(start + window, n_frames)
        out.append(Window(start, stop, done - start, round_up_4k1(stop - start)))
        done, start = stop, stop - overlap
    return out
