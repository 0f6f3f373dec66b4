"""Drum synthesis and patterns.

Kick (swept sine with a click), snare and clap (tones plus band-passed noise bursts), hats,
ride and crash (noise and 808-style metallic square clusters), toms; round-robin variants of
each; sixteen-step patterns by style (rock, pop, four on the floor, half time, hip-hop with
swing, shuffle) with random kicks, ghost notes, open hats, fills and crashes, humanised in
time and velocity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .dsp import (
    EPS,
    add_at,
    bandpass,
    choice,
    cycles_of,
    db_to_gain,
    exp_decay,
    noise,
    pan_gains,
    random_side,
    time_axis,
    uniform,
)
from .arrangement import BEATS_PER_BAR, PAN_RANGE, STEPS_PER_BEAT, Harmony, humanize


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
