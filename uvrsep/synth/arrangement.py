"""Harmony and note sequences: what is played, before it is rendered.

A track's key, mode, tempo and four-chord progression (:class:`Harmony`); voice leading of
chords; the part generators (bass lines, comping rhythms, melodies on the sixteenth-note grid
shared by the singer and the lead instruments); and the accompaniment score as data
(:class:`Part`, :class:`Arrangement`) that both the numpy and the MIDI renderers read.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .dsp import SEMITONES_PER_OCTAVE, choice, random_side, uniform


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

#: Lead instruments that sound like a voice, with sampled timbres (``--leads sampled``: only
#: through a General MIDI SoundFont): what the first bundled model put into the vocals.
SAMPLED_LEAD_INSTRUMENTS = (
    "harmonica", "soprano_sax", "alto_sax", "tenor_sax", "trumpet", "trombone", "brass_section",
    "flute", "violin", "strings", "piano", "organ", "lead_guitar",
)
#: With sampled leads, most tracks have one, and every instrumental track does.
SAMPLED_LEAD_PROBABILITY = 0.8
#: Their registers: the singers' (MIDI), so that they play where a voice would.
VOCAL_LEAD_REGISTERS = ((45, 67), (53, 74), (57, 79))
#: How a sampled lead is played beyond its notes (pitch bend): vibrato rate, depth and delay
#: after each onset, the scoop from below into a note after a rest (cents, seconds), and how
#: often a phrase is played legato (each note held to the next one's onset).
LEAD_EXPRESSION_VIBRATO_HZ = (4.5, 6.5)
LEAD_EXPRESSION_VIBRATO_CENTS = (10.0, 50.0)
LEAD_EXPRESSION_VIBRATO_DELAY_S = (0.08, 0.35)
LEAD_EXPRESSION_SCOOP_CENTS = (-200.0, -40.0)
LEAD_EXPRESSION_SCOOP_S = (0.04, 0.15)
LEGATO_PROBABILITY = 0.6
#: A note after a silence this long or longer starts a phrase (scooped; legato stops there).
PHRASE_GAP_S = 0.25

#: Horn sections (``--horn-sections``): a lead on one of these horns is harmonised by more of
#: them, as the brass and reed sections of a big band play (the real recordings of which the first
#: bundled model put into its vocals): how many horns join the lead, the scale steps below the lead
#: each may play (a third, fourth, fifth, sixth or octave), each one's level relative to the lead
#: (dB), its lag behind the lead (s; a section never plays exactly together) and its |pan|.
SECTION_HORNS = ("soprano_sax", "alto_sax", "tenor_sax", "trumpet", "trombone", "brass_section")
SECTION_SIZE = (2, 4)
SECTION_STEPS = (-2, -3, -4, -5, -7)
SECTION_GAIN_DB = (-4.0, 0.0)
SECTION_LAG_S = (-0.015, 0.015)
SECTION_PAN = (0.1, 0.6)

#: Notes this short (or shorter) are played palm-muted (duller, fast decay); muted strums last this long.
PALM_MUTE_NOTE_S = 0.15
STRUM_STRING_DELAY_S = (0.008, 0.025)
PALM_MUTE_PROBABILITY = 0.25

NOTE_LEVEL = (0.7, 1.0)

#: Melody generator: note lengths (eighths) and their weights, phrases and rests.
MELODY_UNITS_EIGHTHS = (1, 2, 3, 4, 6, 8)

MELODY_PHRASE_BARS = (1, 2, 2, 4)
FIRST_PHRASE_MAX_BEATS = 1
MELODY_REST_BEATS = (1.0, 6.0)
MELODY_CHORD_TONE_PROBABILITY = 0.75
MELODY_STEP_WEIGHTS = {-2: 1.0, -1: 3.0, 0: 1.0, 1: 3.0, 2: 1.0}
MELODY_LEAP_PROBABILITY = 0.1
MELODY_LEAPS = (-4, -3, 3, 4)  # scale steps
FAST_TEMPO_UNIT_SHIFT = 1  # at fast tempi the shortest unit is dropped


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


@dataclass(frozen=True)
class Expression:
    """How a lead line is played beyond its notes (MIDI pitch bend, ``--leads sampled``).

    Attributes:
        vibrato_hz: Vibrato rate.
        vibrato_cents: Vibrato depth (peak).
        vibrato_delay_s: Time from a note's onset to the vibrato's full depth (it ramps in).
        scoop_cents: Pitch at the onset of a note after a rest (negative: from below), bent to
            the note over ``scoop_s``.
        scoop_s: Duration of that bend.
    """

    vibrato_hz: float
    vibrato_cents: float
    vibrato_delay_s: float
    scoop_cents: float
    scoop_s: float


def sample_expression(rng: np.random.Generator) -> Expression:
    """A random :class:`Expression` of a lead."""
    return Expression(
        uniform(rng, LEAD_EXPRESSION_VIBRATO_HZ),
        uniform(rng, LEAD_EXPRESSION_VIBRATO_CENTS),
        uniform(rng, LEAD_EXPRESSION_VIBRATO_DELAY_S),
        uniform(rng, LEAD_EXPRESSION_SCOOP_CENTS),
        uniform(rng, LEAD_EXPRESSION_SCOOP_S),
    )


def phrase_starts(notes: Sequence[Note]) -> list[bool]:
    """Whether each note (in time order) starts a phrase: the first, or one after a rest of at
    least :data:`PHRASE_GAP_S`."""
    return [i == 0 or nt.start - (notes[i - 1].start + notes[i - 1].duration) >= PHRASE_GAP_S for i, nt in enumerate(notes)]


def legato(notes: Sequence[Note]) -> list[Note]:
    """The notes with each held to the next one's onset, within phrases (:func:`phrase_starts`)."""
    starts = phrase_starts(notes)
    out = list(notes)
    for i in range(len(out) - 1):
        if not starts[i + 1]:
            out[i] = dataclasses.replace(out[i], duration=max(out[i].duration, notes[i + 1].start - notes[i].start))
    return out


@dataclass
class Part:
    """A pitched accompaniment part.

    Attributes:
        family: ``"bass"``, ``"chords"`` or ``"lead"``.
        instrument: Instrument name (``make_instrument``; General MIDI program in ``GM_PROGRAMS``).
        notes: The notes.
        pan: Pan position in [-1, 1].
        gain_db: Level of the part (relative to the others) in dB.
        expression: Pitch-bend expression of a sampled lead (None: the notes as they are).
    """

    family: str
    instrument: str
    notes: list[Note]
    pan: float
    gain_db: float
    expression: Expression | None = None


@dataclass(frozen=True)
class SectionHorn:
    """One horn of a section: it plays the lead's line moved ``steps`` scale degrees."""

    instrument: str
    steps: int
    gain_db: float
    lag_s: float
    pan: float


def sample_section(rng: np.random.Generator) -> list[SectionHorn]:
    """The horns that join a lead (:data:`SECTION_SIZE` of them, each on its own interval)."""
    size = int(rng.integers(SECTION_SIZE[0], SECTION_SIZE[1] + 1))
    steps = sorted((int(s) for s in rng.choice(SECTION_STEPS, size=size, replace=False)), reverse=True)
    return [
        SectionHorn(choice(rng, SECTION_HORNS), step, uniform(rng, SECTION_GAIN_DB), uniform(rng, SECTION_LAG_S),
                    random_side(rng, SECTION_PAN))
        for step in steps
    ]


def section_parts(lead: Part, horns: Sequence[SectionHorn], harmony: Harmony) -> list[Part]:
    """A section's parts: for each horn the lead's notes moved diatonically by its steps, late by
    its lag, at the lead's level plus its own, with the lead's expression (one phrasing)."""
    return [
        Part(
            lead.family,
            horn.instrument,
            [dataclasses.replace(nt, start=nt.start + horn.lag_s, midi=float(harmony.transpose_diatonic(round(nt.midi), horn.steps)))
             for nt in lead.notes],
            horn.pan,
            lead.gain_db + horn.gain_db,
            lead.expression,
        )
        for horn in horns
    ]


@dataclass
class Arrangement:
    """The accompaniment score of a track: pitched parts, drum hits and the drums' level."""

    parts: list[Part]
    drum_hits: list[tuple[float, str, float]]
    drum_gain_db: float
    comping: list[str]
