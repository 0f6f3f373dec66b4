"""Bus processing: EQ, synthetic reverb, compression and soft clipping.

Random tilt/shelf EQ and a convolution reverb with a synthetic stereo impulse response
(exponentially decaying noise, frequency-dependent RT60, early reflections, pre-delay) in one
FFT pass, RMS compression and tanh soft clipping; used on the accompaniment bus and on the
voice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal

from .dsp import EPS, LN_1000, db_to_gain, one_pole_lowpass, rms, time_axis, uniform, upsample_linear
from .voice import EQ_FLOOR_HZ


VOCAL_LEVEL_DB = (-12.0, 6.0)
PEAK_DBFS = (-6.0, -0.5)
ACTIVE_FRAME_S = 0.05
ACTIVE_FLOOR_DB = -40.0
REVERB_PROBABILITY = {"vocals": 0.8, "accompaniment": 0.6}
REVERB_RT60_S = (0.2, 2.5)
REVERB_WET = {"vocals": (0.1, 0.5), "accompaniment": (0.05, 0.35)}
REVERB_PREDELAY_S = (0.0, 0.06)
REVERB_HF_DECAY_RATIO = (0.35, 0.7)
REVERB_HF_SPLIT_HZ = 3000.0
REVERB_EARLY_REFLECTIONS = (4, 12)
REVERB_EARLY_WINDOW_S = (0.005, 0.08)
REVERB_EARLY_ENERGY = 0.004
REVERB_ONSET_S = 0.01
EQ_PROBABILITY = 0.8
EQ_TILT_DB_PER_OCTAVE = (-1.5, 1.5)
EQ_TILT_PIVOT_HZ = 1000.0
EQ_LOW_SHELF_HZ = (80.0, 300.0)
EQ_HIGH_SHELF_HZ = (3000.0, 10000.0)
EQ_SHELF_DB = (-6.0, 6.0)
EQ_SHELF_WIDTH_OCTAVES = 0.5

EQ_GRID_STEP = 64
COMPRESSOR_BLOCK_S = 0.01
#: Compressor thresholds relative to the stem's (active) RMS level.
COMPRESSOR_THRESHOLD_DB = {"vocals": (-10.0, 0.0), "accompaniment": (-6.0, 3.0)}
COMPRESSOR_RATIO = (1.5, 4.0)
COMPRESSOR_SMOOTH_S = 0.08
SOFT_CLIP_DRIVE = (1.0, 2.5)
SOFT_CLIP_PROBABILITY = 0.5


@dataclass(frozen=True)
class EQ:
    """Random EQ: tilt around ``EQ_TILT_PIVOT_HZ`` and two smooth (logistic) shelves."""

    tilt_db_per_octave: float = 0.0
    low_shelf_hz: float = 150.0
    low_shelf_db: float = 0.0
    high_shelf_hz: float = 6000.0
    high_shelf_db: float = 0.0

    def response(self, freqs: np.ndarray) -> np.ndarray:
        """Linear magnitude response at ``freqs`` (Hz), float32."""
        octaves = np.log2(np.maximum(freqs, EQ_FLOOR_HZ) / EQ_TILT_PIVOT_HZ)
        steep = 4.0 / EQ_SHELF_WIDTH_OCTAVES
        low = 1 / (1 + np.exp(steep * (octaves - math.log2(self.low_shelf_hz / EQ_TILT_PIVOT_HZ))))
        high = 1 / (1 + np.exp(-steep * (octaves - math.log2(self.high_shelf_hz / EQ_TILT_PIVOT_HZ))))
        db = self.tilt_db_per_octave * octaves + self.low_shelf_db * low + self.high_shelf_db * high
        return db_to_gain(db).astype(np.float32)

    def response_on_grid(self, bins: int, sample_rate: int, size: int) -> np.ndarray:
        """Response at the ``bins`` bins of a real FFT of length ``size``.

        It is evaluated every ``EQ_GRID_STEP`` bins and linearly interpolated (the curve is smooth).
        """
        coarse = np.arange(0, bins + EQ_GRID_STEP, EQ_GRID_STEP) * (sample_rate / size)
        return upsample_linear(self.response(coarse), EQ_GRID_STEP, bins)


def sample_eq(rng: np.random.Generator) -> EQ | None:
    """A random EQ, or ``None`` (flat) with probability ``1 - EQ_PROBABILITY``."""
    if rng.random() >= EQ_PROBABILITY:
        return None
    return EQ(
        uniform(rng, EQ_TILT_DB_PER_OCTAVE),
        uniform(rng, EQ_LOW_SHELF_HZ),
        uniform(rng, EQ_SHELF_DB),
        uniform(rng, EQ_HIGH_SHELF_HZ),
        uniform(rng, EQ_SHELF_DB),
    )


@dataclass(frozen=True)
class Reverb:
    """Synthetic room: RT60, wet level, pre-delay, high-frequency decay ratio."""

    rt60_s: float
    wet: float
    predelay_s: float
    hf_ratio: float


def sample_reverb(rng: np.random.Generator, stem: str) -> Reverb | None:
    """A random reverb for a stem, or ``None``."""
    if rng.random() >= REVERB_PROBABILITY[stem]:
        return None
    return Reverb(
        uniform(rng, REVERB_RT60_S),
        uniform(rng, REVERB_WET[stem]),
        uniform(rng, REVERB_PREDELAY_S),
        uniform(rng, REVERB_HF_DECAY_RATIO),
    )


def reverb_ir(reverb: Reverb, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo impulse response ``(2, L)`` of unit energy per channel.

    Decorrelated noise per channel decaying by 60 dB over RT60 (the band above
    ``REVERB_HF_SPLIT_HZ`` decays ``hf_ratio`` times faster), a short fade-in, a few early
    reflections and the pre-delay.
    """
    pre = int(reverb.predelay_s * sample_rate)
    length = int(reverb.rt60_s * sample_rate)
    t = time_axis(length, sample_rate)
    tau = reverb.rt60_s / LN_1000
    raw = rng.standard_normal((2, length)).astype(np.float32)
    low = one_pole_lowpass(raw, REVERB_HF_SPLIT_HZ, sample_rate)
    tail = low * np.exp(-t / np.float32(tau)) + (raw - low) * np.exp(-t / np.float32(tau * reverb.hf_ratio))
    tail *= np.minimum(t / np.float32(REVERB_ONSET_S), np.float32(1.0))
    for _ in range(int(rng.integers(REVERB_EARLY_REFLECTIONS[0], REVERB_EARLY_REFLECTIONS[1] + 1))):
        at = int(uniform(rng, REVERB_EARLY_WINDOW_S) * sample_rate)
        if at < length:
            # A reflection carries ~REVERB_EARLY_ENERGY of the tail's energy (sr * tau / 2 before normalising).
            tail[:, at] += rng.normal(0.0, math.sqrt(REVERB_EARLY_ENERGY * sample_rate * tau / 2), size=2).astype(
                np.float32
            )
    tail /= np.sqrt(np.sum(tail.astype(np.float64) ** 2, axis=1, keepdims=True)).astype(np.float32)
    return np.concatenate([np.zeros((2, pre), dtype=np.float32), tail], axis=1)


def eq_and_reverb(
    stem: np.ndarray, eq: EQ | None, reverb: Reverb | None, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """EQ and reverb of a stereo stem ``(2, n)`` in one FFT pass.

    ``out = EQ * (dry + wet * mono_send * IR_channel)``, where the send is the stem's mid signal.
    The reverb tail that would ring past the excerpt end is dropped.
    """
    if eq is None and reverb is None:
        return stem
    n = stem.shape[1]
    ir = reverb_ir(reverb, sample_rate, rng) if reverb else None
    size = scipy.fft.next_fast_len(n + (ir.shape[1] if ir is not None else 0), real=True)
    spec = scipy.fft.rfft(stem, size, axis=1)
    if ir is not None:
        send = (spec[0] + spec[1]) * np.float32(0.5 * reverb.wet)
        spec += send[None, :] * scipy.fft.rfft(ir, size, axis=1)
    if eq is not None:
        spec *= eq.response_on_grid(spec.shape[1], sample_rate, size)[None, :]
    return scipy.fft.irfft(spec, size, axis=1)[:, :n].astype(np.float32)


def compress(stem: np.ndarray, threshold_db: float, ratio: float, sample_rate: int) -> np.ndarray:
    """Feed-forward RMS compressor on a stereo stem (linked channels, block-wise gain curve).

    ``threshold_db`` is relative to the stem's active RMS (:func:`active_rms`).
    """
    threshold_db += 20 * math.log10(max(active_rms(stem, sample_rate), EPS))
    block = max(1, int(COMPRESSOR_BLOCK_S * sample_rate))
    n = stem.shape[1]
    blocks = -(-n // block)
    padded = np.zeros((2, blocks * block), dtype=np.float32)
    padded[:, :n] = stem
    power = np.mean(np.square(padded.reshape(2, blocks, block)), axis=(0, 2))
    power = one_pole_lowpass(power, 1 / (2 * math.pi * COMPRESSOR_SMOOTH_S), 1 / COMPRESSOR_BLOCK_S)
    level_db = 10 * np.log10(np.maximum(power, EPS))
    over = np.maximum(level_db - threshold_db, 0.0)
    gain = db_to_gain(-over * (1 - 1 / ratio)).astype(np.float32)
    return stem * upsample_linear(gain, block, n)[None, :]


def soft_clip(stem: np.ndarray, drive: float) -> np.ndarray:
    """``tanh`` saturation at the given drive (peak normalised to 1 before driving)."""
    peak = np.float32(max(float(np.abs(stem).max()), EPS))
    return np.tanh(stem * np.float32(drive) / peak) * (peak / np.float32(math.tanh(drive)))


def active_rms(stem: np.ndarray, sample_rate: int) -> float:
    """RMS over the frames within ``ACTIVE_FLOOR_DB`` of the loudest one (voice while it sounds)."""
    block = max(1, int(ACTIVE_FRAME_S * sample_rate))
    usable = stem.shape[1] // block * block
    if usable == 0:
        return rms(stem)
    power = np.mean(np.square(stem[:, :usable].reshape(stem.shape[0], -1, block), dtype=np.float64), axis=(0, 2))
    keep = power > power.max() * db_to_gain(ACTIVE_FLOOR_DB) ** 2
    return float(np.sqrt(power[keep].mean())) if keep.any() else 0.0
