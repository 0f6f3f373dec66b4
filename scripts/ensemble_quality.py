#!/usr/bin/env python3
"""SDR of two (or more) models and of their ensembles, side by side, on tracks with references.

    python scripts/ensemble_quality.py -m MODEL_A -m MODEL_B [-p PARAMS] [--data ../shared/data]

Tracks: ``musdb18_sample`` (true stems: ``vocals.wav``, ``accompaniment.wav``) and the six
``songs`` against ``songs_reference`` (a strong separator's stems: pseudo-references). Each model
separates each track once (``Separator.separate``); every ``--ensemble`` algorithm is then the
combination of those stems (``ensemble.StreamCombiner``, exactly what ``Ensemble`` computes).
Prints BSS-eval SDR (dB) per track and the medians, for vocals and instrumental. No bar: whether an
ensemble helps depends on the models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvrsep.api import Separator  # noqa: E402
from uvrsep.audio import read_audio  # noqa: E402
from uvrsep.ensemble import ENSEMBLE_ALGORITHMS, ENSEMBLE_RULES, StreamCombiner  # noqa: E402
from uvrsep.evaluate import bss_eval, reference_pairs  # noqa: E402
from uvrsep.pretrained import resolve_model  # noqa: E402

STEMS = ("vocals", "instrumental")


def tracks(data: Path) -> list[tuple[str, Path, dict[str, Path]]]:
    found = []
    musdb = data / "musdb18_sample"
    if (musdb / "mixture.wav").is_file():
        found.append(("musdb:80s_rock", musdb / "mixture.wav", {"vocals": musdb / "vocals.wav", "instrumental": musdb / "accompaniment.wav"}))
    for song, refs in reference_pairs(data / "songs", data / "songs_reference", STEMS):
        found.append((song.stem, song, refs))
    return found


def sdr(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray]) -> dict[str, float]:
    length = min(min(r.shape[1] for r in references.values()), min(e.shape[1] for e in estimates.values()))
    refs = np.stack([references[s][:, :length] for s in STEMS])
    ests = np.stack([estimates[s][:, :length] for s in STEMS])
    scores = bss_eval(refs, ests)
    return {stem: float(scores["sdr"][i]) for i, stem in enumerate(STEMS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", action="append", required=True)
    parser.add_argument("-p", "--params")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    if len(args.model) < 2:
        parser.error("give two or more -m")

    separators, names = [], []
    for model in args.model:
        resolved = resolve_model(model, args.params, None, offline=True, progress=False)
        separators.append(Separator(resolved.state_dict, resolved.params, device="cpu", precision=args.precision, primary_stem=resolved.primary_stem))
        names.append(resolved.name if resolved.name not in names else f"{resolved.name}#{len(names)}")
    methods = [*names, *ENSEMBLE_ALGORITHMS]
    table: dict[str, dict[str, dict[str, float]]] = {m: {} for m in methods}
    listed = tracks(args.data)
    for label, mixture_path, ref_paths in listed:
        mixture, info = read_audio(mixture_path)
        references = {stem: read_audio(p)[0] for stem, p in ref_paths.items()}
        references = {s: (np.repeat(r, 2, 0) if r.shape[0] == 1 else r) for s, r in references.items()}
        outputs = [sep.separate(mixture, info.sample_rate, mono_output=False).stems for sep in separators]
        for name, stems in zip(names, outputs):
            table[name][label] = sdr(references, stems)
        first = separators[0].stem_names
        for algorithm in ENSEMBLE_ALGORITHMS:
            rules = dict(zip(first, ENSEMBLE_RULES[algorithm]))
            combined = {stem: StreamCombiner(rules[stem]).push([o[stem] for o in outputs], last=True) for stem in STEMS}
            table[algorithm][label] = sdr(references, combined)
        print(f"{label}: done", file=sys.stderr, flush=True)

    labels = [label for label, _, _ in listed]
    songs = [label for label in labels if not label.startswith("musdb:")]
    print(f"SDR (dB), vocals / instrumental; models: {', '.join(args.model)}; precision {args.precision}")
    print(f"{'method':14s} " + " ".join(f"{label[:16]:>16s}" for label in labels) + f" {'songs median':>16s}")
    for method in methods:
        cells = [table[method][label] for label in labels]
        med = {stem: float(np.nanmedian([table[method][label][stem] for label in songs])) for stem in STEMS}
        print(f"{method:14s} " + " ".join(f"{c['vocals']:7.2f}/{c['instrumental']:6.2f}  " for c in cells)
              + f"{med['vocals']:7.2f}/{med['instrumental']:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
