"""Signal helpers shared by the generator's instruments, drums, voices and effects.

Band-limited wavetables (mip-mapped), envelopes, Butterworth filters, decibel and panning
conversions, RMS levels, pitch/frequency conversions and the seeded random helpers every other
module draws with. Nothing here knows about music.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import scipy.signal


A4_MIDI = 69
A4_HZ = 440.0
SEMITONES_PER_OCTAVE = 12

TABLE_SIZE = 4096
#: Harmonics are kept below this fraction of the Nyquist frequency (band-limited oscillators).
NYQUIST_GUARD = 0.9

#: Decay of -60 dB, as a natural-log amplitude ratio (used for "RT60"-style decay times).
LN_1000 = math.log(1000.0)

FILTER_ORDER_SLOPE = 2.0  # amplitude roll-off exponent of the harmonic "low-pass"
BRIGHT_FACTOR = 3.0  # cut-off ratio of the bright and dark tables of a filter sweep

DRUM_FILTER_ORDER = 2

EPS = 1e-12
T = TypeVar("T")


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
    return A4_HZ * 2.0 ** ((np.asarray(midi, dtype=np.float64) - A4_MIDI) / SEMITONES_PER_OCTAVE)


def hz_to_midi(hz: float) -> float:
    """MIDI pitch (fractional) of a frequency."""
    return A4_MIDI + SEMITONES_PER_OCTAVE * math.log2(hz / A4_HZ)


def db_to_gain(db: float | np.ndarray) -> float | np.ndarray:
    """Amplitude ratio of a level in dB."""
    return 10.0 ** (np.asarray(db) / 20.0)


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A uniform draw in ``bounds``."""
    return float(rng.uniform(bounds[0], bounds[1]))


def choice(rng: np.random.Generator, options: Sequence[T], weights: Sequence[float] | None = None) -> T:
    """One of ``options`` (optionally weighted), drawn with ``rng``."""
    if weights is None:
        return options[int(rng.integers(len(options)))]
    p = np.asarray(weights, dtype=np.float64)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def random_side(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A pan position with magnitude in ``bounds`` and a random side."""
    return uniform(rng, bounds) * (1.0 if rng.random() < 0.5 else -1.0)


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Zero-mean white noise in [-1, 1) (uniform: much cheaper than Gaussian), float32."""
    return rng.random(n, dtype=np.float32) * np.float32(2.0) - np.float32(1.0)


def time_axis(n: int, sample_rate: int) -> np.ndarray:
    """Sample times in seconds, float32."""
    return np.arange(n, dtype=np.float32) / np.float32(sample_rate)


def exp_decay(n: int, sample_rate: int, tau_s: float) -> np.ndarray:
    """``exp(-t / tau)`` over ``n`` samples, float32."""
    return np.exp(time_axis(n, sample_rate) * np.float32(-1.0 / tau_s))


def cycles_of(freq: float | np.ndarray, n: int, sample_rate: int, phase: float = 0.0) -> np.ndarray:
    """Fractional cycle position in [0, 1) of an oscillator (float64 accumulation, float32 out).

    Args:
        freq: Frequency in Hz, a scalar or one value per sample.
        n: Number of samples.
        sample_rate: Sample rate in Hz.
        phase: Initial cycle position.
    """
    if np.ndim(freq) == 0:
        cyc = phase + np.arange(n, dtype=np.float64) * (float(freq) / sample_rate)
    else:
        cyc = phase + np.cumsum(np.asarray(freq, dtype=np.float64)[:n]) / sample_rate
    cyc -= np.floor(cyc)
    return cyc.astype(np.float32)


def harmonic_table(coefficients: np.ndarray) -> np.ndarray:
    """One cycle of ``sum_k Re(c_k exp(2 pi i k x))`` sampled on ``TABLE_SIZE`` points, plus wrap.

    Args:
        coefficients: Complex amplitude of harmonics 1..K (``-1j * a`` is a sine of amplitude a).
    """
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    k = min(len(coefficients), TABLE_SIZE // 2 - 1)
    spectrum[1 : k + 1] = coefficients[:k] * (TABLE_SIZE / 2)
    table = np.fft.irfft(spectrum, TABLE_SIZE).astype(np.float32)
    return np.append(table, table[0])


def table_lookup(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Linear-interpolated lookup of a (wrapped) table at cycle positions in [0, 1)."""
    pos = cycles * np.float32(TABLE_SIZE)
    index = pos.astype(np.intp)
    np.minimum(index, TABLE_SIZE - 1, out=index)
    frac = pos - index
    low = np.take(table, index)
    return low + frac * (np.take(table, index + 1) - low)


def band_limit(n_harmonics: int, f_max: float, sample_rate: int) -> int:
    """How many harmonics of a note reaching ``f_max`` Hz stay below the guarded Nyquist."""
    return max(1, min(n_harmonics, int(NYQUIST_GUARD * sample_rate / 2 / max(f_max, EPS))))


def wavetable_osc(coefficients: np.ndarray, cycles: np.ndarray, f_max: float, sample_rate: int) -> np.ndarray:
    """Band-limited oscillator: lookup of a table holding the harmonics that stay below Nyquist.

    Args:
        coefficients: Complex harmonic amplitudes (harmonics 1..K) of the waveform.
        cycles: Cycle positions from :func:`cycles_of`.
        f_max: Highest fundamental the oscillator reaches (vibrato included), in Hz.
        sample_rate: Sample rate in Hz.
    """
    return table_lookup(harmonic_table(coefficients[: band_limit(len(coefficients), f_max, sample_rate)]), cycles)


def runs(labels: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """``(start, stop, label)`` of the runs of equal consecutive labels."""
    change = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], change, [len(labels)]])
    for a, b in zip(bounds[:-1], bounds[1:]):
        yield int(a), int(b), int(labels[a])


def mipmapped_osc(
    coefficients: np.ndarray, cycles: np.ndarray, f0_frames: np.ndarray, hop: int, sample_rate: int, skip: np.ndarray
) -> np.ndarray:
    """Band-limited oscillator with a pitch that changes a lot (a voice): one table per octave.

    Args:
        coefficients: Complex harmonic amplitudes of the waveform.
        cycles: Cycle positions of every sample.
        f0_frames: Fundamental at control points ``m * hop`` (linear in between).
        hop: Samples between control points.
        sample_rate: Sample rate in Hz.
        skip: Per control interval, True where the output is not needed (left at zero).
    """
    n = len(cycles)
    peak = np.maximum(f0_frames[:-1], f0_frames[1:])
    band = np.floor(np.log2(np.maximum(peak, 1.0))).astype(np.intp)
    band[skip[: len(band)]] = -1
    out = np.zeros(n, dtype=np.float32)
    tables: dict[int, np.ndarray] = {}
    for a, b, octave in runs(band):
        lo, hi = a * hop, min(n, b * hop)
        if octave < 0 or lo >= n:
            continue
        if octave not in tables:
            limit = band_limit(len(coefficients), 2.0 ** (octave + 1), sample_rate)
            tables[octave] = harmonic_table(coefficients[:limit])
        out[lo:hi] = table_lookup(tables[octave], cycles[lo:hi])
    return out


def saw_coefficients(n: int) -> np.ndarray:
    """Harmonics of a sawtooth (``a_k = 1/k``)."""
    k = np.arange(1, n + 1)
    return -1j * (1.0 / k)


def square_coefficients(n: int) -> np.ndarray:
    """Harmonics of a square wave (odd ``1/k``)."""
    k = np.arange(1, n + 1)
    return -1j * np.where(k % 2 == 1, 1.0 / k, 0.0)


def lowpass_harmonics(coefficients: np.ndarray, f0: float, cutoff_hz: float) -> np.ndarray:
    """Harmonic amplitudes weighted by a smooth low-pass magnitude at ``cutoff_hz``."""
    k = np.arange(1, len(coefficients) + 1)
    return coefficients / np.sqrt(1.0 + (k * f0 / cutoff_hz) ** (2 * FILTER_ORDER_SLOPE))


def filter_sweep(
    base: np.ndarray,
    f0: float,
    cutoff_hz: float,
    cycles: np.ndarray,
    f_max: float,
    sample_rate: int,
    brightness: np.ndarray,
) -> np.ndarray:
    """A waveform through a low-pass whose cut-off moves with ``brightness``.

    The cut-off is ``cutoff_hz`` at ``brightness`` 0 and ``BRIGHT_FACTOR * cutoff_hz`` at 1: a
    crossfade of the two band-limited tables.
    """
    dark = wavetable_osc(lowpass_harmonics(base, f0, cutoff_hz), cycles, f_max, sample_rate)
    bright = wavetable_osc(lowpass_harmonics(base, f0, cutoff_hz * BRIGHT_FACTOR), cycles, f_max, sample_rate)
    return dark + brightness * (bright - dark)


def envelope(
    n_hold: int,
    n_total: int,
    sample_rate: int,
    attack_s: float,
    release_s: float,
    decay_s: float = 0.0,
    sustain: float = 1.0,
) -> np.ndarray:
    """Attack-decay-sustain-release envelope (linear attack, exponential decay and release).

    Args:
        n_hold: Samples until note-off.
        n_total: Length of the envelope (note-off plus release).
        sample_rate: Sample rate in Hz.
        attack_s: Linear attack time.
        release_s: Time to fall by 60 dB after note-off.
        decay_s: Time constant of the decay towards ``sustain`` (0: none).
        sustain: Sustain level.
    """
    t = time_axis(n_total, sample_rate)
    env = np.minimum(t / np.float32(max(attack_s, 1.0 / sample_rate)), np.float32(1.0))
    if decay_s > 0 and sustain < 1:
        after = np.maximum(t - np.float32(attack_s), np.float32(0.0))
        env *= np.float32(sustain) + np.float32(1 - sustain) * np.exp(after * np.float32(-1.0 / decay_s))
    if n_total > n_hold:
        tail = np.arange(n_total - n_hold, dtype=np.float32) * np.float32(-LN_1000 / (release_s * sample_rate))
        env[n_hold:] *= np.exp(tail)
    return env


@functools.lru_cache(maxsize=256)
def butterworth(low_hz: float, high_hz: float, sample_rate: int) -> np.ndarray:
    """Second-order sections of a Butterworth band-pass."""
    nyq = sample_rate / 2
    return scipy.signal.butter(DRUM_FILTER_ORDER, [low_hz / nyq, high_hz / nyq], btype="bandpass", output="sos")


def bandpass(signal: np.ndarray, low_hz: float, high_hz: float, sample_rate: int) -> np.ndarray:
    """Butterworth band-pass (the upper edge is capped below Nyquist), float32."""
    high = min(high_hz, sample_rate / 2 * NYQUIST_GUARD)
    if low_hz >= high:
        return np.zeros_like(signal)
    return scipy.signal.sosfilt(butterworth(round(low_hz), round(high), sample_rate), signal).astype(np.float32)


def one_pole_lowpass(signal: np.ndarray, cutoff_hz: float, sample_rate: float, axis: int = -1) -> np.ndarray:
    """First-order low-pass (exponential smoothing) along ``axis``."""
    a = math.exp(-2 * math.pi * cutoff_hz / sample_rate)
    return scipy.signal.lfilter([1 - a], [1, -a], signal, axis=axis).astype(np.float32)


def smoothed_noise(rng: np.random.Generator, n: int, rate_hz: float, smooth_s: float) -> np.ndarray:
    """Unit-variance low-pass noise sampled at ``rate_hz`` (jitter, drift, shimmer curves)."""
    raw = rng.standard_normal(n).astype(np.float32)
    cutoff = 1.0 / (2 * math.pi * smooth_s)
    smooth = one_pole_lowpass(raw, min(cutoff, rate_hz / 4), rate_hz)
    return smooth / np.float32(max(float(smooth.std()), EPS))


def upsample_linear(control: np.ndarray, hop: int, n: int) -> np.ndarray:
    """Linear interpolation of a control curve (one value every ``hop`` samples) to ``n`` samples."""
    control = np.asarray(control, dtype=np.float32)
    need = n // hop + 2
    if len(control) < need:
        control = np.concatenate([control, np.full(need - len(control), control[-1], dtype=np.float32)])
    ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
    out = control[:-1, None] + (control[1:] - control[:-1])[:, None] * ramp[None, :]
    return out.reshape(-1)[:n]


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power (left, right) gains of a pan position in [-1, 1]."""
    angle = (pan + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def add_at(target: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    """Add ``gain * sound`` into ``target`` from sample ``start`` along the last axis (clipped)."""
    n = target.shape[-1]
    begin, end = max(start, 0), min(start + sound.shape[-1], n)
    if end > begin:
        target[..., begin:end] += np.float32(gain) * sound[..., begin - start : end - start]


def rms(x: np.ndarray) -> float:
    """Root-mean-square of an array."""
    if not x.size:
        return 0.0
    flat = x.reshape(-1)
    return float(np.sqrt(np.float64(np.square(flat).sum(dtype=np.float32)) / flat.size))


def normalise_rms(stem: np.ndarray) -> np.ndarray:
    """A stem scaled to unit RMS (silence unchanged)."""
    level = rms(stem)
    return stem / np.float32(level) if level > EPS else stem
