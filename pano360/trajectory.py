"""The camera trajectory every stage passes around, and the trajectory JSON file of ``CONVENTIONS.md``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np

from pano360.console import count
from pano360.errors import Pano360Error
from pano360.project.rotation import check_rotations, matrix_to_euler

__all__ = ["Trajectory"]

TRAJECTORY_VERSION = 1


@dataclass(frozen=True)
class Trajectory:
    """Per-frame camera rotations of one clip.

    Attributes:
        time_s: ``(N,)`` presentation time of every decoded frame, seconds.
        R: ``(N, 3, 3)`` camera-to-world rotations (``d_world = R[i] @ d_cam``); ``R[0]`` is usually I.
        hfov_deg: horizontal field of view of the picture as the user sees it.
        width, height: the picture size the FOV refers to (after display rotation).
        inliers: ``(N,)`` feature inliers behind each estimate (0 where unknown).
        source: the clip this came from (a name, for people).
    """

    time_s: np.ndarray
    R: np.ndarray
    hfov_deg: float
    width: int
    height: int
    inliers: np.ndarray = field(default=None)  # type: ignore[assignment]
    source: str = ""

    def __post_init__(self) -> None:
        R = check_rotations(self.R)
        if R.ndim != 3:
            raise ValueError(f"R must be (N, 3, 3), got {R.shape}")
        time_s = np.asarray(self.time_s, dtype=np.float64)
        if time_s.shape != (R.shape[0],):
            raise ValueError(f"time_s must be ({R.shape[0]},), got {time_s.shape}")
        inliers = np.zeros(len(time_s), dtype=np.int64) if self.inliers is None else np.asarray(self.inliers, dtype=np.int64)
        if inliers.shape != time_s.shape:
            raise ValueError(f"inliers must be ({len(time_s)},), got {inliers.shape}")
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "time_s", time_s)
        object.__setattr__(self, "inliers", inliers)
        object.__setattr__(self, "hfov_deg", float(self.hfov_deg))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def __len__(self) -> int:
        return len(self.time_s)

    def _header(self) -> dict:
        return {"version": TRAJECTORY_VERSION, "source": self.source, "width": self.width, "height": self.height,
                "hfov_deg": self.hfov_deg}

    def _frames(self) -> Iterator[dict]:
        yaw, pitch, roll = matrix_to_euler(self.R) if len(self) else (np.zeros(0),) * 3
        for i in range(len(self)):
            yield {
                "index": i,
                "time_s": float(self.time_s[i]),
                "R": [[float(x) for x in row] for row in self.R[i]],
                "yaw_deg": float(yaw[i]),
                "pitch_deg": float(pitch[i]),
                "roll_deg": float(roll[i]),
                "inliers": int(self.inliers[i]),
            }

    def to_json(self) -> dict:
        """The trajectory file's content as a JSON-ready dict (the format of ``CONVENTIONS.md``)."""
        return {**self._header(), "frames": list(self._frames())}

    def write_json(self, fp: TextIO) -> None:
        """Write the trajectory file's JSON (what :meth:`to_json` holds) to a text stream a frame
        per line, without building it all in memory first (an hour of frames is ~100k entries)."""
        head = json.dumps(self._header())
        fp.write(head[:-1] + ', "frames": [\n')
        for i, frame in enumerate(self._frames()):
            fp.write((",\n" if i else "") + json.dumps(frame))
        fp.write("\n]}\n")

    @classmethod
    def from_json(cls, data: dict) -> "Trajectory":
        """Build a Trajectory from the trajectory file's dict; raises Pano360Error when malformed."""
        if not isinstance(data, dict):
            raise Pano360Error("not a valid trajectory file: it holds no JSON object")
        if "frames" not in data and "keyframes" in data:
            raise Pano360Error("not a trajectory file but a keyframes file (that is reframe --path's)")
        version = data.get("version", TRAJECTORY_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= TRAJECTORY_VERSION:
            raise Pano360Error(f"trajectory file version {version!r}: this pano360 reads version {TRAJECTORY_VERSION}"
                               + (" (written by a newer pano360?)" if isinstance(version, int) and version > TRAJECTORY_VERSION else ""))
        missing = [k for k in ("frames", "hfov_deg", "width", "height") if data.get(k) is None]
        if missing:
            raise Pano360Error(f"not a valid trajectory file: no {', '.join(repr(k) for k in missing)}")
        try:
            frames = sorted(data["frames"], key=lambda f: f["index"])
            if not frames:
                raise ValueError("it has no frames")
            if [f["index"] for f in frames] != list(range(len(frames))):
                raise ValueError("its frame indices are not 0, 1, 2, ... (one entry per frame)")
            time_s = np.array([f["time_s"] for f in frames], dtype=np.float64)
            try:
                R = np.array([f["R"] for f in frames], dtype=np.float64)
            except ValueError:  # ragged: numpy's own words would say "inhomogeneous shape"
                raise ValueError("every frame needs a finite 3x3 rotation R") from None
            if not np.isfinite(time_s).all() or (np.diff(time_s) <= 0).any():
                raise ValueError("its frame times are not finite and increasing")
            if R.shape != (len(frames), 3, 3) or not np.isfinite(R).all():
                raise ValueError("every frame needs a finite 3x3 rotation R")
            bad = (np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2)) > 1e-3) | (np.linalg.det(R) < 0)
            if bad.any():
                raise ValueError(f"frame {int(np.argmax(bad))}'s R is no rotation")
            if not 0.0 < float(data["hfov_deg"]) <= 360.0:  # 360: a 360 video's own rotations (stabilize)
                raise ValueError(f"hfov_deg must be within (0, 360], got {data['hfov_deg']}")
            if int(data["width"]) <= 0 or int(data["height"]) <= 0:
                raise ValueError("width and height must be positive")
            return cls(
                time_s=time_s,
                R=R,
                hfov_deg=float(data["hfov_deg"]),
                width=int(data["width"]),
                height=int(data["height"]),
                inliers=np.array([f.get("inliers", 0) for f in frames], dtype=np.int64),
                source=str(data.get("source", "")),
            )
        except KeyError as exc:
            raise Pano360Error(f"not a valid trajectory file: a frame has no {exc}") from None
        except (TypeError, ValueError) as exc:
            raise Pano360Error(f"not a valid trajectory file: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the trajectory file atomically."""
        from pano360.io.atomic import atomic_output

        with atomic_output(path, overwrite=True) as tmp, open(tmp, "w") as fp:
            self.write_json(fp)

    def check_flat(self, what: str) -> None:
        """Raise Pano360Error unless this is the trajectory of a flat clip (``hfov_deg`` from 1 to 179):
        ``convert --trajectory`` and ``reframe --follow`` need one, not a 360 video's (stabilize's
        files have ``hfov_deg`` 360). ``what`` names the file in the message."""
        if self.hfov_deg >= 180.0:
            raise Pano360Error(f"{what} is a 360 video's trajectory (hfov_deg {self.hfov_deg:g}), not a flat clip's")
        if not 1.0 <= self.hfov_deg <= 179.0:
            raise Pano360Error(f"{what}: hfov_deg {self.hfov_deg:g} is no flat clip's field of view (1 to 179 degrees)")

    def check_covers(self, duration_s: float, fps: float, what: str, frames: int | None = None) -> str | None:
        """Raise Pano360Error unless the trajectory spans a video of ``duration_s`` seconds at ``fps``
        (its first frame within two frame periods, its last at least 90 % of the way: a duration
        may come from the container, audio included): a trajectory of another clip, or of a part
        of this one, would otherwise be stretched silently over the whole video.

        Returns a warning when it passes but its frame count differs from the video's exact count
        ``frames`` by more than 2 (a trajectory of a similar clip, or of an edited version; a frame
        or two can differ where a container counts a frame that does not decode), else None."""
        if not duration_s or duration_s <= 0:
            return None  # a length nobody knows cannot be checked
        period = 1.0 / float(fps) if fps and fps > 0 else 0.04
        last = max(float(duration_s) - period, 0.0)
        first_t, last_t = float(self.time_s[0]), float(self.time_s[-1])
        if first_t > 2 * period or last_t < 0.9 * last - 2 * period:
            raise Pano360Error(f"{what} covers {first_t:.2f}-{last_t:.2f} s ({count(len(self), 'frame')}), the video "
                               f"0.00-{last:.2f} s: it is the trajectory of another clip")
        if frames and abs(frames - len(self)) > 2:
            return (f"{what} has {count(len(self), 'frame')}, the video {frames}: is it this video's trajectory? "
                    f"(its rotations are used by time)")
        return None

    @classmethod
    def load(cls, path: str | Path) -> "Trajectory":
        """Read a trajectory file; raises Pano360Error on a missing or malformed file."""
        from pano360.io.jsonfile import read_json_file

        path = Path(path)
        data = read_json_file(path, "trajectory")
        if not isinstance(data, dict):
            raise Pano360Error(f"not a valid trajectory file: {path}")
        try:
            return cls.from_json(data)
        except Pano360Error as exc:
            raise Pano360Error(f"{exc}: {path}") from None
