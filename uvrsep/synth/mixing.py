"""One track: the random plan, the arrangement, the rendering and the mix.

Draws every choice of a track that is not a note (:class:`TrackPlan`), writes its notes, renders
the accompaniment (numpy or FluidSynth) and the voice (numpy or espeak-ng), applies the bus
effects, sets the voice's level against the accompaniment, and masters the pair so that
``mixture = vocals + accompaniment`` exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .dsp import EPS, add_at, choice, db_to_gain, normalise_rms, pan_gains, random_side, rms, uniform
from .arrangement import (
    BASS_INSTRUMENTS,
    BASS_STYLES,
    CHORD_CENTRE_MIDI,
    CHORD_INSTRUMENT_WEIGHTS,
    CHORD_INSTRUMENTS,
    DRUM_INTRO_BARS,
    DRUM_INTRO_PROBABILITY,
    LEAD_INSTRUMENTS,
    LEAD_PROBABILITY,
    LEAD_REGISTER_CHOICES,
    LEGATO_PROBABILITY,
    NO_DRUMS_PROBABILITY,
    NOTE_NAMES,
    PAN_RANGE,
    PART_GAIN_DB,
    SAMPLED_LEAD_INSTRUMENTS,
    SAMPLED_LEAD_PROBABILITY,
    SECOND_CHORD_INSTRUMENT_PROBABILITY,
    VOCAL_LEAD_REGISTERS,
    Arrangement,
    Harmony,
    Note,
    Part,
    SectionHorn,
    bass_line,
    comping,
    legato,
    melody,
    sample_expression,
    sample_harmony,
    section_parts,
)
from .instruments import make_instrument, render_notes
from .drums import DRUM_STYLE_WEIGHTS, DRUM_STYLES, drum_hits, render_drums
from .voice import (
    DOUBLE_PROBABILITY,
    HAAS_DELAY_S,
    HAAS_GAIN_DB,
    HARMONY_DELAY_S,
    HARMONY_GAIN_DB,
    HARMONY_PAN,
    HARMONY_PROBABILITY,
    LEAD_VOICE_PAN,
    MELODY_UNIT_WEIGHTS,
    RAP_SHARE_OF_SPEECH,
    SINGER_RANGE_MIDI,
    SINGING_PROBABILITY,
    TESSITURA_SEMITONES,
    render_voice,
    sample_singer,
    Singer,
    spoken_score,
    sung_score,
    VoiceScore,
)
from .effects import (
    COMPRESSOR_RATIO,
    COMPRESSOR_THRESHOLD_DB,
    EQ,
    PEAK_DBFS,
    SOFT_CLIP_DRIVE,
    SOFT_CLIP_PROBABILITY,
    VOCAL_LEVEL_DB,
    active_rms,
    compress,
    eq_and_reverb,
    Reverb,
    sample_eq,
    sample_reverb,
    soft_clip,
)
from .backends import espeak_voice, festival_song, festival_voice, render_fluidsynth


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
    leads: str = "synth"


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
    #: The lead is one of :data:`SAMPLED_LEAD_INSTRUMENTS`, played in a singer's register
    #: with pitch-bend expression (``--leads sampled``).
    sampled_lead: bool = False
    #: The horns that harmonise a horn lead (``--horn-sections``; drawn apart from the rest).
    section: list[SectionHorn] | None = None


def plan_track(rng: np.random.Generator, instrumental: bool, leads: str = "synth") -> TrackPlan:
    """Draw the arrangement, voice and mix of one track (``leads``: ``"synth"``, or
    ``"sampled"`` for leads among :data:`SAMPLED_LEAD_INSTRUMENTS`, in most tracks and in
    every instrumental one)."""
    sampled = leads == "sampled"
    lead_pool = SAMPLED_LEAD_INSTRUMENTS if sampled else LEAD_INSTRUMENTS
    lead_probability = (1.0 if instrumental else SAMPLED_LEAD_PROBABILITY) if sampled else LEAD_PROBABILITY
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
        lead=choice(rng, lead_pool) if rng.random() < lead_probability else None,
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
        sampled_lead=sampled,
    )


def part_to_stereo(mono: np.ndarray, pan: float, gain_db: float) -> np.ndarray:
    """A panned, gained stereo copy ``(2, n)`` of a mono part (normalised to unit RMS first)."""
    left, right = pan_gains(pan)
    scale = float(db_to_gain(gain_db)) / max(rms(mono), EPS)
    return np.stack([mono * np.float32(left * scale), mono * np.float32(right * scale)])


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
        register = choice(rng, VOCAL_LEAD_REGISTERS if plan.sampled_lead else LEAD_REGISTER_CHOICES)
        notes = [note for note, _ in melody(rng, h, seconds, register, MELODY_UNIT_WEIGHTS["lead"])]
        part = Part("lead", plan.lead, notes, random_side(rng, PAN_RANGE["lead"]), uniform(rng, PART_GAIN_DB["lead"]))
        if plan.sampled_lead:  # drawn after the rest, so that synth leads draw as they always did
            part.expression = sample_expression(rng)
            if rng.random() < LEGATO_PROBABILITY:
                part.notes = legato(part.notes)
        parts.append(part)
        if plan.section:
            parts.extend(section_parts(part, plan.section, h))
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
    # score, singer, pan, gain_db, delay, and a sung voice's notes
    voices: list[tuple[VoiceScore, Singer, float, float, float, list[tuple[Note, bool]] | None]] = []
    if plan.voice_kind == "singing":
        notes = melody(rng, h, seconds, register, MELODY_UNIT_WEIGHTS["voice"])
        voices.append((sung_score(rng, notes, singer, n, sr), singer, lead_pan, 0.0, 0.0, notes))
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
                    shifted,
                )
            )
        facts["register_midi"] = list(register)
    else:
        voices.append(
            (spoken_score(rng, h, singer, seconds, n, sr, rap=plan.voice_kind == "rap"), singer, lead_pan, 0.0, 0.0, None)
        )
    out = np.zeros((2, n), dtype=np.float32)
    lead_level = 0.0  # extra voices are set relative to the lead's RMS
    for index, (score, who, pan, gain_db, delay, sung) in enumerate(voices):
        if backend == "espeak" and plan.voice_kind != "singing":
            mono = espeak_voice(rng, who, seconds, n, sr, facts)
        elif backend == "festival" and plan.voice_kind != "singing":
            mono = festival_voice(rng, who, seconds, n, sr, facts)
        elif backend == "festival":  # the facts of the lead voice's singing only
            assert sung is not None
            mono = festival_song(rng, who, sung, n, sr, facts if index == 0 else {})
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
            "sampled_lead": plan.sampled_lead,
            "section": None if plan.section is None else [
                {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(horn).items()} for horn in plan.section
            ],
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
