"""Parity: uvrsep's stems equal the reference code's (same deterministic weights), ≥ 80 dB SNR.

Every fixture folder found runs: the small ones copied into ``tests/data/parity``, and the rest
read from ``../shared/fixtures/parity`` where it lies beside the checkout (as in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from uvrsep.params import load_params
from uvrsep.testing import run_parity_case

from .conftest import PARITY, SHARED_PARITY

MIN_SNR_DB = 80.0
#: streamed runs in one-window chunks: v1 (forward) 61.0 / 59.8 dB, v7 (reversed) 70.0 / 56.1 dB;
#: in two-window chunks v7 72.1 / 72.9 dB. Nearly all the difference sits in the input's first or
#: last samples (v7: 97 % in the last 256), where the synthesis' FFT upsampling wraps around to
#: the other end of the chunk's span instead of the other end of the input; each chunk also
#: sees one window of context, not the whole file
STREAMED_MIN_SNR_DB = 55.0
#: Network windows per chunk of the streamed parity run: two (v7 in 2 chunks, 33 s here) rather
#: than one (3 chunks, each computing a window of context on either side of its one: 57 s)
STREAMED_CHUNK_WINDOWS = 2
#: the six cases copied into tests/data/parity
COMMITTED_CASES = 6


def _cases_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if (p / "case.json").is_file()}


CASES = {**_cases_in(SHARED_PARITY), **_cases_in(PARITY)}  # a committed copy wins
NEEDS_SHARED = pytest.mark.skipif(not SHARED_PARITY.is_dir(), reason=f"{SHARED_PARITY} is absent (CI has it)")


def _reverses(case: str) -> bool:
    return load_params(json.loads((CASES[case] / "case.json").read_text())["params"]).reverse


REVERSE_CASES = [case for case in CASES if _reverses(case)]


def _check(case: str, min_snr: float, **options) -> None:
    result = run_parity_case(CASES[case], device="cpu", precision="fp32", **options)
    for stem, snr in result.snr_db.items():
        assert snr >= min_snr, f"{case} {options} {stem}: {snr:.1f} dB"


def test_all_fixture_cases_present():
    assert len(_cases_in(PARITY)) == COMMITTED_CASES


@NEEDS_SHARED
def test_every_shared_fixture_runs():
    assert set(_cases_in(SHARED_PARITY)) <= set(CASES)
    assert {"v7_4band_reverse", "v8_reverse_tta_33966"} <= set(REVERSE_CASES)
    assert "v8_reverse_tta_33966" in REVERSE_TTA_CASES


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_fp32_cpu(case):
    _check(case, MIN_SNR_DB)


#: The reversed-params cases with TTA (v8: 33966 net, 9 s here): the spectral work in torch runs
#: on them only; v7 has the same params without TTA (and a 123812 net: 19 s more per run)
REVERSE_TTA_CASES = [case for case in REVERSE_CASES if json.loads((CASES[case] / "case.json").read_text())["tta"]]


@pytest.mark.slow
@pytest.mark.parametrize("case", REVERSE_TTA_CASES)
def test_reverse_params_parity_with_the_spectral_work_in_torch(case):
    _check(case, MIN_SNR_DB, spectral="device")


@pytest.mark.slow
@pytest.mark.parametrize("case", [case for case in REVERSE_CASES if case.startswith("v7")])
def test_reverse_params_parity_streamed(case, tiny_model):
    """Chunks laid from the input's end, where the reversed frame grid starts (more than one;
    the tiny net plans the same chunks: the same window, offset and params)."""
    import soundfile as sf

    from uvrsep.api import Separator
    from uvrsep.stream import ArraySource

    spec = json.loads((CASES[case] / "case.json").read_text())
    info = sf.info(str(CASES[case] / spec["input"]))
    planner = Separator(str(tiny_model), spec["params"], device="cpu", window_size=spec["window_size"])
    silence = ArraySource(np.zeros((info.channels, info.frames), np.float32), info.samplerate)
    assert len(planner.stream_plan(silence, chunk_windows=STREAMED_CHUNK_WINDOWS).chunks) > 1
    _check(case, STREAMED_MIN_SNR_DB, chunk_windows=STREAMED_CHUNK_WINDOWS)
