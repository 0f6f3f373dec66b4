"""`uvrsep eval`: BSS-eval metrics checked against a direct least-squares BSS-eval and known SNRs,
the baselines, and the command end to end (tiny tracks, tiny random model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from uvrsep.cli import main
from uvrsep.dataset import find_tracks, read_track
from uvrsep.evaluate import (
    BASELINES,
    FILTER_LENGTH,
    METRIC_CEILING_DB,
    METRICS,
    STEMS,
    EvalError,
    bss_eval,
    evaluate,
    hpss_baseline,
    mixture_baseline,
    model_method,
    repet_sim_baseline,
)

from .conftest import TINY_PARAMS
from .test_dataset import write_track

SR = 44100
#: Samples of the random signals of the metric tests.
SHORT = 4000
LONG = 2**16
#: Agreement asked of fast_bss_eval with the direct computation, and of SDR with a known SNR (dB).
DIRECT_TOLERANCE_DB = 0.1
SNR_TOLERANCE_DB = 0.5
#: Distortion-filter taps of the tests that are not about the filter (faster than FILTER_LENGTH).
SHORT_FILTER = 64
#: A perfect estimate must score at least this (dB).
PERFECT_DB = 60.0


def sources(count: int, samples: int, seed: int, channels: int = 1) -> np.ndarray:
    """``(count, channels, samples)`` independent coloured noises (first-order low-pass of white
    noise, a different pole per source, so the references are not white)."""
    white = np.random.default_rng(seed).standard_normal((count, channels, samples))
    return np.stack([lfilter([1.0], [1.0, -(0.3 + 0.5 * i / count)], white[i], axis=-1) for i in range(count)])


# -- the metric against a direct least-squares BSS-eval ----------------------------------------------


def delayed_copies(signal: np.ndarray, taps: int) -> np.ndarray:
    """``(samples + taps - 1, taps)``: column k is ``signal`` delayed by k samples (zero-padded)."""
    matrix = np.zeros((len(signal) + taps - 1, taps))
    for k in range(taps):
        matrix[k : k + len(signal), k] = signal
    return matrix


def project(basis: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Orthogonal projection of ``signal`` on the columns of ``basis`` (least squares, by the
    normal equations: LAPACK's lstsq is needlessly slow on a busy machine)."""
    return basis @ np.linalg.solve(basis.T @ basis, basis.T @ signal)


def direct_bss_eval(references: np.ndarray, estimate: np.ndarray, target: int, taps: int) -> dict[str, float]:
    """BSS-eval v3/v4 decomposition, literally: s_target = projection of the (zero-padded)
    estimate on the delayed target reference, s_target + e_interf = its projection on all
    delayed references, e_artif = the rest; metrics as power ratios in dB, clamped like ours."""
    padded = np.concatenate([estimate, np.zeros(taps - 1)])
    s_target = project(delayed_copies(references[target], taps), padded)
    everything = project(np.hstack([delayed_copies(r, taps) for r in references]), padded)
    e_interf, e_artif = everything - s_target, padded - everything

    def db(num: np.ndarray, den: np.ndarray) -> float:
        ratio = 10 * np.log10(np.sum(num**2) / max(np.sum(den**2), np.finfo(float).tiny))
        return float(np.clip(ratio, -METRIC_CEILING_DB, METRIC_CEILING_DB))

    return {"sdr": db(s_target, e_interf + e_artif), "sir": db(s_target, e_interf), "sar": db(s_target + e_interf, e_artif)}


def test_perfect_estimate_reaches_the_ceiling():
    references = sources(2, SHORT, seed=1, channels=2)
    metrics = bss_eval(references, references)
    for metric in METRICS:
        assert np.all(metrics[metric] > PERFECT_DB)
    assert not metrics["silent"].any()


@pytest.mark.parametrize("taps", [32, 128])
def test_matches_direct_least_squares(taps):
    references = sources(2, SHORT, seed=2)[:, 0]  # (2, N)
    rng = np.random.default_rng(3)
    mixture = references.sum(axis=0)
    # the mixture (no artifacts: SAR at the ceiling), and a filtered, leaky, noisy estimate
    distorted = np.convolve(references[0], [0.8, 0.3, -0.1])[:SHORT] + 0.4 * references[1] + 0.2 * rng.standard_normal(SHORT)
    for estimate in (mixture, distorted):
        ours = bss_eval(references[:, None], np.stack([estimate, estimate])[:, None], filter_length=taps)
        for target in range(2):
            direct = direct_bss_eval(references, estimate, target, taps)
            for metric in METRICS:
                assert ours[metric][target] == pytest.approx(direct[metric], abs=DIRECT_TOLERANCE_DB), (metric, target)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_sdr_of_reference_plus_white_noise_is_the_snr(snr_db):
    references = sources(2, LONG, seed=4)
    noise = np.random.default_rng(5).standard_normal(references.shape)
    scale = np.linalg.norm(references, axis=-1, keepdims=True) / np.linalg.norm(noise, axis=-1, keepdims=True)
    metrics = bss_eval(references, references + noise * scale * 10 ** (-snr_db / 20))
    np.testing.assert_allclose(metrics["sdr"], snr_db, atol=SNR_TOLERANCE_DB)
    np.testing.assert_allclose(metrics["sar"], snr_db, atol=SNR_TOLERANCE_DB)  # the noise is artifact, not interference


def test_silent_reference_gives_nan_not_a_crash():
    references = sources(2, SHORT, seed=6, channels=2)
    references[0] = 0.0  # no vocals in this track
    metrics = bss_eval(references, np.stack([references.sum(axis=0)] * 2))
    assert metrics["silent"].tolist() == [True, False]
    assert all(math.isnan(metrics[m][0]) for m in METRICS)
    assert metrics["sdr"][1] > PERFECT_DB  # the mixture is exactly the only active source
    assert math.isnan(metrics["sir"][1])  # nothing could interfere


def test_channels_are_averaged():
    references = sources(2, SHORT, seed=7, channels=2)
    estimates = references + 0.3 * np.random.default_rng(8).standard_normal(references.shape)
    both = bss_eval(references, estimates, SHORT_FILTER)
    per_channel = [bss_eval(references[:, [c]], estimates[:, [c]], SHORT_FILTER) for c in range(2)]
    for metric in METRICS:
        np.testing.assert_allclose(both[metric], (per_channel[0][metric] + per_channel[1][metric]) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        bss_eval(np.zeros((2, 1, 10)), np.zeros((2, 1, 11)))


# -- baselines -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_second() -> np.ndarray:
    """``(2, SR)``: a vibrato voice over repeating noise bursts (1 s)."""
    t = np.arange(SR) / SR
    rng = np.random.default_rng(10)
    burst = rng.standard_normal(SR // 8) * np.exp(-np.arange(SR // 8) / 500)
    loop = np.resize(burst, SR)  # repeats every 1/8 s
    voice = 0.3 * np.sin(2 * np.pi * (330 * t + 4 * np.sin(2 * np.pi * 5 * t)))
    return np.stack([voice + 0.2 * loop, 0.7 * voice + 0.2 * loop]).astype(np.float32)


def test_mixture_baseline_returns_the_mixture(one_second):
    estimates = mixture_baseline(one_second, SR)
    for stem in STEMS:
        np.testing.assert_array_equal(estimates[stem], one_second)
    assert estimates["vocals"] is not one_second


def test_hpss_estimates_sum_to_the_mixture(one_second):
    estimates = hpss_baseline(one_second, SR)
    for stem in STEMS:
        assert estimates[stem].shape == one_second.shape and estimates[stem].dtype == np.float32
    np.testing.assert_allclose(estimates["vocals"] + estimates["accompaniment"], one_second, atol=1e-4)


def test_repet_sim_gives_finite_stems_of_the_mixture_shape(one_second):
    estimates = repet_sim_baseline(one_second, SR)
    for stem in STEMS:
        assert estimates[stem].shape == one_second.shape and np.isfinite(estimates[stem]).all()
    with pytest.raises(EvalError, match="repet-sim"):
        repet_sim_baseline(one_second[:, :1000], SR)


def test_model_stems_map_to_vocals_and_accompaniment(tiny_model, one_second):
    from uvrsep.api import Separator

    for primary in ("Vocals", "Instrumental"):
        separator = Separator(tiny_model, TINY_PARAMS, device="cpu", precision="fp32", primary_stem=primary)
        estimates = model_method(separator)(one_second[:, : SR // 4], SR)
        assert sorted(estimates) == sorted(STEMS)
    with pytest.raises(EvalError, match="no_echo/echo"):
        model_method(Separator(tiny_model, TINY_PARAMS, device="cpu", precision="fp32", primary_stem="No Echo"))


# -- evaluate and the command ----------------------------------------------------------------------


def test_evaluate_scores_medians_and_failures(tmp_path):
    for index in range(3):
        write_track(tmp_path / "set" / f"t{index}", seed=index)
    full = write_track(tmp_path / "full")
    write_track(tmp_path / "set" / "t3_broken", {"mixture": full["mixture"], "vocals": full["vocals"][:1]})
    result = evaluate(find_tracks(tmp_path / "set"), {"mixture": BASELINES["mixture"]}, filter_length=SHORT_FILTER)
    assert [t.ok for t in result.tracks] == [True, True, True, False] and result.failed == 1
    assert "must match the mixture" in (result.tracks[-1].error or "")
    for track in result.tracks[:3]:
        loaded = read_track(find_tracks(Path(track.folder))[0], strict=True)
        references = np.stack([loaded.stems[s] for s in STEMS])
        direct = bss_eval(references, np.stack([loaded.mixture] * 2), SHORT_FILTER)
        for i, stem in enumerate(STEMS):
            assert track.scores["mixture"][stem]["sdr"] == pytest.approx(direct["sdr"][i])
        assert track.seconds["mixture"] >= 0
    for stem in STEMS:
        for metric in METRICS:
            expected = np.median([t.scores["mixture"][stem][metric] for t in result.tracks[:3]])
            assert result.median["mixture"][stem][metric] == pytest.approx(expected)


def run_eval(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_with_the_mixture_baseline(tmp_path, capsys):
    written = write_track(tmp_path / "song", seconds=1.0)
    code, out, _ = run_eval(capsys, str(tmp_path / "song"), "--baseline", "mixture", "--json", "-q")
    assert code == 0
    document = json.loads(out)
    assert document["methods"] == ["mixture"] and document["model"] is None
    assert document["ok"] == 1 and document["failed"] == 0 and document["filter_length"] == FILTER_LENGTH
    (track,) = document["tracks"]
    assert track["name"] == "song" and track["duration"] == pytest.approx(1.0) and track["error"] is None
    references = np.stack([written[s] for s in STEMS])
    direct = bss_eval(references, np.stack([written["mixture"]] * 2))
    for i, stem in enumerate(STEMS):
        assert set(track["scores"]["mixture"][stem]) == set(METRICS)
        assert track["scores"]["mixture"][stem]["sdr"] == pytest.approx(direct["sdr"][i], abs=1e-3)
        assert document["median"]["mixture"][stem] == track["scores"]["mixture"][stem]
    # the table: one row per stem and a median block
    code, out, _ = run_eval(capsys, str(tmp_path / "song"), "--baseline", "mixture", "-q")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert ["method", "track", "stem", "SDR", "SIR", "SAR"] in rows
    assert sum(row[:2] == ["mixture", "song"] for row in rows) == 2
    assert sum(row[:2] == ["mixture", "median"] for row in rows) == 2


def test_cli_silent_vocals_are_null_and_warned(tmp_path, capsys):
    full = write_track(tmp_path / "full")
    write_track(tmp_path / "instrumental_only", {"vocals": np.zeros_like(full["vocals"]), "accompaniment": full["accompaniment"]})
    code, out, err = run_eval(capsys, str(tmp_path / "instrumental_only"), "--baseline", "mixture", "--json")
    assert code == 0 and "vocals reference is silent" in err
    scores = json.loads(out)["tracks"][0]["scores"]["mixture"]
    assert scores["vocals"] == {"sdr": None, "sir": None, "sar": None}
    assert scores["accompaniment"]["sdr"] > PERFECT_DB


def test_cli_model_gives_finite_scores(tmp_path, capsys, tiny_model):
    write_track(tmp_path / "song", seconds=1.0)
    code, out, err = run_eval(
        capsys, str(tmp_path / "song"), "-m", str(tiny_model), "-p", TINY_PARAMS,
        "--device", "cpu", "--precision", "fp32", "--baseline", "mixture", "--json", "-q",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["model"]["name"] == "tiny" and document["methods"] == ["tiny", "mixture"]
    for stem in STEMS:
        assert all(math.isfinite(v) for v in document["tracks"][0]["scores"]["tiny"][stem].values())
    assert document["seconds"]["tiny"] > 0


def test_cli_exit_codes(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    code, out, err = run_eval(capsys, str(tmp_path / "empty"), "--baseline", "mixture")
    assert code == 2 and out == "" and err.startswith("error: ") and "no tracks found" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    # one good track and one bad one: the good one is still scored
    write_track(tmp_path / "set" / "good")
    write_track(tmp_path / "set" / "bad", {"mixture": np.zeros((2, 100))})
    code, out, err = run_eval(capsys, str(tmp_path / "set"), "--baseline", "mixture", "-q")
    assert code == 1 and "no true stems" in err and "good" in out
    # no -m, no --baseline, and no default model offline: a usage error
    import uvrsep.pretrained

    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(uvrsep.pretrained, "bundled_model_path", lambda: None)
    code, _, err = run_eval(capsys, str(tmp_path / "set" / "good"))
    assert code == 2 and err.startswith("error: ") and "-m" in err
