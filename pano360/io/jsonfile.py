"""Reading a JSON file a person gave on the command line, with a one-line error when it is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pano360.errors import Pano360Error

__all__ = ["read_json_file"]


def read_json_file(path: str | Path, what: str) -> Any:
    """The parsed contents of ``path``; Pano360Error naming ``what`` ("trajectory", "keyframes")
    when the file is missing, unreadable or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise Pano360Error(f"{what} file not found: {path}") from None
    except UnicodeDecodeError:
        raise Pano360Error(f"{what} file is not text (a video or an image?): {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise Pano360Error(f"cannot read {what} file {path}: {exc}") from None
