"""Parity: uvrsep's stems equal the reference code's (same deterministic weights), ≥ 80 dB SNR."""

from __future__ import annotations

import pytest

from uvrsep.testing import run_parity_case

from .conftest import PARITY

MIN_SNR_DB = 80.0
CASES = sorted(p.name for p in PARITY.iterdir() if (p / "case.json").exists())


def test_all_fixture_cases_present():
    # the six reference cases of shared/fixtures/parity, copied into tests/data/parity
    assert len(CASES) == 6


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_parity_fp32_cpu(case):
    result = run_parity_case(PARITY / case, device="cpu", precision="fp32")
    for stem, snr in result.snr_db.items():
        assert snr >= MIN_SNR_DB, f"{case} {stem}: {snr:.1f} dB"
