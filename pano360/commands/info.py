"""`pano360 info FILE [--json]`: what a video is, and whether (and how) it is 360."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pano360.commands._options import JsonOpt


def _audio_line(info) -> str:
    codecs = info.audio_codecs or ((info.audio_codec,) if info.has_audio else ())
    if not codecs:
        return "none"
    return codecs[0] if len(codecs) == 1 else f"{', '.join(codecs)} ({len(codecs)} tracks)"


def _human(info) -> str:
    """The plain-text report: one ``key: value`` per line."""
    fps = float(info.fps)
    lines = [
        f"file:       {info.path}",
        f"size:       {info.width}x{info.height}" + (f" (stored {info.coded_width}x{info.coded_height}, "
                                                     f"display rotation {info.rotation_deg} deg)"
                                                     if info.rotation_deg else ""),
        *([f"pixels:     {info.pixel_aspect.numerator}:{info.pixel_aspect.denominator} (non-square)"]
          if info.pixel_aspect != 1 else []),
        f"fps:        {fps:.3f} ({info.fps.numerator}/{info.fps.denominator})",
        f"duration:   {info.duration_s:.3f} s",
        f"frames:     {info.frame_count}" + ("" if info.frame_count_exact else " (estimated)"),
        f"codec:      {info.codec} {info.pix_fmt} ({info.bit_depth}-bit)",
        f"rotation:   {info.rotation_deg} deg",
        f"audio:      {_audio_line(info)}",
    ]
    sph = info.spherical
    if sph is None:
        lines.append("360:        no (no Spherical Video metadata)")
    else:
        yaw, pitch, roll = sph.initial_view_deg
        lines += [
            f"360:        yes ({sph.source} metadata)" + ("" if sph.supported else f", UNSUPPORTED: {sph.reason}"),
            f"projection: {sph.projection}",
            f"stereo:     {sph.stereo}",
            f"initial view: yaw {yaw:g}, pitch {pitch:g}, roll {roll:g} deg",
        ]
    return "\n".join(lines)


def command(
    file: Annotated[Path, typer.Argument(help="The video to describe.", show_default=False)],
    json_output: JsonOpt = False,
) -> None:
    """Size, frame rate, duration, frames, codec, rotation, audio, and the 360 metadata of a video."""
    from pano360.io.probe import validate_video_input

    info = validate_video_input(file)
    if json_output:
        typer.echo(json.dumps(info.to_dict(), separators=(",", ":")))
    else:
        typer.echo(_human(info))
