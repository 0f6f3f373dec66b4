"""``uvrsep models``: list, download and inspect models.

Exit codes: 0 success, 1 a download or an inspection failed, 2 an unknown model name.
"""

from __future__ import annotations

import json
import sys

import typer

from .api import stem_names
from .errors import UvrsepError
from .pretrained import (
    ModelEntry,
    UnknownModelError,
    download,
    get_entry,
    is_cached,
    list_models,
    model_info,
    models_dir,
)

EXIT_FAILED = 1
EXIT_UNKNOWN = 2
BYTES_PER_MB = 1e6

models_app = typer.Typer(
    add_completion=False, rich_markup_mode=None, no_args_is_help=True,
    help="List, download and inspect models.",
)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _size(size: int | None) -> str:
    return f"{size / BYTES_PER_MB:.1f}" if size else "?"


def model_row(entry: ModelEntry) -> dict[str, object]:
    """A registry model as ``models list --json`` (and the server's model list) shows it."""
    return {**vars(entry), "stems": list(stem_names(entry.primary_stem)), "cached": is_cached(entry)}


@models_app.command("list")
def list_command(json_out: bool = typer.Option(False, "--json", help="JSON on stdout (one object per model).")) -> None:
    """Every registry model: name, architecture, params, stems, size, cached or not."""
    try:
        entries = list_models()
    except UvrsepError as exc:
        _fail(str(exc), EXIT_FAILED)
    rows = [model_row(entry) for entry in entries]
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    header = ("name", "arch", "params", "stems (primary/secondary)", "MB", "cached")
    table = [
        (
            row["name"] + (" *" if row["recommended"] else ""), row["arch"], row["params"],
            "/".join(row["stems"]), _size(row["bytes"]), "yes" if row["cached"] else "no",
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        cells = [str(cell).ljust(width) if i != 4 else str(cell).rjust(width) for i, (cell, width) in enumerate(zip(line, widths))]
        typer.echo("  ".join(cells).rstrip())
    typer.echo(f"* recommended default; cache: {models_dir()}")


@models_app.command("download")
def download_command(
    names: list[str] = typer.Argument(..., help="Registry model names (see `uvrsep models list`)."),
    force: bool = typer.Option(False, "--force", help="Download again even when cached."),
    offline: bool = typer.Option(False, "--offline", help="Fail instead of downloading (also UVRSEP_OFFLINE=1)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Download models into the cache (verified, then renamed into place); prints their paths."""
    entries = []
    for name in names:
        entry = get_entry(name)
        if entry is None:
            _fail(f"unknown model '{name}'; see `uvrsep models list`", EXIT_UNKNOWN)
        entries.append(entry)
    failed = 0
    for entry in entries:
        try:
            typer.echo(str(download(entry, force=force, progress=not quiet, offline=offline)))
        except UvrsepError as exc:
            sys.stderr.write(f"error: {exc}\n")
            failed += 1
    if failed:
        raise typer.Exit(EXIT_FAILED)


@models_app.command("info")
def info_command(
    model: str = typer.Argument(..., help="Registry name or path to a .pth."),
    json_out: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """UVR hash, detected architecture, params, primary stem, parameter count and dtype of a model
    (registry data only for a registry model that is not downloaded)."""
    try:
        info = model_info(model)
    except UnknownModelError as exc:
        _fail(str(exc), EXIT_UNKNOWN)
    except UvrsepError as exc:
        _fail(str(exc), EXIT_FAILED)
    if json_out:
        sys.stdout.write(json.dumps(info, indent=1) + "\n")
        return
    for key, value in info.items():
        typer.echo(f"{key:13s} {'-' if value is None else value}")


@models_app.command("path")
def path_command() -> None:
    """Print the folder models are cached in ($UVRSEP_HOME/models)."""
    typer.echo(str(models_dir()))
