#!/usr/bin/env python3
"""Seeded, procedural vocal/accompaniment training set built from musical components.

    python scripts/make_dataset.py OUT --tracks 200 --test-tracks 20 --seconds 20 --seed 0 \\
        --jobs 16 [--sample-rate 44100] [--subtype FLOAT|PCM_16] [--instrumental-fraction 0.1]

writes MUSDB-style track folders ``OUT/train/track_0000/{mixture,vocals,accompaniment}.wav`` and
``OUT/test/track_0000/...`` (stereo; float32 WAV by default, so that ``mixture == vocals +
accompaniment`` exactly) and ``OUT/recipe.json`` (arguments, generator version, backends and the
musical facts of every track). Everything is pure numpy/scipy; no data files, no network. Track
``i`` of a split is seeded from ``SeedSequence(seed, spawn_key=(split, i))``: the same ``--seed``
gives byte-identical files whatever ``--jobs`` is, and the test split (split 1) draws from a
stream disjoint from the training split (split 0).

Recipe of one track (every number is a named constant below)
-----------------------------------------------------------
*Harmony*: a random tonic and mode (major/natural minor), tempo 70-160 BPM, a four-chord
progression from a small set of common ones (I-V-vi-IV, vi-IV-I-V, i-VI-III-VII, ...), one chord
per bar (two per bar at slow tempi, one per two bars at fast ones); the excerpt starts at a
random point of the bar.

*Accompaniment* (``accompaniment.wav``), parts panned with constant-power panning and random
gains:

- drums (absent in ~15 % of tracks; sometimes they enter after an intro): kick = sine with an
  exponential pitch sweep plus a click, soft-saturated; snare = two decaying tones plus band-passed
  noise (or a hand clap of noise bursts); hi-hats/ride/crash = band-passed noise and 808-style
  metallic square clusters; toms = swept sines. Sixteen-step patterns (rock, pop, four on the
  floor, half time, hip-hop with swing, shuffle) with random kicks, ghost notes, open hats,
  fills at phrase ends and a crash after them; every hit is humanised in time and velocity and
  drawn from several "round-robin" variants;
- bass following the chord roots (roots, eighths, root-fifth, syncopated, walking lines) played
  by a band-limited saw/square with a filter-brightness envelope, a Karplus-Strong pluck or a
  fingered (decaying harmonic) bass;
- one or two chord instruments among: additive piano (inharmonic partials, per-partial decays,
  hammer strike position, hammer noise), drawbar organ with tremolo and key click, string/synth
  pad (three detuned band-limited saws, slow attack, vibrato) and Karplus-Strong guitar (strums
  with per-string delays, down/up patterns, palm mutes, or arpeggios); voicings follow the
  nearest-inversion voice leading; comping rhythms are block, stabs, arpeggios or sustained;
- in ~55 % of tracks a lead/counter-melody instrument (flute with breath noise, brass/sax-like
  bright saw with a brightness envelope, synth lead) with delayed vibrato, playing phrases drawn
  by the same melody generator as the singer (melodic instruments are not voices);
- a bus with random EQ (tilt and shelves), optional convolution reverb, RMS compression and
  tanh soft clipping.

*Voice* (``vocals.wav``; silent in ``--instrumental-fraction`` of the tracks): a source-filter
voice rendered in the STFT domain. The source is a band-limited Rosenberg glottal-pulse
derivative (mip-mapped wavetable) with jitter, shimmer, drift and aspiration noise gated by the
open phase; the filter is a cascade of four formant resonators whose frequencies move between
phone targets (coarticulation), with per-singer formant scaling (male/female/child) and F1
tuned above F0 on high notes, plus a fixed brightness correction standing for the higher
formants (vowel spectra then match measured formant amplitudes within a few dB); fricatives,
bursts and breaths are shaped noise spectra. Two kinds:

- singing (70 %): a melody in the track's key (chord tones on strong beats, mostly stepwise,
  phrases with rests), one random syllable (onset consonant sung before the beat, vowel or
  diphthong, coda) per note, occasional melismas, portamento, scoops, vibrato 4.5-6.5 Hz with a
  delayed onset and random depth, breaths before phrases; sometimes a harmony a diatonic third
  above (20 %) or a double-tracked copy (15 %), quieter and panned off-centre;
- speech/rap (30 %): syllables at 3-7 per second with vowel/consonant alternation, breath
  groups with pauses, a declining pitch contour (80-300 Hz) with accents and final rises; in
  "rap" the syllables sit on the sixteenth-note grid.

The voice gets its own EQ, compression and (usually) reverb, a small Haas widening, and a random
level of -12...+6 dB (active-voice RMS against accompaniment RMS).

*Augmentation and mastering*: reverb = convolution with a synthetic stereo impulse response
(exponentially decaying noise, RT60 0.2-2.5 s with faster high-frequency decay, early
reflections, pre-delay 0-60 ms, random wet level), done in the same FFT pass as the EQ. Finally
the mixture is peak-normalised to -6...-0.5 dBFS, both stems scaled by the same factor, and
``mixture = vocals + accompaniment`` is computed in float32 (``--subtype PCM_16`` rounds each file
separately, so the sum then holds only within a couple of LSBs).

Backends. The defaults (``--accompaniment numpy --voice numpy``) need only numpy and scipy
(``tqdm`` is used for a progress bar when present). Optional, each needing its command line:

- ``--accompaniment fluidsynth --soundfont FILE.sf2``: the same arrangement written as a
  Standard MIDI File (General MIDI programs, drums on channel 10, CC7 volume, CC10 pan) and
  rendered by ``fluidsynth`` (its reverb/chorus off); the bus effects follow as above;
- ``--voice espeak``: spoken and rapped voices are ``espeak-ng`` speech of random English
  words in breath groups (SSML pauses), random voice variant, speed and pitch per singer kind,
  resampled to the output rate; singing stays the numpy singer.

Speed (numpy backends; the mean CPU time per track is printed at the end): on a 16-core Xeon,
0.27 s of CPU per 20 s track in one process and 0.38 s with ``--jobs 16`` (shared memory
bandwidth), i.e. 64 tracks in 1.8 s of wall time. The same ``--seed`` gives the same bytes for any
``--jobs`` on one machine; other numpy builds or CPUs may differ in the last bits.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import shutil
import struct
import subprocess
import tempfile
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.fft
import scipy.signal
from scipy.io import wavfile

GENERATOR_VERSION = "1.0.0"
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_SECONDS = 20.0
DEFAULT_TRACKS = 200
DEFAULT_TEST_TRACKS = 20
DEFAULT_INSTRUMENTAL_FRACTION = 0.1
SUBTYPES = ("FLOAT", "PCM_16")
ACCOMPANIMENT_BACKENDS = ("numpy", "fluidsynth")
VOICE_BACKENDS = ("numpy", "espeak")
SPLITS = ("train", "test")
STEMS = ("mixture", "vocals", "accompaniment")
TRACK_DIR_FORMAT = "track_{:04d}"
#: Extra spawn-key element of the instrumental draw: independent of the rest of a track's stream.
INSTRUMENTAL_STREAM = 1_000_003
PCM16_SCALE = 32767.0

# ---------------------------------------------------------------------------------------------
# Music theory and song-level ranges
# ---------------------------------------------------------------------------------------------
A4_MIDI = 69
A4_HZ = 440.0
SEMITONES_PER_OCTAVE = 12
CENTS_PER_OCTAVE = 1200.0
CENTS_PER_SEMITONE = 100.0
SECONDS_PER_MINUTE = 60.0
MAJOR_THIRD = 4
PERFECT_FIFTH = 7
BEATS_PER_BAR = 4
STEPS_PER_BEAT = 4  # sixteenth-note grid
EIGHTHS_PER_BEAT = 2
TEMPO_RANGE_BPM = (70.0, 160.0)
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
}
SCALE_LENGTH = 7
#: Four-chord progressions as 0-based scale degrees.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 3, 0, 4), (1, 4, 0, 0), (0, 2, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4)),
}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")
#: Harmonic rhythm: beats per chord below SLOW_TEMPO, in between, above FAST_TEMPO.
SLOW_TEMPO_BPM = 90.0
FAST_TEMPO_BPM = 135.0
BEATS_PER_CHORD_CHOICES = {"slow": (2, 4), "mid": (4,), "fast": (4, 8)}
#: Probability of a seventh (four-note chord) in the comping.
SEVENTH_PROBABILITY = 0.3
#: Timing humanisation (s, standard deviation) and velocity humanisation (relative).
TIMING_JITTER_S = 0.006
VELOCITY_JITTER = 0.08
OFFBEAT_VELOCITY = 0.85  # bass and arpeggio notes off the beat
UPSTROKE_VELOCITY = 0.7
PALM_MUTE_VELOCITY = 0.6
BASS_OCTAVE_JUMP_PROBABILITY = 0.2  # syncopated bass
BASS_CENTRE_FRACTION = 0.35  # of the bass register: where roots are placed

# ---------------------------------------------------------------------------------------------
# Arrangement probabilities and levels
# ---------------------------------------------------------------------------------------------
NO_DRUMS_PROBABILITY = 0.15
DRUM_INTRO_PROBABILITY = 0.2
DRUM_INTRO_BARS = (1, 2)
LEAD_PROBABILITY = 0.55
SECOND_CHORD_INSTRUMENT_PROBABILITY = 0.45
CHORD_INSTRUMENTS = ("piano", "organ", "pad", "strings", "guitar")
CHORD_INSTRUMENT_WEIGHTS = (0.3, 0.12, 0.18, 0.15, 0.25)
BASS_INSTRUMENTS = ("synth_bass", "pluck_bass", "finger_bass")
LEAD_INSTRUMENTS = ("flute", "brass", "synth_lead")
#: Part gains in dB (uniform ranges) before the bus.
PART_GAIN_DB = {
    "drums": (-1.0, 1.0),
    "bass": (-3.0, 1.0),
    "chords": (-7.0, -1.0),
    "lead": (-9.0, -3.0),
}
#: |pan| ranges (-1 left, +1 right) per part family; the side is random.
PAN_RANGE = {"bass": (0.0, 0.05), "chords": (0.2, 0.7), "lead": (0.1, 0.4), "hat": (0.15, 0.45), "tom": (0.2, 0.6)}
#: Registers (MIDI) of the parts.
BASS_REGISTER = (28, 52)
CHORD_CENTRE_MIDI = (55, 67)
LEAD_REGISTER_CHOICES = ((62, 81), (67, 86), (60, 77))

# ---------------------------------------------------------------------------------------------
# Oscillators, envelopes
# ---------------------------------------------------------------------------------------------
TABLE_SIZE = 4096
#: Harmonics are kept below this fraction of the Nyquist frequency (band-limited oscillators).
NYQUIST_GUARD = 0.9
#: Highest harmonic number any oscillator table holds.
MAX_HARMONICS = 512
#: Decay of -60 dB, as a natural-log amplitude ratio (used for "RT60"-style decay times).
LN_1000 = math.log(1000.0)
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
FILTER_ORDER_SLOPE = 2.0  # amplitude roll-off exponent of the harmonic "low-pass"
BRIGHT_FACTOR = 3.0  # cut-off ratio of the bright and dark tables of a filter sweep

# Karplus-Strong.
KS_DECAY_S = {"guitar": (1.5, 4.0), "pluck_bass": (1.0, 2.5)}
#: Cut-off of the (two-pole) low-pass on the pluck's noise excitation: brightness of the pick.
KS_EXCITATION_CUTOFF_HZ = {"guitar": (1500.0, 5000.0), "pluck_bass": (300.0, 1200.0)}
KS_PALM_MUTE_CUTOFF_RATIO = 0.5
KS_PALM_MUTE_DECAY_S = 0.12
#: Notes this short (or shorter) are played palm-muted (duller, fast decay); muted strums last this long.
PALM_MUTE_NOTE_S = 0.15
STRUM_STRING_DELAY_S = (0.008, 0.025)
PALM_MUTE_PROBABILITY = 0.25

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

# ---------------------------------------------------------------------------------------------
# Drums
# ---------------------------------------------------------------------------------------------
DRUM_VARIANTS = 3
DRUM_VARIANT_SPREAD = 0.2  # relative random spread of a variant's decay/timing
#: Longest one-shot drum sound; each is cut where its slowest decay has fallen by ``DRUM_TAIL_DB``
#: (or here) and faded out over ``DRUM_FADE_S``.
DRUM_MAX_S = 2.0
DRUM_TAIL_DB = 40.0
DRUM_FADE_S = 0.01
KICK = {
    "tone_hz": (45.0, 65.0),
    "sweep_hz": (80.0, 180.0),
    "sweep_tau_s": (0.015, 0.04),
    "decay_s": (0.12, 0.3),
    "click": (0.1, 0.5),
    "click_tau_s": 0.002,
    "drive": (1.0, 3.0),
}
SNARE = {
    "tone_hz": (170.0, 240.0),
    "tone2_ratio": 1.72,
    "tone2_level": 0.5,
    "tone_decay_s": (0.03, 0.07),
    "noise_band_hz": (1500.0, 9000.0),
    "noise_decay_s": (0.06, 0.16),
    "noise_level": (0.6, 1.2),
}
CLAP = {
    "bursts": 4,
    "burst_gap_s": 0.011,
    "burst_tau_s": 0.004,
    "tail_tau_s": 0.06,
    "tail_level": 0.5,
    "band_hz": (900.0, 3500.0),
}
HAT = {
    "closed_decay_s": (0.015, 0.045),
    "open_decay_s": (0.1, 0.25),
    "highpass_hz": (6000.0, 8500.0),
    "metal_level": (0.0, 0.6),
}
RIDE = {"decay_s": (0.2, 0.4), "highpass_hz": 3500.0, "metal_level": 0.5}
CRASH = {"decay_s": (0.3, 0.6), "highpass_hz": 3000.0, "metal_level": 0.3}
TOMS = 3  # tom0 high, tom1 mid, tom2 floor
TOM = {
    "high_hz": (160.0, 240.0),
    "step_ratio": 1.35,
    "sweep_ratio": 0.5,
    "sweep_tau_s": 0.05,
    "decay_s": (0.15, 0.3),
    "variant_detune": 0.03,
}
#: Frequencies (Hz) of the six square waves of the TR-808 cymbal/hat.
METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
DRUM_FILTER_ORDER = 2
#: Patterns on a 16-step bar: 'X' accent, 'x' hit, 'o' soft, '.' rest.
PATTERN_LEVELS = {"X": 1.0, "x": 0.8, "o": 0.45, ".": 0.0}
DRUM_STYLES: dict[str, dict[str, str]] = {
    "rock": {"kick": "X.......X.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "pop": {"kick": "X..x..x...x.....", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo"},
    "four_on_the_floor": {
        "kick": "X...X...X...X...",
        "clap": "....X.......X...",
        "hat": "o.o.o.o.o.o.o.o.",
        "open": "..x...x...x...x.",
    },
    "half_time": {"kick": "X.........x.....", "snare": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
    "hiphop": {"kick": "X......x..x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "shuffle": {"kick": "X.....x.x.......", "snare": "....X.......X..o", "ride": "x...x.x.x...x.x."},
}
DRUM_STYLE_WEIGHTS = (0.25, 0.2, 0.15, 0.12, 0.18, 0.1)
SWING_STYLES = {"hiphop": (0.05, 0.3), "shuffle": (0.2, 0.33)}
#: Per-bar variation probabilities.
EXTRA_KICK_PROBABILITY = 0.08
DROP_KICK_PROBABILITY = 0.08
GHOST_SNARE_PROBABILITY = 0.05
GHOST_LEVEL = 0.25
OPEN_HAT_PROBABILITY = 0.15
FILL_PROBABILITY = 0.6
FILL_STEPS = (4, 8)
FILL_VELOCITY = (0.6, 1.0)  # crescendo over the fill
PHRASE_BARS = 4
DRUM_LEVELS_DB = {
    "kick": 0.0,
    "snare": -3.0,
    "clap": -4.0,
    "hat": -19.0,
    "open": -21.0,
    "ride": -21.0,
    "crash": -19.0,
    "tom": -5.0,
}
#: Upper edge of the cymbals' band-pass (their energy falls off above it).
CYMBAL_TOP_HZ = 14000.0
SNARE_PAN = 0.05

# ---------------------------------------------------------------------------------------------
# Voice
# ---------------------------------------------------------------------------------------------
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
VIBRATO_RAMP_S = 0.25
VIBRATO_RATE_WOBBLE = 0.08
PORTAMENTO_S = (0.02, 0.08)
SCOOP_PROBABILITY = 0.3
SCOOP_CENTS = (-120.0, -30.0)
SCOOP_S = 0.08
MELISMA_PROBABILITY = 0.1
NOTE_LEVEL = (0.7, 1.0)
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
#: Melody generator: note lengths (eighths) and their weights, phrases and rests.
MELODY_UNITS_EIGHTHS = (1, 2, 3, 4, 6, 8)
MELODY_UNIT_WEIGHTS = {"voice": (4, 5, 1.5, 2, 0.5, 0.2), "lead": (4, 3, 1, 1.5, 0.5, 0.3)}
MELODY_PHRASE_BARS = (1, 2, 2, 4)
FIRST_PHRASE_MAX_BEATS = 1
MELODY_REST_BEATS = (1.0, 6.0)
MELODY_CHORD_TONE_PROBABILITY = 0.75
MELODY_STEP_WEIGHTS = {-2: 1.0, -1: 3.0, 0: 1.0, 1: 3.0, 2: 1.0}
MELODY_LEAP_PROBABILITY = 0.1
MELODY_LEAPS = (-4, -3, 3, 4)  # scale steps
FAST_TEMPO_UNIT_SHIFT = 1  # at fast tempi the shortest unit is dropped

# ---------------------------------------------------------------------------------------------
# Mix, effects, mastering
# ---------------------------------------------------------------------------------------------
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
EQ_FLOOR_HZ = 20.0
EQ_GRID_STEP = 64
COMPRESSOR_BLOCK_S = 0.01
#: Compressor thresholds relative to the stem's (active) RMS level.
COMPRESSOR_THRESHOLD_DB = {"vocals": (-10.0, 0.0), "accompaniment": (-6.0, 3.0)}
COMPRESSOR_RATIO = (1.5, 4.0)
COMPRESSOR_SMOOTH_S = 0.08
SOFT_CLIP_DRIVE = (1.0, 2.5)
SOFT_CLIP_PROBABILITY = 0.5
EPS = 1e-12
T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Optional external backends (fluidsynth, espeak-ng)
# ---------------------------------------------------------------------------------------------
FLUIDSYNTH = "fluidsynth"
ESPEAK = "espeak-ng"
EXTERNAL_TIMEOUT_S = 120
MIDI_PPQ = 480
MIDI_CHANNELS = 16
MIDI_DRUM_CHANNEL = 9
MIDI_CC_VOLUME = 7
MIDI_CC_PAN = 10
MIDI_VOLUME_DB_PER_DECADE = 40.0  # General MIDI volume curve: 40 log10(v / 127) dB
MIDI_MAX = 127
MIDI_VELOCITY_SCALE = 100
MIDI_DRUM_NOTE_S = 0.1
#: General MIDI programs (0-based) of the instruments, and GM percussion keys of the drum voices.
GM_PROGRAMS = {
    "piano": 0,
    "organ": 16,
    "pad": 89,
    "strings": 48,
    "guitar": 25,
    "synth_bass": 38,
    "pluck_bass": 34,
    "finger_bass": 33,
    "flute": 73,
    "brass": 65,
    "synth_lead": 81,
}
GM_DRUMS = {
    "kick": 36,
    "snare": 38,
    "clap": 39,
    "hat": 42,
    "open": 46,
    "ride": 51,
    "crash": 49,
    "tom0": 50,
    "tom1": 47,
    "tom2": 43,
}
FLUIDSYNTH_GAIN = 0.4
#: espeak-ng voices: words per minute, pitch (0-99) and voice variants per singer kind.
ESPEAK_WPM = (130, 200)
ESPEAK_PITCH = {"male": (15, 45), "female": (55, 80), "child": (80, 99)}
ESPEAK_VARIANTS = {
    "male": ("m1", "m2", "m3", "m4", "m5", "m6", "m7"),
    "female": ("f1", "f2", "f3", "f4", "f5"),
    "child": ("f4", "f5"),
}
ESPEAK_GROUP_WORDS = (3, 10)
ESPEAK_WORDS = tuple(
    "the night is young and we are running home through city lights never stop dancing love heart fire "
    "rain falling down you me together tonight feel the music take my hand shine bright like a star hold "
    "on dream morning sun rising over ocean wind in your hair remember when forever say my name come back "
    "to me money street time flow rhythm beat soul baby every day road long way sky blue gold silver moon "
    "alone world".split()
)


# =============================================================================================
# Small DSP helpers
# =============================================================================================
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


# =============================================================================================
# Harmony and note events
# =============================================================================================
@dataclass(frozen=True)
class Note:
    """One note of a part.

    Attributes:
        start: Onset (s, relative to the excerpt start; may be negative).
        duration: Time to note-off (s).
        midi: MIDI pitch (may be fractional).
        velocity: Linear gain.
    """

    start: float
    duration: float
    midi: float
    velocity: float = 1.0


@dataclass(frozen=True)
class Harmony:
    """Key, tempo and chord progression of a track.

    Attributes:
        tonic: Pitch class of the key (0 = C).
        mode: ``"major"`` or ``"minor"``.
        tempo: Beats per minute.
        progression: Scale degrees (0-based) of the chords, looped.
        beats_per_chord: Harmonic rhythm.
        offset: Time (s, <= 0) of the first downbeat relative to the excerpt start.
        sevenths: Whether comping chords carry sevenths.
    """

    tonic: int
    mode: str
    tempo: float
    progression: tuple[int, ...]
    beats_per_chord: int
    offset: float
    sevenths: bool

    @property
    def beat(self) -> float:
        """Seconds per beat."""
        return SECONDS_PER_MINUTE / self.tempo

    @property
    def bar(self) -> float:
        """Seconds per bar."""
        return self.beat * BEATS_PER_BAR

    @property
    def scale(self) -> tuple[int, ...]:
        """Semitone offsets of the mode."""
        return MODES[self.mode]

    def time_of(self, beats: float) -> float:
        """Excerpt time (s) of a position in beats from the first downbeat."""
        return self.offset + beats * self.beat

    def degree_at_beat(self, beats: float) -> int:
        """Scale degree of the chord sounding at a beat position."""
        index = int(math.floor(beats / self.beats_per_chord + 1e-9))
        return self.progression[index % len(self.progression)]

    def degree_pitch(self, degree: int) -> int:
        """Pitch class offset (from C, may exceed 11) of a scale degree (any integer)."""
        octave, step = divmod(degree, SCALE_LENGTH)
        return self.tonic + self.scale[step] + SEMITONES_PER_OCTAVE * octave

    def chord_classes(self, degree: int, size: int = 3) -> list[int]:
        """Pitch classes (0-11) of the chord on ``degree`` stacked in thirds (root first)."""
        return [self.degree_pitch(degree + 2 * i) % SEMITONES_PER_OCTAVE for i in range(size)]

    def scale_notes(self, low: int, high: int) -> list[int]:
        """MIDI notes of the key's scale in ``[low, high]``."""
        classes = {(self.tonic + s) % SEMITONES_PER_OCTAVE for s in self.scale}
        return [m for m in range(low, high + 1) if m % SEMITONES_PER_OCTAVE in classes]

    def transpose_diatonic(self, midi: int, steps: int) -> int:
        """Move a scale note by ``steps`` scale degrees (non-scale notes: nearest scale note)."""
        notes = self.scale_notes(midi - 2 * SEMITONES_PER_OCTAVE, midi + 2 * SEMITONES_PER_OCTAVE)
        index = int(np.argmin([abs(n - midi) for n in notes]))
        return notes[index + steps]

    def roman(self, degree: int) -> str:
        """Roman numeral of a chord (lower case for minor triads)."""
        third = (self.degree_pitch(degree + 2) - self.degree_pitch(degree)) % SEMITONES_PER_OCTAVE
        name = ROMAN[degree % SCALE_LENGTH]
        return name if third == MAJOR_THIRD else name.lower()

    def n_beats(self, seconds: float) -> int:
        """Beats needed to cover the excerpt from the first downbeat."""
        return int(math.ceil((seconds - self.offset) / self.beat)) + 1


def sample_harmony(rng: np.random.Generator) -> Harmony:
    """A random key, mode, tempo, progression and excerpt offset."""
    mode = choice(rng, tuple(MODES))
    tempo = uniform(rng, TEMPO_RANGE_BPM)
    rhythm = "slow" if tempo < SLOW_TEMPO_BPM else "fast" if tempo > FAST_TEMPO_BPM else "mid"
    beats_per_chord = int(choice(rng, BEATS_PER_CHORD_CHOICES[rhythm]))
    beat = SECONDS_PER_MINUTE / tempo
    return Harmony(
        tonic=int(rng.integers(SEMITONES_PER_OCTAVE)),
        mode=mode,
        tempo=tempo,
        progression=choice(rng, PROGRESSIONS[mode]),
        beats_per_chord=beats_per_chord,
        offset=-uniform(rng, (0.0, BEATS_PER_BAR * beat)),
        sevenths=bool(rng.random() < SEVENTH_PROBABILITY),
    )


def humanize(rng: np.random.Generator, start: float, velocity: float) -> tuple[float, float]:
    """Jittered onset time and velocity."""
    return (start + float(rng.normal(0.0, TIMING_JITTER_S)), velocity * (1.0 + float(rng.normal(0.0, VELOCITY_JITTER))))


def nearest_octave(pitch_class: int, centre: float) -> int:
    """The MIDI note of a pitch class closest to ``centre``."""
    base = pitch_class + SEMITONES_PER_OCTAVE * round((centre - pitch_class) / SEMITONES_PER_OCTAVE)
    return int(base)


def voice_chord(classes: Sequence[int], centre: float, previous: Sequence[int] | None) -> list[int]:
    """Voicing of a chord near ``centre``, moving each voice as little as possible from ``previous``."""
    if previous:
        target = float(np.mean(previous))
        centre = 0.5 * (centre + target)
    return sorted(nearest_octave(pc, centre) for pc in classes)


# ---------------------------------------------------------------------------------------------
# Part generators (note sequences)
# ---------------------------------------------------------------------------------------------
def chord_slots(harmony: Harmony, seconds: float) -> Iterator[tuple[float, int]]:
    """``(beat position, degree)`` of every chord change covering the excerpt."""
    for beat in range(0, harmony.n_beats(seconds), harmony.beats_per_chord):
        yield float(beat), harmony.degree_at_beat(beat)


BASS_STYLES = ("roots", "eighths", "root_fifth", "syncopated", "walking")
#: Syncopated bass rhythm (eighth positions within a bar) and octave jumps.
SYNCOPATED_EIGHTHS = (0, 3, 4, 6)
BASS_GATE = (0.6, 0.95)


def bass_line(rng: np.random.Generator, harmony: Harmony, seconds: float, style: str) -> list[Note]:
    """A bass part following the chord roots."""
    notes: list[Note] = []
    gate = uniform(rng, BASS_GATE)
    low, high = BASS_REGISTER
    centre = low + (high - low) * BASS_CENTRE_FRACTION
    beat_s = harmony.beat
    for beat, degree in chord_slots(harmony, seconds):
        root = nearest_octave(harmony.chord_classes(degree)[0], centre)
        fifth = root + PERFECT_FIFTH
        span = harmony.beats_per_chord
        events: list[tuple[float, float, int]] = []  # (beat offset, beats, midi)
        if style == "roots":
            events = [(0.0, span, root)]
        elif style == "eighths":
            events = [(0.5 * i, 0.5, root) for i in range(span * EIGHTHS_PER_BEAT)]
        elif style == "root_fifth":
            events = [(float(i), 1.0, root if i % 2 == 0 else fifth) for i in range(0, span, 2)]
            events = [(b, 2.0 if span > 1 else 1.0, m) for b, _, m in events]
        elif style == "syncopated":
            for bar_start in range(0, span, BEATS_PER_BAR):
                for e in SYNCOPATED_EIGHTHS:
                    position = bar_start + 0.5 * e
                    if position < span:
                        octave_jump = SEMITONES_PER_OCTAVE if rng.random() < BASS_OCTAVE_JUMP_PROBABILITY else 0
                        events.append((position, 1.0, root + octave_jump))
        else:  # walking
            scale = harmony.scale_notes(low, high + SEMITONES_PER_OCTAVE)
            pitch = root
            for i in range(span):
                events.append((float(i), 1.0, pitch))
                options = [n for n in scale if 0 < abs(n - pitch) <= 4]
                pitch = choice(rng, options) if options else root
        for offset, length, midi in events:
            start, velocity = humanize(rng, harmony.time_of(beat + offset), 1.0 if offset == 0 else OFFBEAT_VELOCITY)
            octaves_down = max(0, math.ceil((midi - high) / SEMITONES_PER_OCTAVE))
            notes.append(
                Note(start, length * beat_s * gate, float(midi - SEMITONES_PER_OCTAVE * octaves_down), velocity)
            )
    return notes


COMPING_STYLES = {
    "piano": ("block", "stabs", "arpeggio", "charleston"),
    "organ": ("sustain", "block"),
    "pad": ("sustain",),
    "strings": ("sustain",),
    "guitar": ("strum", "arpeggio"),
}
#: Rhythms (beat offsets within a bar, lengths in beats) of block comping styles.
COMPING_RHYTHMS: dict[str, tuple[tuple[float, float], ...]] = {
    "block": ((0.0, 2.0), (2.0, 2.0)),
    "stabs": ((0.0, 0.5), (1.0, 0.5), (2.0, 0.5), (3.0, 0.5)),
    "charleston": ((0.0, 1.0), (1.5, 2.0)),
}
STRUM_PATTERNS = ("D.DU.UDU", "D.D.D.D.", "D..D..D.", "DUDUDUDU", "D...D.DU")
ARPEGGIO_ORDERS = ("up", "down", "updown")
CHORD_GATE = 0.95


def comping(
    rng: np.random.Generator, harmony: Harmony, seconds: float, instrument: str, centre: float
) -> tuple[str, list[Note]]:
    """A chord part in one of ``instrument``'s comping styles; returns ``(style, notes)``."""
    style = choice(rng, COMPING_STYLES[instrument])
    size = 4 if harmony.sevenths else 3
    notes: list[Note] = []
    previous: list[int] | None = None
    beat_s = harmony.beat
    strum = choice(rng, STRUM_PATTERNS)
    order = choice(rng, ARPEGGIO_ORDERS)
    string_delay = uniform(rng, STRUM_STRING_DELAY_S)
    for beat, degree in chord_slots(harmony, seconds):
        chord = voice_chord(harmony.chord_classes(degree, size), centre, previous)
        previous = chord
        span = harmony.beats_per_chord
        if style == "sustain":
            for m in chord:
                start, vel = humanize(rng, harmony.time_of(beat), 1.0)
                notes.append(Note(start, span * beat_s * CHORD_GATE, float(m), vel))
        elif style in COMPING_RHYTHMS:
            for bar_start in range(0, span, BEATS_PER_BAR):
                for offset, length in COMPING_RHYTHMS[style]:
                    if bar_start + offset >= span:
                        continue
                    onset, vel = humanize(rng, harmony.time_of(beat + bar_start + offset), 1.0)
                    notes.extend(Note(onset, length * beat_s * CHORD_GATE, float(m), vel) for m in chord)
        elif style == "arpeggio":
            sequence = chord + [chord[0] + SEMITONES_PER_OCTAVE]
            if order == "down":
                sequence = sequence[::-1]
            elif order == "updown":
                sequence = sequence + sequence[-2:0:-1]
            for i in range(span * EIGHTHS_PER_BEAT):
                onset, vel = humanize(rng, harmony.time_of(beat + 0.5 * i), OFFBEAT_VELOCITY if i % 2 else 1.0)
                notes.append(Note(onset, 1.5 * beat_s, float(sequence[i % len(sequence)]), vel))
        else:  # strum
            low_chord = [m - SEMITONES_PER_OCTAVE for m in chord[:2]] + chord
            for bar_start in range(0, span, BEATS_PER_BAR):
                for i, stroke in enumerate(strum):
                    if stroke == "." or bar_start + 0.5 * i >= span:
                        continue
                    strings = low_chord if stroke == "D" else low_chord[::-1][:4]
                    onset, vel = humanize(
                        rng, harmony.time_of(beat + bar_start + 0.5 * i), 1.0 if stroke == "D" else UPSTROKE_VELOCITY
                    )
                    muted = rng.random() < PALM_MUTE_PROBABILITY
                    length = PALM_MUTE_NOTE_S if muted else beat_s
                    for s, m in enumerate(strings):
                        notes.append(
                            Note(
                                onset + s * string_delay, length, float(m), vel * (PALM_MUTE_VELOCITY if muted else 1.0)
                            )
                        )
    return style, notes


def melody(
    rng: np.random.Generator, harmony: Harmony, seconds: float, register: tuple[int, int], unit_weights: Sequence[float]
) -> list[tuple[Note, bool]]:
    """A phrase-structured melody in the key; returns ``(note, starts_a_phrase)`` pairs.

    Strong beats favour chord tones of the sounding chord near the previous note, other notes
    move mostly by scale steps with occasional leaps; phrases of 1-4 bars alternate with rests.
    """
    low, high = register
    scale = harmony.scale_notes(low, high)
    units = list(MELODY_UNITS_EIGHTHS)
    weights = list(unit_weights)
    if harmony.tempo > FAST_TEMPO_BPM:
        units, weights = units[FAST_TEMPO_UNIT_SHIFT:], weights[FAST_TEMPO_UNIT_SHIFT:]
    steps = list(MELODY_STEP_WEIGHTS)
    step_w = list(MELODY_STEP_WEIGHTS.values())
    total_beats = harmony.n_beats(seconds)
    # Beats from the first downbeat: the first phrase starts within the first beats of the excerpt.
    first_beat = math.ceil(-harmony.offset / harmony.beat)
    position = float(first_beat + rng.integers(0, FIRST_PHRASE_MAX_BEATS + 1))
    index = len(scale) // 2
    out: list[tuple[Note, bool]] = []
    while position < total_beats:
        phrase_end = position + BEATS_PER_BAR * int(choice(rng, MELODY_PHRASE_BARS))
        first = True
        while position < phrase_end - 1e-9:
            length = 0.5 * int(choice(rng, units, weights))
            length = min(length, phrase_end - position)
            strong = abs(position - round(position)) < 1e-9 and int(round(position)) % 2 == 0
            if strong and rng.random() < MELODY_CHORD_TONE_PROBABILITY:
                classes = harmony.chord_classes(harmony.degree_at_beat(position))
                candidates = [i for i, m in enumerate(scale) if m % SEMITONES_PER_OCTAVE in classes]
                if candidates:
                    index = min(candidates, key=lambda i: abs(i - index) + rng.random())
            elif rng.random() < MELODY_LEAP_PROBABILITY:
                index += int(choice(rng, MELODY_LEAPS))
            else:
                index += int(choice(rng, steps, step_w))
            index = int(np.clip(index, 0, len(scale) - 1))
            start, vel = humanize(rng, harmony.time_of(position), uniform(rng, NOTE_LEVEL))
            out.append((Note(start, length * harmony.beat, float(scale[index]), vel), first))
            first = False
            position += length
        position += 0.5 * round(2 * uniform(rng, MELODY_REST_BEATS))
    return out


# =============================================================================================
# Instruments (mono note renderers)
# =============================================================================================
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


# =============================================================================================
# Drums
# =============================================================================================
def metal_cluster(n: int, sample_rate: int) -> np.ndarray:
    """Sum of six detuned square waves (the TR-808 cymbal source)."""
    out = np.zeros(n, dtype=np.float32)
    for f in METAL_HZ:
        out += np.where(cycles_of(f, n, sample_rate) < 0.5, np.float32(1.0), np.float32(-1.0))
    return out / np.float32(len(METAL_HZ))


def drum_length(decay_s: float, sample_rate: int) -> int:
    """Samples of a one-shot sound whose slowest decay is ``decay_s`` (to ``-DRUM_TAIL_DB``, at most ``DRUM_MAX_S``)."""
    return int(min(DRUM_MAX_S, decay_s * DRUM_TAIL_DB / 20 * math.log(10)) * sample_rate)


def fade_out(sound: np.ndarray, sample_rate: int) -> np.ndarray:
    """The sound with a linear fade over its last ``DRUM_FADE_S`` (no click where it is cut)."""
    k = min(len(sound), int(DRUM_FADE_S * sample_rate))
    sound[len(sound) - k :] *= np.linspace(1.0, 0.0, k, dtype=np.float32)
    return sound


def kick_sound(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Kick: a sine with an exponential downward pitch sweep, a noise click, soft saturation."""
    decay = uniform(rng, KICK["decay_s"])
    n = drum_length(decay, sr)
    t = time_axis(n, sr)
    freq = uniform(rng, KICK["tone_hz"]) + uniform(rng, KICK["sweep_hz"]) * np.exp(
        t * np.float32(-1 / uniform(rng, KICK["sweep_tau_s"]))
    )
    body = np.sin(np.float32(2 * math.pi) * cycles_of(freq, n, sr)) * exp_decay(n, sr, decay)
    click = uniform(rng, KICK["click"]) * noise(rng, n) * exp_decay(n, sr, KICK["click_tau_s"])
    drive = uniform(rng, KICK["drive"])
    return fade_out(np.tanh(drive * (body + click)) / np.float32(math.tanh(drive)), sr)


def snare_sound(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Snare: two decaying drum-head tones plus band-passed noise (the wires)."""
    tone_decay, wire_decay = uniform(rng, SNARE["tone_decay_s"]), uniform(rng, SNARE["noise_decay_s"])
    n = drum_length(max(tone_decay, wire_decay), sr)
    t = time_axis(n, sr)
    f1 = uniform(rng, SNARE["tone_hz"])
    tone = np.sin(t * np.float32(2 * math.pi * f1))
    tone += SNARE["tone2_level"] * np.sin(t * np.float32(2 * math.pi * f1 * SNARE["tone2_ratio"]))
    tone *= exp_decay(n, sr, tone_decay)
    wires = bandpass(noise(rng, n), *SNARE["noise_band_hz"], sr) * exp_decay(n, sr, wire_decay)
    out = tone + uniform(rng, SNARE["noise_level"]) * wires / np.float32(max(float(np.abs(wires).max()), EPS))
    return fade_out(out / np.float32(np.abs(out).max()), sr)


def clap_sound(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Hand clap: a few band-passed noise bursts ~10 ms apart and a short tail."""
    tail_start = int(CLAP["bursts"] * CLAP["burst_gap_s"] * sr)
    n = tail_start + drum_length(CLAP["tail_tau_s"], sr)
    env = np.zeros(n, dtype=np.float32)
    for b in range(CLAP["bursts"]):
        start = int(b * CLAP["burst_gap_s"] * sr * (1 + DRUM_VARIANT_SPREAD * rng.random()))
        add_at(env, exp_decay(n, sr, CLAP["burst_tau_s"]), start)
    add_at(env, CLAP["tail_level"] * exp_decay(n, sr, CLAP["tail_tau_s"]), tail_start)
    out = bandpass(noise(rng, n), *CLAP["band_hz"], sr) * env
    return fade_out(out / np.float32(np.abs(out).max()), sr)


def cymbal_sound(rng: np.random.Generator, sr: int, decay_s: float, cutoff_hz: float, metal: np.ndarray) -> np.ndarray:
    """Hi-hat/ride/crash: band-passed noise plus a (pre-scaled) metallic cluster, exponential decay."""
    n = drum_length(decay_s, sr)
    source = noise(rng, n) + metal[:n]
    out = bandpass(source, cutoff_hz, CYMBAL_TOP_HZ, sr) * exp_decay(n, sr, decay_s)
    return fade_out(out / np.float32(max(float(np.abs(out).max()), EPS)), sr)


def tom_sound(rng: np.random.Generator, sr: int, tone_hz: float) -> np.ndarray:
    """Tom: a sine with a gentle downward sweep."""
    decay = uniform(rng, TOM["decay_s"])
    n = drum_length(decay, sr)
    t = time_axis(n, sr)
    freq = tone_hz * (1 + TOM["sweep_ratio"] * np.exp(t * np.float32(-1 / TOM["sweep_tau_s"])))
    return fade_out(np.sin(np.float32(2 * math.pi) * cycles_of(freq, n, sr)) * exp_decay(n, sr, decay), sr)


def drum_kit(rng: np.random.Generator, sr: int) -> dict[str, list[np.ndarray]]:
    """A kit: ``DRUM_VARIANTS`` round-robin variants of every drum voice (mono)."""
    hat_cut = uniform(rng, HAT["highpass_hz"])
    cluster = metal_cluster(int(DRUM_MAX_S * sr), sr)
    metal = np.float32(uniform(rng, HAT["metal_level"])) * cluster
    closed, opened = uniform(rng, HAT["closed_decay_s"]), uniform(rng, HAT["open_decay_s"])
    tom_high = uniform(rng, TOM["high_hz"])
    kit: dict[str, list[np.ndarray]] = {name: [] for name in DRUM_LEVELS_DB if name != "tom"}
    kit.update({f"tom{i}": [] for i in range(TOMS)})
    for _ in range(DRUM_VARIANTS):
        kit["kick"].append(kick_sound(rng, sr))
        kit["snare"].append(snare_sound(rng, sr))
        kit["clap"].append(clap_sound(rng, sr))
        kit["hat"].append(cymbal_sound(rng, sr, closed * (1 + DRUM_VARIANT_SPREAD * rng.random()), hat_cut, metal))
        kit["open"].append(cymbal_sound(rng, sr, opened, hat_cut, metal))
        kit["ride"].append(
            cymbal_sound(
                rng, sr, uniform(rng, RIDE["decay_s"]), RIDE["highpass_hz"], np.float32(RIDE["metal_level"]) * cluster
            )
        )
        kit["crash"].append(
            cymbal_sound(
                rng,
                sr,
                uniform(rng, CRASH["decay_s"]),
                CRASH["highpass_hz"],
                np.float32(CRASH["metal_level"]) * cluster,
            )
        )
        for i in range(TOMS):
            tone = tom_high / TOM["step_ratio"] ** i * (1 + TOM["variant_detune"] * rng.random())
            kit[f"tom{i}"].append(tom_sound(rng, sr, tone))
    return kit


def parse_pattern(pattern: str) -> list[float]:
    """Velocities of a 16-step pattern string."""
    return [PATTERN_LEVELS[c] for c in pattern]


def drum_hits(
    rng: np.random.Generator, harmony: Harmony, seconds: float, style: str, first_bar: int
) -> list[tuple[float, str, float]]:
    """``(time, voice, velocity)`` of every hit: the style's pattern with variations and fills."""
    base = {voice: parse_pattern(p) for voice, p in DRUM_STYLES[style].items()}
    swing = uniform(rng, SWING_STYLES[style]) if style in SWING_STYLES else 0.0
    step_beats = 1.0 / STEPS_PER_BEAT
    steps_per_bar = BEATS_PER_BAR * STEPS_PER_BEAT
    snare_voice = "clap" if "clap" in base else "snare"
    hits: list[tuple[float, str, float]] = []
    n_bars = harmony.n_beats(seconds) // BEATS_PER_BAR + 1
    crash_next = first_bar > 0
    for bar in range(first_bar, n_bars):
        bar_hits: dict[str, list[float]] = {v: list(p) for v, p in base.items()}
        kick = bar_hits["kick"]
        for s in range(2, steps_per_bar, 2):
            if kick[s] == 0 and rng.random() < EXTRA_KICK_PROBABILITY:
                kick[s] = PATTERN_LEVELS["x"]
            elif kick[s] > 0 and s % 8 != 0 and rng.random() < DROP_KICK_PROBABILITY:
                kick[s] = 0.0
        snare = bar_hits[snare_voice]
        for s in range(steps_per_bar):
            if snare[s] == 0 and rng.random() < GHOST_SNARE_PROBABILITY:
                snare[s] = GHOST_LEVEL
        if "hat" in bar_hits and rng.random() < OPEN_HAT_PROBABILITY:
            bar_hits.setdefault("open", [0.0] * steps_per_bar)[steps_per_bar - 2] = PATTERN_LEVELS["x"]
            bar_hits["hat"][steps_per_bar - 2] = 0.0
        fill = (bar % PHRASE_BARS == PHRASE_BARS - 1) and rng.random() < FILL_PROBABILITY
        if fill:
            length = int(choice(rng, FILL_STEPS))
            for v in bar_hits.values():
                v[steps_per_bar - length :] = [0.0] * length
            for j, s in enumerate(range(steps_per_bar - length, steps_per_bar)):
                second_half = j - length // 2  # the fill's second half runs down the toms, high to floor
                tom = min(TOMS - 1, TOMS * second_half // max(1, length - length // 2))
                voice = snare_voice if second_half < 0 else f"tom{tom}"
                bar_hits.setdefault(voice, [0.0] * steps_per_bar)[s] = (
                    FILL_VELOCITY[0] + np.ptp(FILL_VELOCITY) * j / length
                )
        if crash_next:
            bar_hits.setdefault("crash", [0.0] * steps_per_bar)[0] = PATTERN_LEVELS["X"]
        crash_next = fill
        for voice, steps in bar_hits.items():
            for s, level in enumerate(steps):
                if level <= 0:
                    continue
                beats = bar * BEATS_PER_BAR + s * step_beats
                if swing and s % 4 == 2:
                    beats += swing * 2 * step_beats
                t, vel = humanize(rng, harmony.time_of(beats), level)
                hits.append((t, voice, vel))
    return hits


def render_drums(rng: np.random.Generator, hits: Sequence[tuple[float, str, float]], n: int, sr: int) -> np.ndarray:
    """Stereo drum part ``(2, n)`` of ``(time, voice, velocity)`` hits.

    Each voice is panned: kick and snare centred, hats and toms spread.
    """
    kit = drum_kit(rng, sr)
    pans = {"kick": 0.0, "snare": SNARE_PAN, "clap": SNARE_PAN, "crash": random_side(rng, PAN_RANGE["hat"])}
    hat_side = random_side(rng, PAN_RANGE["hat"])
    pans.update(hat=hat_side, open=hat_side, ride=-hat_side)
    pans.update({f"tom{i}": (i - 1) * uniform(rng, PAN_RANGE["tom"]) for i in range(TOMS)})
    stereo: dict[str, list[np.ndarray]] = {}
    for voice, variants in kit.items():
        gain = float(db_to_gain(DRUM_LEVELS_DB.get(voice, DRUM_LEVELS_DB["tom"])))
        left, right = pan_gains(pans[voice])
        stereo[voice] = [np.stack([v * np.float32(left * gain), v * np.float32(right * gain)]) for v in variants]
    out = np.zeros((2, n), dtype=np.float32)
    for t, voice, vel in hits:
        variants = stereo[voice]
        add_at(out, variants[int(rng.integers(len(variants)))], int(round(t * sr)), vel)
    return out


# =============================================================================================
# Voice
# =============================================================================================
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


# =============================================================================================
# Bus processing: EQ, reverb, compression, soft clipping
# =============================================================================================
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


# =============================================================================================
# One track
# =============================================================================================
@dataclass(frozen=True)
class Backends:
    """How the accompaniment and the spoken voices are rendered.

    Attributes:
        accompaniment: ``"numpy"`` or ``"fluidsynth"`` (the arrangement as a MIDI file through a
            SoundFont).
        voice: ``"numpy"`` or ``"espeak"`` (speech and rap voices by espeak-ng; singing stays numpy).
        soundfont: The ``.sf2`` file of the fluidsynth backend.
    """

    accompaniment: str = "numpy"
    voice: str = "numpy"
    soundfont: str | None = None


@dataclass
class TrackPlan:
    """Every random choice of a track that is not a note (the facts written to recipe.json)."""

    harmony: Harmony
    drum_style: str | None
    drums_enter_bar: int
    bass: str
    bass_style: str
    chords: list[str]
    lead: str | None
    instrumental: bool
    voice_kind: str | None
    singer: Singer | None
    extra_voice: str | None
    vocal_level_db: float | None
    peak_dbfs: float
    eq: dict[str, EQ | None]
    reverb: dict[str, Reverb | None]
    compressor: dict[str, tuple[float, float]]
    soft_clip_drive: float | None


def plan_track(rng: np.random.Generator, instrumental: bool) -> TrackPlan:
    """Draw the arrangement, voice and mix of one track."""
    harmony = sample_harmony(rng)
    drum_style = None if rng.random() < NO_DRUMS_PROBABILITY else choice(rng, tuple(DRUM_STYLES), DRUM_STYLE_WEIGHTS)
    enter = int(choice(rng, DRUM_INTRO_BARS)) if drum_style and rng.random() < DRUM_INTRO_PROBABILITY else 0
    chords = [choice(rng, CHORD_INSTRUMENTS, CHORD_INSTRUMENT_WEIGHTS)]
    if rng.random() < SECOND_CHORD_INSTRUMENT_PROBABILITY:
        others = [c for c in CHORD_INSTRUMENTS if c != chords[0]]
        chords.append(choice(rng, others))
    voice_kind = (
        None
        if instrumental
        else (
            "singing"
            if rng.random() < SINGING_PROBABILITY
            else "rap"
            if rng.random() < RAP_SHARE_OF_SPEECH
            else "speech"
        )
    )
    extra = None
    if voice_kind == "singing":
        r = rng.random()
        extra = (
            "harmony" if r < HARMONY_PROBABILITY else "double" if r < HARMONY_PROBABILITY + DOUBLE_PROBABILITY else None
        )
    stems = ("vocals", "accompaniment")
    return TrackPlan(
        harmony=harmony,
        drum_style=drum_style,
        drums_enter_bar=enter,
        bass=choice(rng, BASS_INSTRUMENTS),
        bass_style=choice(rng, BASS_STYLES),
        chords=chords,
        lead=choice(rng, LEAD_INSTRUMENTS) if rng.random() < LEAD_PROBABILITY else None,
        instrumental=instrumental,
        voice_kind=voice_kind,
        singer=None if instrumental else sample_singer(rng),
        extra_voice=extra,
        vocal_level_db=None if instrumental else uniform(rng, VOCAL_LEVEL_DB),
        peak_dbfs=uniform(rng, PEAK_DBFS),
        eq={s: None if instrumental and s == "vocals" else sample_eq(rng) for s in stems},
        reverb={s: None if instrumental and s == "vocals" else sample_reverb(rng, s) for s in stems},
        compressor={s: (uniform(rng, COMPRESSOR_THRESHOLD_DB[s]), uniform(rng, COMPRESSOR_RATIO)) for s in stems},
        soft_clip_drive=uniform(rng, SOFT_CLIP_DRIVE) if rng.random() < SOFT_CLIP_PROBABILITY else None,
    )


def part_to_stereo(mono: np.ndarray, pan: float, gain_db: float) -> np.ndarray:
    """A panned, gained stereo copy ``(2, n)`` of a mono part (normalised to unit RMS first)."""
    left, right = pan_gains(pan)
    scale = float(db_to_gain(gain_db)) / max(rms(mono), EPS)
    return np.stack([mono * np.float32(left * scale), mono * np.float32(right * scale)])


def normalise_rms(stem: np.ndarray) -> np.ndarray:
    """A stem scaled to unit RMS (silence unchanged)."""
    level = rms(stem)
    return stem / np.float32(level) if level > EPS else stem


@dataclass
class Part:
    """A pitched accompaniment part.

    Attributes:
        family: ``"bass"``, ``"chords"`` or ``"lead"``.
        instrument: Instrument name (``make_instrument``; General MIDI program in ``GM_PROGRAMS``).
        notes: The notes.
        pan: Pan position in [-1, 1].
        gain_db: Level of the part (relative to the others) in dB.
    """

    family: str
    instrument: str
    notes: list[Note]
    pan: float
    gain_db: float


@dataclass
class Arrangement:
    """The accompaniment score of a track: pitched parts, drum hits and the drums' level."""

    parts: list[Part]
    drum_hits: list[tuple[float, str, float]]
    drum_gain_db: float
    comping: list[str]


def arrange(rng: np.random.Generator, plan: TrackPlan, seconds: float) -> Arrangement:
    """Write the accompaniment's notes and drum hits (independent of how they are rendered)."""
    h = plan.harmony
    hits = drum_hits(rng, h, seconds, plan.drum_style, plan.drums_enter_bar) if plan.drum_style else []
    parts = [
        Part(
            "bass",
            plan.bass,
            bass_line(rng, h, seconds, plan.bass_style),
            random_side(rng, PAN_RANGE["bass"]),
            uniform(rng, PART_GAIN_DB["bass"]),
        )
    ]
    side = 1.0 if rng.random() < 0.5 else -1.0
    styles = []
    for i, name in enumerate(plan.chords):
        style, notes = comping(rng, h, seconds, name, uniform(rng, CHORD_CENTRE_MIDI))
        styles.append(style)
        parts.append(
            Part(
                "chords",
                name,
                notes,
                side * (-1) ** i * uniform(rng, PAN_RANGE["chords"]),
                uniform(rng, PART_GAIN_DB["chords"]),
            )
        )
    if plan.lead:
        register = choice(rng, LEAD_REGISTER_CHOICES)
        notes = [note for note, _ in melody(rng, h, seconds, register, MELODY_UNIT_WEIGHTS["lead"])]
        parts.append(
            Part("lead", plan.lead, notes, random_side(rng, PAN_RANGE["lead"]), uniform(rng, PART_GAIN_DB["lead"]))
        )
    return Arrangement(parts, hits, uniform(rng, PART_GAIN_DB["drums"]), styles)


def render_arrangement(rng: np.random.Generator, arrangement: Arrangement, n: int, sr: int) -> np.ndarray:
    """The numpy rendering of an arrangement: a stereo bus ``(2, n)`` at unit RMS (before effects).

    Every part is normalised to unit RMS, then panned and set to its gain.
    """
    bus = np.zeros((2, n), dtype=np.float32)
    if arrangement.drum_hits:
        drums = render_drums(rng, arrangement.drum_hits, n, sr)
        bus += drums * np.float32(db_to_gain(arrangement.drum_gain_db) / max(rms(drums), EPS))
    for part in arrangement.parts:
        bus += part_to_stereo(
            render_notes(make_instrument(part.instrument, rng, sr), part.notes, n), part.pan, part.gain_db
        )
    return normalise_rms(bus)


def render_vocals(
    rng: np.random.Generator,
    plan: TrackPlan,
    seconds: float,
    n: int,
    sr: int,
    facts: dict[str, Any],
    backend: str = "numpy",
) -> np.ndarray:
    """The lead voice and its harmony/double, stereo ``(2, n)`` (level set later by the caller)."""
    singer = plan.singer
    assert singer is not None and plan.voice_kind is not None
    h = plan.harmony
    lo, hi = SINGER_RANGE_MIDI[singer.kind]
    width = int(rng.integers(TESSITURA_SEMITONES[0], TESSITURA_SEMITONES[1] + 1))
    low = int(rng.integers(lo, max(lo, hi - width) + 1))
    register = (low, min(hi, low + width))
    lead_pan = random_side(rng, (0.0, LEAD_VOICE_PAN))
    voices: list[tuple[VoiceScore, Singer, float, float, float]] = []  # score, singer, pan, gain_db, delay
    if plan.voice_kind == "singing":
        notes = melody(rng, h, seconds, register, MELODY_UNIT_WEIGHTS["voice"])
        voices.append((sung_score(rng, notes, singer, n, sr), singer, lead_pan, 0.0, 0.0))
        if plan.extra_voice:
            other = sample_singer(rng, singer.kind)
            shifted = notes
            if plan.extra_voice == "harmony":
                shifted = [
                    (Note(nt.start, nt.duration, float(h.transpose_diatonic(int(nt.midi), 2)), nt.velocity), first)
                    for nt, first in notes
                ]
            delay = uniform(rng, HARMONY_DELAY_S)
            voices.append(
                (
                    sung_score(rng, shifted, other, n, sr),
                    other,
                    random_side(rng, HARMONY_PAN),
                    uniform(rng, HARMONY_GAIN_DB),
                    delay,
                )
            )
        facts["register_midi"] = list(register)
    else:
        voices.append(
            (spoken_score(rng, h, singer, seconds, n, sr, rap=plan.voice_kind == "rap"), singer, lead_pan, 0.0, 0.0)
        )
    out = np.zeros((2, n), dtype=np.float32)
    lead_level = 0.0  # extra voices are set relative to the lead's RMS
    for score, who, pan, gain_db, delay in voices:
        if backend == "espeak" and plan.voice_kind != "singing":
            mono = espeak_voice(rng, who, seconds, n, sr, facts)
        else:
            mono = render_voice(score, who, n, sr, rng)
        lead_level = lead_level or max(rms(mono), EPS)
        add_at(
            out,
            np.stack(pan_gains(pan)).astype(np.float32)[:, None] * mono,
            int(delay * sr),
            float(db_to_gain(gain_db)) / lead_level,
        )
    haas = max(1, int(uniform(rng, HAAS_DELAY_S) * sr))
    side = int(rng.integers(2))
    out[side, haas:] += np.float32(db_to_gain(uniform(rng, HAAS_GAIN_DB))) * out[1 - side, :-haas]
    return out


def render_track(
    rng: np.random.Generator, plan: TrackPlan, seconds: float, sample_rate: int, backends: Backends = Backends()
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Render ``(vocals, accompaniment)`` as float32 ``(n, 2)`` arrays plus extra facts."""
    n = int(round(seconds * sample_rate))
    facts: dict[str, Any] = {}
    arrangement = arrange(rng, plan, seconds)
    facts["comping"] = arrangement.comping
    if backends.accompaniment == "fluidsynth":
        assert backends.soundfont is not None
        acc = render_fluidsynth(arrangement, plan.harmony.tempo, n, sample_rate, backends.soundfont)
    else:
        acc = render_arrangement(rng, arrangement, n, sample_rate)
    acc = eq_and_reverb(acc, plan.eq["accompaniment"], plan.reverb["accompaniment"], sample_rate, rng)
    acc = compress(acc, *plan.compressor["accompaniment"], sample_rate)
    if plan.soft_clip_drive:
        acc = soft_clip(acc, plan.soft_clip_drive)
    if plan.instrumental:
        vocals = np.zeros_like(acc)
    else:
        vocals = render_vocals(rng, plan, seconds, n, sample_rate, facts, backends.voice)
        vocals = compress(vocals, *plan.compressor["vocals"], sample_rate)
        vocals = eq_and_reverb(vocals, plan.eq["vocals"], plan.reverb["vocals"], sample_rate, rng)
        target = float(db_to_gain(plan.vocal_level_db)) * rms(acc)
        vocals *= np.float32(target / max(active_rms(vocals, sample_rate), EPS))
    peak = float(np.abs(vocals + acc).max())
    scale = np.float32(float(db_to_gain(plan.peak_dbfs)) / max(peak, EPS))
    return (vocals * scale).T.copy(), (acc * scale).T.copy(), facts


def voice_facts(plan: TrackPlan) -> dict[str, Any] | None:
    """JSON-able facts of a plan's voice (``None`` when instrumental)."""
    if plan.singer is None:
        return None
    facts: dict[str, Any] = {
        "kind": plan.voice_kind,
        "singer": plan.singer.kind,
        "extra": plan.extra_voice,
        "formant_scale": round(plan.singer.formant_scale, 3),
    }
    if plan.voice_kind == "singing":
        facts.update(vibrato_hz=round(plan.singer.vibrato_hz, 2), vibrato_cents=round(plan.singer.vibrato_cents, 1))
    return facts


def plan_facts(plan: TrackPlan) -> dict[str, Any]:
    """JSON-able facts of a plan."""
    h = plan.harmony
    return {
        "tempo_bpm": round(h.tempo, 2),
        "key": f"{NOTE_NAMES[h.tonic]} {h.mode}",
        "progression": [h.roman(d) for d in h.progression],
        "beats_per_chord": h.beats_per_chord,
        "instruments": {
            "drums": plan.drum_style,
            "drums_enter_bar": plan.drums_enter_bar,
            "bass": plan.bass,
            "bass_style": plan.bass_style,
            "chords": plan.chords,
            "lead": plan.lead,
        },
        "instrumental": plan.instrumental,
        "voice": voice_facts(plan),
        "vocal_level_db": None if plan.vocal_level_db is None else round(plan.vocal_level_db, 2),
        "peak_dbfs": round(plan.peak_dbfs, 2),
        "reverb": {
            k: None if v is None else {kk: round(vv, 3) for kk, vv in asdict(v).items()} for k, v in plan.reverb.items()
        },
        "eq": {
            k: None if v is None else {kk: round(vv, 2) for kk, vv in asdict(v).items()} for k, v in plan.eq.items()
        },
        "soft_clip_drive": None if plan.soft_clip_drive is None else round(plan.soft_clip_drive, 2),
    }


# =============================================================================================
# Optional backends: fluidsynth (General MIDI rendering) and espeak-ng (speech)
# =============================================================================================
def variable_length(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(arrangement: Arrangement, tempo_bpm: float) -> tuple[bytes, float]:
    """A type-1 Standard MIDI File of an arrangement; returns ``(bytes, shift_s)``.

    Events are shifted by ``shift_s`` seconds so that none starts before 0 (the excerpt start is
    at ``shift_s`` in the rendering). Parts get consecutive channels (drums: channel 10) with
    their General MIDI program, volume (CC7, ``40 log10(v / 127)`` dB) and pan (CC10).
    """
    tempo_us = round(60e6 / tempo_bpm)
    tick_s = tempo_us / 1e6 / MIDI_PPQ
    starts = [nt.start for part in arrangement.parts for nt in part.notes] + [t for t, _, _ in arrangement.drum_hits]
    shift = max(0.0, -min(starts, default=0.0))
    events: list[tuple[int, int, bytes]] = []  # (tick, order: setup 0 / off 1 / on 2, message)

    def setup(channel: int, gain_db: float, pan: float, program: int | None) -> None:
        volume = int(np.clip(round(MIDI_MAX * 10 ** (gain_db / MIDI_VOLUME_DB_PER_DECADE)), 0, MIDI_MAX))
        pan_value = int(np.clip(round((pan + 1) / 2 * MIDI_MAX), 0, MIDI_MAX))
        if program is not None:
            events.append((0, 0, bytes([0xC0 | channel, program])))
        events.append((0, 0, bytes([0xB0 | channel, MIDI_CC_VOLUME, volume])))
        events.append((0, 0, bytes([0xB0 | channel, MIDI_CC_PAN, pan_value])))

    def note(channel: int, start: float, duration: float, key: int, velocity: float) -> None:
        on = max(0, round((start + shift) / tick_s))
        off = on + max(1, round(duration / tick_s))
        vel = int(np.clip(round(velocity * MIDI_VELOCITY_SCALE), 1, MIDI_MAX))
        key = int(np.clip(key, 0, MIDI_MAX))
        events.append((on, 2, bytes([0x90 | channel, key, vel])))
        events.append((off, 1, bytes([0x80 | channel, key, 0])))

    channels = [c for c in range(MIDI_CHANNELS) if c != MIDI_DRUM_CHANNEL]
    for channel, part in zip(channels, arrangement.parts):
        setup(channel, part.gain_db, part.pan, GM_PROGRAMS[part.instrument])
        for nt in part.notes:
            note(channel, nt.start, nt.duration, round(nt.midi), nt.velocity)
    if arrangement.drum_hits:
        setup(MIDI_DRUM_CHANNEL, arrangement.drum_gain_db, 0.0, None)
        for t, voice, velocity in arrangement.drum_hits:
            note(MIDI_DRUM_CHANNEL, t, MIDI_DRUM_NOTE_S, GM_DRUMS[voice], velocity)
    events.sort(key=lambda e: (e[0], e[1]))
    body = bytearray(b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big"))
    last = 0
    for tick, _, message in events:
        body += variable_length(tick - last) + message
        last = tick
    body += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 1, 1, MIDI_PPQ)
    return header + b"MTrk" + struct.pack(">I", len(body)) + bytes(body), shift


def read_wav_float(path: Path) -> tuple[np.ndarray, int]:
    """``(audio (n, channels) float32 in [-1, 1], rate)`` of a PCM or float WAV (scipy reader)."""
    rate, data = wavfile.read(str(path))
    if data.dtype.kind in "iu":
        data = data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max + 1)
    data = data.astype(np.float32)
    return (data[:, None] if data.ndim == 1 else data), rate


def run_tool(cmd: list[str]) -> None:
    """Run an external command; raise with its stderr when it fails."""
    result = subprocess.run(cmd, capture_output=True, timeout=EXTERNAL_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace').strip()}")


def fit_length(audio: np.ndarray, start: int, n: int) -> np.ndarray:
    """``audio[..., start:start + n]`` zero-padded to ``n`` samples."""
    out = np.zeros(audio.shape[:-1] + (n,), dtype=np.float32)
    piece = audio[..., start : start + n]
    out[..., : piece.shape[-1]] = piece
    return out


def render_fluidsynth(arrangement: Arrangement, tempo_bpm: float, n: int, sr: int, soundfont: str) -> np.ndarray:
    """Render an arrangement through ``fluidsynth`` and a SoundFont: stereo ``(2, n)`` at unit RMS.

    fluidsynth's own reverb and chorus are off (the bus adds its reverb).
    """
    data, shift = midi_file(arrangement, tempo_bpm)
    with tempfile.TemporaryDirectory(prefix="make_dataset_") as tmp:
        mid, wav = Path(tmp) / "song.mid", Path(tmp) / "song.wav"
        mid.write_bytes(data)
        run_tool(
            [
                FLUIDSYNTH,
                "-ni",
                "-q",
                "-R",
                "0",
                "-C",
                "0",
                "-g",
                str(FLUIDSYNTH_GAIN),
                "-r",
                str(sr),
                "-T",
                "wav",
                "-F",
                str(wav),
                soundfont,
                str(mid),
            ]
        )
        audio, _ = read_wav_float(wav)
    stereo = audio.T if audio.shape[1] == 2 else np.repeat(audio.T[:1], 2, axis=0)
    return normalise_rms(fit_length(stereo, int(round(shift * sr)), n))


def espeak_voice(
    rng: np.random.Generator, singer: Singer, seconds: float, n: int, sr: int, facts: dict[str, Any]
) -> np.ndarray:
    """Mono speech by ``espeak-ng``: random words in breath groups separated by pauses (SSML)."""
    wpm = int(rng.integers(ESPEAK_WPM[0], ESPEAK_WPM[1] + 1))
    pitch = int(rng.integers(ESPEAK_PITCH[singer.kind][0], ESPEAK_PITCH[singer.kind][1] + 1))
    variant = choice(rng, ESPEAK_VARIANTS[singer.kind])
    groups, spoken = [], 0.0
    while spoken < seconds:
        words = [
            choice(rng, ESPEAK_WORDS)
            for _ in range(int(rng.integers(ESPEAK_GROUP_WORDS[0], ESPEAK_GROUP_WORDS[1] + 1)))
        ]
        pause = uniform(rng, SPEECH_PAUSE_S)
        groups.append(" ".join(words) + f' <break time="{round(pause * 1000)}ms"/>')
        spoken += len(words) * SECONDS_PER_MINUTE / wpm + pause
    onset = uniform(rng, SPEECH_FIRST_ONSET_S)
    with tempfile.TemporaryDirectory(prefix="make_dataset_") as tmp:
        wav = Path(tmp) / "voice.wav"
        run_tool(
            [
                ESPEAK,
                "-m",
                "-w",
                str(wav),
                "-v",
                f"en+{variant}",
                "-s",
                str(wpm),
                "-p",
                str(pitch),
                "<speak>" + " ".join(groups) + "</speak>",
            ]
        )
        audio, rate = read_wav_float(wav)
    ratio = Fraction(sr, rate)
    mono = scipy.signal.resample_poly(audio[:, 0], ratio.numerator, ratio.denominator).astype(np.float32)
    facts["espeak"] = {"voice": f"en+{variant}", "words_per_minute": wpm, "pitch": pitch}
    return fit_length(np.concatenate([np.zeros(int(onset * sr), dtype=np.float32), mono]), 0, n)


# =============================================================================================
# Files, workers, CLI
# =============================================================================================
def write_wav(path: Path, audio: np.ndarray, sample_rate: int, subtype: str) -> None:
    """Write ``(n, channels)`` float32 audio as a WAV without timestamps (byte-reproducible).

    ``soundfile`` adds a PEAK chunk carrying the current time to float WAVs, so the plain
    ``scipy.io.wavfile`` writer is used instead.
    """
    if subtype == "PCM_16":
        data = np.round(np.clip(audio, -1.0, 1.0) * PCM16_SCALE).astype(np.int16)
    else:
        data = audio.astype(np.float32)
    wavfile.write(str(path), sample_rate, data)


@dataclass(frozen=True)
class TrackTask:
    """One track to make (picklable for the worker pool)."""

    out_dir: str
    split: int
    index: int
    seed: int
    seconds: float
    sample_rate: int
    subtype: str
    instrumental_fraction: float
    backends: Backends = Backends()


def track_rng(seed: int, split: int, index: int, *extra: int) -> np.random.Generator:
    """The generator of a track: ``SeedSequence(seed, spawn_key=(split, index, *extra))``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split, index, *extra)))


def make_track(task: TrackTask) -> tuple[dict[str, Any], float]:
    """Render and write one track; returns its facts and the CPU seconds it took.

    The CPU time is this process's only: external tools' (fluidsynth, espeak-ng) is not counted.
    """
    cpu = time.process_time()
    instrumental = bool(
        track_rng(task.seed, task.split, task.index, INSTRUMENTAL_STREAM).random() < task.instrumental_fraction
    )
    rng = track_rng(task.seed, task.split, task.index)
    plan = plan_track(rng, instrumental)
    vocals, acc, extra = render_track(rng, plan, task.seconds, task.sample_rate, task.backends)
    mixture = vocals + acc
    folder = Path(task.out_dir) / SPLITS[task.split] / TRACK_DIR_FORMAT.format(task.index)
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in zip(STEMS, (mixture, vocals, acc)):
        write_wav(folder / f"{name}.wav", audio, task.sample_rate, task.subtype)
    facts = {"split": SPLITS[task.split], "index": task.index, "name": folder.name, **plan_facts(plan), **extra}
    return facts, time.process_time() - cpu


def progress(items: Iterable[Any], total: int) -> Iterable[Any]:
    """A tqdm progress bar on a TTY (if tqdm is installed), else the items unchanged."""
    if not sys.stderr.isatty():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, unit="track")


def run_tasks(tasks: list[TrackTask], jobs: int) -> Iterator[tuple[dict[str, Any], float]]:
    """Results of ``make_track`` over ``tasks`` in order, in ``jobs`` processes (1: in-process)."""
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(make_track, tasks)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(min(jobs, len(tasks))) as pool:
        yield from pool.imap(make_track, tasks)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="output folder (train/, test/, recipe.json)")
    parser.add_argument("--tracks", type=int, default=DEFAULT_TRACKS, help="training tracks")
    parser.add_argument("--test-tracks", type=int, default=DEFAULT_TEST_TRACKS, help="test tracks")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of every track")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE)
    parser.add_argument(
        "--subtype",
        choices=SUBTYPES,
        default=SUBTYPES[0],
        help="FLOAT keeps mixture == vocals + accompaniment exact; PCM_16 rounds each file",
    )
    parser.add_argument(
        "--instrumental-fraction",
        type=float,
        default=DEFAULT_INSTRUMENTAL_FRACTION,
        help="probability that a track has silent vocals",
    )
    parser.add_argument(
        "--accompaniment",
        choices=ACCOMPANIMENT_BACKENDS,
        default=ACCOMPANIMENT_BACKENDS[0],
        help="numpy synthesis, or the arrangement as MIDI through fluidsynth (needs --soundfont)",
    )
    parser.add_argument("--soundfont", type=Path, help="SoundFont (.sf2) of the fluidsynth backend")
    parser.add_argument(
        "--voice",
        choices=VOICE_BACKENDS,
        default=VOICE_BACKENDS[0],
        help="numpy source-filter voices, or espeak-ng for the spoken/rapped ones",
    )
    args = parser.parse_args(argv)
    if args.tracks < 0 or args.test_tracks < 0 or args.seconds <= 0 or args.jobs < 1:
        parser.error("--tracks/--test-tracks must be >= 0, --seconds > 0, --jobs >= 1")
    if not 0.0 <= args.instrumental_fraction <= 1.0:
        parser.error("--instrumental-fraction must be in [0, 1]")
    if args.accompaniment == "fluidsynth":
        if shutil.which(FLUIDSYNTH) is None:
            parser.error(f"--accompaniment fluidsynth needs the {FLUIDSYNTH} command")
        if args.soundfont is None or not args.soundfont.is_file():
            parser.error("--accompaniment fluidsynth needs --soundfont FILE.sf2")
    if args.voice == "espeak" and shutil.which(ESPEAK) is None:
        parser.error(f"--voice espeak needs the {ESPEAK} command")
    return args


def main(argv: list[str] | None = None) -> int:
    """Generate the dataset; returns the exit status."""
    args = parse_args(argv)
    wall = time.perf_counter()
    backends = Backends(args.accompaniment, args.voice, str(args.soundfont.resolve()) if args.soundfont else None)
    tasks = [
        TrackTask(
            str(args.out),
            split,
            index,
            args.seed,
            args.seconds,
            args.sample_rate,
            args.subtype,
            args.instrumental_fraction,
            backends,
        )
        for split, count in enumerate((args.tracks, args.test_tracks))
        for index in range(count)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    results = list(progress(run_tasks(tasks, args.jobs), len(tasks)))
    facts = [f for f, _ in results]
    cpu = [c for _, c in results]
    recipe = {
        "generator": "uvrsep scripts/make_dataset.py",
        "version": GENERATOR_VERSION,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "jobs"},
        "backends": asdict(backends),
        "sample_rate": args.sample_rate,
        "seconds": args.seconds,
        "stems": list(STEMS),
        "splits": {name: [f for f in facts if f["split"] == name] for name in SPLITS},
    }
    (args.out / "recipe.json").write_text(json.dumps(recipe, indent=1) + "\n")
    elapsed = time.perf_counter() - wall
    mean_cpu = sum(cpu) / len(cpu) if cpu else 0.0
    print(
        f"{len(tasks)} tracks ({args.tracks} train, {args.test_tracks} test), "
        f"{len(tasks) * args.seconds:.0f} s of audio in {elapsed:.1f} s wall "
        f"({mean_cpu:.2f} s CPU per track, {args.jobs} jobs) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
