"""Streaming: chunk plans, block-wise resampling, atomic streaming writes, streamed = whole-file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from uvrsep.api import Separator
from uvrsep.errors import AudioError
from uvrsep.stream import ArraySource, ModelRateSource, StreamWriter, open_source, plan_chunks
from uvrsep.testing import snr_db
from uvrsep.transforms import resample

from .conftest import SHORT_CHUNK_PARAMS, TINY_PARAMS, streamed_chunk_seconds


def faded_signal(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Stereo tones + noise with 0.5 s fades at both ends (as real recordings have)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    wave = np.stack([np.sin(2 * np.pi * f * t) + 0.3 * rng.standard_normal(n) for f in (220, 331)])
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.5)
    return (0.3 * wave * fade).astype(np.float32)


#: Chunks in the inputs of the chunked-vs-whole tests: 5 (a partial one on the reversed grid),
#: enough to have middle chunks and an order other than time's. Each chunk reads a window of
#: context on either side (and resamples a 48 kHz input with "sinc_best"), so more cost more.
STREAM_TEST_CHUNKS = 4.4


def test_plan_chunks_cover_the_input_on_the_grid():
    chunks = plan_chunks(10_000, unit=300, chunk_units=4, margin_units=1)
    assert [c.start for c in chunks] == list(range(0, 10_000, 1200))
    assert chunks[-1].stop == 10_000
    for a, b in zip(chunks, chunks[1:]):
        assert a.stop == b.start
    for c in chunks:
        assert c.read_start == max(0, c.start - 300) and c.read_stop == min(10_000, c.stop + 300)
    assert plan_chunks(0, 300, 4, 1)[0].stop == 0


@pytest.mark.parametrize("samples", [1, 999, 1200, 1200 * 5 + 17, 1200 * 7 + 2])
def test_plan_chunks_from_the_end_keep_both_grids(samples):
    """Params that reverse the signal: cores laid from the input's end, in time order; every read
    span ends a whole number of units before the input's end (the reversed frame grid) and
    starts on a multiple of ``align`` (the lower bands' sample grid), with at least the margin."""
    unit, chunk_units, margin_units, align = 300, 4, 1, 4
    chunks = plan_chunks(samples, unit, chunk_units, margin_units, from_end=True, align=align)
    assert chunks[0].start == 0 and chunks[-1].stop == samples
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
    assert all(c.stop - c.start == unit * chunk_units for c in chunks[1:])
    for c in chunks:
        assert (samples - c.stop) % (unit * chunk_units) == 0
        assert c.read_stop == min(samples, c.stop + unit * margin_units)
        assert c.read_start % align == 0
        assert c.read_start <= max(0, c.start - unit * margin_units) < c.read_start + align


@pytest.mark.slow
def test_reversed_params_stream_like_the_whole_file(tiny_model):
    from uvrsep.nets import ASPPNetConfig
    from uvrsep.testing import random_state_dict

    sep = Separator(random_state_dict(ASPPNetConfig(width=4), seed=3), "4band_44100_reverse", device="cpu", precision="fp32")
    seconds = STREAM_TEST_CHUNKS * streamed_chunk_seconds("4band_44100_reverse", chunk_windows=1)
    wave = faded_signal(seconds, 44100)[:, : int(44100 * seconds) - 123]
    whole = sep.separate(wave, 44100).stems
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in whole}
    sep.separate_stream(ArraySource(wave, 44100), {n: pieces[n].append for n in whole}, chunk_windows=1)
    assert len(sep._stream_plan(wave.shape[1], 1)) > 3  # really chunked
    for name, stem in whole.items():
        streamed = np.concatenate(pieces[name], axis=1)
        assert streamed.shape == stem.shape
        # 56–66 dB over lengths and chunk sizes (65 dB for 4band_44100): most of the difference is in
        # the input's last 64 samples, where the FFT upsampling of each reversed band wraps
        # around to the start of the chunk's span instead of the input's
        assert snr_db(stem, streamed) >= 55, name


@pytest.mark.parametrize("rate,res_type", [(48000, "sinc_medium"), (22050, "polyphase"), (32000, "kaiser_fast")])
def test_model_rate_blocks_equal_whole_file_resampling(rate, res_type):
    wave = faded_signal(6.0, rate)
    source = ModelRateSource(ArraySource(wave, rate), 44100, res_type)
    whole = resample(wave, rate, 44100, res_type)
    assert source.frames == whole.shape[1]
    for a, b in [(0, 50_000), (50_000, 150_000), (150_000, 200_000)]:
        np.testing.assert_allclose(source.read(a, b), whole[:, a:b], atol=1e-5)


def test_soundfile_source_reads_blocks_and_counts_nonfinite_once(tmp_path):
    wave = faded_signal(1.0, 8000)
    wave[0, 100:110] = np.nan
    sf.write(tmp_path / "x.wav", wave.T, 8000, subtype="FLOAT")
    source, info = open_source(tmp_path / "x.wav")
    assert (info.sample_rate, info.frames) == (8000, 8000)
    first = source.read(0, 5000)
    again = source.read(4000, 8000)  # overlapping reads, as the streamed passes make
    assert np.isfinite(first).all() and np.isfinite(again).all()
    assert source.nonfinite == 10
    np.testing.assert_array_equal(first[:, 4000:], again[:, :1000])


def test_stream_writer_is_atomic(tmp_path):
    target = tmp_path / "out" / "x.wav"
    with pytest.raises(RuntimeError):
        with StreamWriter(target, 8000, 2) as writer:
            writer.write(np.zeros((2, 100), np.float32))
            raise RuntimeError("crash mid-file")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with StreamWriter(target, 8000, 2) as writer:
        assert writer.write(np.full((2, 50), 2.0, np.float32)) == 100  # clipped, counted
        writer.write(np.zeros((2, 50), np.float32))
        writer.commit()
    assert sf.info(target).frames == 100
    with pytest.raises(AudioError, match="exists"):
        StreamWriter(target, 8000, 2)


@pytest.mark.slow
@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1)])
def test_streamed_equals_whole_file(tiny_model, rate, channels):
    """Two-window chunks, STREAM_TEST_CHUNKS of them, of the short-chunk params (the same network work as
    with the tiny params' longer chunks, a quarter of the audio to read, resample and render)."""
    sep = Separator(str(tiny_model), SHORT_CHUNK_PARAMS, device="cpu", precision="fp32")
    wave = faded_signal(STREAM_TEST_CHUNKS * streamed_chunk_seconds(SHORT_CHUNK_PARAMS, chunk_windows=2), rate)[:channels]
    whole = sep.separate(wave, rate).stems
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in whole}
    written = sep.separate_stream(ArraySource(wave, rate), {n: pieces[n].append for n in whole}, chunk_windows=2)
    assert written == wave.shape[1]
    assert len(sep._stream_plan(int(np.ceil(wave.shape[1] * 44100 / rate)), 2)) > 3  # really chunked
    for name, stem in whole.items():
        streamed = np.concatenate(pieces[name], axis=1)
        assert streamed.shape == stem.shape == (channels, wave.shape[1])
        assert snr_db(stem, streamed) >= 60


def test_streaming_pipeline_reads_ahead_writes_behind_and_stops_on_a_write_error(tiny_model):
    """Reading and writing run on their own threads, in order; a failing sink stops the run."""
    import threading

    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32")
    wave = faded_signal(30.0, 44100)
    threads: dict[str, set[str]] = {"read": set(), "write": set()}

    class Source(ArraySource):
        def read(self, start: int, stop: int) -> np.ndarray:
            threads["read"].add(threading.current_thread().name)
            return super().read(start, stop)

    calls = []

    def failing_sink(block: np.ndarray) -> None:
        threads["write"].add(threading.current_thread().name)
        calls.append(block.shape[1])
        if len(calls) == 2:
            raise AudioError("disk full")

    assert len(sep._stream_plan(wave.shape[1], 2)) == 3
    with pytest.raises(AudioError, match="disk full"):
        sep.separate_stream(Source(wave, 44100), {sep.stem_names[0]: failing_sink}, chunk_windows=2)
    assert len(calls) == 2  # no chunk was written after the failure
    main = threading.current_thread().name
    assert main not in threads["write"] and len(threads["write"]) == 1
    # the first (peak) pass reads on the caller's thread; the separating pass on the reader's
    assert any(name.startswith("uvrsep-read") for name in threads["read"])


def test_next_chunk_is_analysed_while_the_network_runs(tiny_model, monkeypatch):
    """The network's stage waits (bounded) until the reader thread has analysed the NEXT chunk: a
    pipeline that analysed after the network would time out here and fail."""
    import threading

    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32")
    wave = faded_signal(30.0, 44100)
    analysed_on: list[str] = []
    next_analysed = [threading.Event() for _ in range(3)]
    overlapped: list[bool] = []
    analyze, predict = Separator._analyze, Separator._predict

    def spy_analyze(self, segment):
        result = analyze(self, segment)
        if threading.current_thread().name.startswith("uvrsep-read"):  # the separating pass
            analysed_on.append(threading.current_thread().name)
            next_analysed[len(analysed_on) - 1].set()
        return result

    def spy_predict(self, analysed, progress, coef=None):
        index = len(overlapped)
        if index + 1 < len(next_analysed):  # the next chunk is analysed while this one is predicted
            overlapped.append(next_analysed[index + 1].wait(timeout=30))
        else:
            overlapped.append(True)
        return predict(self, analysed, progress, coef)

    monkeypatch.setattr(Separator, "_analyze", spy_analyze)
    monkeypatch.setattr(Separator, "_predict", spy_predict)
    assert len(sep._stream_plan(wave.shape[1], 2)) == 3
    pieces: list[np.ndarray] = []
    sep.separate_stream(ArraySource(wave, 44100), {sep.stem_names[0]: pieces.append}, chunk_windows=2)
    assert len(analysed_on) == 3 and overlapped == [True, True, True]
    assert sum(p.shape[1] for p in pieces) == wave.shape[1]


def test_streamed_runs_synthesise_one_stem_at_a_time(tiny_model, monkeypatch):
    """Two syntheses side by side double the FFT buffers of the chunk's peak: a streamed run
    renders with STREAM_SYNTHESIS_THREADS whatever the whole-file setting is."""
    from uvrsep.api import STREAM_SYNTHESIS_THREADS
    from uvrsep.spectral import HostSpectral

    sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32", synthesis_threads=2)
    seen: list[int] = []
    render = HostSpectral.render

    def spy(self, *args, threads=None, **kwargs):
        seen.append(self.threads if threads is None else threads)
        return render(self, *args, threads=threads, **kwargs)

    monkeypatch.setattr(HostSpectral, "render", spy)
    wave = faded_signal(30.0, 44100)
    sep.separate(wave[:, :44100], 44100)
    assert seen and set(seen) == {2}
    seen.clear()
    sep.separate_stream(ArraySource(wave, 44100), {sep.stem_names[0]: lambda block: None}, chunk_windows=2)
    assert len(seen) >= 3 and set(seen) == {STREAM_SYNTHESIS_THREADS} == {1}


@pytest.mark.parametrize(
    ("params", "rate", "channels"),
    [(SHORT_CHUNK_PARAMS, 48000, 1), ("4band_44100_reverse", 44100, 2)],
    ids=["resampled-mono", "reversed-4band"],
)
def test_a_stream_cut_into_pieces_run_apart_gives_the_same_stems_bit_for_bit(params, rate, channels):
    """What ``split --ray`` does with a long file: each chunk's peak and core stems computed by
    other Separators (other processes there), in any order, then emitted in order, equal
    :meth:`Separator.separate_stream`'s blocks exactly."""
    from uvrsep.api import StemEmitter
    from uvrsep.nets import ASPPNetConfig
    from uvrsep.testing import random_state_dict

    weights = random_state_dict(ASPPNetConfig(width=4), seed=5)
    make = lambda: Separator(weights, params, device="cpu", precision="fp32")  # noqa: E731
    seconds = STREAM_TEST_CHUNKS * streamed_chunk_seconds(params, chunk_windows=1)
    wave = faded_signal(seconds, rate)[:channels]
    one = make()
    names = one.stem_names
    streamed: dict[str, list[np.ndarray]] = {name: [] for name in names}
    written = one.separate_stream(ArraySource(wave, rate), {n: streamed[n].append for n in names}, chunk_windows=1)

    planner = make()
    plan = planner.stream_plan(ArraySource(wave, rate), chunk_windows=1)
    assert plan.target == written and len(plan.chunks) > 3 and plan.mono == (channels == 1)
    order = np.random.default_rng(0).permutation(len(plan.chunks)).tolist()
    peaker, worker = make(), make()
    coef = max(peaker.chunk_peak(peaker.model_rate_source(ArraySource(wave, rate)), plan, i) for i in order)
    model = worker.model_rate_source(ArraySource(wave, rate))
    cores: dict[int, dict[str, np.ndarray]] = {}
    for i in order:
        worker.run_chunks(model, plan, i, i + 1, coef, lambda stems, i=i: cores.__setitem__(i, stems))
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in names}
    emitter = StemEmitter(plan, {n: pieces[n].append for n in names})
    for index in range(len(plan.chunks)):
        emitter.emit(cores[index])
    for name in names:
        np.testing.assert_array_equal(np.concatenate(pieces[name], axis=1), np.concatenate(streamed[name], axis=1))
        assert emitter.written[name] == written
