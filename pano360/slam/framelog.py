"""Every frame's tracking evidence, kept on disk: what the tracker holds per frame stays in a file.

The back end needs each frame's inlier pairs once, after tracking, to refine that frame's
rotation; held in memory they would grow with the clip (~3 kB a frame: 350 MB for an hour at
30 fps). :class:`FrameLog` writes the point arrays to an unlinked temporary file as they come
(nothing is left behind, however the process ends) and keeps a few numbers a frame in memory.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pano360.errors import temporary_disk

__all__ = ["FrameObs", "FrameLog"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_REASONS: list[str] = ["", "restart", "no texture", "direct"]


@dataclass
class FrameObs:
    """A frame's evidence: reference keyframe (-1 when lost), ``kf_pts``/``pts`` ``(k, 2)`` inlier pairs.

    ``reason`` is "" normally, "restart" when tracking broke here and a new segment began (a cut,
    or motion too fast to follow), "no texture" when the frame had nothing to track, "direct" when
    it had too few corners but its picture was aligned to the keyframe before the break (then
    ``inliers`` is 0: low confidence). ``kf_info (k, 3)``: the precision of ``kf_pts`` in the
    keyframe (:func:`precision.point_information`); None for direct alignments.
    """

    ref_kf: int
    kf_pts: np.ndarray
    pts: np.ndarray
    inliers: int
    reason: str = ""
    kf_info: np.ndarray | None = None


class FrameLog:
    """A list of :class:`FrameObs` (``append``, ``len``, ``[i]``, iteration) whose arrays live in a
    temporary file; an item read back equals the one appended (same values, dtypes and shapes)."""

    def __init__(self) -> None:
        with temporary_disk("logging tracked frames"):
            self._file = tempfile.TemporaryFile(prefix="pano360-frames-")
        self._end = 0  # bytes written
        self._flushed = True
        self._ref = array("q")
        self._inliers = array("q")
        self._reason = array("b")
        self._reasons = list(_REASONS)
        self._offset = array("q")
        # per array (kf_pts, pts, kf_info): rows (-1: None), columns, dtype index
        self._rows = array("q")
        self._cols = array("b")
        self._dtype = array("b")

    def append(self, obs: FrameObs) -> None:
        if obs.reason not in self._reasons:
            self._reasons.append(obs.reason)
        self._ref.append(int(obs.ref_kf))
        self._inliers.append(int(obs.inliers))
        self._reason.append(self._reasons.index(obs.reason))
        self._offset.append(self._end)
        for a in (obs.kf_pts, obs.pts, obs.kf_info):
            if a is None:
                self._rows.append(-1)
                self._cols.append(0)
                self._dtype.append(0)
                continue
            a = np.ascontiguousarray(a)
            if a.dtype not in _DTYPES or a.ndim != 2:
                raise ValueError(f"frame arrays must be 2-D float32/float64, got {a.dtype} {a.shape}")
            self._rows.append(a.shape[0])
            self._cols.append(a.shape[1])
            self._dtype.append(_DTYPES.index(a.dtype))
            with temporary_disk("logging tracked frames"):
                self._file.write(a.tobytes())
            self._end += a.nbytes
        self._flushed = False

    def __len__(self) -> int:
        return len(self._ref)

    def ref_kf(self, i: int) -> int:
        """Frame ``i``'s reference keyframe, without reading its points."""
        return self._ref[i]

    def inliers(self) -> np.ndarray:
        """Every frame's inlier count ``(N,)``."""
        return np.frombuffer(self._inliers, dtype=np.int64).copy() if len(self) else np.zeros(0, np.int64)

    def point_count(self, i: int) -> int:
        """How many pairs frame ``i`` holds (``len(obs.pts)``), without reading them."""
        return max(self._rows[3 * i + 1], 0)

    def __getitem__(self, i: int) -> FrameObs:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        if not self._flushed:
            with temporary_disk("logging tracked frames"):
                self._file.flush()
            self._flushed = True
        offset = self._offset[i]
        arrays = []
        for j in range(3 * i, 3 * i + 3):
            rows = self._rows[j]
            if rows < 0:
                arrays.append(None)
                continue
            dtype, cols = _DTYPES[self._dtype[j]], self._cols[j]
            n = rows * cols * dtype.itemsize
            data = os.pread(self._file.fileno(), n, offset) if n else b""
            arrays.append(np.frombuffer(data, dtype=dtype).reshape(rows, cols).copy())
            offset += n
        return FrameObs(self._ref[i], arrays[0], arrays[1], self._inliers[i], self._reasons[self._reason[i]], arrays[2])

    def __iter__(self) -> Iterator[FrameObs]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
