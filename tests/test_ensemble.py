"""The combine rules (:mod:`uvrsep.ensemble`) against a direct transcription of the reference's
definitions, and ``uvrsep combine`` on files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from uvrsep import ensemble
from uvrsep.cli import main
from uvrsep.params import load_params
from uvrsep.testing import snr_db
from uvrsep.transforms import analyze

from .conftest import SHORT_CHUNK_PARAMS, TINY_PARAMS, streamed_chunk_seconds
from .test_cli import split, tone, write

#: Params of the end-to-end tests: one band, so analysis and synthesis round-trip closely.
PARAMS = "1band_sr44100_hl1024"
#: The streamed test's params and input: 1.1 streamed chunks, so each model streams it in two
LONG_PARAMS = SHORT_CHUNK_PARAMS
LONG_SECONDS = 1.1 * streamed_chunk_seconds(LONG_PARAMS)
RATE = 44100


def random_specs(count: int, seed: int = 0, frames: tuple[int, ...] = (40, 37, 45, 39)) -> list[np.ndarray]:
    """Complex64 ``(2, 33, frames)`` spectrograms of different lengths, with exact ties planted."""
    rng = np.random.default_rng(seed)
    specs = [
        (rng.standard_normal((2, 33, frames[i % len(frames)])) + 1j * rng.standard_normal((2, 33, frames[i % len(frames)])))
        .astype(np.complex64)
        for i in range(count)
    ]
    for spec in specs[1:]:  # equal magnitudes, different phases: the tie rule decides
        spec[:, :3, :5] = specs[0][:, :3, :5] * np.complex64(1j)
    return specs


# -- the reference's definitions, transcribed as they are (spec_utils.py) ------------------------


def reference_ensembling(a: str, specs: list[np.ndarray]) -> np.ndarray:
    specs = list(specs)
    for i in range(1, len(specs)):
        if i == 1:
            spec = specs[0]
        ln = min([spec.shape[2], specs[i].shape[2]])
        spec = spec[:, :, :ln]
        specs[i] = specs[i][:, :, :ln]
        if a == "min_mag":
            spec = np.where(np.abs(specs[i]) <= np.abs(spec), specs[i], spec)
        if a == "max_mag":
            spec = np.where(np.abs(specs[i]) >= np.abs(spec), specs[i], spec)
    return spec


def reference_reduce_vocal_aggressively(X, y, softmask):
    v = X - y
    y_mag_tmp = np.abs(y)
    v_mag_tmp = np.abs(v)
    v_mask = v_mag_tmp > y_mag_tmp
    y_mag = np.clip(y_mag_tmp - v_mag_tmp * v_mask * softmask, 0, np.inf)
    return y_mag * np.exp(1.0j * np.angle(y))


def reference_invert(algorithm: str, specs: list[np.ndarray]) -> np.ndarray:
    ln = min([specs[0].shape[2], specs[1].shape[2]])
    specs = [specs[0][:, :, :ln], specs[1][:, :, :ln]]
    if algorithm == "deep":
        d_spec = np.where(np.abs(specs[0]) <= np.abs(specs[1]), specs[0], specs[1])
        return d_spec - specs[1]
    if algorithm == "invert_p":
        X_mag = np.abs(specs[0])
        y_mag = np.abs(specs[1])
        max_mag = np.where(X_mag >= y_mag, X_mag, y_mag)
        return specs[1] - max_mag * np.exp(1.0j * np.angle(specs[0]))
    specs[1] = reference_reduce_vocal_aggressively(specs[0], specs[1], 0.2)
    return specs[0] - specs[1]


@pytest.mark.parametrize("rule", ["min_mag", "max_mag"])
@pytest.mark.parametrize("count", [2, 3, 4])
def test_min_max_mag_are_the_references_ensembling(rule, count):
    specs = random_specs(count, seed=count)
    ours = ensemble.SPEC_RULES[rule](specs)
    assert ours.shape[2] == min(s.shape[2] for s in specs)
    np.testing.assert_array_equal(ours, reference_ensembling(rule, specs))


def test_invert_and_deep_are_the_references_and_invert_p_its_polarity_put_right():
    mixture, stem = random_specs(2, seed=5)
    np.testing.assert_array_equal(ensemble.invert(mixture, stem), reference_invert("invert", [mixture, stem]))
    np.testing.assert_array_equal(ensemble.invert_p(mixture, stem), -reference_invert("invert_p", [mixture, stem]))
    np.testing.assert_array_equal(ensemble.deep(mixture, stem), reference_invert("deep", [mixture, stem]))
    mixture, stem = ensemble.crop_to_shortest([mixture, stem])
    np.testing.assert_array_equal(
        ensemble.reduce_aggressively(mixture, stem),
        reference_reduce_vocal_aggressively(mixture, stem, ensemble.INVERT_SOFTMASK),
    )


def test_max_mag_is_at_least_every_member_and_min_mag_at_most():
    specs = random_specs(3, seed=9)
    frames = min(s.shape[2] for s in specs)
    high, low = np.abs(ensemble.max_mag(specs)), np.abs(ensemble.min_mag(specs))
    for spec in specs:
        assert np.all(high >= np.abs(spec[:, :, :frames])) and np.all(low <= np.abs(spec[:, :, :frames]))


def test_symmetric_rules_do_not_depend_on_the_order():
    specs = random_specs(3, seed=11)
    for spec in specs:  # no ties: the order could only matter through them
        spec[:, :3, :5] *= np.complex64(1.0 + 0.1 * len(spec))
    specs[1][:, :3, :5] *= np.complex64(1.3)
    specs[2][:, :3, :5] *= np.complex64(0.7)
    for rule in ("min_mag", "max_mag"):
        np.testing.assert_array_equal(ensemble.SPEC_RULES[rule](specs), ensemble.SPEC_RULES[rule](specs[::-1]))
    np.testing.assert_allclose(ensemble.avg_spec(specs), ensemble.avg_spec(specs[::-1]), rtol=1e-6, atol=1e-6)
    rng = np.random.default_rng(2)
    waves = [rng.standard_normal((2, n)).astype(np.float32) for n in (100, 90, 95)]
    np.testing.assert_array_equal(ensemble.median_wave(waves), ensemble.median_wave(waves[::-1]))
    np.testing.assert_allclose(ensemble.avg_wave(waves), ensemble.avg_wave(waves[::-1]), rtol=1e-6, atol=1e-7)
    assert ensemble.avg_wave(waves).shape == (2, 90)


def test_an_ensemble_of_one_member_with_itself_is_that_member():
    (spec,) = random_specs(1, seed=3)
    for rule in ensemble.SPEC_RULES.values():
        np.testing.assert_allclose(rule([spec, spec]), spec, rtol=1e-6)
    wave = np.random.default_rng(1).standard_normal((2, 50)).astype(np.float32)
    np.testing.assert_array_equal(ensemble.median_wave([wave, wave, wave]), wave)
    np.testing.assert_allclose(ensemble.avg_wave([wave, wave, wave]), wave, rtol=1e-6)


# -- uvrsep combine ------------------------------------------------------------------------------


def write_float(path, wave: np.ndarray, rate: int = RATE):
    sf.write(path, wave.T, rate, subtype="FLOAT")
    return path


def combine(capsys, *args) -> tuple[int, str]:
    code = main(["combine", *map(str, args)])
    return code, capsys.readouterr().err


def test_invert_of_a_mixture_with_itself_is_silence_and_with_silence_the_mixture(tmp_path, capsys):
    mixture = tone(3.0, RATE, 2).T
    mix = write_float(tmp_path / "mix.wav", mixture)
    quiet = write_float(tmp_path / "quiet.wav", np.zeros_like(mixture))
    for name, stem in (("same", mix), ("rest", quiet)):
        code, err = combine(capsys, mix, stem, "-a", "invert", "-p", PARAMS, "-o", tmp_path / f"{name}.wav", "--subtype", "FLOAT")
        assert code == 0, err
    same, rate = sf.read(tmp_path / "same.wav", always_2d=True)
    # |X|·e^{i∠X} is X up to float rounding: silence 140 dB below the mixture
    assert rate == RATE and same.shape == (mixture.shape[1], 2) and np.max(np.abs(same)) < 1e-6
    rest, _ = sf.read(tmp_path / "rest.wav", always_2d=True)
    # the params' analysis and synthesis round trip (41 dB: the pre-filter drops the top rows,
    # where the noise in the tone has energy), the last samples included (the reference drops them)
    assert snr_db(mixture, rest.T) > 35
    assert snr_db(mixture[:, -1000:], rest.T[:, -1000:]) > 35


def test_invert_rebuilds_the_other_stem(tmp_path, capsys):
    """mixture = a + b; invert(mixture, b) ≈ a (the aggressive reduction only lowers b where
    the rest is louder, so the result leans towards a); invert_p likewise."""
    rng = np.random.default_rng(4)
    a = tone(3.0, RATE, 2, seed=1).T
    b = (0.3 * rng.standard_normal(a.shape)).astype(np.float32)
    mix = write_float(tmp_path / "mix.wav", a + b)
    stem = write_float(tmp_path / "b.wav", b)
    for algorithm in ("invert", "invert_p"):
        out = tmp_path / f"{algorithm}.wav"
        assert combine(capsys, mix, stem, "-a", algorithm, "-p", PARAMS, "-o", out, "--subtype", "FLOAT")[0] == 0
        rebuilt, _ = sf.read(out, always_2d=True)
        assert snr_db(a, rebuilt.T) > snr_db(a, (a + b)) + 3, algorithm


def test_max_mag_of_files_is_their_combined_spectrogram(tmp_path, capsys):
    """The written file, analysed again, keeps per bin (near enough) the louder member."""
    params = load_params(PARAMS)
    first = tone(2.0, RATE, 2, seed=1).T
    second = 0.5 * tone(2.5, RATE, 2, seed=2).T[:, ::-1].copy()
    files = [write_float(tmp_path / "a.wav", first), write_float(tmp_path / "b.wav", second)]
    out = tmp_path / "max.wav"
    assert combine(capsys, *files, "-a", "max_mag", "-p", PARAMS, "-o", out, "--subtype", "FLOAT")[0] == 0
    result, _ = sf.read(out, always_2d=True)
    assert result.shape[0] == first.shape[1]  # cut to the shortest
    specs = [analyze(np.ascontiguousarray(w, dtype=np.float32), params, keep_high_end=False).spec for w in (first, second[:, : first.shape[1]], result.T)]
    expected = np.maximum(np.abs(specs[0]), np.abs(specs[1]))
    assert snr_db(expected, np.abs(specs[2])) > 20


def test_avg_wave_is_the_mean_of_the_files(tmp_path, capsys):
    first, second = tone(1.0, RATE, 2, seed=1).T, tone(1.2, RATE, 1, seed=2).T
    files = [write_float(tmp_path / "a.wav", first), write_float(tmp_path / "b.wav", second)]
    out = tmp_path / "avg.wav"
    assert combine(capsys, *files, "-a", "avg_wave", "-o", out, "--subtype", "FLOAT")[0] == 0
    result, _ = sf.read(out, always_2d=True, dtype="float32")
    np.testing.assert_allclose(result.T, (first + second[:, : first.shape[1]]) / 2, atol=1e-7)


def test_combine_usage_errors(tmp_path, capsys):
    a = write_float(tmp_path / "a.wav", tone(0.5, RATE, 2).T)
    b = write_float(tmp_path / "b.wav", tone(0.5, RATE, 2, seed=3).T)
    out = tmp_path / "o.wav"
    assert combine(capsys, a, "-a", "max_mag", "-o", out)[0] == 2
    assert combine(capsys, a, b, a, "-a", "invert", "-o", out)[0] == 2
    code, err = combine(capsys, a, b, "-a", "loudest", "-o", out)
    assert code == 2 and "min_mag" in err
    assert combine(capsys, a, tmp_path / "missing.wav", "-a", "max_mag", "-p", PARAMS, "-o", out)[0] == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [a, b] or sorted(tmp_path.iterdir()) == sorted([a, b])
    assert combine(capsys, a, b, "-a", "avg_wave", "-o", out, "-q")[0] == 0
    code, err = combine(capsys, a, b, "-a", "avg_wave", "-o", out)
    assert code == 1 and "exists" in err and err.count("\n") == 1


@pytest.mark.parametrize("params", ["4band_44100", "4band_44100_reverse"])
def test_multiband_combine_keeps_the_whole_file_in_place(tmp_path, capsys, params):
    """invert(mixture, silence) through 4-band params (with and without ``reverse``, whose
    frames count from the end) gives the mixture back as well at its two ends as in its middle:
    nothing shifted, nothing dropped (the round trip itself is ~24 dB on this noisy tone)."""
    mixture = tone(3.0, RATE, 2).T
    mix = write_float(tmp_path / "mix.wav", mixture)
    quiet = write_float(tmp_path / "quiet.wav", np.zeros_like(mixture))
    out = tmp_path / "out.wav"
    assert combine(capsys, mix, quiet, "-a", "invert", "-p", params, "-o", out, "--subtype", "FLOAT")[0] == 0
    rest, _ = sf.read(out, always_2d=True)
    whole = snr_db(mixture, rest.T)
    assert rest.shape == mixture.T.shape and whole > 15
    for part in (slice(0, 2000), slice(-2000, None)):
        assert snr_db(mixture[:, part], rest.T[:, part]) > whole - 3


# -- the streaming combiner and split --ensemble -------------------------------------------------


def test_stream_combiner_is_the_stft_rule_istft_whatever_the_blocks():
    """The streamed STFT → rule → inverse equals librosa's (centred, constant padding) on the
    same frames, away from the last FFT length (where it keeps the full overlap librosa's last
    frames lack); equal members come out unchanged; block sizes do not matter."""
    import librosa

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2, 30000)) for _ in range(2))
    stft = dict(n_fft=ensemble.ENSEMBLE_N_FFT, hop_length=ensemble.ENSEMBLE_HOP)
    A, B = (librosa.stft(x, center=True, pad_mode="constant", **stft) for x in (a, b))
    for rule in ensemble.SPEC_RULES:
        whole = ensemble.StreamCombiner(rule).push([a, b], last=True)
        combiner, pieces, start = ensemble.StreamCombiner(rule), [], 0
        for size in (1, 700, 4096, 10000, 15203):
            pieces.append(combiner.push([a[:, start : start + size], b[:, start : start + size]], last=start + size == 30000))
            start += size
        np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)
        expected = librosa.istft(ensemble.SPEC_RULES[rule]([A, B]), length=30000, **stft)
        body = slice(0, 30000 - ensemble.ENSEMBLE_N_FFT)
        np.testing.assert_allclose(whole[:, body], expected[:, body], atol=1e-5)
        np.testing.assert_allclose(ensemble.StreamCombiner(rule).push([a, a, a], last=True), a, atol=1e-6)


def ensemble_args(model, out, *extra, params: str = TINY_PARAMS) -> list[str]:
    return ["-p", params, "-o", str(out), "--device", "cpu", "-q", "--precision", "fp32", "--subtype", "FLOAT", *extra]


def read_stems(folder) -> dict[str, np.ndarray]:
    return {p.name: sf.read(p, always_2d=True, dtype="float32")[0] for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    """Another tiny net (other weights), one whose sidecar says its primary is 'No Echo' (no stem
    in common with vocals/instrumental) and one 'No Vocals' (no_vocals/vocals: vocals in common)."""
    import json

    import torch

    from uvrsep.nets import ASPPNetConfig
    from uvrsep.testing import random_state_dict

    folder = tmp_path_factory.mktemp("models")
    torch.save(random_state_dict(ASPPNetConfig(width=4), seed=8), folder / "other.pth")
    torch.save(random_state_dict(ASPPNetConfig(width=4), seed=9), folder / "echo.pth")
    (folder / "echo.json").write_text(json.dumps({"params": TINY_PARAMS, "primary_stem": "No Echo"}))
    torch.save(random_state_dict(ASPPNetConfig(width=4), seed=10), folder / "novocals.pth")
    (folder / "novocals.json").write_text(json.dumps({"params": TINY_PARAMS, "primary_stem": "No Vocals"}))
    return folder


@pytest.mark.parametrize("algorithm", ensemble.ENSEMBLE_ALGORITHMS)
def test_an_ensemble_of_a_model_with_itself_is_the_model(tmp_path, capsys, tiny_model, algorithm):
    source = write(tmp_path / "in" / "a.wav", 1.5)
    assert split(capsys, str(source), "-m", str(tiny_model), *ensemble_args(tiny_model, tmp_path / "one"))[0] == 0
    code, _, err = split(capsys, str(source), "-m", str(tiny_model), "-m", str(tiny_model), "--ensemble", algorithm,
                         *ensemble_args(tiny_model, tmp_path / "two"))
    assert code == 0, err
    single, combined = read_stems(tmp_path / "one"), read_stems(tmp_path / "two")
    assert single.keys() == combined.keys()
    for name in single:
        np.testing.assert_allclose(combined[name], single[name], atol=1e-6)


@pytest.mark.slow
def test_ensemble_stems_are_the_rule_on_each_models_stems_streamed(tmp_path, capsys, tiny_model, second_model):
    """A long input (streamed in chunks by each model, combined in several blocks): max_spec is
    the STFT rule on the two models' own stems."""
    source = write(tmp_path / "in" / "long.wav", LONG_SECONDS)
    other = second_model / "other.pth"
    for name, model in (("a", tiny_model), ("b", other)):
        assert split(capsys, str(source), "-m", str(model), *ensemble_args(model, tmp_path / name, params=LONG_PARAMS))[0] == 0
    singles = [read_stems(tmp_path / name) for name in ("a", "b")]
    code, _, err = split(capsys, str(source), "-m", str(tiny_model), "-m", str(other), "--ensemble", "max_spec",
                         *ensemble_args(tiny_model, tmp_path / "max", params=LONG_PARAMS))
    assert code == 0, err
    for name, stem in read_stems(tmp_path / "max").items():
        expected = ensemble.StreamCombiner("max_mag").push([s[name].T for s in singles], last=True)
        np.testing.assert_allclose(stem.T, expected, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["avg_wave", "median_wave", "avg_spec", "max_spec", "min_spec"])
def test_the_order_of_the_models_does_not_matter_for_symmetric_rules(tmp_path, capsys, tiny_model, second_model, algorithm):
    source = write(tmp_path / "in" / "a.wav", 1.5)
    other = second_model / "other.pth"
    for order, models in (("ab", (tiny_model, other)), ("ba", (other, tiny_model))):
        code, _, err = split(capsys, str(source), "-m", str(models[0]), "-m", str(models[1]), "--ensemble", algorithm,
                             *ensemble_args(tiny_model, tmp_path / order))
        assert code == 0, err
    ab, ba = read_stems(tmp_path / "ab"), read_stems(tmp_path / "ba")
    assert ab.keys() == ba.keys()
    for name in ab:
        np.testing.assert_allclose(ab[name], ba[name], atol=1e-6)
    if algorithm == "avg_wave":  # the mean of the two models' stems
        singles = []
        for name, model in (("a", tiny_model), ("b", other)):
            assert split(capsys, str(source), "-m", str(model), *ensemble_args(model, tmp_path / name))[0] == 0
            singles.append(read_stems(tmp_path / name))
        for name in ab:
            np.testing.assert_allclose(ab[name], (singles[0][name] + singles[1][name]) / 2, atol=1e-6)


def test_models_of_different_stems_need_a_shared_stem(tmp_path, capsys, tiny_model, second_model):
    source = write(tmp_path / "a.wav", 0.5)
    echo = second_model / "echo.pth"
    code, _, err = split(capsys, str(source), "-m", str(tiny_model), "-m", str(echo), *ensemble_args(tiny_model, tmp_path / "o"))
    assert code == 2 and "echo" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
    code, _, err = split(capsys, str(source), "-m", str(tiny_model), "--ensemble", "max_spec", *ensemble_args(tiny_model, tmp_path / "o"))
    assert code == 2 and "two or more" in err
    code, _, err = split(capsys, str(source), "-m", str(tiny_model), "-m", str(tiny_model), "--ensemble", "loudest",
                         *ensemble_args(tiny_model, tmp_path / "o"))
    assert code == 2 and "max_min" in err


def test_stems_picks_the_stem_models_of_different_pairs_share(tmp_path, capsys, tiny_model, second_model):
    source = write(tmp_path / "a.wav", 0.8)
    novocals = second_model / "novocals.pth"
    both = ["-m", str(tiny_model), "-m", str(novocals), "--ensemble", "avg_wave"]
    code, _, err = split(capsys, str(source), *both, *ensemble_args(tiny_model, tmp_path / "o"))
    assert code == 2 and "--stems vocals" in err
    code, _, err = split(capsys, str(source), *both, "--stems", "vocals", *ensemble_args(tiny_model, tmp_path / "o"))
    assert code == 0, err
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["a_vocals.wav"]
