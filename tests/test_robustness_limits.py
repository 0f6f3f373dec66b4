"""Sizes bounded before anything is allocated, and errors that name the file (issue 14, classes 2,
8 and 9): headers that lie about their length or rate, windows and params that would ask for
gigabytes, model files that inflate, ffmpeg inputs streamed through its pipe, MP3 rates."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from uvrsep.audio import MAX_INPUT_RATE, MIN_INPUT_RATE, read_audio
from uvrsep.checkpoint import MAX_INFLATE_RATIO, load_state_dict_file
from uvrsep.errors import AudioError, ModelError, ParamsError
from uvrsep.inference import MAX_WINDOW
from uvrsep.params import MAX_N_FFT, load_params, params_dir
from uvrsep.stream import ArraySource, FfmpegSource, NoDeclaredLength, SoundFileSource, open_source

from .conftest import TINY_PARAMS
from .test_robustness import (
    args_for,
    good,
    interrupt_split,
    leftovers,
    run,
    signal_wave,
)

HAS_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed")
RATE = 44100
#: byte offset of the 36-bit total-samples field in a FLAC file's STREAMINFO block (it shares
#: its first byte's low nibble with the bits per sample)
FLAC_TOTAL_SAMPLES_AT = 21


def _flac(path: Path, seconds: float = 1.0) -> Path:
    sf.write(path, signal_wave(int(seconds * RATE), 2), RATE, subtype="PCM_16")
    return path


def _set_flac_total_samples(path: Path, total: int) -> None:
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC"
    at = FLAC_TOTAL_SAMPLES_AT
    data[at] = (data[at] & 0xF0) | ((total >> 32) & 0x0F)
    data[at + 1 : at + 5] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    path.write_bytes(bytes(data))


# -- class 2: declared lengths checked or counted, sizes bounded ---------------------------------


@needs_ffmpeg
def test_a_flac_without_a_length_is_decoded_not_planned_as_2_to_the_63(tmp_path):
    """A pipe encoder leaves STREAMINFO's total samples at 0: libsndfile then reports 2⁶³−1
    frames and cannot seek; such a file is decoded by ffmpeg and read block by block."""
    path = _flac(tmp_path / "piped.flac")
    frames = sf.info(path).frames
    expected = sf.read(path, dtype="float32", always_2d=True)[0].T
    _set_flac_total_samples(path, 0)
    with pytest.raises(NoDeclaredLength):
        SoundFileSource(path)
    source, info = open_source(path)
    try:
        assert not isinstance(source, ArraySource) and source.frames == info.frames == frames
        np.testing.assert_allclose(source.read(0, frames), expected, atol=1e-6)
    finally:
        source.close()


@needs_ffmpeg
def test_a_flac_without_a_length_separates_end_to_end(tmp_path, capsys, tiny_model):
    path = _flac(tmp_path / "piped.flac", seconds=0.7)
    frames = sf.info(path).frames
    _set_flac_total_samples(path, 0)
    code, manifest, err = run(capsys, str(path), *args_for(tiny_model, tmp_path / "out"))
    assert code == 0, err
    for stem in ("instrumental", "vocals"):
        assert sf.info(tmp_path / "out" / f"piped_{stem}.wav").frames == frames


def test_a_header_declaring_more_than_the_file_can_hold_is_refused(tmp_path, capsys, tiny_model):
    path = _flac(tmp_path / "liar.flac", seconds=0.3)
    _set_flac_total_samples(path, (1 << 36) - 1)  # 6.9·10¹⁰ frames in a few kilobytes
    with pytest.raises(Exception, match="declares .* frames, more than a .*-byte file can hold"):
        SoundFileSource(path)
    other = good(tmp_path / "fine.wav")
    code, manifest, err = run(capsys, str(path), str(other), *args_for(tiny_model, tmp_path / "out"))
    assert code == 1 and "Traceback" not in err and "internal error" not in err
    rows = {Path(row["input"]).name: row for row in manifest["files"]}
    assert "more than a" in rows["liar.flac"]["error"] and rows["fine.wav"]["status"] == "ok"
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("rate", [2, MIN_INPUT_RATE - 1, MAX_INPUT_RATE + 1])
def test_sample_rates_outside_the_range_are_the_files_fault(tmp_path, capsys, tiny_model, rate):
    path = tmp_path / "odd.wav"
    sf.write(path, signal_wave(4000, 2), rate)
    code, manifest, err = run(capsys, str(path), *args_for(tiny_model, tmp_path / "out"))
    assert code == 1 and "internal error" not in err and "Traceback" not in err
    assert f"sample rate {rate} Hz is outside" in manifest["files"][0]["error"]


def test_a_window_above_the_limit_is_a_usage_error(tmp_path, capsys, tiny_model):
    song = good(tmp_path / "song.wav")
    code, _, err = run(capsys, str(song), *args_for(tiny_model, tmp_path / "out", "-w", "100000"))
    assert code == 2 and f"limit of {MAX_WINDOW} frames" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "change,words",
    [
        (lambda band: band.update(n_fft=1 << 24), f"above the limit of {MAX_N_FFT}"),
        (lambda band: band.update(hl=band["n_fft"] * 2), "larger than 'n_fft'"),
    ],
    ids=["n_fft 2^24", "hl > n_fft"],
)
def test_params_that_would_allocate_gigabytes_or_leave_gaps_are_refused(tmp_path, change, words):
    raw = json.loads((params_dir() / "4band_v2.json").read_text())
    change(raw["band"]["4"])
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ParamsError, match=words):
        load_params(path)


def _inflating_model(path: Path, member_bytes: int) -> Path:
    """A real ``.pth`` whose archive gains one deflated member of ``member_bytes`` zeros."""
    plain = path.with_suffix(".plain")
    torch.save({"w": torch.zeros(4)}, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        prefix = src.namelist()[0].split("/")[0]
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        with dst.open(f"{prefix}/data/bomb", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(member_bytes >> 20):
                member.write(block)
    plain.unlink()
    return path


def test_a_model_file_that_inflates_is_refused_before_loading(tmp_path, capsys):
    from uvrsep.cli import main

    path = _inflating_model(tmp_path / "bomb.pth", 8 << 20)
    assert path.stat().st_size * MAX_INFLATE_RATIO < 8 << 20
    with pytest.raises(ModelError, match="inflates"):
        load_state_dict_file(path)
    assert main(["models", "info", str(path)]) != 0
    err = capsys.readouterr().err
    assert "inflates" in err and "Traceback" not in err


# -- class 8: ffmpeg inputs streamed through ffmpeg's pipe ----------------------------------------

needs_ffprobe = pytest.mark.skipif(
    not (HAS_FFMPEG and shutil.which("ffprobe")), reason="ffmpeg/ffprobe are not installed"
)


def _m4a(tmp_path: Path, seconds: float, name: str = "tone.m4a") -> Path:
    wav = good(tmp_path / (name + ".wav"), seconds=seconds)
    m4a = tmp_path / name
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    wav.unlink()
    return m4a


@pytest.fixture
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$TMPDIR`` of its own, to see what a run leaves or writes there."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches $TMPDIR
    return folder


@needs_ffprobe
def test_an_ffmpeg_input_streams_through_the_pipe_without_a_decoded_copy(tmp_path, private_tmpdir):
    m4a = _m4a(tmp_path, 1.0)
    whole, whole_info = read_audio(m4a)
    source, info = open_source(m4a)
    try:
        assert isinstance(source, FfmpegSource)  # neither the wave nor a decoded copy is held
        assert not list(private_tmpdir.iterdir())  # nothing decoded on disk
        assert info.sample_rate == RATE and info.frames == whole_info.frames == whole.shape[1]
        # forward reads, overlapping ones, and one that goes back (ffmpeg restarts)
        for start, stop in [(1000, 3000), (2000, 9000), (9000, 9001), (0, 500), (40000, info.frames + 100)]:
            block = source.read(start, stop)
            np.testing.assert_array_equal(block, whole[:, start : min(stop, info.frames)])
        assert source.read(0, 10).shape == (2, 10)  # ffmpeg runs again (a read that went back)
    finally:
        source.close()
    assert not list(private_tmpdir.iterdir()) and not list(tmp_path.glob("uvrsep-*"))
    if Path("/proc/self/cmdline").exists():
        assert _processes_reading(m4a) == []  # close() stopped it


@needs_ffprobe
def test_an_ffmpeg_input_read_in_blocks_holds_one_block_not_the_file(tmp_path):
    """Read through in one-second blocks, the largest allocation stays near a block: the
    decoded file (30 s stereo float32, 10.6 MB) is never held."""
    m4a = _m4a(tmp_path, 30.0)
    source, info = open_source(m4a)
    decoded_bytes = info.frames * info.channels * 4
    try:
        tracemalloc.start()
        try:
            for start in range(0, info.frames, RATE):
                source.read(start, start + RATE)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        source.close()
    assert peak < decoded_bytes / 4, (peak, decoded_bytes)


@needs_ffprobe
def test_an_ffmpeg_input_that_changes_while_read_is_an_error(tmp_path):
    m4a = _m4a(tmp_path, 2.0)
    source, info = open_source(m4a)
    try:
        source.read(5000, 6000)
        shorter = _m4a(tmp_path, 0.5, "short.m4a")
        shorter.replace(m4a)  # still being copied or replaced: another file now
        with pytest.raises(AudioError, match="changed while it was read") as err:
            source.read(0, info.frames)  # a read that goes back restarts ffmpeg, on the new file
        assert str(m4a) in str(err.value) and "\n" not in str(err.value)
    finally:
        source.close()


@needs_ffprobe
def test_a_streamed_ffmpeg_input_separates_like_its_decoded_wave(tmp_path, tiny_model):
    """Chunked separation read through the pipe (two passes, each in time order) gives exactly
    the stems of the same decoded wave held in memory."""
    from uvrsep.api import Separator

    m4a = _m4a(tmp_path, 15.0)  # three chunks of one window each
    whole, _ = read_audio(m4a)
    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32")
    stems: dict[str, dict[str, list[np.ndarray]]] = {"pipe": {}, "array": {}}
    source, _ = open_source(m4a)
    try:
        for key, src in (("pipe", source), ("array", ArraySource(whole, RATE))):
            got = {name: [] for name in sep.stem_names}
            sep.separate_stream(src, {name: got[name].append for name in got}, chunk_windows=1)
            stems[key] = got
    finally:
        source.close()
    for name in sep.stem_names:
        pipe, array = (np.concatenate(stems[key][name], axis=1) for key in ("pipe", "array"))
        assert len(stems["pipe"][name]) > 2  # streamed in several chunks
        np.testing.assert_array_equal(pipe, array)


def _processes_reading(path: Path) -> list[int]:
    """Pids whose command line names ``path`` (Linux ``/proc``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(path) in (entry / "cmdline").read_bytes().decode("utf-8", "replace"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
@needs_ffprobe
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_a_terminated_run_on_an_ffmpeg_input_stops_ffmpeg_and_leaves_nothing(tmp_path, tiny_model):
    """ffmpeg runs in its own session (a terminal's Ctrl-C does not reach it), so uvrsep must
    stop it itself when a signal ends the run."""
    m4a = _m4a(tmp_path, 240.0, "long.m4a")  # 4 minutes: several streamed chunks
    out = tmp_path / "out"

    def ffmpeg_is_running() -> None:
        assert _processes_reading(m4a)  # ffmpeg decodes the second pass while stems are written

    code, err = interrupt_split(
        [str(m4a), "-m", str(tiny_model), "-p", TINY_PARAMS, "--device", "cpu"], out, tmp_path / "stderr.txt",
        signal.SIGTERM, before_signal=ffmpeg_is_running,
    )
    assert code == 143, err
    assert "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []
    assert _processes_reading(m4a) == []


@needs_ffmpeg
def test_without_ffprobe_an_ffmpeg_input_is_read_from_a_temporary_wav(tmp_path, monkeypatch, private_tmpdir):
    from uvrsep import audio

    m4a = _m4a(tmp_path, 1.0)
    whole, _ = read_audio(m4a)
    real_which = shutil.which
    monkeypatch.setattr(audio.shutil, "which", lambda name, *a, **k: None if name == "ffprobe" else real_which(name, *a, **k))
    source, info = open_source(m4a)
    try:
        assert isinstance(source, SoundFileSource) and info.frames == whole.shape[1]
        np.testing.assert_array_equal(source.read(1000, 3000), whole[:, 1000:3000])
    finally:
        source.close()
    assert not list(private_tmpdir.iterdir())  # its temporary WAV was unlinked once open


# -- class 9: MP3 output at a rate MP3 cannot store ------------------------------------------------


def test_mp3_output_of_a_96_khz_input_is_written_at_a_rate_mp3_stores(tmp_path, capsys, tiny_model):
    song = tmp_path / "hires.wav"
    sf.write(song, signal_wave(96000 // 2, 2), 96000)
    code, manifest, err = run(
        capsys, str(song), *args_for(tiny_model, tmp_path / "out", "-f", "mp3")
    )
    assert code == 0, err
    assert "permissions" not in err
    for stem in ("instrumental", "vocals"):
        assert sf.info(tmp_path / "out" / f"hires_{stem}.mp3").samplerate == 48000
