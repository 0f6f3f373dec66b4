"""The HTTP API and the page (FastAPI: import it after :func:`uvrsep.serve.import_serve`). :func:`create_app` builds the application of one
server: its job store, model cache and worker.

Routes (JSON unless said; errors are ``{"error": "one line"}`` with a 4xx/5xx status):

- ``GET /api/health``: status, version, device, queue.
- ``GET /api/models``; ``POST /api/models/NAME/download``.
- ``POST /api/jobs?name=FILE.wav&SETTING=VALUE…`` with the file as the raw body (``curl
  --data-binary @song.wav``), or ``?path=FILE`` under ``--allow-path``; settings as
  :class:`~uvrsep.serve.jobs.JobSettings`. 201 with the job.
- ``GET /api/jobs``; ``GET /api/jobs/ID`` (status, progress 0–1); ``POST /api/jobs/ID/cancel``;
  ``DELETE /api/jobs/ID``.
- ``GET /api/jobs/ID/stems/STEM`` (the file); ``GET /api/jobs/ID/pictures/input.png`` or
  ``STEM.png`` (spectrograms).
- ``GET /``: the page (``page/``).

With a token, every ``/api/`` route but health wants ``Authorization: Bearer TOKEN`` (or
``?token=TOKEN``, for the page's audio elements and links).
"""

from __future__ import annotations

import hmac
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import UvrsepError
from .jobs import (
    DONE,
    QUEUED,
    EngineSettings,
    Job,
    JobRequestError,
    JobSettings,
    JobStore,
    ModelCache,
    Worker,
    display_name,
    output_stems,
)

PAGE_DIR = Path(__file__).with_name("page")
BYTES_PER_MB = 1_000_000
#: Most jobs ``GET /api/jobs`` returns.
MAX_LISTED_JOBS = 1000
DEFAULT_LISTED_JOBS = 100
#: Seconds a stopping server waits for the running job to give up (it checks after each batch).
STOP_WAIT_S = 30.0
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}


@dataclass(frozen=True)
class ServerConfig:
    """One server's settings (``uvrsep serve`` options)."""

    data_dir: Path
    allow_path: Path | None = None
    token: str | None = None
    max_upload_bytes: int = 500 * BYTES_PER_MB
    keep_hours: float = 72.0
    engine: EngineSettings = field(default_factory=EngineSettings)


def create_app(config: ServerConfig) -> Any:
    """The FastAPI application of a server (its worker starts with the app, stops with it)."""
    store = JobStore(config.data_dir)
    models = ModelCache(config.engine)
    worker = Worker(store, models, config.keep_hours)
    allow_root = config.allow_path.resolve() if config.allow_path is not None else None

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            worker.join(timeout=STOP_WAIT_S)

    app = FastAPI(
        title="uvrsep", version=__version__, lifespan=lifespan, docs_url="/api/docs", openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.store, app.state.models, app.state.worker = store, models, worker

    @app.exception_handler(JobRequestError)
    async def refused(request: Request, exc: JobRequestError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(UvrsepError)
    async def user_error(request: Request, exc: UvrsepError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path"))
        return JSONResponse({"error": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); please report it"}, status_code=500)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if config.token and path.startswith("/api/") and path != "/api/health":
            given = request.headers.get("authorization", "")
            given = given[len("Bearer "):] if given.startswith("Bearer ") else request.query_params.get("token", "")
            if not hmac.compare_digest(given.encode(), config.token.encode()):
                return JSONResponse({"error": "this server wants its token: send 'Authorization: Bearer TOKEN'"}, status_code=401)
        return await call_next(request)

    def job_or_404(job_id: str) -> Job:
        job = store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise JobRequestError(f"no job {job_id[:40]}", 404)
        return job

    def allowed(text: str, what: str) -> Path:
        """A server-side path named by a request, inside ``--allow-path``."""
        if allow_root is None:
            raise JobRequestError(f"{what} names a server-side path; this server was not started with --allow-path DIR", 403)
        candidate = Path(text).expanduser()
        resolved = (candidate if candidate.is_absolute() else allow_root / candidate).resolve()
        if not resolved.is_relative_to(allow_root):
            raise JobRequestError(f"{text[:200]}: outside the folder this server may read ({allow_root})", 403)
        return resolved

    def checked_settings(query: dict[str, str]) -> JobSettings:
        settings = JobSettings.parse(query)
        changes: dict[str, Any] = {}
        if settings.model is not None and _looks_like_path(settings.model):
            changes["model"] = str(allowed(settings.model, "model"))
        if settings.params is not None and _looks_like_path(settings.params):
            changes["params"] = str(allowed(settings.params, "params"))
        return replace(settings, **changes)

    def inspect(path: Path, name: str, settings: JobSettings) -> float:
        """The input's duration (s) once the input opens and the settings build a separator;
        else the CLI's one-line message, naming the upload as the user named it."""
        from ..inputs import input_problem
        from ..stream import open_source

        try:
            problem = input_problem(path)
            if problem:
                raise JobRequestError(problem)
            source, info = open_source(path)
            if hasattr(source, "close"):
                source.close()
            output_stems(settings, models.separator(settings))
        except JobRequestError as exc:
            raise JobRequestError(str(exc).replace(str(path), name), exc.status) from None
        except UvrsepError as exc:
            raise JobRequestError(str(exc).replace(str(path), name)) from None
        return info.frames / info.sample_rate if info.sample_rate else 0.0

    # -- routes ---------------------------------------------------------------------------

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        from ..api import resolve_device

        return {
            "status": "ok", "version": __version__, "device": str(resolve_device(config.engine.device)),
            "queued": store.count(QUEUED), "running": worker.current, "models_loaded": len(models),
            "worker_alive": worker.is_alive(), "worker_errors": worker.failures,
        }

    @app.get("/api/models")
    def list_models_route() -> list[dict[str, Any]]:
        from ..cli_models import model_row
        from ..pretrained import list_models

        return [model_row(entry) for entry in list_models()]

    @app.post("/api/models/{name}/download")
    def download_model(name: str) -> dict[str, Any]:
        from ..cli_models import model_row
        from ..pretrained import download, get_entry

        entry = get_entry(name)
        if entry is None:
            raise JobRequestError(f"unknown model '{name[:80]}'; see GET /api/models", 404)
        download(entry, progress=False, offline=config.engine.offline)
        return model_row(entry)

    @app.post("/api/jobs", status_code=201)
    async def submit(request: Request) -> dict[str, Any]:
        from ..audio import AUDIO_EXTENSIONS

        query = {k: v for k, v in request.query_params.items() if k != "token"}
        given_name = query.pop("name", "")
        server_path = query.pop("path", None)
        settings = checked_settings(query)
        job_id, folder = store.new_folder()
        try:
            if server_path is not None:
                source = allowed(server_path, "path")
                name, owned = display_name(given_name or source.name), False
            else:
                name, owned = display_name(given_name), True
                suffix = Path(name).suffix.lower()
                if suffix not in AUDIO_EXTENSIONS:
                    raise JobRequestError(
                        f"{name}: not an audio or video file name; name the upload with ?name=FILE.EXT, "
                        f"EXT one of {', '.join(sorted(e[1:] for e in AUDIO_EXTENSIONS))}", 415,
                    )
                source = folder / f"input{suffix}"
                await _receive(request, source, config.max_upload_bytes)
            duration = await run_in_threadpool(inspect, source, name, settings)
        except BaseException:
            store.delete_folder(job_id)
            raise
        job = store.add(Job(
            id=job_id, name=name, status=QUEUED, settings=settings, input=str(source), owned=owned,
            created=time.time(), duration=round(duration, 6),
        ))
        worker.wake()
        return job.public()

    @app.get("/api/jobs")
    def list_jobs(limit: int = DEFAULT_LISTED_JOBS) -> list[dict[str, Any]]:
        return [job.public() for job in store.list(max(1, min(limit, MAX_LISTED_JOBS)))]

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        return job_or_404(job_id).public()

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        job = job_or_404(job_id)
        if not worker.cancel(job.id):
            raise JobRequestError(f"job {job.id} has {job.status}; nothing to cancel", 409)
        return job_or_404(job_id).public()

    @app.delete("/api/jobs/{job_id}", status_code=204, response_class=Response)
    def delete(job_id: str) -> Response:
        job = job_or_404(job_id)
        if not store.delete(job.id):
            raise JobRequestError(f"job {job.id} is running; cancel it first (POST /api/jobs/{job.id}/cancel)", 409)
        return Response(status_code=204)

    @app.get("/api/jobs/{job_id}/stems/{stem}")
    def stem_file(job_id: str, stem: str) -> Response:
        job = job_or_404(job_id)
        if job.status != DONE or stem not in job.outputs:
            raise JobRequestError(f"job {job.id} has no stem '{stem[:40]}' ({job.status})", 404)
        fmt = job.settings.format
        return FileResponse(
            store.folder(job.id) / job.outputs[stem], media_type=MEDIA_TYPES[fmt],
            filename=f"{Path(job.name).stem}_{stem}.{fmt}",
        )

    @app.get("/api/jobs/{job_id}/pictures/{picture}")
    async def picture(job_id: str, picture: str) -> Response:
        from .pictures import write_spectrogram

        job = job_or_404(job_id)
        which = picture.removesuffix(".png")
        if which == "input":
            audio = Path(job.input)
        elif job.status == DONE and which in job.outputs:
            audio = store.folder(job.id) / job.outputs[which]
        else:
            raise JobRequestError(f"job {job.id} has no picture '{picture[:40]}' ({job.status})", 404)
        png = store.folder(job.id) / f"picture-{'input' if which == 'input' else job.outputs[which]}.png"
        if not png.exists():
            await run_in_threadpool(write_spectrogram, audio, png)
        return FileResponse(png, media_type="image/png")

    @app.get("/")
    def page() -> Response:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    app.mount("/page", StaticFiles(directory=PAGE_DIR), name="page")
    return app


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".pth", ".json"))


async def _receive(request: Any, target: Path, limit: int) -> None:
    """Store a request's body in ``target``; 413 before anything is stored when its declared
    length is over ``limit``, and as soon as the bytes received pass it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise JobRequestError("Content-Length is not a number", 400) from None
        if size > limit:
            raise JobRequestError(_too_large(limit), 413)
    received = 0
    with target.open("wb") as out:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise JobRequestError(_too_large(limit), 413)
            out.write(chunk)
    if received == 0:
        raise JobRequestError("the upload is empty: send the file as the request body", 422)


def _too_large(limit: int) -> str:
    return f"the upload is larger than this server takes ({limit / BYTES_PER_MB:g} MB, --max-upload-mb)"
