"""`pano360 batch IN_DIR OUT_DIR`: convert every video in a folder, resumable, locally or on Ray."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.markup import escape

from pano360.commands._options import JsonOpt, QuietOpt
from pano360.commands.convert import (BackendOpt, CrfOpt, DeviceOpt, GenWidthOpt, GuidanceOpt, HfovOpt, LevelOpt, LoraOpt,
                                      LoraScaleOpt, ModelOpt, NegPromptOpt, OffloadOpt, OrientOpt, PresetOpt, PromptOpt,
                                      SeedOpt, ShiftOpt, StepsOpt, WidthOpt, wan_kwargs)


@contextlib.contextmanager
def _output_folder(out_dir: Path) -> Iterator[None]:
    """Make the output folder; take it away again when the run fails before anything is in it
    (an unreachable Ray cluster, a bad --report) and the run made it."""
    import os

    from pano360.errors import Pano360Error, UsageError

    made = []  # the folders this run creates, deepest first
    folder = out_dir.absolute()
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Pano360Error(f"cannot make the output folder {out_dir}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UsageError(f"output folder is not writable: {out_dir}")
    try:
        yield
    except BaseException:
        for folder in made:
            if any(folder.iterdir()):
                break
            folder.rmdir()
        raise


def command(
    in_dir: Annotated[Path, typer.Argument(help="Folder of input videos (searched recursively).")],
    out_dir: Annotated[Path, typer.Argument(help="Output folder; the input folder's structure is mirrored.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Conversions at once (worker processes).")] = 1,
    glob: Annotated[Optional[str], typer.Option("--glob", help="Only the videos matching this pattern, case-insensitive (e.g. '*.mov', 'trip/**/*.{mp4,mov}').")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run the jobs as Ray tasks (a local Ray unless --ray-address or RAY_ADDRESS).")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster address for --ray (e.g. ray://head:10001).")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Where to write the JSON report (default OUT_DIR/batch_report.json).")] = None,
    redo: Annotated[bool, typer.Option("--overwrite", "-y", help="Convert again the videos whose output is already there (by default they are skipped), e.g. after changing options.")] = False,
    backend: BackendOpt = "auto",
    width: WidthOpt = 4096,
    hfov: HfovOpt = None,
    orientation: OrientOpt = "world",
    level: LevelOpt = False,
    crf: CrfOpt = 20,
    preset: PresetOpt = "ultrafast",
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    model: ModelOpt = None,
    lora: LoraOpt = None,
    lora_scale: LoraScaleOpt = 1.0,
    prompt: PromptOpt = "",
    negative_prompt: NegPromptOpt = "",
    steps: StepsOpt = 30,
    guidance: GuidanceOpt = 5.0,
    shift: ShiftOpt = None,
    seed: SeedOpt = 0,
    gen_width: GenWidthOpt = 1024,
    offload: OffloadOpt = False,
    device: DeviceOpt = None,
) -> None:
    """Convert every video under IN_DIR to a 360 MP4 under OUT_DIR; finished outputs are skipped,
    a failed file does not stop the rest, and the exit code is 1 if any file failed."""
    from pano360.batch import discover_jobs, run_batch
    from pano360.batch.run import check_ray_address, write_report
    from pano360.console import note, stderr
    from pano360.errors import Pano360Error, UsageError
    from pano360.generate.select import choose_backend
    from pano360.generate.wan.loading import model_name, require_model
    from pano360.io.atomic import check_output_path
    from pano360.io.writer import check_encoder_settings
    from pano360.pipeline.convert import check_width
    from pano360.pipeline.orient import check_orientation
    from pano360.project.camera import check_clip_hfov

    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if ray_address and not ray:
        ray = True
    # Flags that every job would reject fail here, once, before any work.
    check_width(width)
    check_encoder_settings("h264", crf, preset)
    check_clip_hfov(hfov)
    check_orientation(orientation)
    name, reason = choose_backend(backend, model, device)
    # Passed on to the jobs: Ray workers may not have $PANO360_MODEL.
    model = (require_model(model) if name == "wan" else model_name(model)) or None
    if ray_address:
        try:
            check_ray_address(ray_address)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    # The Wan numbers too (--steps 0 failed every job, one by one).
    wan = wan_kwargs(lora, lora_scale, prompt, negative_prompt, steps, guidance, shift, seed, gen_width, offload, quiet=True)
    notes: list[str] = []
    found = discover_jobs(in_dir, out_dir, glob, notes)
    if not found:
        raise Pano360Error(f"no videos found under {in_dir}" + (f" matching {glob!r}" if glob else "")
                           + (f" ({notes[-1]})" if notes else ""))
    for line in notes:
        note(f"warning: {line}")
    with _output_folder(out_dir):
        if report is not None:  # checked before any work; a report is rewritten by each run
            check_output_path(report, True, tuple(j.input for j in found), (".json",), what="--report",
                              other_outputs=tuple(("output", j.output) for j in found))
        loud = not (quiet or json_output)
        note(f"batch: {len(found)} video{'s' if len(found) != 1 else ''}, backend {name} ({reason})" + (", on Ray" if ray else f", {jobs} at a time"), not loud)
        opts = dict(backend=name, width=width, hfov_deg=hfov, orientation=orientation, level=level, crf=crf, preset=preset,
                    model=model, device=device,
                    wan=wan)

        def progress(job, rec) -> None:
            if not loud:  # -q or --json: a job's warnings still show, as convert's do
                for w in rec["warnings"]:
                    note(f"warning: {job.rel}: {w}")
            if loud:
                mark = {"done": "[green]done[/]", "skipped": "[dim]skipped[/]", "failed": "[red]FAILED[/]"}[rec["status"]]
                extra = (f": {rec['error'] or rec['note']}" if rec["error"] or rec["note"]
                         else f" ({rec['seconds']:.1f} s)" if rec["status"] == "done" else "")
                for w in rec.get("warnings") or ():
                    extra += f"\n  warning: {w}"
                stderr.print(f"{mark} {escape(f'{job.rel}{extra}')}", markup=True, highlight=False, soft_wrap=True)

        t0 = time.perf_counter()
        records = run_batch(found, opts, n_jobs=jobs, ray_address=ray_address, use_ray=ray, on_done=progress,
                            redo=redo)
    report_path = report or (out_dir / "batch_report.json")
    rep = write_report(report_path, records, opts, time.perf_counter() - t0, notes)
    s = rep["summary"]
    if json_output:
        typer.echo(json.dumps({**rep, "report": str(report_path)}))
    else:
        if loud:
            from rich.table import Table

            table = Table(title="pano360 batch", title_justify="left")
            for col in ("input", "status", "seconds", "output / error"):
                table.add_column(col)
            for r in records:
                colour = {"done": "green", "skipped": "dim", "failed": "red"}[r["status"]]
                table.add_row(escape(str(Path(r["input"]).relative_to(in_dir))), f"[{colour}]{r['status']}[/]",
                              f"{r['seconds']:.1f}", escape(r["error"] or r["note"] or r["output"]))
            stderr.print(table)
        n_360 = sum(r["note"] is not None for r in records if r["status"] == "skipped")
        why = ([f"{n_360} already 360"] if n_360 else []) + (
            ["their outputs were there already; -y converts them again"] if s["skipped"] > n_360 else [])
        hint = f" ({'; '.join(why)})" if why else ""
        typer.echo(f"{s['done']} converted, {s['skipped']} skipped{hint}, {s['failed']} failed; report: {report_path}")
    if s["failed"]:
        first = next(r for r in records if r["status"] == "failed")
        raise Pano360Error(f"{s['failed']} of {s['total']} videos failed (first: {Path(first['input']).relative_to(in_dir)}: "
                           f"{first['error'].splitlines()[0]}); see {report_path}")
