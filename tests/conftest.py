"""Shared fixtures: paths to the copied parity data and key lists, deterministic weights."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"
PARITY = DATA / "parity"
#: ``../shared/fixtures/parity`` beside the checkout (CI has it): fixtures too large to commit
SHARED_PARITY = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "parity"

torch.set_num_threads(max(1, torch.get_num_threads()))


#: Variables of the developer's shell that would change what a test sees (a model cache, a
#: registry, offline mode); every test starts without them.
ENVIRONMENT_SETTINGS = ("UVRSEP_HOME", "UVRSEP_OFFLINE", "UVRSEP_REGISTRY", "XDG_CACHE_HOME")


@pytest.fixture(scope="session")
def _neutral_places(tmp_path_factory) -> tuple[Path, Path]:
    """An empty model cache and an empty working folder for the whole session."""
    return tmp_path_factory.mktemp("uvrsep-home"), tmp_path_factory.mktemp("cwd")


@pytest.fixture(autouse=True)
def _independent_of_the_launch(_neutral_places, monkeypatch) -> None:
    """Every test means the same wherever and by whom the suite is started: no models cached in
    ``~/.cache`` or ``$UVRSEP_HOME``, no ``UVRSEP_*`` settings of the shell, and a working folder
    of its own (a default output folder such as ``separated/`` never lands in the checkout)."""
    neutralise(monkeypatch, *_neutral_places)


def neutralise(monkeypatch: pytest.MonkeyPatch, home: Path, cwd: Path) -> None:
    """What :func:`_independent_of_the_launch` does, for fixtures wider than one test (which are
    set up before it: ``with pytest.MonkeyPatch.context() as patch: neutralise(patch, ...)``)."""
    for name in ENVIRONMENT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UVRSEP_HOME", str(home))
    monkeypatch.chdir(cwd)


def load_keys(arch_file: str) -> list:
    """A key/shape list copied from ``shared/fixtures`` (names, shapes, dtypes of the original nets)."""
    return json.loads((DATA / arch_file).read_text())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


#: A tiny ASPP net (width 4) and the cheapest params: fast enough to run many files in tests.
TINY_PARAMS = "1band_sr44100_hl1024"
#: Params for tests of inputs longer than one streamed chunk: 256 bins and a 256-sample hop, so
#: a chunk (12 windows of 256 frames) is 17.8 s of audio, a quarter of :data:`TINY_PARAMS`' 71 s,
#: for the same network work per window-frame (a quarter of the decoding, spectral work and
#: writing).
SHORT_CHUNK_PARAMS = "1band_sr44100_hl256"


def wait_for(condition: Callable[[], Any], bound_s: float, what: str, step: float = 0.05) -> Any:
    """Poll ``condition`` every ``step`` s until it is truthy (its value is returned), or fail
    naming ``what`` after ``bound_s`` s."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"waited {bound_s} s for {what}")


def streamed_chunk_seconds(params: str, chunk_windows: int | None = None) -> float:
    """Seconds of audio in one streamed chunk of ``params`` (default window, host spectral work)
    of ``chunk_windows`` network windows (None: the streamed pipeline's own count)."""
    from uvrsep.api import STREAM_CHUNK_WINDOWS
    from uvrsep.inference import DEFAULT_WINDOW
    from uvrsep.nets import ASPP_OFFSET
    from uvrsep.params import load_params

    top = load_params(params).top
    windows = STREAM_CHUNK_WINDOWS["host"] if chunk_windows is None else chunk_windows
    return windows * (DEFAULT_WINDOW - 2 * ASPP_OFFSET) * top.hl / top.sr


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A ``.pth`` of a width-4 CascadedASPPNet with deterministic random weights."""
    from uvrsep.nets import ASPPNetConfig
    from uvrsep.testing import random_state_dict

    path = tmp_path_factory.mktemp("model") / "tiny.pth"
    torch.save(random_state_dict(ASPPNetConfig(width=4), seed=7), path)
    return path
