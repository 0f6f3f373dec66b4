"""``uvrsep combine``: the reference's spectrogram combine tools on existing files.

``uvrsep combine A.wav B.wav ... --algorithm ALGO -p PARAMS -o OUT`` (the rules are in
:mod:`uvrsep.ensemble`):

* ``min_mag``, ``max_mag``, ``avg_spec``: two or more files, combined per bin of the params'
  multi-band spectrogram (the reference's ``ensembling``);
* ``invert``, ``invert_p``: exactly two files, the MIXTURE first and a STEM second; the result is
  the rest of the mixture (e.g. an instrumental rebuilt from a better vocal stem); ``deep``:
  exactly two files;
* ``avg_wave``, ``median_wave``: two or more files, combined sample by sample (no params).

As in the reference's ``spec_utils`` command line, each file is read at the top band's rate
(its ``res_type``), analysed into the combined spectrogram (its pre-filter included, no high
end kept) and the result synthesised from it; files are cut to the shortest. The result is
written at the first file's rate (``--sample-rate``), in stereo unless every input is mono,
atomically. Exit codes: 0 written, 1 an input cannot be read or the output written, 2 usage.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import typer

from .errors import UvrsepError

#: The reference's default params for its combine command line.
DEFAULT_COMBINE_PARAMS = "1band_sr44100_hl512"
#: Longest input accepted (seconds): the inputs are held whole at the model's rate (about 0.6 GB
#: per 30 minutes), and two spectrograms of that length (about 1.3 GB each with 4-band params).
MAX_COMBINE_SECONDS = 30 * 60
#: Most inputs of one combination (UVR's ensembles take 2 to 4).
MAX_COMBINE_INPUTS = 8


class CombineUsage(UvrsepError):
    """A combination that cannot be made as asked (exit code 2)."""


def _algorithms() -> tuple[str, ...]:
    from .ensemble import INVERT_RULES, SPEC_RULES, WAVE_RULES

    return (*SPEC_RULES, *INVERT_RULES, *WAVE_RULES)


def combine_command(
    inputs: list[Path] = typer.Argument(..., metavar="FILES", help="Audio files; for invert/invert_p the MIXTURE first, then the STEM.", show_default=False),
    algorithm: str = typer.Option(..., "-a", "--algorithm", help="min_mag, max_mag, avg_spec, invert, invert_p, deep, avg_wave or median_wave."),
    params: str = typer.Option(DEFAULT_COMBINE_PARAMS, "-p", "--params", help="Model-params name or JSON path whose spectrogram the spectral rules work on."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.wav, .flac, .ogg, .mp3)."),
    sample_rate: str = typer.Option("input", "--sample-rate", help="input (the first file's), model (the params') or an integer."),
    subtype: str = typer.Option("PCM_16", "--subtype", help="PCM_16, PCM_24 or FLOAT (wav/flac)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No messages."),
) -> None:
    """Combine existing stems: the reference's min_mag/max_mag/invert/invert_p, and wave averages."""
    from .audio import AudioError, write_audio
    from .cli import parse_sample_rate
    from .ensemble import INVERT_RULES, WAVE_RULES

    if algorithm not in _algorithms():
        raise CombineUsage(f"--algorithm must be one of {', '.join(_algorithms())}, got '{algorithm}'")
    if algorithm in INVERT_RULES and len(inputs) != 2:
        raise CombineUsage(f"{algorithm} takes exactly two files (invert, invert_p: the mixture, then the stem)")
    if not 2 <= len(inputs) <= MAX_COMBINE_INPUTS:
        raise CombineUsage(f"{algorithm} takes 2 to {MAX_COMBINE_INPUTS} files, got {len(inputs)}")
    rate_choice = parse_sample_rate(sample_rate)
    try:
        if algorithm in WAVE_RULES:
            wave, rate = _combine_waves(inputs, algorithm, rate_choice)
        else:
            wave, rate = _combine_spectrograms(inputs, algorithm, params, rate_choice)
        clipped = write_audio(output, wave, rate, subtype=subtype, overwrite=overwrite)
    except AudioError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1)
    if clipped and not quiet:
        sys.stderr.write(f"warning: {output}: {clipped} samples beyond full scale were clipped (try --subtype FLOAT)\n")
    if not quiet:
        typer.echo(str(output))


def _read(path: Path) -> tuple[np.ndarray, int]:
    """A file's ``(channels, samples)`` float32 and rate, within :data:`MAX_COMBINE_SECONDS`."""
    from .audio import AudioError, probe_duration, read_audio

    seconds = probe_duration(path)  # before decoding: what the header or container says
    if seconds is not None and seconds > MAX_COMBINE_SECONDS:
        raise AudioError(f"{path}: {seconds / 60:.0f} minutes; combine takes up to {MAX_COMBINE_SECONDS // 60} (cut it first)")
    wave, info = read_audio(path)
    if wave.shape[1] > MAX_COMBINE_SECONDS * info.sample_rate:
        raise AudioError(f"{path}: longer than {MAX_COMBINE_SECONDS // 60} minutes; combine takes up to that (cut it first)")
    return wave, info.sample_rate


def _output_rate(choice: str | int, first_rate: int, model_rate: int | None) -> int:
    if choice == "input":
        return first_rate
    if choice == "model":
        if model_rate is None:
            raise CombineUsage("--sample-rate model needs a spectral algorithm (the params' rate)")
        return model_rate
    return int(choice)


def _finish(wave: np.ndarray, mono: bool) -> np.ndarray:
    return wave.mean(axis=0, keepdims=True) if mono else wave


def _combine_waves(inputs: list[Path], algorithm: str, rate_choice: str | int) -> tuple[np.ndarray, int]:
    """Sample rules: every input brought to the output rate (as ``split`` brings its stems back)."""
    from .api import OUTPUT_RESAMPLER, as_stereo
    from .ensemble import WAVE_RULES
    from .transforms import resample

    waves, mono, rate = [], True, 0
    for index, path in enumerate(inputs):
        wave, file_rate = _read(path)
        if index == 0:
            rate = _output_rate(rate_choice, file_rate, None)
        mono = mono and wave.shape[0] == 1
        waves.append(as_stereo(resample(wave, file_rate, rate, OUTPUT_RESAMPLER)).astype(np.float32))
    return _finish(WAVE_RULES[algorithm](waves), mono), rate


def _combine_spectrograms(
    inputs: list[Path], algorithm: str, params_name: str, rate_choice: str | int
) -> tuple[np.ndarray, int]:
    """Spectral rules. All inputs are cut to the shortest at the model's rate, then analysed
    and folded one at a time (two spectrograms in memory at once). Each is padded to whole
    hops first (at its start for params that reverse the signal, whose frames count from the
    end), so its last ``N mod hop`` samples are kept, which the reference drops."""
    from .api import OUTPUT_RESAMPLER, as_stereo, reversed_front_padding
    from .ensemble import INVERT_RULES, SPEC_RULES, crop_to_shortest
    from .params import load_params
    from .transforms import analyze, fix_length, pad_to_hop, resample, synthesize

    params = load_params(params_name)
    top = params.top
    waves, mono, rate = [], True, 0
    for index, path in enumerate(inputs):
        wave, file_rate = _read(path)
        if index == 0:
            rate = _output_rate(rate_choice, file_rate, top.sr)
        mono = mono and wave.shape[0] == 1
        waves.append(as_stereo(resample(wave, file_rate, top.sr, top.res_type)).astype(np.float32))
        del wave
    samples = min(wave.shape[1] for wave in waves)
    front = reversed_front_padding(samples, top.hl, params.sample_grid) if params.reverse else 0
    combined: np.ndarray | None = None
    while waves:
        wave = waves.pop(0)[:, :samples]
        padded = np.pad(wave, ((0, 0), (front, 0))) if params.reverse else pad_to_hop(wave, top.hl)
        spec = analyze(padded, params, keep_high_end=False).spec
        del wave, padded
        if combined is None:
            combined = spec
        elif algorithm in INVERT_RULES:
            combined = INVERT_RULES[algorithm](combined, spec)
        elif algorithm == "avg_spec":  # a running sum, divided at the end
            combined, spec = crop_to_shortest([combined, spec])
            combined = combined + spec
        else:  # min_mag / max_mag fold pair by pair, as the reference's loop does
            combined = SPEC_RULES[algorithm]([combined, spec])
    assert combined is not None
    if algorithm == "avg_spec":
        combined = (combined / len(inputs)).astype(np.complex64)
    wave = synthesize(combined, params)[:, front:]
    out = resample(fix_length(wave, samples), top.sr, rate, OUTPUT_RESAMPLER)
    out = fix_length(out, math.ceil(samples * rate / top.sr))
    return _finish(np.asarray(out, dtype=np.float32), mono), rate
