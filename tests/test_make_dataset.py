"""The dataset generator (uvrsep.synth, scripts/make_dataset.py): layout, exact stems, determinism, and the physics of the voice."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from uvrsep.synth import dsp, arrangement, instruments, voice, backends, mixing, writer

SR = 44100
SECONDS = 2.0




def _generate(out: Path, *extra: str, tracks: int = 3, test_tracks: int = 1, seed: int = 0, jobs: int = 1) -> dict:
    argv = [
        str(out),
        "--tracks",
        str(tracks),
        "--test-tracks",
        str(test_tracks),
        "--seconds",
        str(SECONDS),
        "--seed",
        str(seed),
        "--jobs",
        str(jobs),
        *extra,
    ]
    assert writer.main(argv) == 0
    return json.loads((out / "recipe.json").read_text())


def _track_dirs(out: Path) -> list[Path]:
    return [p for split in writer.SPLITS for p in sorted((out / split).iterdir())]


def _read(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR
    return audio


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ds") / "set"
    return out, _generate(out)


def test_layout_recipe_and_format(dataset: tuple[Path, dict]) -> None:
    out, recipe = dataset
    assert [p.name for p in sorted((out / "train").iterdir())] == ["track_0000", "track_0001", "track_0002"]
    assert [p.name for p in (out / "test").iterdir()] == ["track_0000"]
    assert recipe["version"] == writer.GENERATOR_VERSION
    assert recipe["backends"] == {"accompaniment": "numpy", "voice": "numpy", "soundfont": None, "leads": "synth"}
    assert recipe["arguments"]["seed"] == 0 and recipe["arguments"]["seconds"] == SECONDS
    assert len(recipe["splits"]["train"]) == 3 and len(recipe["splits"]["test"]) == 1
    for facts in recipe["splits"]["train"] + recipe["splits"]["test"]:
        assert 70 <= facts["tempo_bpm"] <= 160
        assert facts["key"].split()[1] in ("major", "minor")
        assert facts["instruments"]["bass"] in arrangement.BASS_INSTRUMENTS
        assert facts["instruments"]["chords"]
        assert -6.0 <= facts["peak_dbfs"] <= -0.5
        if not facts["instrumental"]:
            assert facts["voice"]["kind"] in ("singing", "speech", "rap")
            assert -12.0 <= facts["vocal_level_db"] <= 6.0
    for track in _track_dirs(out):
        for stem in writer.STEMS:
            info = sf.info(track / f"{stem}.wav")
            assert (info.samplerate, info.channels, info.frames) == (SR, 2, int(SECONDS * SR))
            assert info.subtype == "FLOAT"


def test_mixture_is_exact_sum_and_peak(dataset: tuple[Path, dict]) -> None:
    out, recipe = dataset
    facts = recipe["splits"]["train"] + recipe["splits"]["test"]
    for track, fact in zip(_track_dirs(out), facts):
        mix, vocals, acc = (_read(track / f"{stem}.wav") for stem in writer.STEMS)
        np.testing.assert_array_equal(mix, vocals + acc)
        peak = float(np.abs(mix).max())
        assert peak <= 1.0
        assert 20 * np.log10(peak) == pytest.approx(fact["peak_dbfs"], abs=0.01)


def test_same_seed_same_bytes_whatever_the_jobs(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    again = tmp_path / "again"
    _generate(again, jobs=2)
    for a, b in zip(_track_dirs(out), _track_dirs(again)):
        for stem in writer.STEMS:
            assert (a / f"{stem}.wav").read_bytes() == (b / f"{stem}.wav").read_bytes()


def test_other_seed_and_test_split_differ(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    other = tmp_path / "other"
    _generate(other, tracks=1, test_tracks=0, seed=1)
    first = _read(out / "train" / "track_0000" / "accompaniment.wav")
    assert not np.array_equal(first, _read(other / "train" / "track_0000" / "accompaniment.wav"))
    assert not np.array_equal(first, _read(out / "test" / "track_0000" / "accompaniment.wav"))


def _seed_with_both_kinds(fraction: float, tracks: int) -> int:
    """A seed whose first ``tracks`` training tracks include instrumental and sung ones."""
    for seed in range(100):
        draws = [writer.track_rng(seed, 0, i, writer.INSTRUMENTAL_STREAM).random() < fraction for i in range(tracks)]
        if any(draws) and not all(draws):
            return seed
    raise AssertionError("no seed mixes both kinds")


def test_instrumental_tracks_have_silent_vocals(tmp_path: Path) -> None:
    seed = _seed_with_both_kinds(0.5, 3)
    recipe = _generate(tmp_path / "ds", "--instrumental-fraction", "0.5", tracks=3, test_tracks=0, seed=seed)
    kinds = set()
    for facts in recipe["splits"]["train"]:
        track = tmp_path / "ds" / "train" / facts["name"]
        vocals = _read(track / "vocals.wav")
        acc = _read(track / "accompaniment.wav")
        kinds.add(facts["instrumental"])
        if facts["instrumental"]:
            assert not vocals.any() and facts["voice"] is None and facts["vocal_level_db"] is None
        else:
            level = 20 * np.log10(np.sqrt(np.mean(vocals**2)) / np.sqrt(np.mean(acc**2)))
            assert level > facts["vocal_level_db"] - 15.0  # active-voice level vs. whole-excerpt RMS
    assert kinds == {True, False}


def test_pcm16_subtype(tmp_path: Path) -> None:
    _generate(tmp_path / "pcm", "--subtype", "PCM_16", tracks=1, test_tracks=0)
    info = sf.info(tmp_path / "pcm" / "train" / "track_0000" / "mixture.wav")
    assert info.subtype == "PCM_16" and info.frames == int(SECONDS * SR)


def _autocorrelation_f0(x: np.ndarray, sample_rate: int, f_lo: float = 60.0, f_hi: float = 1000.0) -> float:
    """F0 from the autocorrelation peak (parabolic interpolation of the lag)."""
    x = x - x.mean()
    spectrum = np.fft.rfft(x, 2 * len(x))
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[: len(x)]
    lo, hi = int(sample_rate / f_hi), int(sample_rate / f_lo)
    lag = lo + int(np.argmax(ac[lo:hi]))
    a, b, c = ac[lag - 1 : lag + 2]
    lag += 0.5 * (a - c) / (a - 2 * b + c)
    return sample_rate / lag


@pytest.mark.parametrize(("midi", "kind"), [(45, "male"), (57, "male"), (69, "female"), (76, "child")])
def test_singer_pitch_is_the_intended_f0(midi: int, kind: str) -> None:
    singer = voice.Singer(kind=kind, formant_scale=voice.SINGER_FORMANT_SCALE[kind])
    wave = voice.sing_note(midi, "a", 1.0, SR, singer)
    middle = wave[SR // 4 : 3 * SR // 4]
    assert _autocorrelation_f0(middle, SR) == pytest.approx(float(dsp.midi_to_hz(midi)), rel=0.02)


def test_vibrato_modulates_the_pitch() -> None:
    singer = voice.Singer(vibrato_hz=5.5, vibrato_cents=50.0, vibrato_delay_s=0.0)
    wave = voice.sing_note(57, "a", 1.0, SR, singer)
    block = SR // 40
    f0s = [_autocorrelation_f0(wave[i : i + block], SR) for i in range(SR // 2, SR - block, block // 2)]
    cents = 1200 * np.log2(np.array(f0s) / 220.0)
    assert 50 < np.ptp(cents) < 150  # about +-50 cents


def _harmonic_levels(wave: np.ndarray, f0: float) -> tuple[np.ndarray, np.ndarray]:
    segment = wave[SR // 4 : SR // 4 + 32768] * np.hanning(32768)
    spectrum = np.abs(np.fft.rfft(segment))
    freqs = np.fft.rfftfreq(32768, 1 / SR)
    harmonics = np.arange(1, int(8000 / f0)) * f0
    levels = np.array([spectrum[np.abs(freqs - h) < f0 / 4].max() for h in harmonics])
    return harmonics, 20 * np.log10(levels / levels.max())


def test_vowel_formants_shape_the_spectrum() -> None:
    f0 = float(dsp.midi_to_hz(45))
    harm_a, level_a = _harmonic_levels(voice.sing_note(45, "a", 1.0, SR), f0)
    harm_i, level_i = _harmonic_levels(voice.sing_note(45, "i", 1.0, SR), f0)
    f1_a = voice.VOWELS["a"][0]
    f1_i, f2_i = voice.VOWELS["i"][:2]
    # The strongest harmonic of /a/ in 300-1500 Hz sits on F1 (730 Hz), within one harmonic.
    band = (harm_a > 300) & (harm_a < 1500)
    assert abs(harm_a[band][np.argmax(level_a[band])] - f1_a) <= f0
    # /i/ has F1 low (270 Hz) and F2 high (2290 Hz): both are spectral peaks, within one harmonic.
    low = harm_i < 600
    assert abs(harm_i[low][np.argmax(level_i[low])] - f1_i) <= f0
    high = (harm_i > 1500) & (harm_i < 2700)
    assert abs(harm_i[high][np.argmax(level_i[high])] - f2_i) <= f0

    # "F2 energy": the 1.8-2.7 kHz band against the 0.6-1.2 kHz band differs by far between them.
    def f2_ratio(harm: np.ndarray, level: np.ndarray) -> float:
        power = 10 ** (level / 10)
        return 10 * np.log10(power[(harm > 1800) & (harm < 2700)].sum() / power[(harm > 600) & (harm < 1200)].sum())

    assert f2_ratio(harm_i, level_i) - f2_ratio(harm_a, level_a) > 25.0

    # The spectral centroid below 4 kHz: /a/ (open, F1 730 Hz) well above /i/ (F1 270 Hz).
    def centroid(harm: np.ndarray, level: np.ndarray) -> float:
        power = 10 ** (level / 10) * (harm < 4000)
        return float((harm * power).sum() / power.sum())

    assert centroid(harm_a, level_a) > 1.5 * centroid(harm_i, level_i)


def test_karplus_strong_pitch() -> None:
    wave = instruments.karplus_strong(196.0, SR // 2, SR, np.random.default_rng(0), 3000.0, 2.0)
    assert _autocorrelation_f0(wave[SR // 10 :], SR) == pytest.approx(196.0, rel=0.01)


def test_accompaniment_has_low_end_when_bass_and_drums_play(dataset: tuple[Path, dict]) -> None:
    out, recipe = dataset
    facts = recipe["splits"]["train"] + recipe["splits"]["test"]
    for track, fact in zip(_track_dirs(out), facts):
        acc = _read(track / "accompaniment.wav").mean(axis=1)
        assert np.sqrt(np.mean(acc**2)) > 1e-3
        power = np.abs(np.fft.rfft(acc)) ** 2
        freqs = np.fft.rfftfreq(len(acc), 1 / SR)
        low = power[(freqs > 20) & (freqs < 200)].sum() / power.sum()
        assert low > 0.1, (fact["instruments"], low)


def _midi_events(data: bytes) -> tuple[tuple[int, int, int], list[tuple[int, bytes]]]:
    """Header ``(format, tracks, division)`` and ``(absolute tick, message)`` of a one-track SMF."""
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    header = struct.unpack(">HHH", data[8:14])
    (length,) = struct.unpack(">I", data[18:22])
    body, pos, tick, events = data[22 : 22 + length], 0, 0, []
    while pos < len(body):
        delta = 0
        while True:
            byte = body[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        tick += delta
        status = body[pos]
        if status == 0xFF:
            size = body[pos + 2]
            events.append((tick, body[pos : pos + 3 + size]))
            pos += 3 + size
        else:
            size = 2 if status >> 4 in (0xC, 0xD) else 3
            events.append((tick, body[pos : pos + size]))
            pos += size
    return header, events


def test_midi_file_of_an_arrangement() -> None:
    notes = [arrangement.Note(-0.25, 0.5, 60.0, 0.8), arrangement.Note(1.0, 0.5, 64.0, 1.0)]
    score = arrangement.Arrangement([arrangement.Part("chords", "piano", notes, -0.5, -3.0)], [(0.5, "kick", 1.0)], 0.0, ["block"])
    data, shift = backends.midi_file(score, 120.0)
    assert shift == pytest.approx(0.25)
    (fmt, tracks, division), events = _midi_events(data)
    assert (fmt, tracks, division) == (1, 1, backends.MIDI_PPQ)
    assert events[0][1][:3] == b"\xff\x51\x03" and events[-1][1] == b"\xff\x2f\x00"
    on = [(tick, msg) for tick, msg in events if msg[0] >> 4 == 0x9]
    assert [(msg[0] & 0xF, msg[1]) for _, msg in on] == [(0, 60), (backends.MIDI_DRUM_CHANNEL, backends.GM_DRUMS["kick"]), (0, 64)]
    seconds_per_tick = 0.5 / backends.MIDI_PPQ  # 120 BPM
    assert [tick * seconds_per_tick for tick, _ in on] == pytest.approx([0.0, 0.75, 1.25])
    assert any(msg == bytes([0xC0, backends.GM_PROGRAMS["piano"]]) for _, msg in events)


def _soundfont() -> str | None:
    for path in (
        "/usr/share/sounds/sf2/TimGM6mb.sf2",
        "/usr/share/sounds/sf2/FluidR3_GM.sf2",
        "/usr/share/soundfonts/default.sf2",
    ):
        if Path(path).is_file():
            return path
    return None


def test_fluidsynth_backend(tmp_path: Path) -> None:
    soundfont = _soundfont()
    if shutil.which(backends.FLUIDSYNTH) is None or soundfont is None:
        pytest.skip("fluidsynth or a General MIDI SoundFont is not installed")
    recipe = _generate(
        tmp_path / "fs", "--accompaniment", "fluidsynth", "--soundfont", soundfont, tracks=1, test_tracks=0
    )
    assert recipe["backends"]["accompaniment"] == "fluidsynth"
    track = tmp_path / "fs" / "train" / "track_0000"
    mix, vocals, acc = (_read(track / f"{stem}.wav") for stem in writer.STEMS)
    np.testing.assert_array_equal(mix, vocals + acc)
    assert acc.shape == (int(SECONDS * SR), 2) and np.sqrt(np.mean(acc**2)) > 1e-3


def test_sampled_leads_play_in_a_singers_register_in_every_instrumental_track(tmp_path: Path) -> None:
    """``--leads sampled``: the voice-like leads through the SoundFont, in most tracks and in every
    instrumental one; the stems still sum exactly and the same seed gives the same bytes."""
    soundfont = _soundfont()
    if shutil.which(backends.FLUIDSYNTH) is None or soundfont is None:
        pytest.skip("fluidsynth or a General MIDI SoundFont is not installed")
    extra = ("--accompaniment", "fluidsynth", "--soundfont", soundfont, "--leads", "sampled", "--instrumental-fraction", "0.5")
    recipe = _generate(tmp_path / "a", *extra, tracks=6, test_tracks=0, seed=5)
    assert recipe["backends"]["leads"] == "sampled"
    facts = recipe["splits"]["train"]
    assert all(f["instruments"]["sampled_lead"] for f in facts)
    assert all(f["instruments"]["lead"] in arrangement.SAMPLED_LEAD_INSTRUMENTS for f in facts if f["instruments"]["lead"])
    instrumental = [f for f in facts if f["instrumental"]]
    assert instrumental and all(f["instruments"]["lead"] for f in instrumental)
    tracks = sorted((tmp_path / "a" / "train").iterdir())
    for track in tracks:
        mix, vocals, acc = (_read(track / f"{stem}.wav") for stem in writer.STEMS)
        np.testing.assert_array_equal(mix, vocals + acc)
    _generate(tmp_path / "b", *extra, tracks=6, test_tracks=0, seed=5, jobs=2)
    for track in tracks:
        for stem in writer.STEMS:
            other = tmp_path / "b" / track.parent.name / track.name / f"{stem}.wav"
            assert (track / f"{stem}.wav").read_bytes() == other.read_bytes()


def test_a_sampled_lead_plays_in_a_singers_register_with_expression() -> None:
    low = min(r[0] for r in arrangement.VOCAL_LEAD_REGISTERS)
    high = max(r[1] for r in arrangement.VOCAL_LEAD_REGISTERS)
    leads = []
    for seed in range(12):
        rng = writer.track_rng(seed, 0, 0)
        plan = mixing.plan_track(rng, instrumental=True, leads="sampled")
        lead = next(p for p in mixing.arrange(rng, plan, SECONDS).parts if p.family == "lead")
        assert lead.instrument in arrangement.SAMPLED_LEAD_INSTRUMENTS and lead.expression is not None
        assert all(low <= n.midi <= high for n in lead.notes)
        leads.append(lead.instrument)
    assert len(set(leads)) > 3
    synth = mixing.plan_track(writer.track_rng(0, 0, 0), instrumental=True)
    assert synth.lead in (None, *arrangement.LEAD_INSTRUMENTS) and not synth.sampled_lead


def test_a_horn_section_plays_the_lead_line_harmonised_below_it_and_out_of_time() -> None:
    """``section_parts``: each horn plays every note of the lead moved down its scale steps (so
    on the scale, below the lead), late or early by its lag, at the lead's level plus its own,
    with the lead's expression; ``sample_section`` gives 2-4 horns on distinct intervals."""
    for seed in range(20):
        rng = writer.track_rng(seed, 0, 0)
        plan = mixing.plan_track(rng, instrumental=True, leads="sampled")
        plan.lead = arrangement.SECTION_HORNS[seed % len(arrangement.SECTION_HORNS)]
        horns = arrangement.sample_section(np.random.default_rng(seed))
        assert arrangement.SECTION_SIZE[0] <= len(horns) <= arrangement.SECTION_SIZE[1]
        assert len({h.steps for h in horns}) == len(horns) and all(h.steps in arrangement.SECTION_STEPS for h in horns)
        plan.section = horns
        parts = mixing.arrange(rng, plan, SECONDS).parts
        lead, section = parts[-1 - len(horns)], parts[-len(horns):]
        assert lead.family == "lead" and lead.instrument == plan.lead
        scale = set(plan.harmony.scale)
        for horn, part in zip(horns, section):
            assert part.instrument == horn.instrument in arrangement.SECTION_HORNS
            assert part.gain_db == pytest.approx(lead.gain_db + horn.gain_db) and part.expression is lead.expression
            assert len(part.notes) == len(lead.notes)
            for played, led in zip(part.notes, lead.notes):
                assert played.start == pytest.approx(led.start + horn.lag_s) and played.duration == led.duration
                assert played.midi < led.midi and (played.midi - plan.harmony.tonic) % 12 in scale
                assert abs(horn.lag_s) <= max(map(abs, arrangement.SECTION_LAG_S))


def test_horn_sections_add_horns_and_change_nothing_else(tmp_path: Path) -> None:
    """``--horn-sections 1``: every track whose lead is a horn gets a section (in its facts), the
    stems still sum exactly, and a track without one is byte for byte the track made without
    the option (the section has a random stream of its own)."""
    soundfont = _soundfont()
    if shutil.which(backends.FLUIDSYNTH) is None or soundfont is None:
        pytest.skip("fluidsynth or a General MIDI SoundFont is not installed")
    extra = ("--accompaniment", "fluidsynth", "--soundfont", soundfont, "--leads", "sampled", "--instrumental-fraction", "0.5")
    plain = _generate(tmp_path / "plain", *extra, tracks=8, test_tracks=0, seed=3)
    horns = _generate(tmp_path / "horns", *extra, "--horn-sections", "1", tracks=8, test_tracks=0, seed=3)
    assert horns["arguments"]["horn_sections"] == 1.0
    with_section = 0
    for before, after in zip(plain["splits"]["train"], horns["splits"]["train"]):
        assert before["instruments"]["section"] is None
        section = after["instruments"].pop("section")
        before["instruments"].pop("section")
        assert before == after
        folder = Path("train") / after["name"]
        if after["instruments"]["lead"] in arrangement.SECTION_HORNS:
            with_section += 1
            assert 2 <= len(section) <= 4
            mix, vocals, acc = (_read(tmp_path / "horns" / folder / f"{stem}.wav") for stem in writer.STEMS)
            np.testing.assert_array_equal(mix, vocals + acc)
            assert not np.array_equal(acc, _read(tmp_path / "plain" / folder / "accompaniment.wav"))
        else:
            assert section is None
            for stem in writer.STEMS:
                assert (tmp_path / "horns" / folder / f"{stem}.wav").read_bytes() == (tmp_path / "plain" / folder / f"{stem}.wav").read_bytes()
    assert with_section


@pytest.mark.parametrize("argv, message", [
    (("--horn-sections", "1.5"), "--horn-sections must be in [0, 1]"),
    (("--horn-sections", "0.5"), "--horn-sections needs --leads sampled"),
])
def test_horn_sections_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        writer.main([str(tmp_path / "x"), "--tracks", "1", "--test-tracks", "0", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sampled_leads_need_the_fluidsynth_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        writer.main([str(tmp_path / "x"), "--leads", "sampled", "--tracks", "1", "--test-tracks", "0"])
    assert exit_info.value.code == 2 and "--accompaniment fluidsynth" in capsys.readouterr().err


def test_a_sampled_lead_bends_its_pitch_in_the_midi_file() -> None:
    """A lead with expression: the channel's pitch-bend range is set (RPN 0), each note's bend
    curve starts at its onset, a note after a rest scoops in from below and the others start in
    tune, and the vibrato reaches its depth after its delay, at its rate."""
    ex = arrangement.Expression(vibrato_hz=5.0, vibrato_cents=40.0, vibrato_delay_s=0.2, scoop_cents=-150.0, scoop_s=0.1)
    notes = [arrangement.Note(0.0, 0.9, 60.0), arrangement.Note(1.0, 1.0, 62.0), arrangement.Note(2.5, 1.0, 64.0)]
    played = arrangement.legato(notes)
    assert [n.duration for n in played] == [1.0, 1.0, 1.0]  # held to the next onset within the phrase
    assert arrangement.phrase_starts(played) == [True, False, True]  # 0.5 s of rest before the third
    part = arrangement.Part("lead", "harmonica", played, 0.0, 0.0, ex)
    data, shift = backends.midi_file(arrangement.Arrangement([part], [], 0.0, []), 120.0)
    assert shift == 0.0
    _, events = _midi_events(data)
    controls = [msg[1:] for _, msg in events if msg[0] == 0xB0]
    assert [bytes([101, 0]), bytes([100, 0]), bytes([6, backends.PITCH_BEND_RANGE_SEMITONES])] == controls[2:5]
    tick_s = 0.5 / backends.MIDI_PPQ
    bends = [(tick * tick_s, ((msg[2] << 7) | msg[1]) - backends.PITCH_BEND_CENTRE) for tick, msg in events if msg[0] == 0xE0]
    cents = {round(t, 3): v * 100 * backends.PITCH_BEND_RANGE_SEMITONES / backends.PITCH_BEND_CENTRE for t, v in bends}
    assert cents[0.0] == pytest.approx(-150.0, abs=1) and cents[2.5] == pytest.approx(-150.0, abs=1)  # scoops
    assert cents[1.0] == pytest.approx(0.0, abs=1)  # in tune: no scoop, no vibrato yet
    vibrato = [c for t, c in cents.items() if 1.25 <= t < 1.95]  # past the delay, within the note
    assert max(vibrato) == pytest.approx(40.0, abs=2) and min(vibrato) == pytest.approx(-40.0, abs=2)
    crossings = sum(1 for a, b in zip(vibrato, vibrato[1:]) if a < 0 <= b)
    assert crossings == 3  # 5 Hz: rising through 0 at 0.4, 0.6 and 0.8 s into the note


def _seed_with_voice(*kinds: str) -> int:
    """A seed whose first training track has a voice of one of ``kinds`` (speech, rap, singing)."""
    return next(
        s
        for s in range(200)
        if mixing.plan_track(writer.track_rng(s, 0, 0), False).voice_kind in kinds
        and writer.track_rng(s, 0, 0, writer.INSTRUMENTAL_STREAM).random() >= writer.DEFAULT_INSTRUMENTAL_FRACTION
    )


def test_espeak_backend(tmp_path: Path) -> None:
    if shutil.which(backends.ESPEAK) is None:
        pytest.skip("espeak-ng is not installed")
    seed = _seed_with_voice("speech", "rap")
    recipe = _generate(tmp_path / "es", "--voice", "espeak", tracks=1, test_tracks=0, seed=seed)
    facts = recipe["splits"]["train"][0]
    assert facts["espeak"]["voice"].startswith("en+")
    vocals = _read(tmp_path / "es" / "train" / "track_0000" / "vocals.wav")
    assert np.sqrt(np.mean(vocals**2)) > 1e-3


def _festival_or_skip() -> None:
    if shutil.which(backends.FESTIVAL) is None or not backends.festival_voices():
        pytest.skip("Festival (text2wave) or its voices are not installed")


def test_festival_backend(tmp_path: Path) -> None:
    """``--voice festival``: the spoken or rapped voice is a Festival voice of a real speaker,
    in its language; the same seed gives the same bytes whatever ``--jobs``."""
    _festival_or_skip()
    seed = _seed_with_voice("speech", "rap")
    recipe = _generate(tmp_path / "a", "--voice", "festival", tracks=1, test_tracks=0, seed=seed)
    facts = recipe["splits"]["train"][0]["festival"]
    assert facts["voice"] in backends.festival_voices()
    assert facts["language"] == backends.FESTIVAL_VOICES[facts["voice"]][1]
    track = tmp_path / "a" / "train" / "track_0000"
    mix, vocals, acc = (_read(track / f"{stem}.wav") for stem in writer.STEMS)
    np.testing.assert_array_equal(mix, vocals + acc)
    assert np.sqrt(np.mean(vocals**2)) > 1e-3
    _generate(tmp_path / "b", "--voice", "festival", tracks=1, test_tracks=0, seed=seed, jobs=2)
    assert (track / "vocals.wav").read_bytes() == (tmp_path / "b" / "train" / "track_0000" / "vocals.wav").read_bytes()


def test_a_festival_child_is_a_female_voice_shifted_up() -> None:
    """The same draws for a female and a child singer: the same voice and text; the child's
    rendering is shorter by the factor of its upward shift."""
    _festival_or_skip()
    n = SR * 60  # room for the whole rendering
    lengths, facts = {}, {}
    for kind in ("female", "child"):
        singer = voice.sample_singer(np.random.default_rng(1), kind)
        out: dict = {}
        mono = backends.festival_voice(np.random.default_rng(3), singer, 3.0, n, SR, out)
        sounding = np.flatnonzero(np.abs(mono) > 1e-4)
        lengths[kind] = int(sounding[-1] - sounding[0])  # the onset before it is not shifted
        facts[kind] = out["festival"]
    assert facts["child"]["voice"] == facts["female"]["voice"] and facts["female"]["shift_semitones"] == 0.0
    shift = facts["child"]["shift_semitones"]
    assert backends.CHILD_SHIFT_SEMITONES[0] <= shift <= backends.CHILD_SHIFT_SEMITONES[1]
    assert lengths["child"] / lengths["female"] == pytest.approx(2 ** (-shift / 12), rel=0.02)


def _f0(wave: np.ndarray, at_s: float) -> float:
    """Autocorrelation pitch (Hz) of 50 ms of ``wave`` (at ``SR``) from ``at_s``."""
    seg = wave[int(at_s * SR) : int(at_s * SR) + SR // 20].astype(np.float64)
    seg -= seg.mean()
    ac = np.correlate(seg, seg, "full")[len(seg) - 1 :]
    low, high = SR // 700, SR // 70
    return SR / (low + int(np.argmax(ac[low:high])))


def test_festival_sings_the_notes_of_a_phrase() -> None:
    """Festival's singing mode in a real speaker's diphone voice: each note at its pitch; a phrase
    above what the voice can render is sung an octave lower (and does not crash it)."""
    _festival_or_skip()
    if not backends.festival_singing_voices():
        pytest.skip("no Festival diphone voice installed")
    singer = voice.sample_singer(np.random.default_rng(0), "male")
    notes = [(arrangement.Note(0.1, 0.6, 48.0), True), (arrangement.Note(0.7, 0.6, 52.0), False), (arrangement.Note(1.3, 0.8, 55.0), False)]
    facts: dict = {}
    wave = backends.festival_song(np.random.default_rng(1), singer, notes, 3 * SR, SR, facts)
    assert facts["festival_singing"]["phrases"] == 1 and facts["festival_singing"]["phrases_an_octave_lower"] == 0
    for at_s, midi in ((0.3, 48.0), (0.9, 52.0), (1.5, 55.0)):  # Festival's notes run a little short
        assert _f0(wave, at_s) == pytest.approx(float(dsp.midi_to_hz(midi)), rel=0.04), at_s
    high = [(arrangement.Note(0.1, 0.5, 76.0), True), (arrangement.Note(0.6, 0.5, 79.0), False)]
    facts = {}
    wave = backends.festival_song(np.random.default_rng(1), voice.sample_singer(np.random.default_rng(0), "female"), high, 2 * SR, SR, facts)
    assert facts["festival_singing"]["phrases_an_octave_lower"] == 1 and np.sqrt(np.mean(wave**2)) > 1e-3
    assert _f0(wave, 0.25) == pytest.approx(float(dsp.midi_to_hz(76.0 - 12)), rel=0.04)


def test_festival_singing_tracks(tmp_path: Path) -> None:
    """``--voice festival`` on a sung track: Festival sings it (same bytes whatever ``--jobs``)."""
    _festival_or_skip()
    if not backends.festival_singing_voices():
        pytest.skip("no Festival diphone voice installed")
    seed = _seed_with_voice("singing")
    recipe = _generate(tmp_path / "a", "--voice", "festival", tracks=1, test_tracks=0, seed=seed)
    facts = recipe["splits"]["train"][0]["festival_singing"]
    assert facts["voice"] in backends.festival_singing_voices() and facts["phrases"] >= 1
    vocals = tmp_path / "a" / "train" / "track_0000" / "vocals.wav"
    assert np.sqrt(np.mean(_read(vocals) ** 2)) > 1e-3
    _generate(tmp_path / "b", "--voice", "festival", tracks=1, test_tracks=0, seed=seed, jobs=2)
    assert vocals.read_bytes() == (tmp_path / "b" / "train" / "track_0000" / "vocals.wav").read_bytes()


def test_the_generator_modules_import_only_the_layers_below_them() -> None:
    """Each module of uvrsep.synth says what it models and imports only modules listed before it
    in the package's layering (so there is no import cycle)."""
    import ast

    import uvrsep.synth as synth

    layers = ["dsp", "arrangement", "instruments", "drums", "voice", "effects", "backends", "mixing", "writer"]
    folder = Path(synth.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__") == sorted(layers)
    for level, name in enumerate(layers):
        tree = ast.parse((folder / f"{name}.py").read_text())
        assert len(ast.get_docstring(tree) or "") > 100, name
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert all(layers.index(other) < level for other in imported), (name, imported)
