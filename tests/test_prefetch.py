"""The background producer behind decoding/rendering pipelines: order, errors, eager start, stopping."""

from __future__ import annotations

import gc
import itertools
import threading
import time

import pytest

from pano360.prefetch import prefetch


def test_yields_every_item_in_order():
    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))


def test_producer_starts_before_the_first_next():
    started = threading.Event()

    def items():
        started.set()
        yield 1

    it = prefetch(items())
    assert started.wait(2.0)  # work before the consumer's first next() overlaps with the producer
    assert list(it) == [1]


def test_producer_error_is_raised_at_its_position():
    def items():
        yield 1
        yield 2
        raise ValueError("bad frame")

    it = prefetch(items())
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(ValueError, match="bad frame"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def _counting():
    count = itertools.count()
    made = []

    def items():
        for i in count:
            made.append(i)
            yield i

    return items(), made


def _settles(made: list) -> int:
    """The producer's count once it stopped growing (it may finish the item in hand)."""
    for _ in range(50):
        n = len(made)
        time.sleep(0.05)
        if len(made) == n:
            return n
    raise AssertionError("the producer never stopped")


@pytest.mark.parametrize("how", ["close", "drop"])
def test_closing_or_dropping_stops_the_producer(how):
    items, made = _counting()
    it = prefetch(items, depth=3)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    if how == "close":
        it.close()
        with pytest.raises(StopIteration):
            next(it)
    else:
        del it
        gc.collect()
    n = _settles(made)
    assert n <= 5 + 3 + 2  # what was taken, the queue's depth, the item in hand
    time.sleep(0.3)
    assert len(made) == n
