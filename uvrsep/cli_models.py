"""``uvrsep models``: list, download and inspect models."""

from __future__ import annotations

import json
import sys
import typer

from .api import stem_names
from .errors import UvrsepError
from .pretrained import download, get_entry, is_cached, list_models, model_info, models_dir

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


@models_app.command("list")
def list_command(json_out: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Every registry model: name, architecture, params, stems, size, cached or not."""
    rows = []
    for entry in list_models():
        primary = entry.primary_stem
        stems = list(stem_names(primary)) if primary else None
        rows.append({**vars(entry), "stems": stems, "cached": is_cached(entry)})
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    typer.echo(f"{'name':28s} {'arch':12s} {'params':22s} {'stems':26s} {'MB':>6s} cached")
    for row in rows:
        stems = "/".join(row["stems"]) if row["stems"] else "(from file hash)"
        size = f"{row['bytes'] / BYTES_PER_MB:6.1f}" if row["bytes"] else "     ?"
        mark = " *" if row["recommended"] else ""
        typer.echo(
            f"{row['name'] + mark:28s} {row['arch']:12s} {row['params'] or '(from file hash)':22s} "
            f"{stems:26s} {size} {'yes' if row['cached'] else 'no'}"
        )
    typer.echo("* recommended default")


@models_app.command("download")
def download_command(
    names: list[str] = typer.Argument(..., help="Registry model names."),
    force: bool = typer.Option(False, "--force", help="Download again even when cached."),
    offline: bool = typer.Option(False, "--offline", help="Fail instead of downloading (also UVRSEP_OFFLINE=1)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Download models into the cache (verified, then renamed into place)."""
    failed = 0
    for name in names:
        entry = get_entry(name)
        if entry is None:
            _fail(f"unknown model '{name}'; see `uvrsep models list`", EXIT_UNKNOWN)
        try:
            path = download(entry, force=force, progress=not quiet, offline=offline)
            typer.echo(str(path))
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
    """Hash, detected architecture, params, primary stem, parameter count and dtype of a model."""
    try:
        info = model_info(model)
    except UvrsepError as exc:
        _fail(str(exc), EXIT_FAILED)
    if json_out:
        sys.stdout.write(json.dumps(info, indent=1) + "\n")
        return
    for key, value in info.items():
        typer.echo(f"{key:13s} {value}")


@models_app.command("path")
def path_command() -> None:
    """Print the folder models are cached in ($UVRSEP_HOME/models)."""
    typer.echo(str(models_dir()))
