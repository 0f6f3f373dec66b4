"""``uvrsep serve``: the web page and HTTP API (:mod:`uvrsep.serve`) on uvicorn.

Exit codes: 128 + the signal's number after Ctrl-C, SIGTERM or SIGHUP (as ``split``; the server
stops cleanly: a running job's unfinished stems are discarded and the job is marked failed), 2
for a usage problem (a public address without ``--token``, the ``[serve]`` extra missing, a data
folder that cannot be written).
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import UvrsepError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 500.0
DEFAULT_KEEP_HOURS = 72.0
DEFAULT_MAX_MODELS = 2
SERVE_FOLDER = "serve"
LOOPBACK_NAMES = ("localhost",)


class ServeProblem(UvrsepError):
    """A ``uvrsep serve`` setting that cannot work (a usage error, exit 2)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on. Anything but loopback needs --token."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder of the job list and the jobs' files. Default: $UVRSEP_HOME/serve."),
    allow_path: Optional[Path] = typer.Option(None, "--allow-path", help="Let jobs name files (inputs, models, params) inside this server-side folder instead of uploading them."),
    token: Optional[str] = typer.Option(None, "--token", envvar="UVRSEP_TOKEN", help="Secret every API call must send ('Authorization: Bearer TOKEN'; the page takes it as #token=TOKEN). Required off loopback."),
    max_upload_mb: float = typer.Option(DEFAULT_MAX_UPLOAD_MB, "--max-upload-mb", min=0.001, help="Largest upload (MB); bigger ones are refused with 413 before they are stored."),
    keep_hours: float = typer.Option(DEFAULT_KEEP_HOURS, "--keep-hours", min=0.0, help="Finished jobs and their files are deleted this many hours after they finish."),
    max_models: int = typer.Option(DEFAULT_MAX_MODELS, "--max-models", min=1, help="Models (with their settings) kept loaded between jobs."),
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps (one worker runs the jobs one at a time)."),
    precision: str = typer.Option("auto", "--precision", help="fp32, auto, fp16 or bf16, as `uvrsep split --precision`."),
    offline: bool = typer.Option(False, "--offline", help="Never download models (also UVRSEP_OFFLINE=1)."),
) -> None:
    """Serve a web page and an HTTP API that separate uploaded files (pip install 'uvrsep[serve]')."""
    from .api import resolve_device, resolve_precision
    from .pretrained import home_dir
    from .serve import import_serve

    _, uvicorn = import_serve()  # before the modules that import FastAPI: a missing extra is one line
    from .serve.app import BYTES_PER_MB, ServerConfig, create_app
    from .serve.jobs import EngineSettings

    if not is_loopback(host) and not token:
        raise ServeProblem(
            f"--host {host} lets other machines in: pass --token SECRET (or set UVRSEP_TOKEN) so that only "
            "clients that send it are served, or keep the default --host 127.0.0.1"
        )
    if allow_path is not None and not allow_path.is_dir():
        raise ServeProblem(f"--allow-path {allow_path}: not a folder")
    try:
        resolve_precision(precision, resolve_device(device))
    except UvrsepError as exc:
        raise ServeProblem(str(exc)) from None
    folder = data_dir or home_dir() / SERVE_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServeProblem(f"--data-dir {folder}: cannot create it ({exc.strerror or exc})") from None
    config = ServerConfig(
        data_dir=folder, allow_path=allow_path, token=token, max_upload_bytes=int(max_upload_mb * BYTES_PER_MB),
        keep_hours=keep_hours,
        engine=EngineSettings(device=device, precision=precision, offline=offline, max_models=max_models),
    )
    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"uvrsep serve: http://{shown}:{port}/ (data in {folder}; Ctrl-C stops)\n")
    uvicorn.run(app, host=host, port=port, log_level="warning")
