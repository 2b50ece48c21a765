"""Small frames kept from one pass for a later one, in a temporary file, not in memory.

``convert`` tracks the clip before it can build the background (which needs the final
rotations), and both read the same frames. Rather than decode the clip a second time, the
tracking pass keeps every sampled frame here (JPEG, ~100 kB at 1024 px: a 10-minute clip needs
well under 1 GB of temporary disk and a constant few kB of memory), and the background pass reads
them back. Decoding a high-bitrate 1080p frame costs ~10 CPU-ms; a JPEG at sample size ~3.
"""

from __future__ import annotations

import tempfile
from typing import Iterator

import cv2
import numpy as np

from pano360.errors import Pano360Error, temporary_disk

__all__ = ["FrameSpool"]


class FrameSpool:
    """An append-only store of ``(index, time_s, rgb)`` frames, read back in order.

    Use as a context manager (the file is deleted on exit). ``quality`` is the JPEG quality.
    """

    def __init__(self, quality: int = 95) -> None:
        self.quality = int(quality)
        with temporary_disk("keeping frames"):
            self._file = tempfile.TemporaryFile(prefix="pano360-spool-")
        self._entries: list[tuple[int, float, int, int]] = []  # index, time, offset, length

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, index: int, time_s: float, rgb: np.ndarray) -> None:
        """Keep one ``(h, w, 3) uint8`` RGB frame."""
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise Pano360Error("could not keep a frame in the temporary spool")
        with temporary_disk("keeping frames"):
            self._file.seek(0, 2)
            offset = self._file.tell()
            self._file.write(data.tobytes())
        self._entries.append((int(index), float(time_s), offset, len(data)))

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        for index, time_s, offset, length in list(self._entries):
            with temporary_disk("keeping frames"):  # the first seek flushes what is still buffered
                self._file.seek(offset)
                data = np.frombuffer(self._file.read(length), np.uint8)
            yield index, time_s, cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Delete the temporary file."""
        self._file.close()

    def __enter__(self) -> "FrameSpool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
