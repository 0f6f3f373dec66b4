"""Tests of uvrsep.audio: decoding (soundfile, ffmpeg fallback), downmix, atomic writing."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from uvrsep import audio
from uvrsep.audio import (
    AUDIO_EXTENSIONS,
    SUBTYPES,
    AudioInfo,
    downmix_to_stereo,
    ffmpeg_available,
    output_format_from_path,
    probe_duration,
    read_audio,
    write_audio,
)
from uvrsep.errors import AudioError, UvrsepError

RATE = 8000
FRAMES = 800
PCM16_LSB = 1.0 / 32768
PCM24_LSB = 1.0 / 2**23
HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg/ffprobe not installed")


def _signal(channels: int = 2, frames: int = FRAMES, seed: int = 0) -> np.ndarray:
    """(channels, frames) float32 noise within ±0.9."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.9, 0.9, size=(channels, frames))).astype(np.float32)


def _no_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(audio.shutil, "which", lambda name, *a, **k: None if name in ("ffmpeg", "ffprobe") else real_which(name, *a, **k))


def _entries(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _assert_one_line_naming(err: pytest.ExceptionInfo, name: str) -> None:
    message = str(err.value)
    assert name in message
    assert "\n" not in message and message.strip() == message


# -- constants -----------------------------------------------------------------------------------


def test_extensions_and_subtypes() -> None:
    assert {".wav", ".flac", ".mp3", ".m4a", ".mkv", ".mka", ".opus", ".aif"} <= AUDIO_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in AUDIO_EXTENSIONS)
    assert len(AUDIO_EXTENSIONS) == 16
    assert SUBTYPES == {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}
    assert issubclass(AudioError, UvrsepError)


def test_output_format_from_path(tmp_path: Path) -> None:
    assert output_format_from_path(tmp_path / "a.WAV") == "WAV"
    assert output_format_from_path("b.flac") == "FLAC"
    assert output_format_from_path("c.ogg") == "OGG"
    assert output_format_from_path("d.mp3") == "MP3"
    with pytest.raises(AudioError) as err:
        output_format_from_path("song.m4a")
    _assert_one_line_naming(err, "song.m4a")


def test_lossy_unavailable_everywhere_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_ffmpeg(monkeypatch)
    monkeypatch.setattr(audio.sf, "available_formats", lambda: {"WAV": "", "FLAC": ""})
    with pytest.raises(AudioError, match="install ffmpeg"):
        output_format_from_path("x.mp3")
    assert output_format_from_path("x.wav") == "WAV"


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subtype", "atol"),
    [
        ("a.wav", "PCM_16", PCM16_LSB),
        ("a.wav", "PCM_24", PCM24_LSB),
        ("a.wav", "FLOAT", 0.0),
        ("a.flac", "PCM_16", PCM16_LSB),
        ("a.flac", "PCM_24", PCM24_LSB),
        ("a.wav", None, PCM16_LSB),
    ],
)
def test_round_trip(tmp_path: Path, name: str, subtype: str | None, atol: float) -> None:
    wave = _signal()
    out = tmp_path / name
    assert write_audio(out, wave, RATE, subtype=subtype) == 0
    got, info = read_audio(out)
    assert got.dtype == np.float32 and got.shape == wave.shape
    assert got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(got, wave, rtol=0, atol=atol)
    assert info == AudioInfo(out, RATE, 2, FRAMES, subtype or "PCM_16", 0)
    assert info.duration == pytest.approx(FRAMES / RATE)
    assert _entries(tmp_path) == [name]  # no temporary file left


def test_float_round_trip_is_exact(tmp_path: Path) -> None:
    wave = _signal(seed=3) * 3  # beyond full scale: FLOAT keeps it
    out = tmp_path / "f.wav"
    assert write_audio(out, wave, RATE, subtype="FLOAT") == 0
    got, _ = read_audio(out)
    np.testing.assert_array_equal(got, wave)


def test_lossy_round_trip(tmp_path: Path) -> None:
    t = np.arange(RATE, dtype=np.float32) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wave = np.stack([tone, tone])
    for name in ("t.ogg", "t.mp3"):
        out = tmp_path / name
        write_audio(out, wave, RATE)
        got, info = read_audio(out)
        assert got.shape[0] == 2 and info.sample_rate == RATE
        assert info.subtype == SUBTYPES[output_format_from_path(out)]
        # lossy, with codec delay: compare loudness rather than samples
        rms = float(np.sqrt(np.mean(got**2)))
        assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.2)


def test_mono_file_reads_as_one_channel(tmp_path: Path) -> None:
    mono = _signal(1)[0]
    out = tmp_path / "mono.wav"
    sf.write(out, mono, RATE, subtype="FLOAT")
    got, info = read_audio(out)
    assert got.shape == (1, FRAMES) and info.channels == 1
    np.testing.assert_array_equal(got[0], mono)


def test_write_accepts_1d_as_mono(tmp_path: Path) -> None:
    out = tmp_path / "m.wav"
    write_audio(out, _signal(1)[0], RATE)
    assert sf.info(out).channels == 1


def test_zero_length_wav(tmp_path: Path) -> None:
    out = tmp_path / "empty.wav"
    write_audio(out, np.zeros((2, 0), np.float32), RATE)
    got, info = read_audio(out)
    assert got.shape == (2, 0) and got.dtype == np.float32
    assert info.frames == 0 and info.sample_rate == RATE
    assert probe_duration(out) == 0.0


def test_zero_length_six_channels_downmixes(tmp_path: Path) -> None:
    out = tmp_path / "e6.wav"
    sf.write(out, np.zeros((0, 6), np.float32), RATE)
    got, info = read_audio(out)
    assert got.shape == (2, 0) and info.channels == 6


# -- NaN / Inf -----------------------------------------------------------------------------------


def test_nonfinite_samples_become_zero_and_are_counted(tmp_path: Path) -> None:
    wave = _signal()
    wave[0, 10] = np.nan
    wave[1, 20] = np.inf
    wave[1, 30] = -np.inf
    out = tmp_path / "nan.wav"
    sf.write(out, wave.T, RATE, subtype="FLOAT")  # written raw, NaN kept in the file
    got, info = read_audio(out)
    assert info.nonfinite == 3
    assert np.all(np.isfinite(got))
    assert got[0, 10] == 0 and got[1, 20] == 0 and got[1, 30] == 0
    mask = np.isfinite(wave)
    np.testing.assert_array_equal(got[mask], wave[mask])


def test_write_replaces_nonfinite_with_zero(tmp_path: Path) -> None:
    wave = np.array([[np.nan, np.inf, -np.inf, 0.25]], np.float32)
    out = tmp_path / "w.wav"
    assert write_audio(out, wave, RATE, subtype="FLOAT") == 0
    got, info = read_audio(out)
    np.testing.assert_array_equal(got, [[0, 0, 0, 0.25]])
    assert info.nonfinite == 0


# -- downmix -------------------------------------------------------------------------------------


def test_downmix_51_known_signal() -> None:
    k = 1 / math.sqrt(2)
    frames = 5
    fl, fr, fc, lfe, bl, br = (np.full(frames, v, np.float32) for v in (0.1, 0.2, 0.3, 0.9, 0.05, -0.1))
    wave = np.stack([fl, fr, fc, lfe, bl, br])
    out = downmix_to_stereo(wave)
    assert out.shape == (2, frames) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], 0.1 + k * 0.3 + k * 0.05, rtol=1e-6)  # LFE (0.9) dropped
    np.testing.assert_allclose(out[1], 0.2 + k * 0.3 - k * 0.1, rtol=1e-6)


def test_downmix_51_read_from_file(tmp_path: Path) -> None:
    k = 1 / math.sqrt(2)
    wave = np.zeros((6, 100), np.float32)
    wave[0], wave[2], wave[5] = 0.2, 0.1, 0.3  # FL, FC, BR
    out = tmp_path / "six.wav"
    sf.write(out, wave.T, RATE, subtype="FLOAT")
    got, info = read_audio(out)
    assert info.channels == 6 and info.frames == 100
    np.testing.assert_allclose(got[0], 0.2 + k * 0.1, rtol=1e-6)
    np.testing.assert_allclose(got[1], k * 0.1 + k * 0.3, rtol=1e-6)


def test_downmix_51_scales_down_to_input_peak() -> None:
    k = 1 / math.sqrt(2)
    wave = np.zeros((6, 4), np.float32)
    wave[0], wave[2], wave[4] = 0.8, 0.8, 0.8  # L would be 0.8·(1 + 2k) ≈ 1.93
    wave[1, 0] = 0.4
    out = downmix_to_stereo(wave)
    assert float(np.max(np.abs(out))) == pytest.approx(0.8, rel=1e-6)
    scale = 0.8 / (0.8 * (1 + 2 * k))
    np.testing.assert_allclose(out[0], 0.8 * (1 + 2 * k) * scale, rtol=1e-6)
    np.testing.assert_allclose(out[1], [(0.4 + 0.8 * k) * scale] + [0.8 * k * scale] * 3, rtol=1e-6)


def _peak_limited(expected: list, wave: np.ndarray) -> np.ndarray:
    """The documented rule: a downmix louder than the input's peak is scaled to that peak."""
    expected = np.asarray(expected, np.float64)
    return expected * min(1.0, float(np.abs(wave).max()) / float(np.abs(expected).max()))


def test_downmix_standard_layouts_keep_centre_in_both_sides() -> None:
    k = 1 / math.sqrt(2)
    # 3.0: FL FR FC — the centre (dialogue) reaches both sides at -3 dB
    three = np.array([[0.1], [0.2], [0.4]], np.float32)
    np.testing.assert_allclose(downmix_to_stereo(three), _peak_limited([[0.1 + k * 0.4], [0.2 + k * 0.4]], three), rtol=1e-6)
    # quad: FL FR BL BR
    quad = np.array([[0.1], [0.2], [0.3], [0.4]], np.float32)
    np.testing.assert_allclose(downmix_to_stereo(quad), _peak_limited([[0.1 + k * 0.3], [0.2 + k * 0.4]], quad), rtol=1e-6)
    # 7.1: FL FR FC LFE BL BR SL SR, LFE dropped
    eight = np.array([[0.1], [0.0], [0.2], [0.9], [0.0], [0.1], [0.05], [0.0]], np.float32)
    expected = [[0.1 + k * 0.2 + k * 0.05], [k * 0.2 + k * 0.1]]
    np.testing.assert_allclose(downmix_to_stereo(eight), _peak_limited(expected, eight), rtol=1e-6)


def test_downmix_more_than_eight_channels_average_even_and_odd() -> None:
    wave = np.arange(1, 11, dtype=np.float32)[:, None] / 100  # 10 channels
    np.testing.assert_allclose(downmix_to_stereo(wave), [[0.05], [0.06]], rtol=1e-6)


def test_downmix_leaves_mono_and_stereo_alone() -> None:
    for channels in (1, 2):
        wave = _signal(channels)
        assert downmix_to_stereo(wave) is wave
    with pytest.raises(ValueError):
        downmix_to_stereo(np.zeros(4, np.float32))


# -- clipping ------------------------------------------------------------------------------------


def test_pcm16_clips_instead_of_wrapping(tmp_path: Path) -> None:
    wave = np.array([[1.5, -1.5, 0.5, 1.0, -1.0, 2.0]], np.float32)
    out = tmp_path / "clip.wav"
    clipped = write_audio(out, wave, RATE, subtype="PCM_16")
    ints, _ = sf.read(out, dtype="int16")
    assert ints.tolist() == [32767, -32768, 16384, 32767, -32768, 32767]
    # 1.5, -1.5, 2.0 and 1.0 (above 1 - 1/32768) are beyond PCM_16 full scale; -1.0 is not
    assert clipped == 4


def test_pcm24_clip_count(tmp_path: Path) -> None:
    wave = np.array([[1.5, -1.5, 1 - 2.0**-23, -1.0, 0.0]], np.float64)
    out = tmp_path / "clip24.flac"
    assert write_audio(out, wave, RATE, subtype="PCM_24") == 2
    ints, _ = sf.read(out, dtype="int32")
    assert (ints >> 8).tolist() == [2**23 - 1, -(2**23), 2**23 - 1, -(2**23), 0]


def test_lossy_clip_count(tmp_path: Path) -> None:
    wave = np.zeros((2, RATE), np.float32)
    wave[0, :3] = 1.2
    assert write_audio(tmp_path / "c.ogg", wave, RATE) == 3


# -- overwrite / atomicity -----------------------------------------------------------------------


def test_refuses_to_overwrite_and_keeps_the_file(tmp_path: Path) -> None:
    out = tmp_path / "keep.wav"
    write_audio(out, _signal(seed=1), RATE)
    before = out.read_bytes()
    with pytest.raises(AudioError, match="--overwrite") as err:
        write_audio(out, _signal(seed=2), RATE)
    _assert_one_line_naming(err, "keep.wav")
    assert out.read_bytes() == before
    assert _entries(tmp_path) == ["keep.wav"]


def test_overwrite_replaces(tmp_path: Path) -> None:
    out = tmp_path / "r.wav"
    write_audio(out, _signal(seed=1), RATE)
    write_audio(out, _signal(seed=2), RATE, subtype="FLOAT", overwrite=True)
    got, info = read_audio(out)
    np.testing.assert_array_equal(got, _signal(seed=2))
    assert info.subtype == "FLOAT"
    assert _entries(tmp_path) == ["r.wav"]


def test_target_created_during_write_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final step links rather than renames: a file appearing meanwhile is not replaced."""
    out = tmp_path / "race.wav"
    real_write = sf.write

    def write_then_race(file: str, *args: object, **kwargs: object) -> None:
        real_write(file, *args, **kwargs)
        out.write_bytes(b"other process")

    monkeypatch.setattr(audio.sf, "write", write_then_race)
    with pytest.raises(AudioError, match="exists"):
        write_audio(out, _signal(), RATE)
    assert out.read_bytes() == b"other process"
    assert _entries(tmp_path) == ["race.wav"]


def test_without_hard_links_falls_back_to_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(audio.os, "link", no_link)
    out = tmp_path / "fat.wav"
    write_audio(out, _signal(), RATE, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(out)[0], _signal())
    with pytest.raises(AudioError, match="exists"):
        write_audio(out, _signal(), RATE)
    assert _entries(tmp_path) == ["fat.wav"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    seen: list[str] = []

    def broken_write(file: str, *args: object, **kwargs: object) -> None:
        seen.append(file)
        Path(file).write_bytes(b"RIFF partial")
        raise error

    monkeypatch.setattr(audio.sf, "write", broken_write)
    out = tmp_path / "sub" / "song.wav"
    expected = AudioError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as err:
        write_audio(out, _signal(), RATE)
    assert len(seen) == 1
    part = Path(seen[0])
    assert part.parent == out.parent and part.name.startswith(".song.wav.") and part.name.endswith(".part")
    assert not out.exists()
    assert _entries(out.parent) == []
    if expected is AudioError:
        _assert_one_line_naming(err, "song.wav")
        assert "No space left on device" in str(err.value)


def test_write_creates_parent_dirs(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c.flac"
    write_audio(out, _signal(), RATE)
    assert out.is_file()


def test_write_rejects_bad_subtypes_and_rates(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="FLOAT") as err:
        write_audio(tmp_path / "x.flac", _signal(), RATE, subtype="FLOAT")
    _assert_one_line_naming(err, "x.flac")
    with pytest.raises(AudioError):
        write_audio(tmp_path / "x.ogg", _signal(), RATE, subtype="PCM_16")
    with pytest.raises(AudioError):
        write_audio(tmp_path / "x.wav", _signal(), 0)
    with pytest.raises(AudioError):
        write_audio(tmp_path / "x.aac", _signal(), RATE)
    assert _entries(tmp_path) == []


def test_write_onto_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(AudioError, match="folder"):
        write_audio(tmp_path / "d.wav", _signal(), RATE, overwrite=True)


# -- read errors ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as err:
        read_audio(tmp_path / "nothere.wav")
    _assert_one_line_naming(err, "nothere.wav")
    assert probe_duration(tmp_path / "nothere.wav") is None


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "album.wav"
    folder.mkdir()
    with pytest.raises(AudioError) as err:
        read_audio(folder)
    _assert_one_line_naming(err, "album.wav")


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "zero.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty") as err:
        read_audio(empty)
    _assert_one_line_naming(err, "zero.wav")


def test_garbage_without_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_ffmpeg(monkeypatch)
    assert not ffmpeg_available()
    junk = tmp_path / "song.xyz"
    junk.write_bytes(b"this is not audio\n" * 50)
    with pytest.raises(AudioError, match="install ffmpeg") as err:
        read_audio(junk)
    _assert_one_line_naming(err, "song.xyz")
    assert probe_duration(junk) is None


# -- ffmpeg --------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture()
def tone_wav(tmp_path: Path) -> Path:
    t = np.arange(RATE, dtype=np.float32) / RATE
    wave = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    path = tmp_path / "tone.wav"
    sf.write(path, wave.T, RATE, subtype="FLOAT")
    return path


@needs_ffmpeg
def test_ffmpeg_m4a(tmp_path: Path, tone_wav: Path) -> None:
    m4a = tmp_path / "tone.m4a"
    _ffmpeg("-i", str(tone_wav), "-c:a", "aac", "-b:a", "64k", str(m4a))
    got, info = read_audio(m4a)
    assert info.sample_rate == RATE and info.channels == 2 and info.subtype == "aac"
    assert got.shape[0] == 2 and abs(got.shape[1] - RATE) < RATE // 10
    rms = np.sqrt(np.mean(got**2, axis=1))
    np.testing.assert_allclose(rms, [0.5 / math.sqrt(2), 0.25 / math.sqrt(2)], rtol=0.15)
    assert probe_duration(m4a) == pytest.approx(1.0, abs=0.1)


@needs_ffmpeg
def test_ffmpeg_mp3_when_soundfile_cannot(tmp_path: Path, tone_wav: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mp3 = tmp_path / "tone.mp3"
    _ffmpeg("-i", str(tone_wav), "-c:a", "libmp3lame", "-b:a", "128k", str(mp3))
    monkeypatch.setattr(audio, "_read_soundfile", lambda path: None)  # as an old libsndfile
    got, info = read_audio(mp3)
    assert info.subtype == "mp3" and info.sample_rate == RATE and got.shape[0] == 2
    rms = np.sqrt(np.mean(got**2, axis=1))
    np.testing.assert_allclose(rms, [0.5 / math.sqrt(2), 0.25 / math.sqrt(2)], rtol=0.15)


@needs_ffmpeg
def test_ffmpeg_without_ffprobe_uses_temp_wav(tmp_path: Path, tone_wav: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m4a = tmp_path / "tone.m4a"
    _ffmpeg("-i", str(tone_wav), "-c:a", "aac", str(m4a))
    piped, _ = read_audio(m4a)
    real_which = shutil.which
    monkeypatch.setattr(audio.shutil, "which", lambda name, *a, **k: None if name == "ffprobe" else real_which(name, *a, **k))
    got, info = read_audio(m4a)
    assert info.sample_rate == RATE and info.channels == 2 and info.subtype is None
    np.testing.assert_allclose(got, piped, atol=1e-6)


@needs_ffmpeg
def test_ffmpeg_surround_is_downmixed(tmp_path: Path) -> None:
    wave = np.zeros((6, RATE), np.float32)
    wave[0] = 0.3 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE)  # FL only
    src = tmp_path / "six.wav"
    sf.write(src, wave.T, RATE, subtype="FLOAT")
    mka = tmp_path / "six.mka"
    _ffmpeg("-i", str(src), "-c:a", "pcm_f32le", str(mka))
    got, info = read_audio(mka)
    assert info.channels == 6 and got.shape == (2, RATE)
    np.testing.assert_allclose(got[0], wave[0], atol=1e-6)
    np.testing.assert_allclose(got[1], 0, atol=1e-6)


@needs_ffmpeg
def test_ffmpeg_garbage_and_video_without_audio(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(AudioError) as err:
        read_audio(junk)
    _assert_one_line_naming(err, "junk.mp4")
    assert "@ 0x" not in str(err.value)  # ffmpeg's "[demuxer @ 0x...]" context is dropped
    silent = tmp_path / "silent.mkv"
    _ffmpeg("-f", "lavfi", "-i", "color=black:s=16x16:d=0.2", "-c:v", "ffv1", str(silent))
    with pytest.raises(AudioError, match="no audio stream") as err:
        read_audio(silent)
    _assert_one_line_naming(err, "silent.mkv")


@needs_ffmpeg
def test_names_that_look_like_options_or_protocols(tmp_path: Path, tone_wav: Path) -> None:
    odd = tmp_path / "-x:y.m4a"
    _ffmpeg("-i", str(tone_wav), "-c:a", "aac", "file:" + str(odd))
    got, info = read_audio(odd)
    assert info.sample_rate == RATE and got.shape[0] == 2


@needs_ffmpeg
def test_write_lossy_via_ffmpeg_when_libsndfile_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio.sf, "available_formats", lambda: {"WAV": "", "FLAC": ""})
    t = np.arange(RATE, dtype=np.float32) / RATE
    wave = np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
    for name in ("e.mp3", "e.ogg"):
        out = tmp_path / name
        write_audio(out, wave, RATE)
        got, _ = read_audio(out)
        rms = float(np.sqrt(np.mean(got**2)))
        assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.2)
    assert _entries(tmp_path) == ["e.mp3", "e.ogg"]


@needs_ffmpeg
def test_ffmpeg_mono_with_nan(tmp_path: Path) -> None:
    mono = _signal(1)
    mono[0, 5] = np.nan
    src = tmp_path / "nan.wav"
    sf.write(src, mono.T, RATE, subtype="FLOAT")
    mka = tmp_path / "nan.mka"
    _ffmpeg("-i", str(src), "-c:a", "pcm_f32le", str(mka))
    got, info = read_audio(mka)
    assert got.shape == (1, FRAMES) and info.channels == 1
    assert info.nonfinite == 1 and got[0, 5] == 0
    mono[0, 5] = 0
    np.testing.assert_array_equal(got, mono)
