"""Shared fixtures: paths to the copied parity data and key lists, deterministic weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"
PARITY = DATA / "parity"

torch.set_num_threads(max(1, torch.get_num_threads()))


def load_keys(arch_file: str) -> list:
    """A key/shape list copied from ``shared/fixtures`` (names, shapes, dtypes of the original nets)."""
    return json.loads((DATA / arch_file).read_text())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


#: A tiny ASPP net (width 4) and the cheapest params: fast enough to run many files in tests.
TINY_PARAMS = "1band_sr44100_hl1024"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A ``.pth`` of a width-4 CascadedASPPNet with deterministic random weights."""
    from uvrsep.nets import ASPPNetConfig
    from uvrsep.testing import random_state_dict

    path = tmp_path_factory.mktemp("model") / "tiny.pth"
    torch.save(random_state_dict(ASPPNetConfig(width=4), seed=7), path)
    return path
