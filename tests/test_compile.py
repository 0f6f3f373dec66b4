"""``torch.compile`` of the net on the CPU (issue 17): when ``auto`` compiles, the cache on disk,
the eager fallback when there is no compiler or compiling fails, and compiled output equal to
eager output up to float rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uvrsep import compiled, inference
from uvrsep.api import Separator
from uvrsep.compiled import (
    MIN_EAGER_SECONDS_CACHED,
    MIN_EAGER_SECONDS_CACHED_FP32,
    MIN_EAGER_SECONDS_FIRST,
    MIN_EAGER_SECONDS_FIRST_FP32,
    cache_dir,
    wants_compile,
)
from uvrsep.errors import SettingsError
from uvrsep.testing import snr_db

from .conftest import TINY_PARAMS

CPU = torch.device("cpu")
RATE = 44100


def _wave(seconds: float = 8.0) -> np.ndarray:
    return (0.2 * np.random.default_rng(0).standard_normal((2, int(seconds * RATE)))).astype(np.float32)


def _separate(tiny_model, compile_mode: str, precision: str = "fp32", reports: list[str] | None = None) -> tuple[Separator, dict]:
    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision=precision, compile=compile_mode)
    if reports is not None:
        sep.runner.report = reports.append
    return sep, sep.separate(_wave(), RATE).stems


@pytest.mark.parametrize(
    ("mode", "device", "dtype", "seconds", "cached", "exact", "expected"),
    [
        ("off", "cpu", torch.bfloat16, 10_000, True, False, False),
        ("on", "cpu", torch.float32, 1, False, True, True),
        ("on", "cuda", torch.float16, 10_000, True, False, False),  # the CPU only
        ("auto", "cpu", torch.float32, 10_000, True, True, False),  # --precision fp32: the exact eager arithmetic
        ("auto", "cpu", torch.bfloat16, MIN_EAGER_SECONDS_FIRST - 1, False, False, False),
        ("auto", "cpu", torch.bfloat16, MIN_EAGER_SECONDS_FIRST, False, False, True),
        ("auto", "cpu", torch.bfloat16, MIN_EAGER_SECONDS_CACHED - 1, True, False, False),
        ("auto", "cpu", torch.bfloat16, MIN_EAGER_SECONDS_CACHED, True, False, True),
        # --precision auto that resolved to float32 (no native bfloat16): sooner, it gains more per window
        ("auto", "cpu", torch.float32, MIN_EAGER_SECONDS_FIRST_FP32 - 1, False, False, False),
        ("auto", "cpu", torch.float32, MIN_EAGER_SECONDS_FIRST_FP32, False, False, True),
        ("auto", "cpu", torch.float32, MIN_EAGER_SECONDS_CACHED_FP32 - 1, True, False, False),
        ("auto", "cpu", torch.float32, MIN_EAGER_SECONDS_CACHED_FP32, True, False, True),
        ("auto", "cpu", torch.float16, 10_000, True, False, False),  # no rule for it
    ],
)
def test_when_auto_compiles(mode, device, dtype, seconds, cached, exact, expected):
    assert wants_compile(mode, torch.device(device), dtype, seconds, cached, exact) is expected


def test_only_an_explicit_fp32_is_exact_for_compile(tiny_model):
    """``--precision fp32`` keeps the reference's eager arithmetic under ``--compile auto``;
    ``--precision auto`` does not promise it, even where it resolves to float32."""
    assert Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32").runner.exact
    auto = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="auto")
    assert not auto.runner.exact
    assert not Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="bf16").runner.exact


def test_an_unknown_compile_mode_is_a_settings_error(tiny_model):
    with pytest.raises(SettingsError, match="compile must be one of auto, on, off"):
        Separator(str(tiny_model), TINY_PARAMS, device="cpu", compile="sometimes")


def test_auto_leaves_a_short_run_eager(tiny_model):
    sep, _ = _separate(tiny_model, "auto", precision="bf16")
    assert sep.runner._compiled == {}


@pytest.mark.parametrize(("precision", "compiles"), [("bf16", 1), ("fp32", 0)])
def test_auto_compiles_a_long_enough_run_once_the_code_is_cached(tiny_model, monkeypatch, precision, compiles):
    """With a cache marker present, a run expected to take ``MIN_EAGER_SECONDS_CACHED`` of eager
    network time compiles after its first batch (run eagerly, to be timed; the compiled wrapper
    is counted here, not run: compiling itself is the slow test below), unless the user asked
    for exact fp32."""
    made = []

    class Recorder:
        def __init__(self, forward, key, report):
            made.append(key)
            self.forward = forward

        def __call__(self, batch):
            return self.forward(batch)

    monkeypatch.setattr(inference, "CompiledForward", Recorder)
    monkeypatch.setattr(inference, "is_cached", lambda key: True)
    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision=precision, compile="auto")
    windows = sep.windows_for(_wave().shape[1])
    assert windows >= 2  # a first batch to time, then the rest
    sep.separate(_wave(), RATE)
    assert made == [] and sep.runner.eager_window_s > 0  # by itself too short ...
    # ... but part of a long streamed run
    sep.runner.expected_windows = int(MIN_EAGER_SECONDS_CACHED_FP32 / sep.runner.eager_window_s) + 1
    sep.separate(_wave(), RATE)
    assert len(made) == compiles  # one shape, one compiled forward, reused for every window


def test_auto_weighs_the_windows_of_earlier_inputs_and_of_the_stream_left(tiny_model, monkeypatch):
    """A batch of short inputs compiles once enough windows were run: ``auto`` weighs the windows
    this separator ran before plus those the current input still takes (per streamed chunk:
    the chunk's and the later ones'), so within one stream the figure stays its whole count,
    times the seconds of the fastest eager window so far."""
    from uvrsep.stream import ArraySource

    seen: list[float] = []

    def record(mode, device, dtype, seconds, cached, exact=False):
        seen.append(seconds)
        return False

    monkeypatch.setattr(inference, "wants_compile", record)
    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32", compile="auto")
    window_s = 0.25  # each eager window "takes" this long
    monkeypatch.setattr(sep.runner, "_record_eager", lambda seconds, windows: setattr(sep.runner, "eager_window_s", window_s))
    wave = _wave(3.0)
    one = sep.windows_for(wave.shape[1])
    for count in (1, 2, 3):
        seen.clear()
        sep.separate(wave, RATE)
        # the first batch of the process runs before anything is timed: not weighed
        assert set(seen) <= {count * one * window_s} and (count == 1 or seen)
    long_wave = _wave(30.0)
    planned = sep.planned_windows(long_wave.shape[1], RATE, chunk_windows=1)
    seen.clear()
    sep.separate_stream(ArraySource(long_wave, RATE), {sep.stem_names[0]: lambda block: None}, chunk_windows=1)
    assert set(seen) == {(3 * one + planned) * window_s} and len(seen) >= 3  # once per batch at least
    assert sep.runner.windows_run == 3 * one + planned


def test_auto_times_eager_windows_and_keeps_the_fastest(tiny_model):
    """The per-window figure ``auto`` weighs is measured: the fastest eager batch of the process."""
    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32", compile="auto")
    assert sep.runner.eager_window_s is None
    sep.separate(_wave(3.0), RATE)
    first = sep.runner.eager_window_s
    assert first is not None and 0 < first < 60
    sep.runner._record_eager(1000.0, 1)  # a slow batch does not raise it
    assert sep.runner.eager_window_s == first
    sep.runner._record_eager(first, 4)
    assert sep.runner.eager_window_s == first / 4
    off = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32", compile="off")
    off.separate(_wave(3.0), RATE)
    assert off.runner.eager_window_s is None  # nothing to decide: not timed


def test_without_a_cxx_compiler_the_net_runs_eagerly_and_says_so_once(tiny_model, monkeypatch):
    _, eager = _separate(tiny_model, "off")
    monkeypatch.setattr(inference, "cxx_compiler", lambda: None)
    reports: list[str] = []
    sep, got = _separate(tiny_model, "on", reports=reports)
    assert len(reports) == 1 and "no C++ compiler" in reports[0] and "\n" not in reports[0]
    assert sep.runner._compiled == {}
    for name, stem in eager.items():
        np.testing.assert_array_equal(got[name], stem)


def test_a_compile_that_fails_falls_back_to_eager_with_one_line(tiny_model, monkeypatch):
    _, eager = _separate(tiny_model, "off")
    calls = []

    def broken_compile(forward, **kwargs):
        def run(batch):
            calls.append(batch.shape)
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    reports: list[str] = []
    sep, got = _separate(tiny_model, "on", reports=reports)
    assert len(calls) == 1  # tried once, then eager for good
    assert len(reports) == 1 and "torch.compile failed (InvalidCxxCompiler: No working C++ compiler found)" in reports[0]
    assert not any(c.active for c in sep.runner._compiled.values())
    for name, stem in eager.items():
        np.testing.assert_array_equal(got[name], stem)


@pytest.mark.slow
@pytest.mark.skipif(compiled.cxx_compiler() is None, reason="no C++ compiler for inductor")
def test_the_compiled_net_matches_eager_and_is_cached_on_disk(tiny_model):
    """float32 (exact on every CPU class): compiled vs eager differ by float rounding only."""
    _, eager = _separate(tiny_model, "off")
    reports: list[str] = []
    sep, got = _separate(tiny_model, "on", reports=reports)
    if reports:  # the fallback worked (tested above); what is checked here needs a working inductor
        pytest.skip(f"inductor cannot compile on this machine: {reports[0]}")
    assert [c.active for c in sep.runner._compiled.values()] == [True]
    for name, stem in eager.items():
        assert snr_db(stem, got[name]) > 100
    key = next(iter(sep.runner._compiled))
    assert compiled.is_cached(key) and (cache_dir() / f"{key}.ok").is_file()
    assert any((cache_dir() / "inductor").rglob("*"))  # inductor's compiled code under $UVRSEP_HOME


@pytest.mark.parametrize("mode", ["off", "on"])
def test_the_cli_takes_compile_and_records_it(tiny_model, tmp_path, capsys, mode, monkeypatch):
    from .test_robustness import args_for, good, run

    monkeypatch.setattr(inference, "cxx_compiler", lambda: None)  # "on" falls back at once: fast
    code, manifest, err = run(capsys, str(good(tmp_path / "song.wav")), *args_for(tiny_model, tmp_path / "out", "--compile", mode))
    assert code == 0, err
    assert manifest["settings"]["compile"] == mode
    assert ("no C++ compiler" in err) is (mode == "on")


def test_the_cli_refuses_an_unknown_compile_mode(tiny_model, tmp_path, capsys):
    from .test_robustness import args_for, good, run

    code, _, err = run(capsys, str(good(tmp_path / "song.wav")), *args_for(tiny_model, tmp_path / "out", "--compile", "maybe"))
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_prepared_net_traces_as_one_graph(dtype):
    """``torch.compile`` sees the whole prepared net (folded, channels-last, ROI decoding, split
    first convs in bfloat16) as one graph: a break (an ``out=`` it cannot trace, say) would leave
    pieces to eager and recompile them per shape."""
    from uvrsep.fast import prepare_net
    from uvrsep.nets import ASPPNetConfig, net_from_state_dict
    from uvrsep.testing import random_state_dict

    net = prepare_net(net_from_state_dict(random_state_dict(ASPPNetConfig(width=4), seed=2)), torch.device("cpu"), dtype)
    window = torch.rand(1, 2, 257, 2 * net.offset + 64).to(dtype).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    with torch.inference_mode():
        explained = torch._dynamo.explain(net.predict_mask)(window)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
