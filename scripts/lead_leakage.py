#!/usr/bin/env python3
"""How much of an instrumental lead a model puts into its vocals, on generated instrumental tracks.

    python scripts/lead_leakage.py [-m MODEL] [-p PARAMS] [--tracks 12] [--seconds 10] [--seed 7]
                                   [--soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2] [--mono]

Generates instrumental tracks (``--instrumental-fraction 1``) with the dataset generator
(:mod:`uvrsep.synth`), side by side: the numpy synth leads, and, when ``fluidsynth`` and the
SoundFont are there, the sampled voice-like leads through it (``--leads sampled``) and the same
tracks' horn leads harmonised by a section (``--horn-sections 1``; only the tracks that get one).
Every track has no voice, so whatever the model writes into its vocals stem is leakage. Prints per set and
per lead instrument the energy of the vocals stem relative to the mixture (dB; lower is better,
the issue's "leakage" figure) and the median. Tracks without a lead are left out. ``--mono``
separates each mixture made mono (both channels their mean), as an old record is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvrsep.api import Separator  # noqa: E402
from uvrsep.audio import read_audio  # noqa: E402
from uvrsep.evaluate import energy_ratio_db  # noqa: E402
from uvrsep.pretrained import resolve_model  # noqa: E402
from uvrsep.synth import backends, writer  # noqa: E402

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
def generate(out: Path, args: argparse.Namespace, *extra: str) -> list[dict]:
    argv = [str(out), "--tracks", str(args.tracks), "--test-tracks", "0", "--seconds", str(args.seconds),
            "--seed", str(args.seed), "--instrumental-fraction", "1", "--jobs", "2", *extra]
    writer.main(argv)
    return json.loads((out / "recipe.json").read_text())["splits"]["train"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default=None, help="model (default: the bundled one)")
    parser.add_argument("--tracks", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--soundfont", default=DEFAULT_SOUNDFONT)
    parser.add_argument("-p", "--params", default=None, help="the model's params (default: known from it)")
    parser.add_argument("--mono", action="store_true", help="separate the mixtures made mono")
    args = parser.parse_args(argv)

    resolved = resolve_model(args.model, args.params, None, offline=True, progress=False)
    sep = Separator(resolved.state_dict, resolved.params, device="cpu", primary_stem=resolved.primary_stem)
    vocal = next(name for name in sep.stem_names if name.lower() == "vocals")
    sets = {"synth leads (numpy)": ()}
    if shutil.which(backends.FLUIDSYNTH) and Path(args.soundfont).is_file():
        sampled = ("--accompaniment", "fluidsynth", "--soundfont", args.soundfont, "--leads", "sampled")
        sets["sampled leads (fluidsynth)"] = sampled
        sets["horn sections (fluidsynth)"] = (*sampled, "--horn-sections", "1")
    else:
        print(f"no {backends.FLUIDSYNTH} or no {args.soundfont}: sampled leads not measured")
    with tempfile.TemporaryDirectory(prefix="uvrsep-leakage-") as folder:
        for label, extra in sets.items():
            out = Path(folder) / label.split()[0]
            facts = generate(out, args, *extra)
            per_lead: dict[str, list[float]] = defaultdict(list)
            for fact in facts:
                lead = fact["instruments"]["lead"]
                if not lead or ("--horn-sections" in extra and not fact["instruments"]["section"]):
                    continue
                wave, info = read_audio(out / "train" / fact["name"] / "mixture.wav")
                if args.mono:
                    wave = np.repeat(wave.mean(axis=0, keepdims=True), wave.shape[0], axis=0)
                stems = sep.separate(wave, info.sample_rate).stems
                per_lead[lead].append(energy_ratio_db(stems[vocal], wave))
            values = [v for vs in per_lead.values() for v in vs]
            print(f"\n{label}{' made mono' if args.mono else ''}: {len(values)} instrumental tracks with a lead, model {resolved.name}")
            for lead, vs in sorted(per_lead.items()):
                print(f"  {lead:14s} " + " ".join(f"{v:6.1f}" for v in vs) + " dB")
            if values:
                print(f"  median vocals energy vs mixture: {statistics.median(values):.1f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
