"""Hostile inputs, second round (issue 14): files that shrink while read, damaged weights,
termination signals, the train/eval CLIs' bad settings and files, and odd arrays given to the
Python API. Every input is crafted here."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from uvrsep.api import Separator
from uvrsep.cli import main
from uvrsep.errors import AudioError, ModelError, SettingsError
from uvrsep.nets import ASPPNetConfig, build_net
from uvrsep.stream import SoundFileSource
from uvrsep.testing import random_state_dict

from .conftest import TINY_PARAMS
from .test_robustness import (
    args_for,
    good,
    interrupt_split,
    leftovers,
    run,
    signal_wave,
)



@pytest.fixture(scope="module")
def sep(tiny_model) -> Separator:
    return Separator(str(tiny_model), TINY_PARAMS, device="cpu")


# -- class 3a: a file that shrinks while it is read -------------------------------------------


def _shrinking_wav(path: Path, seconds: float = 2.0) -> int:
    good(path, seconds=seconds)
    return sf.info(str(path)).frames


def test_short_read_is_an_audio_error(tmp_path):
    path = tmp_path / "downloading.wav"
    frames = _shrinking_wav(path)
    source = SoundFileSource(path)
    try:
        os.truncate(path, 44 + 4 * (frames // 2))  # the header still says `frames`
        with pytest.raises(AudioError, match=r"file ended early \(\d+ of \d+ frames\); it may still be copying"):
            source.read(0, frames)
        with pytest.raises(AudioError, match="file ended early"):
            source.read(frames - 1000, frames)  # a block wholly past the new end
        assert source.read(0, 100).shape == (2, 100)  # what is there still reads
    finally:
        source.close()


def test_short_read_fails_the_input_in_the_cli(tmp_path, capsys, tiny_model, monkeypatch):
    import uvrsep.stream as stream

    path = tmp_path / "downloading.wav"
    frames = _shrinking_wav(path)
    real_init = stream.SoundFileSource.__init__

    def init_then_shrink(self, p):  # the header is read, then the file loses its second half
        real_init(self, p)
        if Path(p).name == "downloading.wav":
            os.truncate(p, 44 + 4 * (frames // 2))

    monkeypatch.setattr(stream.SoundFileSource, "__init__", init_then_shrink)
    other = good(tmp_path / "ok.wav")
    out = tmp_path / "out"
    code, manifest, err = run(capsys, str(path), str(other), *args_for(tiny_model, out))
    assert code == 1, err
    status = {Path(f["input"]).name: f for f in manifest["files"]}
    assert status["ok.wav"]["status"] == "ok"
    assert status["downloading.wav"]["status"] == "failed"
    assert "file ended early" in status["downloading.wav"]["error"]
    assert not list(out.glob("downloading*")) and leftovers(out) == []
    assert "Traceback" not in err


# -- class 3b: NaN/Inf weights ------------------------------------------------------------------


def _damaged_state(value: float) -> dict:
    state = random_state_dict(ASPPNetConfig(width=4), seed=7)
    name = next(k for k, v in state.items() if torch.is_floating_point(v) and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = value
    return state


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_weights_are_refused_at_load(tmp_path, value):
    state = _damaged_state(value)
    with pytest.raises(ModelError, match="model weights contain NaN/Inf; the file is damaged, re-download it"):
        Separator(state, TINY_PARAMS, device="cpu")
    net = build_net(ASPPNetConfig(width=4))
    net.load_state_dict(state)
    with pytest.raises(ModelError, match="NaN/Inf"):
        Separator(net, TINY_PARAMS, device="cpu")
    path = tmp_path / "damaged.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"damaged\.pth: model weights contain NaN/Inf"):
        Separator(str(path), TINY_PARAMS, device="cpu")


def test_nonfinite_weights_exit_2_in_split_and_models_info(tmp_path, capsys):
    path = tmp_path / "damaged.pth"
    torch.save(_damaged_state(float("nan")), path)
    out = tmp_path / "out"
    code, manifest, err = run(capsys, str(good(tmp_path / "a.wav")), *args_for(path, out))
    assert code == 2 and manifest is None
    assert "model weights contain NaN/Inf" in err and "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []
    code = main(["models", "info", str(path)])
    _, err = capsys.readouterr()
    assert code != 0 and "NaN/Inf" in err and "Traceback" not in err


# -- class 6: SIGTERM / SIGHUP ------------------------------------------------------------------


@pytest.mark.parametrize("signame,code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_termination_signals_leave_no_part_files(tmp_path, tiny_model, signame, code):
    song = tmp_path / "long.wav"
    sf.write(song, signal_wave(44100 * 60, 2), 44100)
    out = tmp_path / "out"
    returncode, err = interrupt_split(
        [str(song), "-m", str(tiny_model), "-p", TINY_PARAMS, "--device", "cpu", "--batch-size", "1", "-q"],
        out, tmp_path / "stderr.txt", getattr(signal, signame),
    )
    assert returncode == code, err
    assert f"interrupted ({signame}); no partial outputs were left" in err
    assert "Traceback" not in err
    assert leftovers(out) == [] and list(out.glob("*.wav")) == []


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture
def default_signal_dispositions():
    """The three signals at SIG_DFL for one test, whatever the suite was started with."""
    before = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


def test_an_interrupt_inside_a_writer_being_opened_leaves_no_part_file(
    tmp_path, capsys, tiny_model, monkeypatch, default_signal_dispositions
):
    """Ctrl-C between the hidden file's creation and its writer's guard (found by the SIGINT
    test on a loaded machine): the interrupted run still removes it."""
    import time

    import uvrsep.stream as stream

    real = stream.prepare_output

    def interrupted_after_creating(*args, **kwargs):
        real(*args, **kwargs)  # the hidden file now exists; its writer has no guard yet
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGINT was not handled")

    song = good(tmp_path / "a.wav")
    monkeypatch.setattr(stream, "prepare_output", interrupted_after_creating)
    out = tmp_path / "out"
    code, _, err = run(capsys, str(song), *args_for(tiny_model, out))
    assert code == 130 and "Traceback" not in err
    assert leftovers(out) == []


class _SignalsWhenFinalised:
    """Sends ``signum`` to this process from ``__del__``, where Python cannot raise: the CI run
    that caught the SIGINT test's flake had its Ctrl-C land in importlib's module-lock cleanup."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)


def test_a_signal_swallowed_by_a_finaliser_still_stops_the_run(
    tmp_path, capsys, tiny_model, monkeypatch, default_signal_dispositions
):
    import time

    import uvrsep.cli as cli

    real = cli._BatchRun.process_all
    bound_s = 10 * cli.REDELIVER_S + 1
    waited = {}

    def finalised_then_work(self, plan):
        _SignalsWhenFinalised(signal.SIGTERM)  # dropped at once: its Interrupted is unraisable
        start = time.monotonic()
        try:
            while time.monotonic() - start < bound_s + 4:  # work that would go on past the bound
                time.sleep(cli.REDELIVER_S / 5)
        finally:
            waited["s"] = time.monotonic() - start
        return real(self, plan)

    monkeypatch.setattr(cli._BatchRun, "process_all", finalised_then_work)
    out = tmp_path / "out"
    hook = sys.unraisablehook
    code, _, err = run(capsys, str(good(tmp_path / "a.wav")), *args_for(tiny_model, out))
    assert code == 128 + signal.SIGTERM, err
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert waited["s"] < bound_s  # delivered again at once, not after the work
    assert not out.exists() or list(out.iterdir()) == []
    assert sys.unraisablehook is hook


def _dispositions_while_processing(tmp_path, capsys, tiny_model, monkeypatch) -> dict:
    import uvrsep.cli as cli

    during = {}
    real = cli._BatchRun.process_all

    def spy(self, plan):
        during.update({s: signal.getsignal(s) for s in SIGNALS})
        return real(self, plan)

    monkeypatch.setattr(cli._BatchRun, "process_all", spy)
    code, _, _ = run(capsys, str(good(tmp_path / "a.wav")), *args_for(tiny_model, tmp_path / "out"))
    assert code == 0
    return during


def test_signal_handlers_only_while_main_runs(tmp_path, capsys, tiny_model, monkeypatch, default_signal_dispositions):
    before = {s: signal.getsignal(s) for s in SIGNALS}
    during = _dispositions_while_processing(tmp_path, capsys, tiny_model, monkeypatch)
    assert all(during[s] is not before[s] and callable(during[s]) for s in SIGNALS)
    assert {s: signal.getsignal(s) for s in SIGNALS} == before


def test_ignored_signals_stay_ignored(tmp_path, capsys, tiny_model, monkeypatch, default_signal_dispositions):
    """``nohup`` ignores SIGHUP, a background job may have SIGINT ignored: uvrsep keeps that."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    during = _dispositions_while_processing(tmp_path, capsys, tiny_model, monkeypatch)
    assert during[signal.SIGHUP] is signal.SIG_IGN and during[signal.SIGINT] is signal.SIG_IGN
    assert callable(during[signal.SIGTERM])


# -- class 10: the Python API's arrays and rates ----------------------------------------------


def test_frames_channels_layout_is_transposed(sep):
    wave = signal_wave(20000, 2)  # (frames, channels), as sf.read returns
    by_frames = sep.separate(wave, 44100).stems
    by_channels = sep.separate(np.ascontiguousarray(wave.T), 44100).stems
    for name in by_channels:
        assert by_frames[name].shape == (2, 20000)
        np.testing.assert_array_equal(by_frames[name], by_channels[name])


@pytest.mark.parametrize("dtype,scale,offset", [("int16", 32768, 0), ("int32", 2**31, 0), ("uint8", 128, 128)])
def test_integer_pcm_is_scaled(sep, dtype, scale, offset):
    wave = signal_wave(20000, 2).T * 0.9
    pcm = np.round(wave * scale + offset).astype(dtype)
    as_float = ((pcm.astype(np.float64) - offset) / scale).astype(np.float32)
    got = sep.separate(pcm, 44100).stems
    want = sep.separate(as_float, 44100).stems
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)
        assert np.abs(got[name]).max() < 4


@pytest.mark.parametrize(
    "wave",
    [
        np.zeros((2, 1000), np.complex64),
        np.array([[object()] * 10] * 2, dtype=object),
        np.zeros((0, 1000), np.float32),
        np.zeros((1000, 0), np.float32),
    ],
    ids=["complex", "object", "no_channels", "no_channels_frames_first"],
)
def test_odd_arrays_are_settings_errors(sep, wave):
    with pytest.raises(SettingsError) as info:
        sep.separate(wave, 44100)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("rate", [0, -44100, float("nan"), float("inf"), "44100", 44100.5, True, None])
def test_bad_sample_rates_are_settings_errors(sep, rate):
    wave = signal_wave(2000, 2).T
    with pytest.raises(SettingsError, match="sample_rate must be a positive whole number"):
        sep.separate(wave, rate)
    if rate is not None:
        with pytest.raises(SettingsError, match="output_sample_rate must be a positive whole number"):
            sep.separate(wave, 44100, output_sample_rate=rate)


def test_integer_valued_float_and_numpy_rates_work(sep):
    wave = signal_wave(2000, 2).T
    result = sep.separate(wave, 44100.0, output_sample_rate=np.int64(22050))
    assert result.sample_rate == 22050 and isinstance(result.sample_rate, int)
    assert result.stems[sep.stem_names[0]].shape == (2, 1000)


# -- class 9: train / eval settings and files ---------------------------------------------------


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    from .test_dataset import write_tone_track

    root = tmp_path_factory.mktemp("train_data")
    for k in range(3):
        write_tone_track(root / f"track_{k}", seed=k, seconds=1.0)
    return root


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(data), "-o", str(out), "--arch", "aspp_w4_b5_l4", "-p", TINY_PARAMS, "--steps", "1",
            "-b", "2", "--crop-frames", "32", "--val-every", "1", "--checkpoint-every", "1", "-d", "cpu",
            "-j", "1", "-q", *extra]


def one_line_error(capsys, code: int, expected: int = 2) -> str:
    _, err = capsys.readouterr()
    assert code == expected, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_train_output_dir_that_is_a_file(tmp_path, capsys, train_data):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    line = one_line_error(capsys, main(train_args(train_data, target)))
    assert "exists and is not a folder" in line
    assert target.read_text() == "not a folder"


@pytest.mark.parametrize(
    "arch,words",
    [("aspp_w0_b5_l4", "width must be between"), ("aspp_w4_b0_l4", "branches must be between"),
     ("aspp_w4_b5_l0", "levels must be between"), ("aspp_w4_b5_l99", "levels must be between"),
     ("lstm_0_0", "cannot build this net")],
)
def test_train_bad_arch(tmp_path, capsys, train_data, arch, words):
    args = train_args(train_data, tmp_path / "out")
    args[args.index("--arch") + 1] = arch
    assert words in one_line_error(capsys, main(args))


def test_train_crop_too_small_for_batch_norm(tmp_path, capsys, train_data):
    args = train_args(train_data, tmp_path / "out", "-b", "1", "--crop-frames", "16")
    assert "too small for the net's batch norm" in one_line_error(capsys, main(args))


@pytest.mark.parametrize("kind", ["garbage", "foreign_dict", "foreign_list", "truncated"])
def test_train_unusable_checkpoint(tmp_path, capsys, train_data, kind):
    out = tmp_path / "out"
    checkpoint = out / "checkpoint.pt"
    if kind == "truncated":
        assert main(train_args(train_data, out)) == 0
        capsys.readouterr()
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    else:
        out.mkdir()
        if kind == "garbage":
            checkpoint.write_bytes(os.urandom(2000))
        else:
            torch.save({"weights": torch.zeros(3)} if kind == "foreign_dict" else [1, 2, 3], checkpoint)
    line = one_line_error(capsys, main(train_args(train_data, out, "--steps", "2")))
    assert "checkpoint.pt: not a usable uvrsep training checkpoint" in line and "--restart" in line


def test_train_truncated_cache_is_rebuilt(tmp_path, capsys, train_data):
    out = tmp_path / "out"
    assert main(train_args(train_data, out)) == 0
    cached = sorted((out / "cache").glob("*.npy"))
    assert cached
    good_bytes = {p: p.read_bytes() for p in cached}
    for p in cached:
        p.write_bytes(good_bytes[p][: len(good_bytes[p]) // 2])
    code = main(train_args(train_data, out, "--restart"))
    _, err = capsys.readouterr()
    assert code == 0, err
    assert {p: p.read_bytes() for p in cached} == good_bytes  # analysed again and rewritten


def test_eval_track_too_short_to_score(tmp_path, capsys):
    track = tmp_path / "short"
    track.mkdir()
    for name in ("mixture", "vocals", "accompaniment"):
        sf.write(track / f"{name}.wav", np.random.default_rng(0).standard_normal((10, 2)).astype(np.float32) * 0.1, 44100)
    code = main(["eval", str(track), "--baseline", "mixture", "-q"])
    line = one_line_error(capsys, code, expected=1)
    assert "too short to score (10 samples" in line and "internal error" not in line
