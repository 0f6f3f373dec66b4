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
