"""Track data (:mod:`uvrsep.dataset`, read by the trainer and ``uvrsep eval``): discovery of
track and pair folders, reading (stems summed or derived, strict and lenient), and the cached
spectrograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from uvrsep.dataset import DatasetError, discover_tracks, find_tracks, load_track, read_track, track_spectrograms
from uvrsep.params import load_params

from .conftest import TINY_PARAMS

SR = 44100


def write_track(folder: Path, stems: dict[str, np.ndarray] | None = None, seconds: float = 0.25, seed: int = 0) -> dict[str, np.ndarray]:
    """A track folder: ``mixture.wav`` = vocals + accompaniment plus the given stem files (FLOAT
    WAVs, exact). ``stems`` maps file stems to ``(channels, samples)`` waves; by default vocals
    (a vibrato tone) and accompaniment (noise). Returns every wave written (mixture included)."""
    folder.mkdir(parents=True, exist_ok=True)
    if stems is None:
        t = np.arange(int(seconds * SR)) / SR
        rng = np.random.default_rng(seed)
        voice = 0.3 * np.sin(2 * np.pi * (440 * t + 3 * np.sin(2 * np.pi * 5 * t)))
        stems = {"vocals": np.stack([voice, 0.8 * voice]), "accompaniment": 0.1 * rng.standard_normal((2, len(t)))}
    if "mixture" not in stems:
        stems = {"mixture": sum(stems.values()), **stems}
    for name, wave in stems.items():
        sf.write(folder / f"{name}.wav", np.asarray(wave, dtype=np.float32).T, SR, subtype="FLOAT")
    return stems


def write_tone_track(folder: Path, seed: int, seconds: float = 2.0, stems: tuple[str, ...] = ("mixture", "vocals", "accompaniment")) -> dict[str, np.ndarray]:
    """A track of a vibrato tone (vocals) over a square bass and noise hats (accompaniment)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    f0 = 200 + 40 * seed
    vocal = 0.3 * np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t))
    vocal *= (np.sin(2 * np.pi * 1.5 * t) > -0.3)  # phrases with rests
    bass = 0.2 * np.sign(np.sin(2 * np.pi * (55 + 5 * seed) * t))
    hats = 0.05 * rng.standard_normal(t.size) * (np.mod(t, 0.25) < 0.03)
    waves = {
        "vocals": np.stack([vocal, 0.9 * vocal]),
        "accompaniment": np.stack([bass + hats, 0.8 * bass + hats]),
    }
    waves["mixture"] = waves["vocals"] + waves["accompaniment"]
    folder.mkdir(parents=True, exist_ok=True)
    for name in stems:
        sf.write(folder / f"{name}.wav", waves[name].T.astype(np.float32), SR, subtype="FLOAT")
    return waves


# -- discovery -------------------------------------------------------------------------------------


def test_find_tracks_layouts(tmp_path):
    write_tone_track(tmp_path / "musdb" / "a", 0)
    write_tone_track(tmp_path / "musdb" / "b", 1, stems=("mixture", "vocals"))
    four = tmp_path / "four"
    waves = write_tone_track(four, 2, stems=("mixture", "vocals"))
    for name, scale in (("bass", 0.5), ("drums", 0.3), ("other", 0.2)):
        sf.write(four / f"{name}.wav", (waves["accompaniment"] * scale).T.astype(np.float32), SR, subtype="FLOAT")
    pairs = tmp_path / "pairs"
    w = write_tone_track(tmp_path / "scratch", 3)
    (pairs / "mixtures").mkdir(parents=True)
    (pairs / "instrumentals").mkdir()
    sf.write(pairs / "mixtures" / "x.wav", w["mixture"].T.astype(np.float32), SR, subtype="FLOAT")
    sf.write(pairs / "instrumentals" / "x.flac", w["accompaniment"].T, SR, subtype="PCM_24")

    tracks = find_tracks([tmp_path / "musdb", four, pairs])
    assert [t.name for t in tracks] == ["a", "b", "four", "x"]
    # b: accompaniment derived as mixture - vocals
    vocals, accompaniment, rate = load_track(tracks[1])
    expected = write_tone_track(tmp_path / "again", 1)
    assert rate == SR
    np.testing.assert_allclose(accompaniment, expected["accompaniment"], atol=1e-6)
    # four: accompaniment = bass + drums + other
    _, accompaniment, _ = load_track(tracks[2])
    np.testing.assert_allclose(accompaniment, waves["accompaniment"], atol=1e-6)
    # pairs: vocals = mixture - instrumental (24-bit FLAC: quantisation only)
    vocals, _, _ = load_track(tracks[3])
    np.testing.assert_allclose(vocals, w["vocals"], atol=1e-5)
    assert tracks[3].sources == {"vocals": "mixtures/x.wav - (instrumentals/x.flac)", "accompaniment": "instrumentals/x.flac"}


def test_find_tracks_errors(tmp_path):
    with pytest.raises(DatasetError, match="no tracks found"):
        find_tracks([tmp_path])
    with pytest.raises(DatasetError, match="no such folder"):
        find_tracks([tmp_path / "missing"])


def test_folder_of_tracks_is_searched_depth_levels_deep_sorted(tmp_path):
    write_track(tmp_path / "set" / "b")
    write_track(tmp_path / "set" / "a")
    (tmp_path / "set" / "notes").mkdir()
    write_track(tmp_path / "set" / "c" / "too_deep")
    assert [t.name for t in find_tracks(tmp_path / "set", depth=1)] == ["a", "b"]
    assert [t.name for t in find_tracks(tmp_path / "set")] == ["a", "b", "too_deep"]  # the default: 2 levels
    assert [t.name for t in find_tracks(tmp_path / "set" / "b")] == ["b"]  # a track folder itself
    tracks, problems = discover_tracks([tmp_path / "set", tmp_path / "set" / "a", tmp_path / "missing"], depth=1)
    assert [t.name for t in tracks] == ["a", "b"] and len(problems) == 1 and "missing" in problems[0]


@pytest.mark.parametrize("bad", ["empty", "missing", "file"])
def test_not_a_track_is_a_one_line_error(tmp_path, bad):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError) as info:
        find_tracks(tmp_path / bad)
    assert bad in str(info.value) and "\n" not in str(info.value)


def test_folder_problems_are_collected_and_the_other_tracks_kept(tmp_path):
    full = write_track(tmp_path / "set" / "good")
    write_track(tmp_path / "set" / "nostems", {"mixture": full["mixture"]})
    write_track(tmp_path / "set" / "twice", {"vocals": full["vocals"], "accompaniment": full["accompaniment"]})
    sf.write(tmp_path / "set" / "twice" / "vocals.flac", full["vocals"].T, SR)
    tracks, problems = discover_tracks(tmp_path / "set")
    assert [t.name for t in tracks] == ["good"]
    assert len(problems) == 2 and "no true stems" in problems[0] and "several vocals files" in problems[1]
    with pytest.raises(DatasetError, match="no true stems"):
        find_tracks(tmp_path / "set")


# -- reading ---------------------------------------------------------------------------------------


def test_accompaniment_from_bass_drums_other(tmp_path):
    rng = np.random.default_rng(9)
    parts = {name: 0.1 * rng.standard_normal((2, 3000)) for name in ("vocals", "bass", "drums", "other")}
    written = write_track(tmp_path / "t", parts)
    track = read_track(find_tracks(tmp_path / "t")[0], strict=True)
    np.testing.assert_allclose(track.stems["accompaniment"], parts["bass"] + parts["drums"] + parts["other"], atol=1e-6)
    np.testing.assert_allclose(track.mixture, written["mixture"], atol=1e-6)
    assert track.track.sources == {"vocals": "vocals.wav", "accompaniment": "bass.wav + drums.wav + other.wav"}


@pytest.mark.parametrize("given, derived", [("accompaniment", "vocals"), ("instrumental", "vocals"), ("vocals", "accompaniment")])
def test_missing_stem_is_mixture_minus_the_other(tmp_path, given, derived):
    full = write_track(tmp_path / "full")
    folder = tmp_path / "t"
    write_track(folder, {"mixture": full["mixture"], given: full["vocals" if given == "vocals" else "accompaniment"]})
    track = read_track(find_tracks(folder)[0], strict=True)
    np.testing.assert_allclose(track.stems[derived], full[derived], atol=1e-6)
    assert track.track.sources[derived] == f"mixture.wav - ({given}.wav)"


def test_missing_mixture_is_the_sum_of_the_stems(tmp_path):
    full = write_track(tmp_path / "full")
    write_track(tmp_path / "t", {"vocals": full["vocals"], "accompaniment": full["accompaniment"]})
    (tmp_path / "t" / "mixture.wav").unlink()
    track = read_track(find_tracks(tmp_path / "t")[0], strict=True)
    np.testing.assert_allclose(track.mixture, full["mixture"], atol=1e-6)


def test_track_without_stems_or_with_mismatched_stems_fails(tmp_path):
    full = write_track(tmp_path / "full")
    write_track(tmp_path / "nostems", {"mixture": full["mixture"]})
    with pytest.raises(DatasetError, match="no true stems"):
        find_tracks(tmp_path / "nostems")
    write_track(tmp_path / "short", {"mixture": full["mixture"], "vocals": full["vocals"][:, :-10]})
    with pytest.raises(DatasetError, match="must match the mixture"):
        read_track(find_tracks(tmp_path / "short")[0], strict=True)


def test_lenient_reading_pads_makes_stereo_and_resamples(tmp_path):
    """The trainer's reading: what strict reading rejects is conformed to the first file."""
    full = write_track(tmp_path / "full")
    write_track(tmp_path / "t", {"mixture": full["mixture"], "vocals": full["vocals"][:1, :-10]})
    track = find_tracks(tmp_path / "t")[0]
    audio = read_track(track)
    assert audio.sample_rate == SR and audio.stems["vocals"].shape == full["mixture"].shape
    np.testing.assert_allclose(audio.stems["vocals"][:, -10:], 0.0)
    np.testing.assert_allclose(audio.stems["vocals"][1, :-10], full["vocals"][0, :-10], atol=1e-6)
    half = read_track(track, SR // 2)
    assert half.sample_rate == SR // 2 and half.mixture.shape[1] == pytest.approx(full["mixture"].shape[1] / 2, abs=1)
    with pytest.raises(DatasetError, match="must match the mixture"):
        read_track(track, strict=True)


# -- spectrograms ----------------------------------------------------------------------------------


def test_spectrograms_are_linear_and_cached(tmp_path):
    """The trainer remixes stems in the spectral domain: analysis(mixture) == sum of the stems'."""
    from uvrsep.transforms import analyze

    params = load_params(TINY_PARAMS)
    write_tone_track(tmp_path / "data" / "track_0", seed=0)
    track = find_tracks([tmp_path / "data"])[0]
    specs = track_spectrograms(track, params, tmp_path / "cache")
    vocals, accompaniment, _ = load_track(track)
    hop = params.top.hl
    mixture = np.pad(vocals + accompaniment, ((0, 0), (0, -vocals.shape[1] % hop)))
    direct = analyze(mixture, params, keep_high_end=False).spec
    np.testing.assert_allclose(specs[0] + specs[1], direct, atol=1e-4 * np.abs(direct).max())
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    np.testing.assert_array_equal(track_spectrograms(track, params, tmp_path / "cache"), specs)
