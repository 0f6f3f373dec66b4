"""Optional renderers that need programs: FluidSynth (General MIDI), espeak-ng and Festival (speech).

The arrangement written as a Standard MIDI File (General MIDI programs, drums on channel 10,
CC7 volume, CC10 pan, pitch-bend expression of sampled leads) and rendered by ``fluidsynth``
through a SoundFont; spoken and rapped voices as ``espeak-ng`` speech of random words in breath
groups, or as Festival speech in voices cut from real speakers (several languages). The
command line checks for each program and names the one that is missing.
"""

from __future__ import annotations

import math
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
from scipy.io import wavfile

from .dsp import choice, midi_to_hz, normalise_rms, uniform
from .arrangement import SECONDS_PER_MINUTE, Arrangement, Note, Part, phrase_starts
from .voice import SPEECH_FIRST_ONSET_S, SPEECH_PAUSE_S, Singer


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
#: Pitch bend: its message, the range set on an expressive part's channel (RPN 0, semitones),
#: the 14-bit centre and the step of the bend curves written (seconds).
MIDI_PITCH_BEND = 0xE0
MIDI_CC_RPN_MSB, MIDI_CC_RPN_LSB, MIDI_CC_DATA_MSB, MIDI_CC_DATA_LSB = 101, 100, 6, 38
PITCH_BEND_RANGE_SEMITONES = 2
PITCH_BEND_CENTRE = 8192
PITCH_BEND_STEP_S = 0.01
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
    # the sampled leads (``--leads sampled``)
    "harmonica": 22,
    "soprano_sax": 64,
    "alto_sax": 65,
    "tenor_sax": 66,
    "trumpet": 56,
    "trombone": 57,
    "brass_section": 61,
    "violin": 40,
    "lead_guitar": 29,
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


FESTIVAL = "text2wave"
#: Where Debian's festvox packages put Festival's voices (``<language>/<voice>/``).
FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices",)
#: Festival voices cut from real speakers (Debian's ``festvox-*`` packages): voice -> (singer
#: kind, language). Children speak with a female voice shifted up (:data:`CHILD_SHIFT_SEMITONES`).
FESTIVAL_VOICES = {
    "kal_diphone": ("male", "en"),
    "ked_diphone": ("male", "en"),
    "lp_diphone": ("male", "it"),
    "hy_fi_mv_diphone": ("male", "fi"),
    "cmu_us_slt_arctic_hts": ("female", "en"),
    "upc_ca_ona_hts": ("female", "ca"),
    "pc_diphone": ("female", "it"),
    "czech_dita": ("female", "cs"),
    "suo_fi_lj_diphone": ("female", "fi"),
}
#: Words a Festival voice speaks, per language (ASCII: the voices' own letter-to-sound rules
#: read them).
FESTIVAL_WORDS = {
    "it": tuple("amore cuore notte sole luna mare vento cielo sempre ancora tempo strada casa vita sogno fuoco "
                "stella canto piano forte luce domani insieme ballare ritorno".split()),
    "ca": tuple("amor cor nit sol lluna mar vent cel sempre temps carrer casa vida somni foc estrella cant llum "
                "dia terra junts ballar tornar demà".split()),
    "cs": tuple("laska srdce noc slunce mesic more vitr nebe vzdycky cas ulice domov zivot sen ohen hvezda pisen "
                "svetlo den zeme spolu tancit navrat zitra".split()),
    "fi": tuple("rakkaus sydan yo aurinko kuu meri tuuli taivas aina aika katu koti elama uni tuli tahti laulu "
                "valo paiva maa yhdessa tanssi huomenna".split()),
}
#: Festival's ``Duration_Stretch`` (the diphone voices follow it; the HTS ones keep their rate),
#: the child voices' upward shift, and the mean length of a spoken word (planning the text).
FESTIVAL_STRETCH = (0.8, 1.25)
CHILD_SHIFT_SEMITONES = (3.0, 6.0)
FESTIVAL_WORD_S = 0.4
FESTIVAL_SENTENCE_PAUSE_S = 0.3
#: Syllables a Festival voice sings, one per note (read by the voice's own language rules).
FESTIVAL_SYLLABLES = ("la", "na", "ma", "da", "lo", "no", "mo", "le", "ne", "mi", "ti", "sa", "ra", "ya", "wo")
#: The singing XML of Festival's ``singing`` mode (frequencies in Hz, durations in seconds).
FESTIVAL_SINGING_HEADER = (
    '<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" "Singing.v0_1.dtd" []>\n'
)
#: Rests shorter than this inside a phrase are left to the voice (it joins the notes).
FESTIVAL_MIN_REST_S = 0.02
#: Festival's diphone resynthesis crashes on notes above about 520 Hz: a phrase reaching
#: higher than this is sung whole octaves lower.
FESTIVAL_MAX_SUNG_HZ = 480.0


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

    def bend(channel: int, time_s: float, cents: float) -> None:
        value = int(np.clip(round(PITCH_BEND_CENTRE * (1 + cents / (100 * PITCH_BEND_RANGE_SEMITONES))), 0, 2 * PITCH_BEND_CENTRE - 1))
        tick = max(0, round((time_s + shift) / tick_s))
        events.append((tick, 1, bytes([MIDI_PITCH_BEND | channel, value & 0x7F, value >> 7])))

    channels = [c for c in range(MIDI_CHANNELS) if c != MIDI_DRUM_CHANNEL]
    for channel, part in zip(channels, arrangement.parts):
        setup(channel, part.gain_db, part.pan, GM_PROGRAMS[part.instrument])
        if part.expression is not None:
            for cc, value in ((MIDI_CC_RPN_MSB, 0), (MIDI_CC_RPN_LSB, 0), (MIDI_CC_DATA_MSB, PITCH_BEND_RANGE_SEMITONES), (MIDI_CC_DATA_LSB, 0)):
                events.append((0, 0, bytes([0xB0 | channel, cc, value])))
            for nt, curve in zip(part.notes, bend_curves(part)):
                for t, cents in curve:
                    bend(channel, nt.start + t, cents)
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


def bend_curves(part: Part) -> list[list[tuple[float, float]]]:
    """Per note of an expressive part: ``(seconds from its onset, cents)`` points of its pitch
    bend, every :data:`PITCH_BEND_STEP_S` over the note. A note after a rest scoops in from
    ``scoop_cents`` (linearly, over ``scoop_s``); every note's vibrato ramps in over
    ``vibrato_delay_s``. Each curve starts at the onset, so a note never inherits the last bend
    of the one before."""
    ex = part.expression
    assert ex is not None
    curves = []
    for nt, first in zip(part.notes, phrase_starts(part.notes)):
        t = np.arange(0.0, max(nt.duration, PITCH_BEND_STEP_S), PITCH_BEND_STEP_S)
        cents = ex.vibrato_cents * np.minimum(t / ex.vibrato_delay_s, 1.0) * np.sin(2 * np.pi * ex.vibrato_hz * t)
        if first:
            cents += ex.scoop_cents * np.clip(1.0 - t / ex.scoop_s, 0.0, 1.0)
        curves.append(list(zip(t.tolist(), cents.tolist())))
    return curves


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


def resampled(mono: np.ndarray, ratio: Fraction) -> np.ndarray:
    """``mono`` resampled by ``ratio`` (output rate / input rate; polyphase), float32."""
    return scipy.signal.resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)


def after_onset(mono: np.ndarray, onset_s: float, sr: int, n: int) -> np.ndarray:
    """``mono`` starting ``onset_s`` seconds in, cut or zero-padded to ``n`` samples."""
    return fit_length(np.concatenate([np.zeros(int(onset_s * sr), dtype=np.float32), mono]), 0, n)


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
    facts["espeak"] = {"voice": f"en+{variant}", "words_per_minute": wpm, "pitch": pitch}
    return after_onset(resampled(audio[:, 0], Fraction(sr, rate)), onset, sr, n)


def festival_voices() -> list[str]:
    """The voices of :data:`FESTIVAL_VOICES` installed on this machine, sorted."""
    found = set()
    for root in FESTIVAL_VOICE_DIRS:
        for name in FESTIVAL_VOICES:
            if any(Path(root).glob(f"*/{name}")):
                found.add(name)
    return sorted(found)


def festival_voice(
    rng: np.random.Generator, singer: Singer, seconds: float, n: int, sr: int, facts: dict[str, Any]
) -> np.ndarray:
    """Mono speech by Festival (``text2wave``) in a voice of the singer's kind cut from a real
    speaker, in its language: random words in sentences (a pause after each); a child's voice is
    a female one shifted up. Raises RuntimeError when no voice is installed."""
    installed = festival_voices()
    if not installed:
        raise RuntimeError(f"no Festival voice installed (any of {', '.join(FESTIVAL_VOICES)})")
    kind = "female" if singer.kind == "child" else singer.kind
    voice = choice(rng, [v for v in installed if FESTIVAL_VOICES[v][0] == kind] or installed)
    language = FESTIVAL_VOICES[voice][1]
    words = FESTIVAL_WORDS.get(language, ESPEAK_WORDS)
    stretch = uniform(rng, FESTIVAL_STRETCH)
    sentences, spoken = [], 0.0
    while spoken < seconds:
        count = int(rng.integers(ESPEAK_GROUP_WORDS[0], ESPEAK_GROUP_WORDS[1] + 1))
        sentences.append(" ".join(choice(rng, words) for _ in range(count)) + ".")
        spoken += count * FESTIVAL_WORD_S * stretch + FESTIVAL_SENTENCE_PAUSE_S
    onset = uniform(rng, SPEECH_FIRST_ONSET_S)
    shift = uniform(rng, CHILD_SHIFT_SEMITONES) if singer.kind == "child" else 0.0
    with tempfile.TemporaryDirectory(prefix="make_dataset_") as tmp:
        text, wav = Path(tmp) / "voice.txt", Path(tmp) / "voice.wav"
        text.write_text(" ".join(sentences) + "\n")
        run_tool([FESTIVAL, "-eval", f"(begin (voice_{voice}) (Parameter.set 'Duration_Stretch {stretch:.3f}))", "-o", str(wav), str(text)])
        audio, rate = read_wav_float(wav)
    # resampled to sr / 2^(shift/12) and played at sr: the voice shifted up (formants too)
    mono = resampled(audio[:, 0], Fraction(round(sr / 2 ** (shift / 12)), rate).limit_denominator(1000))
    facts["festival"] = {"voice": voice, "language": language, "duration_stretch": round(stretch, 3), "shift_semitones": round(shift, 2)}
    return after_onset(mono, onset, sr, n)


def festival_singing_voices() -> list[str]:
    """The installed Festival voices that follow its singing mode (the diphone ones: the HTS
    voices speak the words at their own pitch)."""
    return [v for v in festival_voices() if not v.endswith("_hts")]


def festival_song(
    rng: np.random.Generator,
    singer: Singer,
    notes: Sequence[tuple[Note, bool]],
    n: int,
    sr: int,
    facts: dict[str, Any],
) -> np.ndarray:
    """Mono singing by Festival's singing mode in a diphone voice of the singer's kind (a real
    speaker's): each phrase of ``notes`` (``(note, starts_a_phrase)``, from the melody
    generator) sung on syllables at the notes' pitches and lengths (a phrase above
    :data:`FESTIVAL_MAX_SUNG_HZ` whole octaves lower), rendered apart and placed at its first
    note's onset (Festival's timing drifts a little within a phrase, not across them). Raises
    RuntimeError when no such voice is installed."""
    installed = festival_singing_voices()
    if not installed:
        raise RuntimeError("no Festival diphone voice installed for singing")
    kind = "female" if singer.kind == "child" else singer.kind
    voice = choice(rng, [v for v in installed if FESTIVAL_VOICES[v][0] == kind] or installed)
    phrases: list[list[Note]] = []
    for note, first in notes:
        if first or not phrases:
            phrases.append([])
        phrases[-1].append(note)
    out = np.zeros(n, dtype=np.float32)
    lowered = 0
    with tempfile.TemporaryDirectory(prefix="make_dataset_") as tmp:
        for k, phrase in enumerate(phrases):
            top = max(float(midi_to_hz(note.midi)) for note in phrase)
            octaves = max(0, math.ceil(math.log2(top / FESTIVAL_MAX_SUNG_HZ)))
            lowered += octaves > 0
            body = []
            for i, note in enumerate(phrase):
                if i:
                    rest = note.start - (phrase[i - 1].start + phrase[i - 1].duration)
                    if rest > FESTIVAL_MIN_REST_S:
                        body.append(f'<REST SECONDS="{rest:.3f}"></REST>')
                hz = float(midi_to_hz(note.midi)) / 2**octaves
                body.append(f'<PITCH FREQ="{hz:.2f}"><DURATION SECONDS="{note.duration:.3f}">{choice(rng, FESTIVAL_SYLLABLES)}</DURATION></PITCH>')
            xml, wav = Path(tmp) / f"phrase{k}.xml", Path(tmp) / f"phrase{k}.wav"
            xml.write_text(FESTIVAL_SINGING_HEADER + '<SINGING BPM="60">\n' + "\n".join(body) + "\n</SINGING>\n")
            run_tool([FESTIVAL, "-mode", "singing", "-eval", f"(voice_{voice})", "-o", str(wav), str(xml)])
            audio, rate = read_wav_float(wav)
            mono = resampled(audio[:, 0], Fraction(sr, rate))
            start = int(round(phrase[0].start * sr))
            if start < 0:
                mono, start = mono[-start:], 0
            piece = mono[: max(0, n - start)]
            out[start : start + piece.shape[0]] += piece
    facts["festival_singing"] = {
        "voice": voice, "language": FESTIVAL_VOICES[voice][1], "phrases": len(phrases), "phrases_an_octave_lower": lowered,
    }
    return out
