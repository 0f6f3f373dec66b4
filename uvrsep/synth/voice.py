"""The numpy singer and speaker: a source-filter voice rendered in the STFT domain.

A band-limited Rosenberg glottal source with jitter, shimmer, drift and aspiration; four
formant resonators moving between phone targets (coarticulation) with per-singer scaling
(male/female/child); fricatives, bursts and breaths as shaped noise. Scores for singing
(melodies with syllables, melismas, portamento, scoops, vibrato, breaths) and for speech and
rap (syllables in breath groups, declining pitch with accents and final rises).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.signal

from .dsp import (
    SEMITONES_PER_OCTAVE,
    TABLE_SIZE,
    choice,
    cycles_of,
    db_to_gain,
    hz_to_midi,
    midi_to_hz,
    mipmapped_osc,
    noise,
    one_pole_lowpass,
    runs,
    smoothed_noise,
    uniform,
    upsample_linear,
)
from .arrangement import CENTS_PER_OCTAVE, CENTS_PER_SEMITONE, STEPS_PER_BEAT, Harmony, Note
from .instruments import MAX_HARMONICS, VIBRATO_RAMP_S


DEFAULT_SAMPLE_RATE = 44100

SINGING_PROBABILITY = 0.7
RAP_SHARE_OF_SPEECH = 0.4
SINGER_KINDS = ("male", "female", "child")
SINGER_WEIGHTS = (0.45, 0.45, 0.1)
#: Formant scale, singing range (MIDI), speaking F0 range (Hz) per singer kind.
SINGER_FORMANT_SCALE = {"male": 1.0, "female": 1.17, "child": 1.3}
SINGER_RANGE_MIDI = {"male": (45, 67), "female": (55, 79), "child": (60, 81)}
SPEECH_F0_HZ = {"male": (85.0, 155.0), "female": (165.0, 255.0), "child": (220.0, 300.0)}
SPEECH_F0_LIMITS_HZ = (80.0, 300.0)
SINGER_FORMANT_JITTER = 0.05
TESSITURA_SEMITONES = (10, 15)
#: Vowel formants F1-F4 (Hz, adult male; Peterson & Barney / Hillenbrand averages).
VOWELS: dict[str, tuple[float, float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0, 3400.0),
    "e": (530.0, 1840.0, 2480.0, 3500.0),
    "i": (270.0, 2290.0, 3010.0, 3700.0),
    "o": (570.0, 840.0, 2410.0, 3300.0),
    "u": (300.0, 870.0, 2240.0, 3300.0),
    "ae": (660.0, 1720.0, 2410.0, 3400.0),
    "uh": (640.0, 1190.0, 2390.0, 3400.0),
    "ih": (390.0, 1990.0, 2550.0, 3500.0),
    "er": (490.0, 1350.0, 1690.0, 3300.0),
    "oo": (440.0, 1020.0, 2240.0, 3300.0),
}
VOWEL_WEIGHTS = {"a": 3, "e": 2, "i": 2, "o": 2, "u": 1.5, "ae": 1, "uh": 1.5, "ih": 1.5, "er": 0.7, "oo": 0.8}
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "ai": ("a", "i"),
    "ei": ("e", "i"),
    "au": ("a", "u"),
    "oi": ("o", "i"),
    "ou": ("o", "u"),
}
DIPHTHONG_PROBABILITY = 0.15
FORMANT_BANDWIDTHS_HZ = (90.0, 110.0, 170.0, 250.0)
BANDWIDTH_SCALE_RANGE = (0.9, 1.6)
N_FORMANTS = 4
#: Brightness corrections of the cascade (see ``voice_shapes``).
VOICE_TILT_ORDER = 2.0
VOICE_TILT_HZ = 1000.0
HIGH_POLE_CORRECTION = 6.0
VOICE_F4_REFERENCE_HZ = 3400.0
VOICE_FLOOR_DB = -5.0
VOICE_FLOOR_HZ = 3500.0
VOICE_FLOOR_ORDER = 4
VOICE_LOWPASS_HZ = 9000.0
VOICE_HIGHPASS_HZ = 70.0
#: F1 is raised to at least this multiple of F0 (sopranos' formant tuning).
F1_TUNING_RATIO = 1.1
#: Frame of the voice STFT (s, rounded to a power of two in samples) and its overlap factor.
VOICE_FRAME_S = 0.023
VOICE_OVERLAP = 4
VOICE_BLOCK_FRAMES = 128
#: Control-array smoothing (frames) and coarticulation transition (s).
CONTROL_SMOOTH_FRAMES = 5
COARTICULATION_S = 0.05
COARTICULATION_MAX_FRACTION = 1 / 3  # of a vowel's duration, at each end


@dataclass(frozen=True)
class Consonant:
    """Acoustic recipe of one consonant.

    Attributes:
        duration_s: Total duration (closure included).
        noise_hz: Centre of the frication/burst noise spectrum (0: no noise).
        noise_octaves: Width (standard deviation, octaves) of the noise spectrum.
        noise_level: Frication amplitude relative to a vowel.
        closure_s: Silent (or voice-bar) closure before the noise (stops).
        voicing: Voicing amplitude during the consonant.
        aspiration: Aspiration amplitude (h-like noise through the formants).
        formants: Formant targets for sonorants (nasals, liquids, glides); ``None`` keeps the
            neighbouring vowels' formants.
    """

    duration_s: float
    noise_hz: float = 0.0
    noise_octaves: float = 1.0
    noise_level: float = 0.0
    closure_s: float = 0.0
    voicing: float = 0.0
    aspiration: float = 0.0
    formants: tuple[float, float, float, float] | None = None


CONSONANTS: dict[str, Consonant] = {
    "s": Consonant(0.10, 7000.0, 0.45, 0.55),
    "z": Consonant(0.08, 7000.0, 0.45, 0.3, voicing=0.4),
    "sh": Consonant(0.11, 3300.0, 0.45, 0.9),
    "f": Consonant(0.09, 5000.0, 1.3, 0.15),
    "v": Consonant(0.07, 5000.0, 1.3, 0.08, voicing=0.45),
    "th": Consonant(0.08, 6000.0, 1.4, 0.1),
    "h": Consonant(0.07, aspiration=0.35),
    "t": Consonant(0.075, 4500.0, 0.7, 0.5, closure_s=0.035, aspiration=0.2),
    "k": Consonant(0.08, 2500.0, 0.5, 0.45, closure_s=0.04, aspiration=0.2),
    "p": Consonant(0.075, 1200.0, 1.0, 0.35, closure_s=0.045, aspiration=0.2),
    "ch": Consonant(0.1, 3300.0, 0.45, 0.8, closure_s=0.035),
    "d": Consonant(0.05, 3800.0, 0.7, 0.2, closure_s=0.03, voicing=0.2),
    "b": Consonant(0.05, 1000.0, 1.0, 0.15, closure_s=0.035, voicing=0.2),
    "g": Consonant(0.055, 2300.0, 0.5, 0.2, closure_s=0.035, voicing=0.2),
    "m": Consonant(0.07, voicing=0.35, formants=(250.0, 1100.0, 2300.0, 3300.0)),
    "n": Consonant(0.065, voicing=0.35, formants=(250.0, 1600.0, 2600.0, 3300.0)),
    "l": Consonant(0.06, voicing=0.6, formants=(360.0, 1000.0, 2600.0, 3400.0)),
    "r": Consonant(0.06, voicing=0.6, formants=(420.0, 1200.0, 1600.0, 3300.0)),
    "w": Consonant(0.05, voicing=0.6, formants=(300.0, 700.0, 2200.0, 3300.0)),
    "y": Consonant(0.05, voicing=0.6, formants=(260.0, 2200.0, 3000.0, 3600.0)),
}
ONSETS = ("", "l", "m", "n", "s", "t", "k", "d", "b", "h", "w", "y", "r", "sh", "f", "g", "p", "v", "z", "ch", "th")
ONSET_WEIGHTS = (4, 2, 2, 2, 2, 2, 1.5, 1.5, 1.5, 1.2, 1.2, 0.8, 1.2, 0.8, 1, 0.8, 1, 0.6, 0.4, 0.5, 0.5)
CODAS = ("", "n", "m", "s", "t", "l", "r", "k", "z", "d")
CODA_WEIGHTS = (8, 2, 1, 1.2, 1.2, 0.8, 0.8, 0.6, 0.5, 0.6)
#: Breath (inhalation) before phrases: noise band, level, duration.
BREATH_CENTRE_HZ = 1500.0
BREATH_OCTAVES = 1.0
BREATH_LEVEL = (0.03, 0.1)
BREATH_S = (0.15, 0.35)
BREATH_PROBABILITY = 0.6
SILENCE = "_"
#: Scale of the STFT-domain frication noise: a level-1 noise of consonant ``s`` is then about
#: about 2 dB below a vowel (measured; ``s`` at its own level sits ~18 dB below vowels in RMS and
#: dominates above 4 kHz, as in real speech).
FRICATION_GAIN_DB = 36.0
BREATH = "breath"

# Glottal source.
OPEN_QUOTIENT = (0.45, 0.7)
GLOTTAL_OVERSAMPLING = 4  # analysis resolution of the pulse shape (x TABLE_SIZE)
SPEED_QUOTIENT = (0.7, 0.85)  # rising fraction of the open phase
JITTER_RANGE = (0.002, 0.008)
SHIMMER_DB = (0.3, 1.5)
DRIFT_CENTS = (3.0, 12.0)
DRIFT_SMOOTH_S = 0.4
JITTER_SMOOTH_S = 0.01
ASPIRATION_RANGE = (0.03, 0.2)  # breathiness (aspiration level while voiced)
ASPIRATION_CLOSED_FLOOR = 0.3
#: Singing expression.
VIBRATO_HZ = (4.5, 6.5)
VIBRATO_CENTS = (10.0, 70.0)
VIBRATO_DELAY_S = (0.12, 0.4)

VIBRATO_RATE_WOBBLE = 0.08
PORTAMENTO_S = (0.02, 0.08)
SCOOP_PROBABILITY = 0.3
SCOOP_CENTS = (-120.0, -30.0)
SCOOP_S = 0.08
MELISMA_PROBABILITY = 0.1

CONSONANT_RATE_SCALE = (0.8, 1.2)
MIN_VOWEL_S = 0.03
CLOSURE_MAX_FRACTION = 0.6  # of a stop consonant's (possibly trimmed) duration
VOICE_BAR_LEVEL = 0.5  # voicing during a voiced stop's closure, relative to its release
#: Speech prosody.
SYLLABLE_RATE_HZ = (3.0, 7.0)
SYLLABLE_DURATION_SPREAD = (0.6, 1.5)
WORD_SYLLABLES = (1, 3)
WORD_GAP_S = (0.0, 0.06)
BREATH_GROUP_S = (1.0, 3.2)
SPEECH_PAUSE_S = (0.2, 0.8)
SPEECH_FIRST_ONSET_S = (0.0, 0.6)
DECLINATION_SEMITONES = (2.0, 6.0)
ACCENT_PROBABILITY = 0.3
ACCENT_SEMITONES = (2.0, 5.0)
QUESTION_PROBABILITY = 0.2
QUESTION_RISE_SEMITONES = 4.0
QUESTION_RISE_S = 0.3
STRESS_PROBABILITY = 0.7  # of a word's first syllable
UNSTRESSED_LEVEL = (0.55, 0.85)
#: Rap: syllables per sixteenth step and notes in semitones around the talker's pitch.
RAP_STEPS_PER_SYLLABLE = (1, 2)
RAP_REST_PROBABILITY = 0.12
#: Extra voices.
HARMONY_PROBABILITY = 0.2
DOUBLE_PROBABILITY = 0.15
HARMONY_GAIN_DB = (-10.0, -5.0)
HARMONY_DELAY_S = (0.0, 0.02)
HARMONY_PAN = (0.25, 0.5)
HAAS_DELAY_S = (0.008, 0.02)
HAAS_GAIN_DB = (-22.0, -14.0)
LEAD_VOICE_PAN = 0.08

MELODY_UNIT_WEIGHTS = {"voice": (4, 5, 1.5, 2, 0.5, 0.2), "lead": (4, 3, 1, 1.5, 0.5, 0.3)}

EQ_FLOOR_HZ = 20.0


@dataclass(frozen=True)
class Singer:
    """Per-voice source and filter parameters.

    Attributes:
        kind: ``"male"``, ``"female"`` or ``"child"``.
        formant_scale: Multiplier of the (male) vowel formant frequencies.
        bandwidth_scale: Multiplier of the formant bandwidths.
        open_quotient: Open fraction of the glottal cycle.
        speed_quotient: Rising fraction of the open phase.
        jitter: Relative F0 perturbation (standard deviation).
        shimmer_db: Amplitude perturbation (standard deviation, dB).
        drift_cents: Slow pitch wander (standard deviation, cents).
        aspiration: Breathiness (aspiration noise level while voiced).
        vibrato_hz: Vibrato rate.
        vibrato_cents: Vibrato depth (0: none).
        vibrato_delay_s: Vibrato onset delay after a note starts.
        portamento_s: Time constant of glides between notes.
        consonant_scale: Consonant duration multiplier.
    """

    kind: str = "male"
    formant_scale: float = 1.0
    bandwidth_scale: float = 1.0
    open_quotient: float = 0.6
    speed_quotient: float = 0.7
    jitter: float = 0.0
    shimmer_db: float = 0.0
    drift_cents: float = 0.0
    aspiration: float = 0.05
    vibrato_hz: float = 5.5
    vibrato_cents: float = 0.0
    vibrato_delay_s: float = 0.25
    portamento_s: float = 0.04
    consonant_scale: float = 1.0


def sample_singer(rng: np.random.Generator, kind: str | None = None) -> Singer:
    """A random singer (of the given kind or a random one)."""
    kind = kind or choice(rng, SINGER_KINDS, SINGER_WEIGHTS)
    return Singer(
        kind=kind,
        formant_scale=SINGER_FORMANT_SCALE[kind] * (1 + float(rng.normal(0, SINGER_FORMANT_JITTER))),
        bandwidth_scale=uniform(rng, BANDWIDTH_SCALE_RANGE),
        open_quotient=uniform(rng, OPEN_QUOTIENT),
        speed_quotient=uniform(rng, SPEED_QUOTIENT),
        jitter=uniform(rng, JITTER_RANGE),
        shimmer_db=uniform(rng, SHIMMER_DB),
        drift_cents=uniform(rng, DRIFT_CENTS),
        aspiration=uniform(rng, ASPIRATION_RANGE),
        vibrato_hz=uniform(rng, VIBRATO_HZ),
        vibrato_cents=uniform(rng, VIBRATO_CENTS),
        vibrato_delay_s=uniform(rng, VIBRATO_DELAY_S),
        portamento_s=uniform(rng, PORTAMENTO_S),
        consonant_scale=uniform(rng, CONSONANT_RATE_SCALE),
    )


@dataclass(frozen=True)
class Phone:
    """A segment of the voice: a vowel/diphthong, a consonant, ``BREATH`` or ``SILENCE``.

    Attributes:
        start: Start time (s).
        end: End time (s).
        symbol: Key of ``VOWELS``, ``DIPHTHONGS``, ``CONSONANTS``, or ``BREATH``/``SILENCE``.
        level: Amplitude (note velocity, stress).
    """

    start: float
    end: float
    symbol: str
    level: float = 1.0


@dataclass
class VoiceScore:
    """What a voice performs: phones plus pitch control curves at the STFT frame rate.

    Attributes:
        phones: Time-ordered phones.
        semitones: MIDI pitch per frame (the target before vibrato/jitter).
        vibrato_cents: Vibrato depth per frame.
    """

    phones: list[Phone]
    semitones: np.ndarray
    vibrato_cents: np.ndarray


def voice_frame(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` of the voice STFT at a sample rate."""
    n_fft = 2 ** int(round(math.log2(VOICE_FRAME_S * sample_rate)))
    return n_fft, n_fft // VOICE_OVERLAP


def frames_for(n: int, hop: int) -> int:
    """Number of control frames (one per hop, centred) covering ``n`` samples."""
    return n // hop + 2


def random_syllable(rng: np.random.Generator) -> tuple[str, str, str]:
    """``(onset, vowel, coda)`` of a random syllable."""
    onset = choice(rng, ONSETS, ONSET_WEIGHTS)
    if rng.random() < DIPHTHONG_PROBABILITY:
        vowel = choice(rng, tuple(DIPHTHONGS))
    else:
        vowel = choice(rng, tuple(VOWEL_WEIGHTS), tuple(VOWEL_WEIGHTS.values()))
    return onset, vowel, choice(rng, CODAS, CODA_WEIGHTS)


class PhoneWriter:
    """Appends syllables to a phone list, keeping phones ordered and non-overlapping."""

    def __init__(self, consonant_scale: float) -> None:
        self.phones: list[Phone] = []
        self.scale = consonant_scale

    def consonant_s(self, symbol: str) -> float:
        """Duration of a consonant for this voice."""
        return CONSONANTS[symbol].duration_s * self.scale

    def add(self, start: float, end: float, symbol: str, level: float) -> None:
        """Append a phone, trimming the previous one if it overlaps (keeping ``MIN_VOWEL_S``)."""
        if self.phones and self.phones[-1].end > start:
            last = self.phones[-1]
            start = max(start, last.start + MIN_VOWEL_S)
            self.phones[-1] = Phone(last.start, start, last.symbol, last.level)
        if end > start:
            self.phones.append(Phone(start, end, symbol, level))

    def syllable(
        self, start: float, end: float, syllable: tuple[str, str, str], level: float, onset_before: bool
    ) -> None:
        """A syllable whose vowel starts at ``start`` (onset sung before it) or whose onset starts there."""
        onset, vowel, coda = syllable
        onset_s = self.consonant_s(onset) if onset else 0.0
        coda_s = self.consonant_s(coda) if coda else 0.0
        if not onset_before:
            start += onset_s
        coda_s = min(coda_s, max(0.0, end - start - MIN_VOWEL_S))
        if onset:
            self.add(start - onset_s, start, onset, level)
        self.add(start, end - coda_s, vowel, level)
        if coda and coda_s > 0:
            self.add(end - coda_s, end, coda, level)

    def breath(self, rng: np.random.Generator, phrase_start: float) -> None:
        """An inhalation just before a phrase when there is room for it."""
        length = uniform(rng, BREATH_S)
        gap_start = self.phones[-1].end if self.phones else -math.inf
        begin = phrase_start - length - CONSONANTS["t"].duration_s
        if begin > gap_start and rng.random() < BREATH_PROBABILITY:
            self.add(begin, begin + length, BREATH, uniform(rng, BREATH_LEVEL))


def hold_fill(values: np.ndarray) -> np.ndarray:
    """Replace NaNs by the previous value (or the next one at the start)."""
    valid = ~np.isnan(values)
    if not valid.any():
        return np.zeros_like(values)
    index = np.where(valid, np.arange(len(values)), 0)
    np.maximum.accumulate(index, out=index)
    out = values[index]
    first = int(np.argmax(valid))
    out[:first] = values[first]
    return out


def sung_score(
    rng: np.random.Generator, notes: Sequence[tuple[Note, bool]], singer: Singer, n: int, sample_rate: int
) -> VoiceScore:
    """Lyrics, pitch (portamento, scoops) and vibrato of a sung melody."""
    _, hop = voice_frame(sample_rate)
    frames = frames_for(n, hop)
    frame_rate = sample_rate / hop
    semis = np.full(frames, np.nan, dtype=np.float32)
    vib = np.zeros(frames, dtype=np.float32)
    writer = PhoneWriter(singer.consonant_scale)
    syllable = random_syllable(rng)
    for note, phrase_start in notes:
        if phrase_start:
            writer.breath(rng, note.start)
        melisma = not phrase_start and rng.random() < MELISMA_PROBABILITY
        if melisma:
            writer.add(note.start, note.start + note.duration, syllable[1], note.velocity)
        else:
            syllable = random_syllable(rng)
            writer.syllable(note.start, note.start + note.duration, syllable, note.velocity, onset_before=True)
        a = max(0, int(note.start * frame_rate))
        b = min(frames, int((note.start + note.duration) * frame_rate) + 1)
        if b <= a:
            continue
        semis[a:b] = note.midi
        if not melisma and rng.random() < SCOOP_PROBABILITY:
            k = min(b - a, int(SCOOP_S * frame_rate) + 1)
            semis[a : a + k] += np.linspace(uniform(rng, SCOOP_CENTS) / CENTS_PER_SEMITONE, 0.0, k, dtype=np.float32)
        t = np.arange(b - a, dtype=np.float32) / np.float32(frame_rate)
        vib[a:b] = singer.vibrato_cents * np.clip((t - singer.vibrato_delay_s) / VIBRATO_RAMP_S, 0.0, 1.0)
    semis = hold_fill(semis)
    semis = one_pole_lowpass(semis - semis[0], 1 / (2 * math.pi * singer.portamento_s), frame_rate) + semis[0]
    return VoiceScore(writer.phones, semis, vib)


def spoken_score(
    rng: np.random.Generator, harmony: Harmony, singer: Singer, seconds: float, n: int, sample_rate: int, rap: bool
) -> VoiceScore:
    """Breath groups of syllables with a declining, accented pitch contour (rap: on the grid)."""
    _, hop = voice_frame(sample_rate)
    frames = frames_for(n, hop)
    frame_rate = sample_rate / hop
    semis = np.full(frames, np.nan, dtype=np.float32)
    writer = PhoneWriter(singer.consonant_scale)
    f_lo, f_hi = SPEECH_F0_HZ[singer.kind]
    base = hz_to_midi(uniform(rng, (f_lo, f_hi)))
    rate = uniform(rng, SYLLABLE_RATE_HZ)
    step_s = harmony.beat / STEPS_PER_BEAT
    t = uniform(rng, SPEECH_FIRST_ONSET_S)
    if rap:
        t = harmony.offset + step_s * math.ceil((t - harmony.offset) / step_s)
    while t < seconds:
        group_end = t + uniform(rng, BREATH_GROUP_S)
        writer.breath(rng, t)
        top = base + uniform(rng, DECLINATION_SEMITONES) / 2
        decline = uniform(rng, DECLINATION_SEMITONES)
        group_start = t
        syllables: list[tuple[float, float]] = []
        while t < group_end:
            for i in range(int(rng.integers(WORD_SYLLABLES[0], WORD_SYLLABLES[1] + 1))):
                if rap:
                    length = step_s * int(rng.integers(RAP_STEPS_PER_SYLLABLE[0], RAP_STEPS_PER_SYLLABLE[1] + 1))
                    if rng.random() < RAP_REST_PROBABILITY:
                        t += length
                        continue
                else:
                    length = uniform(rng, SYLLABLE_DURATION_SPREAD) / rate
                stressed = i == 0 and rng.random() < STRESS_PROBABILITY
                level = 1.0 if stressed else uniform(rng, UNSTRESSED_LEVEL)
                writer.syllable(t, t + length, random_syllable(rng), level, onset_before=rap)
                syllables.append((t, length))
                t += length
            if not rap:
                t += uniform(rng, WORD_GAP_S)
        end = t
        a, b = int(group_start * frame_rate), min(frames, int(end * frame_rate) + 1)
        if b > a:
            progress = np.linspace(0.0, 1.0, b - a, dtype=np.float32)
            semis[a:b] = top - decline * progress
            for s_start, s_len in syllables:
                if rng.random() < ACCENT_PROBABILITY:
                    i0, i1 = int(s_start * frame_rate), min(frames, int((s_start + s_len) * frame_rate) + 1)
                    if i1 > i0:
                        semis[i0:i1] += uniform(rng, ACCENT_SEMITONES) * np.sin(
                            np.linspace(0, math.pi, i1 - i0, dtype=np.float32)
                        )
            if rng.random() < QUESTION_PROBABILITY:
                k = min(b - a, int(QUESTION_RISE_S * frame_rate))
                semis[b - k : b] += np.linspace(0.0, QUESTION_RISE_SEMITONES, k, dtype=np.float32)
        t = end + uniform(rng, SPEECH_PAUSE_S)
        if rap:
            t = harmony.offset + step_s * math.ceil((t - harmony.offset) / step_s)
    semis = np.clip(hold_fill(semis), *(hz_to_midi(f) for f in SPEECH_F0_LIMITS_HZ))
    semis = one_pole_lowpass(semis - semis[0], 1 / (2 * math.pi * PORTAMENTO_S[0]), frame_rate) + semis[0]
    return VoiceScore(writer.phones, semis, np.zeros(frames, dtype=np.float32))


def glottal_coefficients(open_quotient: float, speed_quotient: float, n_harmonics: int) -> np.ndarray:
    """Harmonics of the Rosenberg glottal-flow derivative (phase 0..1 -> pulse).

    The flow rises as ``(1 - cos)/2`` over the opening phase, falls as a quarter cosine over the
    closing phase and is zero while closed; its derivative (flow x lip radiation) is what we use.
    """
    m = TABLE_SIZE * GLOTTAL_OVERSAMPLING
    phi = np.arange(m) / m
    rise = open_quotient * speed_quotient
    fall = open_quotient - rise
    flow = np.where(
        phi < rise,
        0.5 * (1 - np.cos(np.pi * phi / rise)),
        np.where(phi < open_quotient, np.cos(0.5 * np.pi * (phi - rise) / fall), 0.0),
    )
    derivative = np.gradient(flow) * m
    spectrum = np.fft.rfft(derivative) / (m / 2)
    coeffs = spectrum[1 : n_harmonics + 1]
    return coeffs / np.abs(coeffs).max()


def formant_tracks(phones: Sequence[Phone], singer: Singer, frames: int, frame_rate: float) -> np.ndarray:
    """Formant frequencies ``(frames, 4)``: phone targets, linearly interpolated (coarticulation)."""
    times: list[float] = []
    values: list[tuple[float, ...]] = []
    for p in phones:
        if p.symbol in VOWELS or p.symbol in DIPHTHONGS:
            first, last = DIPHTHONGS.get(p.symbol, (p.symbol, p.symbol))
            edge = min(COARTICULATION_S, (p.end - p.start) * COARTICULATION_MAX_FRACTION)
            times += [p.start + edge, p.end - edge]
            values += [VOWELS[first], VOWELS[last]]
        elif p.symbol in CONSONANTS and CONSONANTS[p.symbol].formants is not None:
            times.append(0.5 * (p.start + p.end))
            values.append(CONSONANTS[p.symbol].formants)
    if not times:
        times, values = [0.0], [VOWELS["a"]]
    frame_t = np.arange(frames) / frame_rate
    order = np.argsort(times, kind="stable")
    t = np.asarray(times)[order]
    v = np.asarray(values)[order]
    tracks = np.stack([np.interp(frame_t, t, v[:, k]) for k in range(N_FORMANTS)], axis=1)
    return (tracks * singer.formant_scale).astype(np.float32)


@dataclass
class VoiceControls:
    """Per-frame control arrays of a voice (see :func:`voice_controls`)."""

    voicing: np.ndarray
    aspiration: np.ndarray
    frication: np.ndarray
    noise_kind: np.ndarray
    formants: np.ndarray


NOISE_KINDS = tuple(s for s, c in CONSONANTS.items() if c.noise_level > 0) + (BREATH,)


def voice_controls(phones: Sequence[Phone], singer: Singer, frames: int, frame_rate: float) -> VoiceControls:
    """Paint voicing/aspiration/frication amplitudes and formants from the phones."""
    voicing = np.zeros(frames, dtype=np.float32)
    aspiration = np.zeros(frames, dtype=np.float32)
    frication = np.zeros(frames, dtype=np.float32)
    kind = np.zeros(frames, dtype=np.intp)

    def span(a: float, b: float) -> slice:
        return slice(max(0, int(round(a * frame_rate))), max(0, min(frames, int(round(b * frame_rate)))))

    for p in phones:
        whole = span(p.start, p.end)
        if p.symbol == BREATH:
            frication[whole] = p.level
            kind[whole] = NOISE_KINDS.index(BREATH)
        elif p.symbol in CONSONANTS:
            c = CONSONANTS[p.symbol]
            closure_end = p.start + min(c.closure_s * singer.consonant_scale, CLOSURE_MAX_FRACTION * (p.end - p.start))
            voicing[whole] = c.voicing * p.level
            if c.closure_s > 0:
                voicing[span(p.start, closure_end)] = c.voicing * p.level * VOICE_BAR_LEVEL
            release = span(closure_end, p.end)
            aspiration[release] = c.aspiration * p.level
            if c.noise_level > 0:
                frication[release] = c.noise_level * p.level
                kind[release] = NOISE_KINDS.index(p.symbol)
        elif p.symbol != SILENCE:
            voicing[whole] = p.level
    kernel = np.hanning(CONTROL_SMOOTH_FRAMES + 2)[1:-1].astype(np.float32)
    kernel /= kernel.sum()
    smooth = [np.convolve(x, kernel, mode="same").astype(np.float32) for x in (voicing, aspiration, frication)]
    return VoiceControls(smooth[0], smooth[1], smooth[2], kind, formant_tracks(phones, singer, frames, frame_rate))


def noise_shapes(freqs: np.ndarray, scale: float) -> np.ndarray:
    """Magnitude spectra ``(len(NOISE_KINDS), bins)`` of the consonant/breath noises."""
    logf = np.log2(np.maximum(freqs, EQ_FLOOR_HZ))
    shapes = []
    for name in NOISE_KINDS:
        centre, width = (
            (BREATH_CENTRE_HZ, BREATH_OCTAVES)
            if name == BREATH
            else (CONSONANTS[name].noise_hz, CONSONANTS[name].noise_octaves)
        )
        shapes.append(np.exp(-0.5 * ((logf - math.log2(centre * math.sqrt(scale))) / width) ** 2))
    return np.asarray(shapes, dtype=np.float32)


def voice_shapes(freqs: np.ndarray, singer: Singer) -> tuple[np.ndarray, np.ndarray]:
    """Frame-independent parts of the voice envelope: ``(gain, floor)`` per frequency bin.

    The four-formant cascade alone is far too dull above 2 kHz (its skirts fall as ``f^-8``,
    whereas the higher formants of a real vocal tract keep the transfer function roughly
    level). ``gain`` compensates: a tilt of order ``VOICE_TILT_ORDER`` above ``VOICE_TILT_HZ``
    (the missing poles' gain below their frequencies), ``f^HIGH_POLE_CORRECTION`` above the
    singer's F4 region, a low-pass at ``VOICE_LOWPASS_HZ`` and a high-pass at
    ``VOICE_HIGHPASS_HZ`` (as any vocal chain). ``floor`` is an added high-frequency floor
    (``VOICE_FLOOR_DB`` re DC above ``VOICE_FLOOR_HZ``) standing for F5 and above. The result
    matches the relative formant amplitudes of measured vowels within a few dB and gives
    harmonics at 5-8 kHz about 45-55 dB below the F1 peak.
    """
    f = freqs.astype(np.float64)
    f4 = VOICE_F4_REFERENCE_HZ * singer.formant_scale
    band = (1 + (f / VOICE_TILT_HZ) ** 2) ** (VOICE_TILT_ORDER / 2) * np.maximum(f / f4, 1.0) ** HIGH_POLE_CORRECTION
    edges = f**2 / (f**2 + VOICE_HIGHPASS_HZ**2) / (1 + (f / VOICE_LOWPASS_HZ) ** 2)
    rise = (f / (VOICE_FLOOR_HZ * singer.formant_scale)) ** VOICE_FLOOR_ORDER
    floor = float(db_to_gain(VOICE_FLOOR_DB)) * rise / (1 + rise)
    return (band * edges).astype(np.float32), (floor * edges).astype(np.float32)


def formant_envelope(
    formants: np.ndarray, bandwidths: np.ndarray, freqs: np.ndarray, gain: np.ndarray, floor: np.ndarray
) -> np.ndarray:
    """Voice envelope ``(frames, bins)``: a four-formant cascade times ``gain`` plus ``floor``.

    Each resonator is ``F^2 / sqrt((F^2 - f^2)^2 + (B f)^2)`` (unit gain at DC); the product of
    their squared inverses is expanded as ``1 + a (a (f^4 + B^2 f^2) - 2 f^2)`` with
    ``a = 1 / F^2`` (few array passes, one square root). See :func:`voice_shapes`.
    """
    f = freqs.astype(np.float32)
    u = f * f
    twice_u = np.float32(2.0) * u
    inverse = np.ones((formants.shape[0], len(freqs)), dtype=np.float32)
    for k in range(N_FORMANTS):
        a = np.float32(1.0) / np.square(formants[:, k : k + 1].astype(np.float32))
        term = a * (u * u + np.float32(bandwidths[k] ** 2) * u)[None, :]
        term -= twice_u
        term *= a
        term += np.float32(1.0)
        inverse *= term
    np.sqrt(inverse, out=inverse)
    env = gain / inverse
    env += floor
    return env


def filter_voice(
    source: np.ndarray,
    ctl: VoiceControls,
    f0_frames: np.ndarray,
    singer: Singer,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Formant filtering and frication of a voice source in the STFT domain.

    Hann analysis and synthesis windows, ``VOICE_OVERLAP``-fold overlap; frame ``m`` is centred
    on sample ``m * hop``. Only active frames are transformed, in contiguous blocks of at most
    ``VOICE_BLOCK_FRAMES`` (cache-sized).
    """
    n = len(source)
    n_fft, hop = voice_frame(sample_rate)
    frames = len(ctl.voicing)
    half = n_fft // 2
    padded = np.zeros((frames - 1) * hop + n_fft, dtype=np.float32)
    padded[half : half + n] = source[: len(padded) - half]
    out = np.zeros_like(padded)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    norm = np.float32((window**2).sum() / hop)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate).astype(np.float32)
    shapes = noise_shapes(freqs, singer.formant_scale) * np.float32(db_to_gain(FRICATION_GAIN_DB))
    gain, floor = voice_shapes(freqs, singer)
    bandwidths = np.asarray(FORMANT_BANDWIDTHS_HZ) * singer.bandwidth_scale
    formants = ctl.formants.copy()
    formants[:, 0] = np.maximum(formants[:, 0], F1_TUNING_RATIO * f0_frames)
    active = (ctl.voicing + ctl.aspiration + ctl.frication) > 0
    active = np.convolve(active, np.ones(2 * VOICE_OVERLAP + 1), mode="same") > 0
    for a, b, on in runs(active.astype(np.intp)):
        for m0 in range(a, b, VOICE_BLOCK_FRAMES) if on else ():
            m1 = min(b, m0 + VOICE_BLOCK_FRAMES)
            view = np.lib.stride_tricks.sliding_window_view(padded[m0 * hop : (m1 - 1) * hop + n_fft], n_fft)[::hop]
            spec = scipy.fft.rfft(view * window, axis=1)
            spec *= formant_envelope(formants[m0:m1], bandwidths, freqs, gain, floor)
            fric = ctl.frication[m0:m1]
            noisy = np.flatnonzero(fric > 0)
            if noisy.size:
                shape = shapes[ctl.noise_kind[m0:m1][noisy]] * fric[noisy, None]
                gauss = rng.standard_normal((2,) + shape.shape, dtype=np.float32)
                spec[noisy] += shape * gauss[0] + 1j * (shape * gauss[1])
            frames_td = scipy.fft.irfft(spec, n_fft, axis=1) * window
            count = m1 - m0
            for j in range(VOICE_OVERLAP):
                start = m0 * hop + j * hop
                out[start : start + count * hop] += frames_td[:, j * hop : (j + 1) * hop].reshape(-1)
    return out[half : half + n] / norm


def render_voice(score: VoiceScore, singer: Singer, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Source-filter synthesis of a voice score into ``n`` mono samples.

    Source: band-limited Rosenberg pulse derivative at ``F0 * vibrato * jitter * drift`` (all
    computed at the control rate, then interpolated), times voicing and shimmer, plus
    aspiration noise (stronger in the open phase). Filter: :func:`filter_voice`.
    """
    _, hop = voice_frame(sample_rate)
    frames = frames_for(n, hop)
    frame_rate = sample_rate / hop
    ctl = voice_controls(score.phones, singer, frames, frame_rate)
    if not ((ctl.voicing + ctl.aspiration + ctl.frication) > 0).any():
        return np.zeros(n, dtype=np.float32)
    semis = score.semitones.astype(np.float32).copy()
    semis += np.float32(singer.drift_cents / CENTS_PER_SEMITONE) * smoothed_noise(
        rng, frames, frame_rate, DRIFT_SMOOTH_S
    )
    semis += np.float32(singer.jitter * SEMITONES_PER_OCTAVE / math.log(2)) * smoothed_noise(
        rng, frames, frame_rate, JITTER_SMOOTH_S
    )
    f0_frames = midi_to_hz(semis).astype(np.float32)
    if singer.vibrato_cents > 0 and score.vibrato_cents.any():
        rate = singer.vibrato_hz * (1 + VIBRATO_RATE_WOBBLE * smoothed_noise(rng, frames, frame_rate, DRIFT_SMOOTH_S))
        phase = np.float32(2 * math.pi) * cycles_of(rate, frames, frame_rate)
        f0_frames = f0_frames * np.exp2(score.vibrato_cents * np.sin(phase) / np.float32(CENTS_PER_OCTAVE))
    f0 = upsample_linear(f0_frames, hop, n)
    cycles = cycles_of(f0, n, sample_rate)
    coeffs = glottal_coefficients(singer.open_quotient, singer.speed_quotient, MAX_HARMONICS)
    voicing = ctl.voicing * db_to_gain(
        np.float32(singer.shimmer_db) * smoothed_noise(rng, frames, frame_rate, JITTER_SMOOTH_S)
    ).astype(np.float32)
    silent = (voicing[:-1] <= 0) & (voicing[1:] <= 0)
    source = mipmapped_osc(coeffs, cycles, f0_frames, hop, sample_rate, silent)
    source *= upsample_linear(voicing, hop, n)
    breath_gate = np.where(
        cycles < np.float32(singer.open_quotient), np.float32(1.0), np.float32(ASPIRATION_CLOSED_FLOOR)
    )
    source += (
        noise(rng, n)
        * upsample_linear(ctl.aspiration + np.float32(singer.aspiration) * ctl.voicing, hop, n)
        * breath_gate
    )
    return filter_voice(source, ctl, f0_frames, singer, sample_rate, rng)


def sing_note(
    midi: float,
    vowel: str,
    seconds: float,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    singer: Singer | None = None,
    seed: int = 0,
) -> np.ndarray:
    """A single sustained sung vowel (for tests and listening): steady pitch, no vibrato by default."""
    singer = singer or Singer()
    n = int(seconds * sample_rate)
    _, hop = voice_frame(sample_rate)
    frames = frames_for(n, hop)
    score = VoiceScore(
        [Phone(0.0, seconds, vowel)],
        np.full(frames, midi, dtype=np.float32),
        np.full(frames, singer.vibrato_cents, dtype=np.float32),
    )
    return render_voice(score, singer, n, sample_rate, np.random.default_rng(seed))
