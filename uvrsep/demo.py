"""A short demo clip the project generates itself (no data files, no network).

The clip is a small "song": a sung vowel line (a source–filter voice with vibrato and formants)
over a chord pad, a bass line and a hi-hat/kick pattern, at 44.1 kHz stereo. It is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DEMO_SAMPLE_RATE = 44100
DEMO_SECONDS = 6.0
#: Tempo of the demo's accompaniment.
DEMO_BPM = 100.0
#: Chord roots (Hz) of the pad, one per bar: A2, F2, C3, G2.
CHORD_ROOTS = (110.0, 87.31, 130.81, 98.0)
#: Major-triad intervals as frequency ratios.
TRIAD = (1.0, 1.2599, 1.4983)
#: Melody of the voice in semitones above A3 (220 Hz), one note per beat.
MELODY = (0, 2, 4, 7, 4, 2, 0, -1, 0, 4, 7, 9, 7, 4, 2, 0)
VOICE_BASE_HZ = 220.0
#: Formant centre frequencies (Hz) and bandwidths of the vowels /a/, /e/, /o/.
VOWELS = (((800, 80), (1150, 90), (2900, 120)), ((400, 70), (2000, 100), (2550, 120)), ((450, 70), (800, 80), (2830, 100)))
VIBRATO_HZ = 5.5
VIBRATO_SEMITONES = 0.3
SEED = 20261124


def _formant_filter(signal: np.ndarray, sr: int, formants: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Sum of two-pole resonators at the given (centre, bandwidth) formants."""
    from scipy.signal import lfilter

    out = np.zeros_like(signal)
    for centre, bandwidth in formants:
        radius = np.exp(-np.pi * bandwidth / sr)
        theta = 2 * np.pi * centre / sr
        out += lfilter([1 - radius], [1, -2 * radius * np.cos(theta), radius**2], signal)
    return out


def _voice(n: int, sr: int, beat: int) -> np.ndarray:
    """A sung line: band-limited glottal pulses with vibrato through vowel formants."""
    t = np.arange(n) / sr
    notes = np.array(MELODY)[np.minimum(np.arange(n) // beat, len(MELODY) - 1)]
    freq = VOICE_BASE_HZ * 2 ** ((notes + VIBRATO_SEMITONES * np.sin(2 * np.pi * VIBRATO_HZ * t)) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    source = sum(np.sin(k * phase) / k for k in range(1, 30)) * (freq * 30 < sr / 2)
    out = np.zeros(n)
    for start in range(0, n, beat):
        stop = min(n, start + beat)
        vowel = VOWELS[(start // beat) % len(VOWELS)]
        segment = _formant_filter(source[start:stop], sr, vowel)
        envelope = np.minimum(1.0, np.linspace(0, 8, stop - start)) * np.minimum(1.0, np.linspace(8, 0, stop - start))
        out[start:stop] = segment * envelope
    return out / (np.abs(out).max() + 1e-9)


def _accompaniment(n: int, sr: int, beat: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo chords, bass, kick and hi-hat."""
    t = np.arange(n) / sr
    bar = 4 * beat
    roots = np.array(CHORD_ROOTS)[(np.arange(n) // bar) % len(CHORD_ROOTS)]
    pad = sum(np.sin(2 * np.pi * roots * 2 * ratio * t + k) for k, ratio in enumerate(TRIAD)) / len(TRIAD)
    bass = np.sign(np.sin(2 * np.pi * roots / 2 * t)) * 0.5
    drums = np.zeros(n)
    hit = np.arange(min(beat, n)) / sr
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-hit * 30)) * hit) * np.exp(-hit * 12)
    hat_len = min(beat // 4, n)
    hat = rng.standard_normal(hat_len) * np.exp(-np.arange(hat_len) / sr * 60)
    for start in range(0, n, beat):
        drums[start : start + len(kick)] += kick[: n - start]
        off = start + beat // 2
        if off < n:
            drums[off : off + hat_len] += 0.3 * hat[: n - off]
    left = 0.5 * pad + 0.6 * bass + 0.6 * drums
    right = 0.4 * pad + 0.6 * bass + 0.6 * drums + 0.1 * np.roll(pad, sr // 100)
    return np.stack([left, right])


def make_demo_clip(seconds: float = DEMO_SECONDS, sample_rate: int = DEMO_SAMPLE_RATE) -> dict[str, np.ndarray]:
    """The demo song and its parts.

    Returns:
        ``{"mixture", "vocals", "instrumental"}``, each ``(2, samples)`` float32 with
        ``samples = round(seconds · sample_rate)``, mixture = vocals + instrumental, peak ≤ 0.9.
    """
    rng = np.random.default_rng(SEED)
    n = int(round(seconds * sample_rate))
    beat = int(sample_rate * 60 / DEMO_BPM)
    voice = _voice(n, sample_rate, beat)
    vocals = np.stack([voice, voice]) * 0.5
    instrumental = _accompaniment(n, sample_rate, beat, rng)
    peak = np.abs(vocals + instrumental).max()
    scale = 0.9 / peak if peak > 0 else 1.0
    parts = {"vocals": vocals * scale, "instrumental": instrumental * scale}
    parts["mixture"] = parts["vocals"] + parts["instrumental"]
    return {name: part.astype(np.float32) for name, part in parts.items()}


def demo_separator():
    """The separator the demo uses: the default model available offline (the recommended official
    model once downloaded, else the model bundled with the package)."""
    from .api import Separator
    from .pretrained import resolve_model

    resolved = resolve_model(None, offline=True, progress=False)
    return Separator(resolved.state_dict, resolved.params, primary_stem=resolved.primary_stem), resolved.name


def run_demo(output_dir: str | Path, quiet: bool = False) -> list[Path]:
    """Write ``demo.wav`` (the clip) into ``output_dir`` and separate it next to it.

    Returns:
        Paths of the clip and of the stems written.
    """
    from .audio import write_audio

    output_dir = Path(output_dir)
    clip = make_demo_clip()
    clip_path = output_dir / "demo.wav"
    write_audio(clip_path, clip["mixture"], DEMO_SAMPLE_RATE, subtype="PCM_16", overwrite=True)
    separator, name = demo_separator()
    if not quiet:
        print(f"separating {clip_path} with model '{name}'", file=sys.stderr)
    result = separator.separate(clip["mixture"], DEMO_SAMPLE_RATE)
    paths = [clip_path]
    for stem, wave in result.stems.items():
        path = output_dir / f"demo_{stem}.wav"
        write_audio(path, wave, result.sample_rate, subtype="PCM_16", overwrite=True)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m uvrsep.demo [OUT_DIR]`` (same as ``uvrsep demo -o OUT_DIR``)."""
    args = sys.argv[1:] if argv is None else argv
    for path in run_demo(args[0] if args else "separated/demo"):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
