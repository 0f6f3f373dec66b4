"""Odd inputs, bad models and interrupted runs: one-line errors, the rest of the batch processed,
no partial outputs, deterministic results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uvrsep.api import Separator
from uvrsep.cli import main
from uvrsep.nets import LSTMNetConfig
from uvrsep.testing import random_state_dict

from .conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parent.parent


def signal_wave(frames: int, channels: int, seed: int = 0, peak: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 8000
    wave = np.stack([np.sin(2 * np.pi * (200 + 50 * c) * t) + 0.3 * rng.standard_normal(frames) for c in range(channels)], 1)
    return (peak * wave / max(np.abs(wave).max(), 1e-9)).astype(np.float32)


def good(path: Path, seconds: float = 0.4, sr: int = 44100, channels: int = 2, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal_wave(int(seconds * sr), channels), sr, **kw)
    return path


def run(capsys, *args: str) -> tuple[int, dict | None, str]:
    code = main(["split", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def args_for(model: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", str(model), "-p", TINY_PARAMS, "-o", str(out), "--device", "cpu", "--json", "-q", *extra]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".part" in p.name) if folder.exists() else []


# -- bad inputs: each fails alone, with one line, beside a good file ----------------------------


def _truncated_wav(path: Path) -> None:
    good(path, seconds=0.5)
    path.write_bytes(path.read_bytes()[:30])  # cut inside the header


def _corrupt(path: Path, fmt: str) -> None:
    """Keep the format's magic bytes, replace everything after them with noise."""
    good(path, seconds=0.5, format=fmt)
    data = bytearray(path.read_bytes())
    data[4:] = np.random.default_rng(1).integers(0, 256, len(data) - 4, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


BAD_INPUTS = {
    "zero_bytes.wav": lambda p: p.write_bytes(b""),
    "truncated.wav": _truncated_wav,
    "corrupt.wav": lambda p: _corrupt(p, "WAV"),
    "corrupt.flac": lambda p: _corrupt(p, "FLAC"),
    "corrupt.mp3": lambda p: _corrupt(p, "MP3"),
    "text.wav": lambda p: p.write_text("this is not audio\n" * 50),
    "image.mp3": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_fails_alone(tmp_path, capsys, tiny_model, name):
    folder = tmp_path / "in"
    good(folder / "ok.wav")
    BAD_INPUTS[name](folder / name)
    out = tmp_path / "out"
    code, manifest, err = run(capsys, str(folder), *args_for(tiny_model, out))
    assert code == 1
    files = {Path(f["input"]).name: f for f in manifest["files"]}
    assert files["ok.wav"]["status"] == "ok"
    bad = files[name]
    assert bad["status"] == "failed" and name in bad["error"] and "\n" not in bad["error"]
    assert "Traceback" not in err and name in err
    assert sorted(p.name for p in out.iterdir()) == ["ok_instrumental.wav", "ok_vocals.wav"]
    assert leftovers(tmp_path) == []


def test_missing_path_and_empty_folder_fail_but_others_run(tmp_path, capsys, tiny_model):
    ok = good(tmp_path / "ok.wav")
    (tmp_path / "empty").mkdir()
    code, manifest, err = run(capsys, str(ok), str(tmp_path / "nope.wav"), str(tmp_path / "empty"), *args_for(tiny_model, tmp_path / "out"))
    assert code == 1
    statuses = {Path(f["input"]).name: f["status"] for f in manifest["files"]}
    assert statuses == {"ok.wav": "ok", "nope.wav": "failed", "empty": "failed"}
    assert "nope.wav" in err and "no audio files" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path, capsys, tiny_model):
    locked = good(tmp_path / "locked.wav")
    locked.chmod(0)
    code, manifest, _ = run(capsys, str(locked), *args_for(tiny_model, tmp_path / "out"))
    assert code == 1 and "permission" in manifest["files"][0]["error"].lower()


# -- odd but valid inputs: all succeed with the promised shape ---------------------------------


ODD_INPUTS = {
    "one sample.wav": dict(frames=1, sr=44100, channels=2),
    "pcm_u8.wav": dict(frames=9000, sr=44100, channels=2, subtype="PCM_U8"),
    "pcm_32.wav": dict(frames=9000, sr=44100, channels=2, subtype="PCM_32"),
    "8k.wav": dict(frames=4000, sr=8000, channels=1),
    "192k.wav": dict(frames=60000, sr=192000, channels=2),
    "three.wav": dict(frames=9000, sr=44100, channels=3),
    "six 5.1.flac": dict(frames=9000, sr=48000, channels=6),
    "eight 7.1.wav": dict(frames=9000, sr=44100, channels=8),
    "it's \"quoted\" & spaced.wav": dict(frames=9000, sr=44100, channels=2),
    "ünïcödé 歌 ♪.flac": dict(frames=9000, sr=22050, channels=2),
    ("x" * 240 + ".wav"): dict(frames=9000, sr=44100, channels=1),
}


def test_odd_inputs_all_succeed(tmp_path, capsys, tiny_model):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, spec in ODD_INPUTS.items():
        kw = {"subtype": spec["subtype"]} if "subtype" in spec else {}
        sf.write(folder / name, signal_wave(spec["frames"], spec["channels"]), spec["sr"], **kw)
    out = tmp_path / "out"
    code, manifest, err = run(capsys, str(folder), *args_for(tiny_model, out))
    assert code == 0, err
    assert manifest["ok"] == len(ODD_INPUTS)
    for entry in manifest["files"]:
        spec = ODD_INPUTS[Path(entry["input"]).name]
        for path in entry["outputs"].values():
            data, sr = sf.read(path, always_2d=True)
            assert sr == spec["sr"]
            assert data.shape == (spec["frames"], 1 if spec["channels"] == 1 else 2)
            assert np.isfinite(data).all()
            assert len(Path(path).name.encode()) <= 255 - 32


def test_nan_inf_samples_are_silenced_and_reported(tmp_path, capsys, tiny_model):
    wave = signal_wave(20000, 2)
    wave[1000:1100, 0] = np.nan
    wave[5000, 1] = np.inf
    sf.write(tmp_path / "nan.wav", wave, 44100, subtype="FLOAT")
    code, manifest, err = run(capsys, str(tmp_path / "nan.wav"), *args_for(tiny_model, tmp_path / "out", "--subtype", "FLOAT"))
    assert code == 0
    entry = manifest["files"][0]
    assert entry["nonfinite"] == 101
    for path in entry["outputs"].values():
        assert np.isfinite(sf.read(path)[0]).all()


def test_silent_input_gives_silent_stems(tmp_path, capsys, tiny_model):
    sf.write(tmp_path / "silence.wav", np.zeros((30000, 2), np.float32), 44100)
    code, manifest, _ = run(capsys, str(tmp_path / "silence.wav"), *args_for(tiny_model, tmp_path / "out"))
    assert code == 0
    for path in manifest["files"][0]["outputs"].values():
        assert not np.any(sf.read(path)[0])


def test_very_loud_input_is_finite_and_clipped_counted(tmp_path, capsys, tiny_model):
    sf.write(tmp_path / "loud.wav", signal_wave(20000, 2, peak=1000.0), 44100, subtype="FLOAT")
    code, manifest, _ = run(capsys, str(tmp_path / "loud.wav"), *args_for(tiny_model, tmp_path / "out"))
    assert code == 0 and sum(manifest["files"][0]["clipped"].values()) > 0
    assert manifest["settings"]["clip"] == "clip"
    for path in manifest["files"][0]["outputs"].values():
        data, _ = sf.read(path, dtype="int16")
        assert np.abs(data.astype(np.int32)).max() <= 32768


# -- model and settings problems: exit 2 before any audio is touched ---------------------------


def _truncated_pth(tmp_path: Path, tiny_model: Path) -> Path:
    path = tmp_path / "truncated.pth"
    path.write_bytes(tiny_model.read_bytes()[:5000])
    return path


def _wrong_arch_pth(tmp_path: Path, tiny_model: Path) -> Path:
    path = tmp_path / "wrong.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, path)
    return path


def _lstm_672_pth(tmp_path: Path, tiny_model: Path) -> Path:
    path = tmp_path / "lstm672.pth"
    torch.save(random_state_dict(LSTMNetConfig(nout=8, nout_lstm=16, bins=672), seed=1), path)
    return path


MODEL_PROBLEMS = {
    "missing": (lambda tmp, tiny: tmp / "absent.pth", [], "not found"),
    "truncated": (_truncated_pth, [], "truncated"),
    "wrong_arch": (_wrong_arch_pth, [], "architecture"),
    "bins_mismatch": (_lstm_672_pth, [], "bins"),
    "window": (lambda tmp, tiny: tiny, ["-w", "300"], "window"),
    "aggressiveness": (lambda tmp, tiny: tiny, ["-a", "-1"], "aggressiveness"),
    "split_bin": (lambda tmp, tiny: tiny, ["--split-bin", "5000"], "split bin"),
}


@pytest.mark.parametrize("problem", sorted(MODEL_PROBLEMS))
def test_model_problems_are_usage_errors_before_audio(tmp_path, capsys, tiny_model, problem):
    make, extra, needle = MODEL_PROBLEMS[problem]
    model = make(tmp_path, tiny_model)
    song = good(tmp_path / "song.wav")
    out = tmp_path / "out"
    code = main(["split", str(song), "-m", str(model), "-p", TINY_PARAMS, "-o", str(out), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err.lower() and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 3  # option errors: click's usage line, a hint, then the one-line error
    assert needle in lines[-1].lower()
    assert not out.exists()


# -- output safety --------------------------------------------------------------------------------


def test_unwritable_output_folder_is_reported_per_file(tmp_path, capsys, tiny_model):
    song = good(tmp_path / "song.wav")
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    code, manifest, err = run(capsys, str(song), *args_for(tiny_model, blocker))
    assert code == 1
    assert "cannot create folder" in manifest["files"][0]["error"]
    assert "Traceback" not in err


def test_outputs_are_deterministic(tmp_path, capsys, tiny_model):
    song = good(tmp_path / "song.wav", seconds=1.0)
    for name in ("a", "b"):
        assert run(capsys, str(song), *args_for(tiny_model, tmp_path / name))[0] == 0
    for stem in ("instrumental", "vocals"):
        assert (tmp_path / "a" / f"song_{stem}.wav").read_bytes() == (tmp_path / "b" / f"song_{stem}.wav").read_bytes()


#: How long a loaded machine may take to import torch, load the model and write a first block.
STARTUP_BOUND_S = 180.0
#: How long the interrupted process may take to clean up and exit.
EXIT_BOUND_S = 60.0


def with_default_signals(command: list[str]) -> list[str]:
    """``command`` (a Python one) run with SIGINT, SIGTERM and SIGHUP at their default
    dispositions, however pytest was started: a shell without job control starts background jobs
    with SIGINT ignored, ``nohup`` ignores SIGHUP, and an ignored disposition is inherited across
    exec (and kept by uvrsep, on purpose). A launcher resets them, then becomes ``command``."""
    launcher = (
        "import os, signal, sys\n"
        "for name in ('SIGINT', 'SIGTERM', 'SIGHUP'): signal.signal(getattr(signal, name), signal.SIG_DFL)\n"
        "os.execv(sys.executable, sys.argv[1:])"
    )
    assert command[0] == sys.executable
    return [sys.executable, "-c", launcher, *command]


def spawn_with_default_signals(args: list[str], stderr) -> subprocess.Popen:
    """``python -m uvrsep ARGS`` with the interrupt signals at their defaults (:func:`with_default_signals`)."""
    return subprocess.Popen(with_default_signals([sys.executable, "-m", "uvrsep", *args]), cwd=ROOT, stderr=stderr, text=True)


def wait_for_part_file(proc: subprocess.Popen, folder: Path, bound_s: float) -> None:
    """Block until the hidden ``.part`` file of a stem appears in ``folder`` (the network has run
    and the writer is busy), the process ends, or ``bound_s`` passes."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and any(p.name.endswith(".part") for p in folder.iterdir()):
            return
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pytest.fail(f"no .part file in {folder} within {bound_s:.0f} s (exit code {proc.returncode})")


def interrupt_split(
    args: list[str], out: Path, log: Path, signum: int, before_signal: Callable[[], None] | None = None
) -> tuple[int, str]:
    """Run ``uvrsep split ARGS -o OUT`` (:func:`spawn_with_default_signals`), send it ``signum``
    once a stem's ``.part`` file is in ``out`` (after ``before_signal``, which may assert on the
    running process); returns its exit code and stderr. The child never outlives the call."""
    with log.open("w") as stderr:
        proc = spawn_with_default_signals(["split", *args, "-o", str(out)], stderr)
        try:
            wait_for_part_file(proc, out, STARTUP_BOUND_S)
            if before_signal is not None:
                before_signal()
            proc.send_signal(signum)
            proc.wait(timeout=EXIT_BOUND_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return proc.returncode, log.read_text()


@pytest.mark.slow
def test_sigint_leaves_no_output(tmp_path, tiny_model):
    song = tmp_path / "long.wav"
    sf.write(song, signal_wave(44100 * 240, 2), 44100)  # 4 minutes: several streamed chunks
    out = tmp_path / "out"
    code, err = interrupt_split(
        [str(song), "-m", str(tiny_model), "-p", TINY_PARAMS, "--device", "cpu", "-v"], out, tmp_path / "stderr.txt",
        signal.SIGINT,
    )
    assert code == 130, err
    assert "Traceback" not in err, err
    assert not out.exists() or list(out.iterdir()) == [], (sorted(p.name for p in out.iterdir()), err)


# -- properties -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_separator(tiny_model) -> Separator:
    return Separator(str(tiny_model), TINY_PARAMS, device="cpu")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames=st.integers(min_value=0, max_value=30000),
    channels=st.sampled_from([1, 2, 3, 6]),
    rate=st.sampled_from([8000, 22050, 44100, 48000, 96000]),
    out_rate=st.sampled_from([None, 16000, 44100]),
)
def test_property_lengths_and_finiteness(tiny_separator, frames, channels, rate, out_rate):
    wave = signal_wave(frames, channels).T if frames else np.zeros((channels, 0), np.float32)
    result = tiny_separator.separate(wave, rate, output_sample_rate=out_rate)
    expected = int(np.ceil(frames * (out_rate or rate) / rate))
    assert result.sample_rate == (out_rate or rate)
    for stem in result.stems.values():
        assert stem.shape == (1 if channels == 1 else 2, expected)
        assert np.isfinite(stem).all()
