"""``uvrsep eval``: BSS-eval SDR/SIR/SAR of a model (and of baselines) on tracks with true stems.

Exit codes: 0 every track was scored, 1 some tracks failed (the others were still scored),
2 usage errors (no track found, unusable model, bad option value). Messages go to stderr; the
table (or, with ``--json``, one JSON document) goes to stdout.
"""

from __future__ import annotations

import enum
import json
import math
import sys
from typing import Optional, Sequence

import typer

from . import __version__
from .api import PRECISIONS
from .cli_models import _fail
from .errors import UvrsepError
from .dataset import STEMS, discover_tracks
from .evaluate import (
    BASELINES,
    EVAL_SEARCH_DEPTH,
    METRICS,
    EvalResult,
    Method,
    TrackResult,
    evaluate,
    model_method,
)

EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
#: Decimals of the metrics in the table.
METRIC_DECIMALS = 2
#: Track column of the median rows.
MEDIAN_LABEL = "median"


def _choices(name: str, values: Sequence[str]) -> type[enum.Enum]:
    """A ``str`` enum of ``values`` (Typer's way to offer a fixed set of option values)."""
    return enum.Enum(name, {value: value for value in values}, type=str)  # type: ignore[return-value]


Baseline = _choices("Baseline", list(BASELINES))
Precision = _choices("Precision", PRECISIONS)


def _say(message: str, quiet: bool = False) -> None:
    """A progress or warning line on stderr, unless quiet."""
    if not quiet:
        sys.stderr.write(message + "\n")


def load_model_method(
    model: Optional[str], params: Optional[str], device: str, precision: str, offline: bool, quiet: bool
) -> tuple[str, Method, dict[str, object]]:
    """Resolve ``-m``/``-p`` like ``uvrsep split`` and wrap the model as a method.

    Returns:
        ``(method name, method, JSON description of the model)``.

    Raises:
        UvrsepError: unknown/unusable model, bad params, device or precision, or a model whose
            stems are not vocals/instrumental.
    """
    from .api import Separator
    from .pretrained import resolve_model

    resolved = resolve_model(model, params, None, offline=True if model is None else offline, progress=not quiet)
    separator = Separator(
        resolved.state_dict, resolved.params, primary_stem=resolved.primary_stem, device=device, precision=precision  # type: ignore[arg-type]
    )
    method = model_method(separator)
    name = resolved.name if resolved.name not in BASELINES else f"model:{resolved.name}"
    info = {
        "name": resolved.name, "path": str(resolved.path) if resolved.path else None, "arch": resolved.arch,
        "params": resolved.params.name, "primary_stem": resolved.primary_stem,
        "device": str(separator.device), "precision": separator.precision,
    }
    return name, method, info


def _cell(value: float) -> str:
    """A metric as table text ("-" for NaN: a silent reference or an undefined SIR)."""
    return "-" if math.isnan(value) else f"{value:.{METRIC_DECIMALS}f}"


def _rows(method: str, track: str, scores: dict[str, dict[str, float]]) -> list[tuple[str, ...]]:
    """Table rows (method, track, stem, metrics...) of one method on one track (or the median)."""
    return [(method, track, stem, *(_cell(scores[stem][m]) for m in METRICS)) for stem in STEMS]


def format_table(result: EvalResult) -> str:
    """The human-readable table: one row per method, scored track and stem, then the medians
    over the scored tracks, then each method's separation time."""
    scored = [track for track in result.tracks if track.ok]
    header = ("method", "track", "stem", *(m.upper() for m in METRICS))
    body = [row for method in result.methods for track in scored for row in _rows(method, track.name, track.scores[method])]
    medians = [row for method in result.methods for row in _rows(method, MEDIAN_LABEL, result.median[method])]
    widths = [max(len(row[i]) for row in [header, *body, *medians]) for i in range(len(header))]
    names = len(header) - len(METRICS)

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) if i < names else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

    rule = "-" * len(line(header))
    lines = [line(header), rule, *map(line, body), rule, *map(line, medians)]
    audio = sum(track.duration or 0.0 for track in scored)
    times = ", ".join(f"{method} {result.seconds[method]:.1f} s" for method in result.methods)
    failed = f", {result.failed} failed (see the errors above)" if result.failed else ""
    lines.append(f"{len(scored)} track(s) scored{failed}, {audio:.1f} s of audio; separation time: {times}")
    return "\n".join(lines)


def _report_track(track: TrackResult, quiet: bool) -> None:
    """Progress and warnings of one finished track on stderr."""
    if not track.ok:
        sys.stderr.write(f"error: {track.error}\n")
        return
    for stem in track.silent:
        _say(f"warning: {track.folder}: the {stem} reference is silent; its SDR/SIR/SAR are NaN (left out of the medians)", quiet)
    times = ", ".join(f"{method} {seconds:.1f} s" for method, seconds in track.seconds.items())
    _say(f"{track.name}: scored ({times})", quiet)


def eval_command(
    datasets: list[str] = typer.Argument(..., metavar="DATASET", help="Track folders (mixture.<ext> + vocals.<ext> and/or accompaniment.<ext>), folders of them, or folders with mixtures/ + instrumentals/ sub-folders.", show_default=False),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Registry model name or path to a .pth. Default (with no --baseline): the default model, if available offline."),
    params: Optional[str] = typer.Option(None, "-p", "--params", help="Model-params name (e.g. 4band_v2) or JSON path. Default: known from the model."),
    baselines: Optional[list[Baseline]] = typer.Option(None, "--baseline", help="Also score a baseline (repeatable): mixture, hpss (two-stage), repet-sim.", show_default=False),  # type: ignore[valid-type]
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps (the model only)."),
    precision: Precision = typer.Option("auto", "--precision", help="Model precision: fp32, bf16, fp16 or auto (see `uvrsep split --help`)."),
    offline: bool = typer.Option(False, "--offline", help="Never download the model (also UVRSEP_OFFLINE=1)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (per track, method and stem: sdr, sir, sar; medians; times)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress messages (errors and warnings still go to stderr)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Tracebacks of internal errors."),
) -> None:
    """Score a model (and baselines) with BSS-eval SDR/SIR/SAR against true stems.

    Whole-track metrics per channel (BSS-eval v4's distortion filter length), averaged over
    channels; the median over tracks; separation times. Without -m and --baseline, the default model is
    scored.
    """
    tracks, problems = discover_tracks(datasets, depth=EVAL_SEARCH_DEPTH)
    if not tracks:
        _fail("; ".join(problems), EXIT_USAGE)
    methods: dict[str, Method] = {}
    model_info = None
    if model is not None or not baselines:
        try:
            name, method, model_info = load_model_method(model, params, device, precision.value, offline, quiet)
        except UvrsepError as exc:
            _fail(str(exc), EXIT_USAGE)
        methods[name] = method
    for baseline in dict.fromkeys(baselines or []):
        methods[baseline.value] = BASELINES[baseline.value]
    for message in problems:
        sys.stderr.write(f"error: {message}\n")
    result = evaluate(tracks, methods, on_track=lambda track: _report_track(track, quiet), verbose=verbose)
    if json_out:
        document = {"version": __version__, "model": model_info, **result.to_dict()}
        document["failed"] = result.failed + len(problems)
        document["problems"] = problems
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
    else:
        typer.echo(format_table(result))
    if result.failed or problems:
        raise typer.Exit(EXIT_SOME_FAILED)
