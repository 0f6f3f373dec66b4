"""CUDA paths: run only where a GPU is present (CI has none; these skip there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uvrsep.api import Separator
from uvrsep.inference import plan_windows
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


@needs_cuda
@pytest.mark.slow
def test_parity_on_cuda_with_the_spectral_work_on_the_gpu():
    result = run_parity_case(PARITY / "v2_4band_44100_tta_pp", device="cuda", precision="fp32", spectral="device")
    assert min(result.snr_db.values()) >= 80


@needs_cuda
def test_auto_puts_the_spectral_work_on_the_gpu_and_matches_the_host():
    weights = random_state_dict(config_from_name("33966"), seed=1)
    wave = np.random.default_rng(0).standard_normal((2, 44100 * 4 + 17)).astype(np.float32) * 0.1
    auto = Separator(weights, "4band_v2", device="cuda", precision="fp32")
    host = Separator(weights, "4band_v2", device="cuda", precision="fp32", spectral="host")
    assert auto.spectral.mode == "device" and host.spectral.mode == "host"
    on_gpu, on_host = auto.separate(wave, 44100).stems, host.separate(wave, 44100).stems
    for name in on_host:
        assert snr_db(on_host[name], on_gpu[name]) >= 90


@needs_cuda
@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [8, 32])
def test_fp32_on_cuda_equals_the_cpu_at_full_batches(batch_size):
    """Regression: cuDNN's fp32 (no TF32) choice for full batches of the 123812 net returned
    wrong masks; fp32 on CUDA now runs without cuDNN."""
    weights = random_state_dict(config_from_name("123812"), seed=1)
    cpu = Separator(weights, "4band_v2", device="cpu", precision="fp32")
    cuda = Separator(weights, "4band_v2", device="cuda", precision="fp32", batch_size=batch_size)
    assert not cuda.runner.cudnn
    frames = batch_size * 256
    plan = plan_windows(frames, 512, cuda.net.offset)
    assert plan.windows == batch_size  # one full batch
    rng = np.random.default_rng(0)
    padded = np.pad(rng.random((2, 673, frames), dtype=np.float32), ((0, 0), (0, 0), (plan.left, plan.right)))
    expected = cpu.runner.masks(padded, plan, 512, None)
    got = cuda.runner.masks(padded, plan, 512, None)
    assert snr_db(expected, got) >= 80
