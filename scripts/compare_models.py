#!/usr/bin/env python3
"""Two (or more) models side by side on every figure the bundled model is judged by.

    python scripts/compare_models.py -m old=uvrsep/bundled/default.pth -m new=runs/v2/model.pth \\
        --generated old-gen=heldout_old/test --generated new-gen=heldout_new/test \\
        [--data ../shared/data] [--precision auto] [--json]

Each ``-m`` is ``LABEL=MODEL`` (or just ``MODEL``: a registry name or ``.pth`` path). The figures,
all with the same code path as ``uvrsep eval`` (BSS-eval SDR, whole signal, filter 512; medians
over tracks):

- SDR of vocals/accompaniment on each ``--generated`` set (held-out tracks of
  ``scripts/make_dataset.py``, one per generator version);
- SDR on the MUSDB18 sample (``DATA/musdb18_sample``, true stems);
- SDR on the six songs against the pseudo-references (``DATA/songs/X.flac`` paired with
  ``DATA/songs_reference/X_{vocals,instrumental}.flac``), median and per song;
- leakage: the energy of the model's vocals stem relative to the mixture (dB, lower is better) on
  songs whose part has no singing (``--leak SONG[@SECONDS]``, from that second on; default: the
  brass song whole and ``levee_drums`` after 0:12, where its harmonica plays);
- dialogue: the energy of the instrumental stem relative to the clip (dB, lower = the speech went
  whole into the vocals) for each ``DATA/dialogue`` clip;
- per band (0–2, 2–8, 8 kHz–Nyquist), where the leakage sits and the balance of the vocals stem on
  the MUSDB18 sample: its energy relative to the true vocals (0 dB = as much as the voice has;
  above = accompaniment in the vocals in that band, below = voice lost from them).

Every model reads each track once per figure; nothing is written but a temporary folder of links.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvrsep.audio import read_audio  # noqa: E402
from uvrsep.cli_eval import load_model_method  # noqa: E402
from uvrsep.dataset import find_tracks  # noqa: E402
from uvrsep.evaluate import (  # noqa: E402
    EvalResult,
    Method,
    band_energy_ratios_db,
    energy_ratio_db,
    evaluate,
    json_ready,
    reference_pairs,
)

DEFAULT_DATA = ROOT.parent / "shared" / "data"
#: Songs (and the second they are scored from) whose part there has no singing.
DEFAULT_LEAKS = ("sing_sing_sing_brass", "levee_drums@12")
#: The stems scored, in table order, with their short names.
STEM_COLUMNS = (("vocals", "voc"), ("accompaniment", "acc"))
#: Edges of the bands the energy figures are also given in (Hz; the last band ends at Nyquist).
BAND_EDGES_HZ = (0.0, 2000.0, 8000.0, math.inf)
#: The MUSDB18 sample's true vocals, against which the balance of the vocals stem is measured.
MUSDB_VOCALS = "vocals.wav"


@dataclass
class Model:
    label: str
    method: Method
    info: dict[str, object]


def parse_labelled(text: str) -> tuple[str | None, str]:
    """``LABEL=VALUE`` → ``(LABEL, VALUE)``; a bare ``VALUE`` → ``(None, VALUE)``."""
    label, sep, value = text.partition("=")
    return (label, value) if sep and label and value else (None, text)


def parse_leak(text: str) -> tuple[str, float]:
    """``SONG[@SECONDS]`` → ``(SONG, SECONDS)``."""
    song, _, start = text.partition("@")
    return song, float(start) if start else 0.0


def song_tracks(songs: Path, references: Path, into: Path) -> Path:
    """A folder of track folders linking each song to its pseudo-reference stems (for eval)."""
    for mixture, stems in reference_pairs(songs, references, ("vocals", "instrumental")):
        folder = into / mixture.stem
        folder.mkdir(parents=True)
        (folder / "mixture.flac").symlink_to(mixture.resolve())
        for stem, path in stems.items():
            (folder / f"{stem}.flac").symlink_to(path.resolve())
    return into


def scored(result: EvalResult, label: str) -> dict[str, object]:
    """One model's medians and per-track SDR from an evaluation of several."""
    return {
        "median": {stem: result.median[label][stem]["sdr"] for stem, _ in STEM_COLUMNS},
        "tracks": {
            track.name: {stem: track.scores[label][stem]["sdr"] for stem, _ in STEM_COLUMNS}
            for track in result.tracks if track.ok
        },
        "failed": [track.error for track in result.tracks if not track.ok],
    }


def sdr_figures(folders: list[Path], models: list[Model]) -> dict[str, dict[str, object]]:
    """``{label: scored(...)}`` on the tracks under ``folders``."""
    result = evaluate(find_tracks(folders), {model.label: model.method for model in models})
    return {model.label: scored(result, model.label) for model in models}


def band_label(low: float, high: float) -> str:
    """``(2000, 8000)`` → ``"2–8 kHz"``; an infinite ``high`` → ``"8 kHz–Nyquist"``."""
    if math.isinf(high):
        return f"{low / 1000:g} kHz–Nyquist"
    return f"{low / 1000:g}–{high / 1000:g} kHz"


def energy_figures(
    files: dict[str, tuple[Path, float]], models: list[Model], stem: str, references: dict[str, Path] | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """``({label: {name: dB}}, {label: {name: {band: dB}}})``: energy of each model's ``stem``
    relative to the input (or to ``references[name]``, a file as long), from the given second on,
    whole and per band of :data:`BAND_EDGES_HZ`."""
    whole: dict[str, dict[str, float]] = {model.label: {} for model in models}
    bands: dict[str, dict[str, dict[str, float]]] = {model.label: {} for model in models}
    names = [band_label(low, high) for low, high in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])]
    for name, (path, start) in files.items():
        wave, info = read_audio(path)
        reference = read_audio(references[name])[0] if references and name in references else wave
        first = int(round(start * info.sample_rate))
        for model in models:
            estimate = model.method(wave, info.sample_rate)[stem][:, first:]
            whole[model.label][name] = round(energy_ratio_db(estimate, reference[:, first:]), 2)
            ratios = band_energy_ratios_db(estimate, reference[:, first:], info.sample_rate, BAND_EDGES_HZ)
            bands[model.label][name] = {band: round(ratio, 2) for band, ratio in zip(names, ratios)}
    return whole, bands


def cell(value: object) -> str:
    return "—" if value is None or (isinstance(value, float) and value != value) else f"{value:.2f}"


def print_table(title: str, columns: list[str], rows: list[tuple[str, list[object]]]) -> None:
    """One Markdown table: a title column, then ``columns``; each row a name and its cells."""
    print(f"| {title} | " + " | ".join(columns) + " |")
    print("|---" * (1 + len(columns)) + "|")
    for name, values in rows:
        print(f"| {name} | " + " | ".join(cell(value) for value in values) + " |")


def print_report(report: dict[str, object], labels: list[str]) -> None:
    """The figures as Markdown tables, the models side by side."""
    sdr = report["sdr"]
    head = [f"{label} {short}" for label in labels for _, short in STEM_COLUMNS]
    print_table("SDR (dB), median", head, [
        (material, [per_model[label]["median"][stem] for label in labels for stem, _ in STEM_COLUMNS])
        for material, per_model in sdr.items()])
    songs = sdr.get("songs")
    if songs:
        print()
        print_table("song (SDR vs pseudo-reference, dB)", head, [
            (name, [songs[label]["tracks"].get(name, {}).get(stem) for label in labels for stem, _ in STEM_COLUMNS])
            for name in songs[labels[0]]["tracks"]])
    for key, title in (("leakage", "vocals energy vs mixture (dB; lower is better)"),
                       ("dialogue", "instrumental energy vs clip (dB; lower = speech whole in the vocals)")):
        figures = report.get(key)
        if figures:
            print()
            rows = [(name, [figures[label][name] for label in labels]) for name in figures[labels[0]]]
            rows.append(("median", [statistics.median(figures[label].values()) for label in labels]))
            print_table(title, labels, rows)
    for key, title in (("leakage_bands", "vocals energy vs mixture per band (dB)"),
                       ("vocals_balance", "vocals stem vs true vocals per band (dB; 0 = right, > 0 = accompaniment in it)")):
        figures = report.get(key)
        if figures:
            print()
            print_table(title, labels, [
                (f"{name}, {band}", [figures[label][name][band] for label in labels])
                for name, per_band in figures[labels[0]].items() for band in per_band])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", action="append", required=True, help="LABEL=MODEL (repeat; the first is the baseline)")
    parser.add_argument("--generated", action="append", default=[], help="LABEL=FOLDER of held-out generated tracks (repeat)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (musdb18_sample, songs, songs_reference, dialogue)")
    parser.add_argument("--leak", action="append", default=None, help="SONG[@SECONDS] without singing from there on (repeat)")
    parser.add_argument("-p", "--params", default=None, help="model params of every model (default: known from each)")
    parser.add_argument("--precision", default="auto", help="model precision (as uvrsep split)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    args = parser.parse_args(argv)

    models = []
    for text in args.model:
        label, source = parse_labelled(text)
        name, method, info = load_model_method(source, args.params, args.device, args.precision, True, True)
        models.append(Model(label or name, method, info))
    labels = [model.label for model in models]
    if len(set(labels)) != len(labels):
        parser.error(f"two models share a label: {labels}; name them with LABEL=MODEL")

    report: dict[str, object] = {"models": {model.label: model.info for model in models}, "sdr": {}}
    for text in args.generated:
        label, folder = parse_labelled(text)
        report["sdr"][f"generated {label or folder}"] = sdr_figures([Path(folder)], models)
    musdb = args.data / "musdb18_sample"
    if musdb.is_dir():
        report["sdr"]["MUSDB18 sample"] = sdr_figures([musdb], models)
        if (musdb / MUSDB_VOCALS).is_file() and (musdb / "mixture.wav").is_file():
            name = "MUSDB18 sample"
            _, report["vocals_balance"] = energy_figures(
                {name: (musdb / "mixture.wav", 0.0)}, models, "vocals", {name: musdb / MUSDB_VOCALS})
    songs, references = args.data / "songs", args.data / "songs_reference"
    if songs.is_dir() and references.is_dir():
        with tempfile.TemporaryDirectory(prefix="uvrsep-compare-") as folder:
            report["sdr"]["songs"] = sdr_figures([song_tracks(songs, references, Path(folder))], models)
        leaks = dict(parse_leak(text) for text in (args.leak or DEFAULT_LEAKS))
        files = {f"{song}" + (f" after {start:g} s" if start else ""): (songs / f"{song}.flac", start) for song, start in leaks.items()}
        for name, (path, _) in list(files.items()):
            if not path.is_file():
                print(f"{path}: no such song; --leak {name} left out", file=sys.stderr)
                del files[name]
        report["leakage"], report["leakage_bands"] = energy_figures(files, models, "vocals")
    dialogue = args.data / "dialogue"
    if dialogue.is_dir():
        clips = {path.stem: (path, 0.0) for path in sorted(dialogue.glob("*.wav"))}
        report["dialogue"], _ = energy_figures(clips, models, "accompaniment")
    if args.json:
        print(json.dumps(json_ready(report), indent=1))
    else:
        print_report(report, labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
