"""`pano360 tag IN OUT [--stereo ...] [--json] [-y]`: mark an equirectangular MP4 as 360 without re-encoding."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from pano360.commands._options import JsonOpt, OverwriteOpt, QuietOpt


class Stereo(str, Enum):
    none = "none"
    top_bottom = "top-bottom"
    left_right = "left-right"


def command(
    input: Annotated[Path, typer.Argument(help="An equirectangular MP4 (H.264 or HEVC).", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Where to write the tagged copy.", show_default=False)],
    stereo: Annotated[Optional[Stereo], typer.Option("--stereo", help="Stereo layout of the frames (default: what the input's metadata says, else none).")] = None,
    faststart: Annotated[bool, typer.Option("--faststart/--keep-layout",
                                            help="Put the index (moov) first for streaming.")] = True,
    json_output: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Add Spherical Video V1 + V2 metadata (what Google's Spatial Media injector does); the media
    data is copied byte for byte and the input is never changed."""
    from pano360.console import note
    from pano360.errors import Pano360Error, UsageError
    from pano360.io.atomic import MP4_OUTPUT_SUFFIXES, atomic_output, check_output_path
    from pano360.io.probe import validate_video_input
    from pano360.io.spherical import inject_spherical

    info = validate_video_input(input)
    check_output_path(output, overwrite, inputs=(input,), suffixes=MP4_OUTPUT_SUFFIXES)
    if not info.container.startswith("mov"):
        raise UsageError(f"input must be an MP4/MOV file, got {info.container}: {input}")
    if info.spherical is not None and not info.spherical.supported and info.spherical.projection != "equirectangular":
        raise Pano360Error(f"input is a {info.spherical.projection}-projection 360 video; "
                           f"only equirectangular can be tagged: {input}")
    # Re-tagging keeps what the input says (a V1-only stereo video gets V2 with the same layout,
    # and its initial view) unless the flag says otherwise.
    old = info.spherical if info.spherical is not None and info.spherical.projection == "equirectangular" else None
    if stereo is None:
        stereo = Stereo(old.stereo) if old is not None and old.stereo in {s.value for s in Stereo} else Stereo.none
    view = old.initial_view_deg if old is not None else (0.0, 0.0, 0.0)
    warnings = []
    if abs(info.width - 2 * info.height) > 2 and stereo == Stereo.none:
        warnings.append(f"{info.width}x{info.height} is not 2:1; an equirectangular frame usually is")
        note(f"warning: {warnings[-1]}")  # even with -q
    with atomic_output(output, overwrite=overwrite) as tmp:
        inject_spherical(input, tmp, stereo=stereo.value, initial_view_deg=view, faststart=faststart)
    if json_output:
        typer.echo(json.dumps({"output": str(output), "input": str(input), "projection": "equirectangular",
                               "stereo": stereo.value, "initial_view_deg": list(view), "warnings": warnings},
                              separators=(",", ":")))
    else:
        typer.echo(f"wrote {output} (360 equirectangular, stereo {stereo.value})")  # the result line, -q or not
