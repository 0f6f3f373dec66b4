"""``uvrsep serve``: a local web page and HTTP API over uvrsep's engine.

``app.py`` has the routes (FastAPI), ``jobs.py`` the SQLite job store and the worker that runs
:class:`~uvrsep.api.Separator` through the CLI's per-file loop, ``pictures.py`` the spectrogram
pictures, ``page/`` the static page. FastAPI and uvicorn come with ``pip install "uvrsep[serve]"``
and are imported only by :func:`import_serve`'s callers.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import UvrsepError

SERVE_EXTRA = "pip install 'uvrsep[serve]'"


class ServeUnavailable(UvrsepError):
    """FastAPI or uvicorn is missing."""


def import_serve() -> tuple[ModuleType, ModuleType]:
    """The ``fastapi`` and ``uvicorn`` modules, or :class:`ServeUnavailable` naming the extra."""
    try:
        import fastapi
        import uvicorn
    except ImportError as exc:
        raise ServeUnavailable(f"uvrsep serve needs FastAPI and uvicorn, which are not installed: {SERVE_EXTRA}") from exc
    return fastapi, uvicorn
