"""Run a producer (decoding, placement) in a thread beside its consumer (tracking, compositing, encoding).

PyAV, OpenCV and large numpy operations release the GIL, so on two cores the stages overlap.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 3) -> Iterator[T]:
    """Yield ``items`` in order while a background thread computes up to ``depth`` ahead.

    An exception in the producer is raised in the consumer at the same position; closing the
    returned generator (or an exception in the consumer) stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

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
        put((True, _DONE))

    thread = threading.Thread(target=run, name="pano360-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
