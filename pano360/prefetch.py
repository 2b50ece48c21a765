"""Run a producer (decoding, placement) in a thread beside its consumer (tracking, compositing, encoding).

PyAV, OpenCV and large numpy operations release the GIL, so on two cores the stages overlap.
"""

from __future__ import annotations

import atexit
import queue
import threading
from typing import Generic, Iterable, Iterator, TypeVar

__all__ = ["Prefetch", "prefetch"]

T = TypeVar("T")
_DONE = object()
# Every running producer (its stop flag and thread), so that the process can stop them all at exit.
_LIVE: set[tuple[threading.Event, threading.Thread]] = set()


@atexit.register
def _stop_all() -> None:
    """Stop and join the producers still running when the interpreter exits (after an error or a
    SIGTERM unwound the consumer). A daemon thread ended by the interpreter's finalization inside
    OpenCV's or PyAV's C++ code aborts the whole process ("terminate called without an active
    exception", exit code -6) instead of letting it exit with its own code."""
    for stop, _ in list(_LIVE):
        stop.set()
    for _, thread in list(_LIVE):
        thread.join(timeout=5.0)


class Prefetch(Iterator[T], Generic[T]):
    """The iterator :func:`prefetch` returns: its thread runs from construction on."""

    def __init__(self, items: Iterable[T], depth: int = 3) -> None:
        q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        stop = threading.Event()

        # The thread's closure holds the queue and the flag, never self: dropping the iterator
        # (a consumer that stopped early) lets __del__ stop the producer.
        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def run() -> None:
            try:
                for item in items:
                    if not put((True, item)):
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                put((False, exc))
                return
            finally:
                _LIVE.discard(entry)
            put((True, _DONE))

        self._queue, self._stop, self._done = q, stop, False
        self._thread = threading.Thread(target=run, name="pano360-prefetch", daemon=True)
        entry = (stop, self._thread)
        _LIVE.add(entry)
        self._thread.start()

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            while True:
                try:
                    ok, item = self._queue.get(timeout=0.1)
                    break
                except queue.Empty:
                    if not self._thread.is_alive() and self._queue.empty():
                        # Stopped from outside (at exit) without a last word: never a silent end.
                        raise RuntimeError("the producer thread was stopped") from None
        except BaseException:
            self.close()
            raise
        if not ok:
            self.close()
            raise item
        if item is _DONE:
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the producer (it finishes the item in hand) and wait a moment for its thread."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # None when __init__ failed
        if stop is not None:
            stop.set()


def prefetch(items: Iterable[T], depth: int = 3) -> Prefetch[T]:
    """Iterate ``items`` in order while a background thread computes up to ``depth`` ahead; the
    thread starts at once (work before the first ``next`` overlaps with it).

    An exception in the producer is raised in the consumer at the same position; ``close()`` (or
    dropping the iterator) stops the producer.
    """
    return Prefetch(items, depth)
