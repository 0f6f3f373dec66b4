"""Mono note renderers of the numpy accompaniment backend.

Additive inharmonic piano, drawbar organ with tremolo and key click, detuned-saw pads and
strings, Karplus-Strong guitar and plucked bass (strums, palm mutes), synth and fingered bass,
and lead instruments (flute with breath noise, brass/sax-like saw, synth lead) with delayed
vibrato. Each renders a list of notes into a mono float32 part.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .dsp import (
    BRIGHT_FACTOR,
    LN_1000,
    NYQUIST_GUARD,
    add_at,
    bandpass,
    choice,
    cycles_of,
    envelope,
    exp_decay,
    filter_sweep,
    lowpass_harmonics,
    midi_to_hz,
    noise,
    one_pole_lowpass,
    saw_coefficients,
    square_coefficients,
    time_axis,
    uniform,
    wavetable_osc,
)
from .arrangement import CENTS_PER_OCTAVE, LEAD_INSTRUMENTS, PALM_MUTE_NOTE_S, Note


#: Highest harmonic number any oscillator table holds.
MAX_HARMONICS = 512

DEFAULT_RELEASE_S = 0.12

# Piano (additive, inharmonic).
PIANO_PARTIALS = 10
PIANO_INHARMONICITY = (5e-5, 4e-4)
PIANO_BRIGHTNESS_EXPONENT = (0.9, 1.5)
PIANO_STRIKE_POSITION = (1 / 9, 1 / 6)
PIANO_DECAY_REF_S = 2.2  # decay time constant of the fundamental at PIANO_REF_HZ
PIANO_REF_HZ = 262.0
PIANO_DECAY_PITCH_EXPONENT = 0.6
PIANO_PARTIAL_DECAY = 0.45  # tau_k = tau_1 / (1 + PIANO_PARTIAL_DECAY * (k - 1))
PIANO_ATTACK_S = 0.002
PIANO_RELEASE_S = 0.2
PIANO_HAMMER_LEVEL = 0.08
PIANO_HAMMER_DECAY_S = 0.004

# Organ.
ORGAN_HARMONICS = (0.5, 1, 2, 3, 4, 6, 8)
ORGAN_DRAWBAR_RANGE = (0.0, 1.0)
ORGAN_TREMOLO_HZ = (5.5, 7.0)
ORGAN_TREMOLO_DEPTH = (0.0, 0.2)
ORGAN_ATTACK_S = 0.006
ORGAN_RELEASE_S = 0.06
ORGAN_CLICK_LEVEL = 0.05
ORGAN_CLICK_S = 0.003

# Pad / strings (detuned saws).
PAD_DETUNE_CENTS = (4.0, 14.0)
PAD_CUTOFF_HZ = (1200.0, 5000.0)
PAD_ATTACK_S = (0.15, 0.6)
PAD_RELEASE_S = 0.5
STRINGS_VIBRATO_HZ = (4.5, 6.0)
STRINGS_VIBRATO_CENTS = (6.0, 18.0)

# Karplus-Strong.
KS_DECAY_S = {"guitar": (1.5, 4.0), "pluck_bass": (1.0, 2.5)}
#: Cut-off of the (two-pole) low-pass on the pluck's noise excitation: brightness of the pick.
KS_EXCITATION_CUTOFF_HZ = {"guitar": (1500.0, 5000.0), "pluck_bass": (300.0, 1200.0)}
KS_PALM_MUTE_CUTOFF_RATIO = 0.5
KS_PALM_MUTE_DECAY_S = 0.12

# Bass synth / fingered bass.
BASS_CUTOFF_HZ = (300.0, 1500.0)
BASS_ATTACK_S = 0.004
BASS_FILTER_ENV_S = (0.05, 0.25)
BASS_WAVES = ("saw", "square")
FINGER_BASS_DECAY_S = (0.6, 1.5)
FINGER_BASS_HARMONICS = (1.0, 0.5, 0.25, 0.1)
#: The pluck "edge": a bright saw decaying this much faster than the body, at this level.
FINGER_BASS_EDGE_HZ = 2000.0
FINGER_BASS_EDGE_DECAY_RATIO = 1 / 8
FINGER_BASS_EDGE_LEVEL = 0.5

# Leads.
LEAD_VIBRATO_HZ = (4.5, 6.5)
LEAD_VIBRATO_CENTS = (10.0, 35.0)
LEAD_VIBRATO_DELAY_S = (0.1, 0.35)
FLUTE_HARMONICS = (1.0, 0.35, 0.12, 0.05, 0.02)
FLUTE_BREATH_LEVEL = (0.04, 0.12)
FLUTE_BREATH_BAND_HZ = (1200.0, 6000.0)
BRASS_CUTOFF_HZ = (700.0, 2500.0)
#: Brass brightens over ``BRASS_SWELL_ATTACKS`` attack times, to this fraction of the bright timbre.
BRASS_SWELL_ATTACKS = 2.0
BRASS_SWELL_DEPTH = 0.6
SYNTH_LEAD_SAW_MIX = 0.5  # synth lead: square plus this much saw
LEAD_ATTACK_S = (0.02, 0.08)

VIBRATO_RAMP_S = 0.25


@dataclass
class Instrument:
    """Base class of a note renderer: ``render(midi, n_hold) -> mono float32`` (with its release).

    Renders are cached per (pitch, length), so a repeated note costs one ``add``.

    Attributes:
        sample_rate: Sample rate in Hz.
        rng: Generator for per-note noise (breath, hammer, plucks).
        release_s: Release time after note-off.
    """

    sample_rate: int
    rng: np.random.Generator
    release_s: float = DEFAULT_RELEASE_S
    cache: dict[tuple[float, int], np.ndarray] = field(default_factory=dict, repr=False)

    def render(self, midi: float, n_hold: int) -> np.ndarray:
        """Cached note render (see :meth:`synth`)."""
        key = (round(midi, 3), n_hold)
        if key not in self.cache:
            self.cache[key] = self.synth(midi, n_hold, n_hold + int(self.release_s * self.sample_rate))
        return self.cache[key]

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note: ``n_total`` samples, note-off at ``n_hold``."""
        raise NotImplementedError


@dataclass
class Piano(Instrument):
    """Additive piano: inharmonic partials ``k f0 sqrt(1 + B k^2)`` with per-partial decays."""

    inharmonicity: float = 2e-4
    brightness: float = 1.2
    strike: float = 1 / 8
    release_s: float = PIANO_RELEASE_S

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note (see :meth:`Instrument.synth`)."""
        sr = self.sample_rate
        f0 = float(midi_to_hz(midi))
        tau1 = PIANO_DECAY_REF_S * (PIANO_REF_HZ / f0) ** PIANO_DECAY_PITCH_EXPONENT
        out = np.zeros(n_total, dtype=np.float32)
        index = np.arange(n_total, dtype=np.float32)
        for k in range(1, PIANO_PARTIALS + 1):
            fk = k * f0 * math.sqrt(1 + self.inharmonicity * k * k)
            if fk > NYQUIST_GUARD * sr / 2:
                break
            amp = abs(math.sin(math.pi * k * self.strike)) / k**self.brightness
            tau = tau1 / (1 + PIANO_PARTIAL_DECAY * (k - 1))
            m = min(n_total, int(tau * LN_1000 * sr))
            arg = index[:m] * np.float32(2 * math.pi * fk / sr)
            out[:m] += np.float32(amp) * np.exp(index[:m] * np.float32(-1.0 / (tau * sr))) * np.sin(arg)
        hammer_n = min(n_total, int(PIANO_HAMMER_DECAY_S * LN_1000 * sr))
        out[:hammer_n] += PIANO_HAMMER_LEVEL * noise(self.rng, hammer_n) * exp_decay(hammer_n, sr, PIANO_HAMMER_DECAY_S)
        return out * envelope(n_hold, n_total, sr, PIANO_ATTACK_S, self.release_s)


@dataclass
class Organ(Instrument):
    """Drawbar organ: fixed harmonic mix, tremolo, key click."""

    drawbars: tuple[float, ...] = (0.5, 1.0, 0.6, 0.3, 0.2, 0.1, 0.1)
    tremolo_hz: float = 6.0
    tremolo_depth: float = 0.1
    release_s: float = ORGAN_RELEASE_S

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note (see :meth:`Instrument.synth`)."""
        sr = self.sample_rate
        f_sub = float(midi_to_hz(midi)) * ORGAN_HARMONICS[0]
        coeffs = np.zeros(int(ORGAN_HARMONICS[-1] / ORGAN_HARMONICS[0]), dtype=np.complex128)
        for ratio, level in zip(ORGAN_HARMONICS, self.drawbars):
            coeffs[int(round(ratio / ORGAN_HARMONICS[0])) - 1] = -1j * level
        wave = wavetable_osc(coeffs, cycles_of(f_sub, n_total, sr), f_sub, sr)
        t = time_axis(n_total, sr)
        wave *= np.float32(1.0) - np.float32(self.tremolo_depth) * (
            np.float32(0.5) + np.float32(0.5) * np.sin(t * np.float32(2 * math.pi * self.tremolo_hz))
        )
        click_n = min(n_total, int(ORGAN_CLICK_S * sr))
        wave[:click_n] += ORGAN_CLICK_LEVEL * noise(self.rng, click_n)
        return wave * envelope(n_hold, n_total, sr, ORGAN_ATTACK_S, self.release_s)


@dataclass
class Pad(Instrument):
    """Three detuned, low-passed band-limited saws with a slow attack (optionally string vibrato)."""

    detune_cents: float = 8.0
    cutoff_hz: float = 2500.0
    attack_s: float = 0.3
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0
    release_s: float = PAD_RELEASE_S

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note (see :meth:`Instrument.synth`)."""
        sr = self.sample_rate
        f0 = float(midi_to_hz(midi))
        coeffs = lowpass_harmonics(saw_coefficients(MAX_HARMONICS), f0, self.cutoff_hz)
        out = np.zeros(n_total, dtype=np.float32)
        vibrato = None
        if self.vibrato_cents > 0:
            t = time_axis(n_total, sr)
            vibrato = np.exp2(
                np.float32(self.vibrato_cents / CENTS_PER_OCTAVE)
                * np.sin(t * np.float32(2 * math.pi * self.vibrato_hz))
            )
        detunes = (-self.detune_cents, 0.0, self.detune_cents)
        for i, detune in enumerate(detunes):
            f = f0 * 2 ** (detune / CENTS_PER_OCTAVE)
            freq = f if vibrato is None else f * vibrato
            cycles = cycles_of(freq, n_total, sr, phase=i / len(detunes))
            out += wavetable_osc(coeffs, cycles, f * 2 ** (self.vibrato_cents / CENTS_PER_OCTAVE), sr)
        return out * envelope(n_hold, n_total, sr, self.attack_s, self.release_s) / np.float32(len(detunes))


def karplus_strong(
    f0: float, n: int, sample_rate: int, rng: np.random.Generator, cutoff_hz: float, decay_s: float
) -> np.ndarray:
    """Plucked string: a noise burst recirculated through a delay line with a two-tap average.

    The loop ``y[i] = g (y[i-P] + y[i-P-1]) / 2`` is computed one period at a time (vectorised);
    its pitch ``sr / (P + 1/2)`` is then corrected to ``f0`` by linear-interpolation resampling.

    Args:
        f0: Target pitch in Hz.
        n: Output length in samples.
        sample_rate: Sample rate in Hz.
        rng: Generator of the excitation noise.
        cutoff_hz: Cut-off of the two-pole low-pass on the excitation noise (pick brightness).
        decay_s: Time for the loop to lose 60 dB (before the averaging filter's own losses).
    """
    period = max(2, int(round(sample_rate / f0 - 0.5)))
    ratio = f0 * (period + 0.5) / sample_rate  # read speed that corrects the pitch
    n_loop = int(math.ceil(n * ratio)) + 2
    y = np.zeros(n_loop + period + 1, dtype=np.float32)
    excitation = noise(rng, period)
    for _ in range(2):
        excitation = one_pole_lowpass(excitation, cutoff_hz, sample_rate)
    y[1 : period + 1] = excitation - excitation.mean()
    gain = np.float32(0.5 * math.exp(-LN_1000 * period / (decay_s * sample_rate)))
    for start in range(period + 1, len(y), period):
        stop = min(start + period, len(y))
        y[start:stop] = gain * (y[start - period : stop - period] + y[start - period - 1 : stop - period - 1])
    y = y[1:]
    positions = np.arange(n, dtype=np.float64) * ratio
    return np.interp(positions, np.arange(len(y)), y).astype(np.float32)


@dataclass
class Pluck(Instrument):
    """Karplus-Strong guitar or bass; notes of at most ``PALM_MUTE_NOTE_S`` are palm-muted."""

    cutoff_hz: float = 3000.0
    decay_s: float = 2.5

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note (see :meth:`Instrument.synth`)."""
        sr = self.sample_rate
        muted = n_hold <= int(PALM_MUTE_NOTE_S * sr)
        decay = KS_PALM_MUTE_DECAY_S if muted else self.decay_s
        cutoff = self.cutoff_hz * (KS_PALM_MUTE_CUTOFF_RATIO if muted else 1.0)
        wave = karplus_strong(float(midi_to_hz(midi)), n_total, sr, self.rng, cutoff, decay)
        return wave * envelope(n_hold, n_total, sr, 1.0 / sr, self.release_s)


@dataclass
class SynthBass(Instrument):
    """Band-limited saw/square whose brightness decays after the attack (filter envelope)."""

    wave: str = "saw"
    cutoff_hz: float = 700.0
    filter_env_s: float = 0.1

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note (see :meth:`Instrument.synth`)."""
        sr = self.sample_rate
        f0 = float(midi_to_hz(midi))
        base = saw_coefficients(MAX_HARMONICS) if self.wave == "saw" else square_coefficients(MAX_HARMONICS)
        wave = filter_sweep(
            base, f0, self.cutoff_hz, cycles_of(f0, n_total, sr), f0, sr, exp_decay(n_total, sr, self.filter_env_s)
        )
        return wave * envelope(n_hold, n_total, sr, BASS_ATTACK_S, self.release_s)


@dataclass
class FingerBass(Instrument):
    """Fingered bass: a few harmonics decaying at different rates (bright attack, round body)."""

    decay_s: float = 1.0

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note (see :meth:`Instrument.synth`)."""
        sr = self.sample_rate
        f0 = float(midi_to_hz(midi))
        cycles = cycles_of(f0, n_total, sr)
        body = wavetable_osc(-1j * np.array(FINGER_BASS_HARMONICS), cycles, f0, sr)
        edge = wavetable_osc(
            lowpass_harmonics(saw_coefficients(MAX_HARMONICS), f0, FINGER_BASS_EDGE_HZ), cycles, f0, sr
        )
        env = exp_decay(n_total, sr, self.decay_s)
        attack = exp_decay(n_total, sr, self.decay_s * FINGER_BASS_EDGE_DECAY_RATIO)
        return (body * env + np.float32(FINGER_BASS_EDGE_LEVEL) * edge * attack) * envelope(
            n_hold, n_total, sr, BASS_ATTACK_S, self.release_s
        )


@dataclass
class Lead(Instrument):
    """Melodic lead: flute (sine-ish + breath), brass (bright saw, brightness envelope) or synth."""

    kind: str = "flute"
    vibrato_hz: float = 5.0
    vibrato_cents: float = 20.0
    vibrato_delay_s: float = 0.2
    attack_s: float = 0.05
    cutoff_hz: float = 1500.0
    breath_level: float = 0.08

    def synth(self, midi: float, n_hold: int, n_total: int) -> np.ndarray:
        """Render one note (see :meth:`Instrument.synth`)."""
        sr = self.sample_rate
        f0 = float(midi_to_hz(midi))
        t = time_axis(n_total, sr)
        depth = np.clip((t - np.float32(self.vibrato_delay_s)) / np.float32(VIBRATO_RAMP_S), 0, 1) * np.float32(
            self.vibrato_cents
        )
        freq = f0 * np.exp2(
            depth * np.sin(t * np.float32(2 * math.pi * self.vibrato_hz)) / np.float32(CENTS_PER_OCTAVE)
        )
        cycles = cycles_of(freq, n_total, sr)
        f_max = f0 * 2 ** (self.vibrato_cents / CENTS_PER_OCTAVE)
        if self.kind == "flute":
            wave = wavetable_osc(-1j * np.array(FLUTE_HARMONICS), cycles, f_max, sr)
            breath = bandpass(noise(self.rng, n_total), *FLUTE_BREATH_BAND_HZ, sr)
            wave = wave + np.float32(self.breath_level) * breath
        elif self.kind == "brass":
            swell = np.minimum(t / np.float32(self.attack_s * BRASS_SWELL_ATTACKS), np.float32(1.0))
            wave = filter_sweep(
                saw_coefficients(MAX_HARMONICS),
                f0,
                self.cutoff_hz,
                cycles,
                f_max,
                sr,
                swell * np.float32(BRASS_SWELL_DEPTH),
            )
        else:
            base = square_coefficients(MAX_HARMONICS) + SYNTH_LEAD_SAW_MIX * saw_coefficients(MAX_HARMONICS)
            wave = wavetable_osc(lowpass_harmonics(base, f0, self.cutoff_hz * BRIGHT_FACTOR), cycles, f_max, sr)
        return wave * envelope(n_hold, n_total, sr, self.attack_s, self.release_s)


def make_instrument(name: str, rng: np.random.Generator, sample_rate: int) -> Instrument:
    """An instrument of the given name with randomly drawn timbre parameters."""
    if name == "piano":
        return Piano(
            sample_rate,
            rng,
            inharmonicity=uniform(rng, PIANO_INHARMONICITY),
            brightness=uniform(rng, PIANO_BRIGHTNESS_EXPONENT),
            strike=uniform(rng, PIANO_STRIKE_POSITION),
        )
    if name == "organ":
        drawbars = tuple(float(x) for x in rng.uniform(*ORGAN_DRAWBAR_RANGE, size=len(ORGAN_HARMONICS)))
        drawbars = (drawbars[0], 1.0) + drawbars[2:]
        return Organ(
            sample_rate,
            rng,
            drawbars=drawbars,
            tremolo_hz=uniform(rng, ORGAN_TREMOLO_HZ),
            tremolo_depth=uniform(rng, ORGAN_TREMOLO_DEPTH),
        )
    if name in ("pad", "strings"):
        strings = name == "strings"
        return Pad(
            sample_rate,
            rng,
            detune_cents=uniform(rng, PAD_DETUNE_CENTS),
            cutoff_hz=uniform(rng, PAD_CUTOFF_HZ),
            attack_s=uniform(rng, PAD_ATTACK_S),
            vibrato_hz=uniform(rng, STRINGS_VIBRATO_HZ) if strings else 0.0,
            vibrato_cents=uniform(rng, STRINGS_VIBRATO_CENTS) if strings else 0.0,
        )
    if name in ("guitar", "pluck_bass"):
        return Pluck(
            sample_rate,
            rng,
            cutoff_hz=uniform(rng, KS_EXCITATION_CUTOFF_HZ[name]),
            decay_s=uniform(rng, KS_DECAY_S[name]),
        )
    if name == "synth_bass":
        return SynthBass(
            sample_rate,
            rng,
            wave=choice(rng, BASS_WAVES),
            cutoff_hz=uniform(rng, BASS_CUTOFF_HZ),
            filter_env_s=uniform(rng, BASS_FILTER_ENV_S),
        )
    if name == "finger_bass":
        return FingerBass(sample_rate, rng, decay_s=uniform(rng, FINGER_BASS_DECAY_S))
    if name in LEAD_INSTRUMENTS:
        kind = {"flute": "flute", "brass": "brass", "synth_lead": "synth"}[name]
        return Lead(
            sample_rate,
            rng,
            kind=kind,
            vibrato_hz=uniform(rng, LEAD_VIBRATO_HZ),
            vibrato_cents=uniform(rng, LEAD_VIBRATO_CENTS),
            vibrato_delay_s=uniform(rng, LEAD_VIBRATO_DELAY_S),
            attack_s=uniform(rng, LEAD_ATTACK_S),
            cutoff_hz=uniform(rng, BRASS_CUTOFF_HZ),
            breath_level=uniform(rng, FLUTE_BREATH_LEVEL),
        )
    raise ValueError(f"unknown instrument {name!r}")


def render_notes(instrument: Instrument, notes: Iterable[Note], n: int) -> np.ndarray:
    """Mono render of a note list into ``n`` samples."""
    sr = instrument.sample_rate
    out = np.zeros(n, dtype=np.float32)
    for note in notes:
        start = int(round(note.start * sr))
        n_hold = max(1, int(round(note.duration * sr)))
        if start >= n or start + n_hold + instrument.release_s * sr < 0:
            continue
        add_at(out, instrument.render(note.midi, n_hold), start, note.velocity)
    return out
