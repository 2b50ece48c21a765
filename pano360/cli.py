"""The ``pano360`` command line: thin commands over library functions, one-line errors.

Every failure the user can act on is a :class:`~pano360.errors.Pano360Error`, printed as one
line ``Error: ...`` on stderr with exit code 1 (2 for usage errors, as click does for bad flags).
A traceback appears only with ``--debug`` or ``PANO360_DEBUG=1``; anything else that escapes a
command (an OSError, a bug) is still one line.
"""

from __future__ import annotations

import os
import signal
import sys

import click
import typer

from pano360 import __version__
from pano360.commands import batch, convert, info, metrics, reframe, stabilize, tag, track, train
from pano360.errors import Pano360Error
from pano360.signals import Terminated, install_signal_handlers

app = typer.Typer(
    name="pano360",
    help="Turn an ordinary video into a 360-degree equirectangular video, then stabilise, reframe and measure it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("info", help="What a video is: size, rate, duration, rotation, audio, and whether it is 360.")(info.command)
app.command("tag", help="Mark an equirectangular video as 360 (Spherical Video V1 + V2) without re-encoding.")(tag.command)
app.command("track", help="Estimate every frame's camera rotation and the field of view; write a trajectory file.")(track.command)
app.command("convert", help="Turn a perspective video into a full 360 equirectangular MP4.")(convert.command)
app.command("batch", help="Convert every video in a folder (locally or on a Ray cluster).")(batch.command)
app.command("reframe", help="Cut a flat (or tiny-planet / fisheye) shot out of a 360 video.")(reframe.command)
app.command("stabilize", help="Stabilise a 360 video: lock or smooth its rotation, level the horizon.")(stabilize.command)
app.command("metrics", help="Measure a 360 video: seam, left-right consistency, motion, coverage.")(metrics.command)
app.command("train", help="Fit the panorama LoRA for Wan2.1 VACE on a folder of 360 videos.")(train.command)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pano360 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version.")) -> None:
    """pano360: perspective video to 360 video, and tools for 360 video."""


_debug_flag = False  # set by --debug for the current main() call


def _debug() -> bool:
    return _debug_flag or os.environ.get("PANO360_DEBUG", "") not in ("", "0")


def _take_debug_flag(argv: list[str]) -> list[str]:
    """``--debug`` anywhere before ``--`` acts as PANO360_DEBUG=1 (tracebacks shown)."""
    global _debug_flag
    end = argv.index("--") if "--" in argv else len(argv)
    _debug_flag = "--debug" in argv[:end]
    if _debug_flag:
        return [a for i, a in enumerate(argv) if not (i < end and a == "--debug")]
    return argv


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


# Typer >= 0.20 vendors its own click; older releases use click itself. Catch both.
_USAGE_ERRORS = tuple({click.ClickException, getattr(typer, "TyperException", click.ClickException)})
_EXITS = tuple({click.exceptions.Exit, typer.Exit})
_ABORTS = tuple({click.exceptions.Abort, typer.Abort})


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pano360`` script: run the app, map failures to one line and an exit code."""
    argv = _take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    try:
        # Outside standalone mode click returns a command's `typer.Exit(code)` as the value.
        result = app(args=argv, standalone_mode=False)
        if isinstance(result, int) and not isinstance(result, bool):
            if result == 130:  # typer answers Ctrl-C with 130, silently
                print("Error: interrupted", file=sys.stderr)
            return result
    except _EXITS as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _ABORTS:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except Pano360Error as exc:
        if _debug():
            raise
        sys.stdout.flush()  # what the command printed (batch's summary) comes before its error, also in a pipe
        print(f"Error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return exc.exit_code
    except _USAGE_ERRORS as exc:
        if _debug():
            raise
        msg = exc.format_message().replace("\n", " ").strip()
        if msg:  # click's no-args-is-help raises with no message after printing the help
            print(f"Error: {msg}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"Error: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except MemoryError:
        if _debug():
            raise
        print("Error: out of memory", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permission denied, ... raised below a command
        if _debug():
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"Error: {_one_line(exc.strerror or exc)}{where}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, the traceback under --debug / PANO360_DEBUG=1
        if _debug():
            raise
        print(f"Error: unexpected {type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return 0


def run() -> None:  # pragma: no cover - console script shim
    install_signal_handlers()
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    install_signal_handlers()
    sys.exit(main())
