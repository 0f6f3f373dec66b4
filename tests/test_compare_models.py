"""`scripts/compare_models.py` (the bundled model's report card) and the energy ratio it reports:
the ratio against known gains, and the script end to end on a miniature of the shared data folder
with two tiny random models."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from uvrsep.api import Separator
from uvrsep.evaluate import METRIC_CEILING_DB, band_energy_ratios_db, energy_ratio_db

from .conftest import TINY_PARAMS
from .test_dataset import write_track

SR = 44100
ROOT = Path(__file__).resolve().parent.parent
#: Seconds of every miniature song and clip; the leak is scored from LEAK_START on.
SECONDS = 1.0
LEAK_START = 0.5


def load_script():
    spec = importlib.util.spec_from_file_location("compare_models", ROOT / "scripts" / "compare_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("gain, expected", [(1.0, 0.0), (0.1, -20.0), (2.0, 6.0206)])
def test_energy_ratio_of_a_scaled_copy(gain, expected):
    reference = np.random.default_rng(0).standard_normal((2, 1000))
    assert energy_ratio_db(gain * reference, reference) == pytest.approx(expected, abs=1e-3)


def test_band_energy_ratios_find_the_band_that_holds_too_much_or_too_little():
    """Three tones on exact FFT bins, one per band: the signal has a tenth of the first
    (−20 dB), all of the second (0 dB), none of the third (the floor)."""
    t = np.arange(SR) / SR
    low, mid, high = (np.sin(2 * np.pi * f * t) for f in (1000.0, 5000.0, 10000.0))
    reference = np.stack([low + mid + high, low + mid + high])
    signal = np.stack([0.1 * low + mid, 0.1 * low + mid])
    ratios = band_energy_ratios_db(signal, reference, SR, (0.0, 2000.0, 8000.0, math.inf))
    assert ratios == pytest.approx([-20.0, 0.0, -METRIC_CEILING_DB], abs=1e-6)
    # a mono signal, and the last band taking the Nyquist frequency itself
    nyquist = np.cos(np.pi * np.arange(100))
    assert band_energy_ratios_db(2 * nyquist, nyquist, 100, (0.0, 10.0, 50.0)) == pytest.approx([0.0, 6.0206], abs=1e-3)
    with pytest.raises(ValueError, match="samples"):
        band_energy_ratios_db(signal[:, 1:], reference, SR, (0.0, math.inf))


def test_energy_ratio_limits():
    reference = np.ones((2, 100))
    assert energy_ratio_db(np.zeros((2, 100)), reference) == -METRIC_CEILING_DB
    assert energy_ratio_db(np.zeros(3), np.zeros(3)) == 0.0
    assert energy_ratio_db(np.ones(3), np.zeros(3)) == METRIC_CEILING_DB


def tone(seconds: float, frequency: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.05 * np.random.default_rng(seed).standard_normal((2, len(t)))
    return (0.3 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32)


@pytest.fixture
def shared_data(tmp_path) -> Path:
    """A miniature ``../shared/data``: one MUSDB-like track, two songs with pseudo-references
    (one without), a dialogue clip."""
    data = tmp_path / "data"
    write_track(data / "musdb18_sample", seconds=SECONDS)
    (data / "songs").mkdir(parents=True)
    (data / "songs_reference").mkdir()
    for name, frequency in (("brass", 330.0), ("levee", 220.0), ("unpaired", 440.0)):
        wave = tone(SECONDS, frequency, seed=int(frequency))
        sf.write(data / "songs" / f"{name}.flac", wave.T, SR)
        if name != "unpaired":
            sf.write(data / "songs_reference" / f"{name}_vocals.flac", (0.5 * wave).T, SR)
            sf.write(data / "songs_reference" / f"{name}_instrumental.flac", (0.5 * wave).T, SR)
    (data / "dialogue").mkdir()
    sf.write(data / "dialogue" / "clip.wav", tone(SECONDS, 180.0, seed=1).T, SR)
    return data


@pytest.fixture
def two_models(tmp_path) -> tuple[Path, Path]:
    from uvrsep.nets import ASPPNetConfig
    from uvrsep.testing import random_state_dict

    paths = tmp_path / "a.pth", tmp_path / "b.pth"
    for seed, path in enumerate(paths):
        torch.save(random_state_dict(ASPPNetConfig(width=4), seed=seed), path)
    return paths


@pytest.mark.slow
def test_the_report_scores_every_material_for_every_model(shared_data, two_models, tmp_path, capsys):
    script = load_script()
    generated = tmp_path / "generated"
    write_track(generated / "t0", seconds=SECONDS, seed=1)
    write_track(generated / "t1", seconds=SECONDS, seed=2)
    argv = [
        "-m", f"old={two_models[0]}", "-m", f"new={two_models[1]}", "-p", TINY_PARAMS, "--precision", "fp32",
        "--generated", f"gen={generated}", "--data", str(shared_data),
        "--leak", "brass", "--leak", f"levee@{LEAK_START}", "--leak", "missing", "--json",
    ]
    assert script.main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "missing.flac: no such song; --leak missing left out" in captured.err

    assert set(report["models"]) == {"old", "new"}
    assert list(report["sdr"]) == ["generated gen", "MUSDB18 sample", "songs"]
    for material, per_model in report["sdr"].items():
        for label in ("old", "new"):
            assert per_model[label]["failed"] == []
            assert all(math.isfinite(v) for v in per_model[label]["median"].values()), material
    # the songs pair with their references; a song without one is left out
    assert set(report["sdr"]["songs"]["old"]["tracks"]) == {"brass", "levee"}
    assert report["sdr"]["songs"]["old"]["median"] != report["sdr"]["songs"]["new"]["median"]

    # the leakage figure is the vocals stem's energy against the song's, from the given second on
    separator = Separator(two_models[1], TINY_PARAMS, device="cpu", precision="fp32")
    wave, _ = sf.read(shared_data / "songs" / "levee.flac", dtype="float32", always_2d=True)
    vocals = separator.separate(wave.T, SR).stems["vocals"]
    first = int(LEAK_START * SR)
    expected = energy_ratio_db(vocals[:, first:], wave.T[:, first:])
    assert report["leakage"]["new"][f"levee after {LEAK_START:g} s"] == pytest.approx(expected, abs=0.01)
    assert set(report["leakage"]["old"]) == {"brass", f"levee after {LEAK_START:g} s"}
    bands = dict(zip(("0–2 kHz", "2–8 kHz", "8 kHz–Nyquist"),
                     band_energy_ratios_db(vocals[:, first:], wave.T[:, first:], SR, script.BAND_EDGES_HZ)))
    assert report["leakage_bands"]["new"][f"levee after {LEAK_START:g} s"] == pytest.approx(bands, abs=0.01)
    # the balance of the vocals stem against the MUSDB-like track's true vocals, per band
    mixture, _ = sf.read(shared_data / "musdb18_sample" / "mixture.wav", dtype="float32", always_2d=True)
    true_vocals, _ = sf.read(shared_data / "musdb18_sample" / "vocals.wav", dtype="float32", always_2d=True)
    estimate = separator.separate(mixture.T, SR).stems["vocals"]
    balance = band_energy_ratios_db(estimate, true_vocals.T, SR, script.BAND_EDGES_HZ)
    assert list(report["vocals_balance"]["new"]["MUSDB18 sample"].values()) == pytest.approx(balance, abs=0.01)
    assert report["vocals_balance"]["old"]["MUSDB18 sample"] != report["vocals_balance"]["new"]["MUSDB18 sample"]
    assert set(report["dialogue"]["old"]) == {"clip"}


def test_two_models_with_one_label_are_a_usage_error(two_models, tmp_path):
    script = load_script()
    with pytest.raises(SystemExit) as exit_info:
        script.main(["-m", f"x={two_models[0]}", "-m", f"x={two_models[1]}", "-p", TINY_PARAMS, "--data", str(tmp_path)])
    assert exit_info.value.code == 2


def test_the_training_recipe_refuses_an_unknown_voice_before_generating(tmp_path):
    """`scripts/train_bundled_v2.sh` takes the new material's voice as its fourth argument: a
    voice it does not know is exit 2 and one line, with nothing generated."""
    work = tmp_path / "work"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "train_bundled_v2.sh"), str(work), "1", "bf16", "espeak"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "NEW_VOICE must be festival or numpy, not espeak"
    assert not work.exists()


def test_the_tables_put_the_models_side_by_side(capsys):
    script = load_script()
    report = {
        "sdr": {"songs": {label: {"median": {"vocals": v, "accompaniment": 2 * v},
                                  "tracks": {"s": {"vocals": v, "accompaniment": None}}} for label, v in (("a", 1.0), ("b", 1.5))}},
        "leakage": {"a": {"x": -5.0, "y": -7.0}, "b": {"x": -3.0, "y": -4.0}},
        "leakage_bands": {label: {"x": {"0–2 kHz": v, "2–8 kHz": v - 1}} for label, v in (("a", -1.0), ("b", -2.0))},
    }
    script.print_report(report, ["a", "b"])
    lines = capsys.readouterr().out.splitlines()
    assert "| SDR (dB), median | a voc | a acc | b voc | b acc |" in lines
    assert "| songs | 1.00 | 2.00 | 1.50 | 3.00 |" in lines
    assert "| s | 1.00 | — | 1.50 | — |" in lines
    assert "| median | -6.00 | -3.50 |" in lines
    assert "| x, 2–8 kHz | -2.00 | -3.00 |" in lines
    assert not any("dialogue" in line or "true vocals" in line for line in lines)


def load_leakage_script():
    spec = importlib.util.spec_from_file_location("lead_leakage", ROOT / "scripts" / "lead_leakage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mono", [False, True])
def test_lead_leakage_is_the_vocals_energy_of_a_track_without_voice(two_models, tmp_path, capsys, mono):
    """`scripts/lead_leakage.py` on a tiny model: every synth-lead track's figure is the energy
    of the vocals stem of that generated instrumental track (made mono with --mono) against it."""
    from uvrsep.synth import writer

    script = load_leakage_script()
    inputs = []

    class Recording(Separator):
        def separate(self, wave, *args, **kwargs):
            inputs.append(np.array(wave))
            return super().separate(wave, *args, **kwargs)

    script.Separator = Recording
    argv = ["-m", str(two_models[0]), "-p", TINY_PARAMS, "--tracks", "4", "--seconds", "1", "--seed", "3",
            "--soundfont", str(tmp_path / "none.sf2"), *(["--mono"] if mono else [])]
    assert script.main(argv) == 0
    assert inputs and all(np.array_equal(w[0], w[1]) for w in inputs) == mono
    out = capsys.readouterr().out
    assert "sampled leads not measured" in out and ("made mono" in out) == mono
    printed = {line.split()[0]: [float(v) for v in line.split()[1:-1]]
               for line in out.splitlines() if line.startswith("  ") and line.endswith(" dB") and "median" not in line}

    writer.main([str(tmp_path / "g"), "--tracks", "4", "--test-tracks", "0", "--seconds", "1", "--seed", "3",
                 "--instrumental-fraction", "1"])
    separator = Separator(two_models[0], TINY_PARAMS, device="cpu")
    expected: dict[str, list[float]] = {}
    for fact in json.loads((tmp_path / "g" / "recipe.json").read_text())["splits"]["train"]:
        if fact["instruments"]["lead"]:
            wave, _ = sf.read(tmp_path / "g" / "train" / fact["name"] / "mixture.wav", dtype="float32", always_2d=True)
            wave = wave.T
            if mono:
                wave = np.repeat(wave.mean(0, keepdims=True), 2, axis=0)
            vocals = separator.separate(wave, SR).stems["vocals"]
            expected.setdefault(fact["instruments"]["lead"], []).append(energy_ratio_db(vocals, wave))
    assert expected and set(printed) == set(expected)
    for lead, values in expected.items():
        assert printed[lead] == pytest.approx(values, abs=0.06)
