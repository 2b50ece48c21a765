"""Options shared by several commands, declared once (typer ``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated

import typer

OverwriteOpt = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace OUT if it exists.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only the result line.")]
