"""CUDA paths: run only where a GPU is present (CI has none; these skip there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uvrsep.api import Separator
from uvrsep.nets import config_from_name
from uvrsep.testing import random_state_dict, run_parity_case, snr_db

from .conftest import PARITY

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@needs_cuda
@pytest.mark.slow
def test_parity_on_cuda_fp32():
    result = run_parity_case(PARITY / "v1_4band_v2_default", device="cuda", precision="fp32")
    assert min(result.snr_db.values()) >= 80


@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16", "auto"])
def test_reduced_precision_on_cuda_stays_within_40_db(precision):
    weights = random_state_dict(config_from_name("123812"), seed=1)
    wave = np.random.default_rng(0).standard_normal((2, 44100 * 4)).astype(np.float32) * 0.1
    exact = Separator(weights, "4band_v2", device="cuda", precision="fp32").separate(wave, 44100).stems
    fast = Separator(weights, "4band_v2", device="cuda", precision=precision).separate(wave, 44100).stems
    for name in exact:
        assert snr_db(exact[name], fast[name]) >= 40
