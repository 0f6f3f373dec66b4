#!/usr/bin/env python3
"""Spectral-work cost (analysis, phase, synthesis): the reference's arithmetic against uvrsep's.

    python scripts/bench_dsp.py [--seconds 60] [--repeats 3] [--json]

On a GPU the network takes ~5 % of an end-to-end run and the CPU-side DSP the rest
(``scripts/bench_rtf.py``); this measures that part on the CPU by running a tiny net (width 4,
so the network costs next to nothing) through :meth:`Separator.separate`, alternating the
candidates in ONE process (only ratios measured side by side mean something on a shared
machine):

* ``reference``: the reference's phase ``exp(1j·angle(X))``, stems synthesised one by one;
* ``phasor``: the default phase ``X/|X|``, stems one by one;
* ``default``: the phase ``X/|X|`` and the two stems synthesised side by side in two threads;
* ``torch``: the spectral work in torch (``--spectral device``; on a CUDA machine, pass
  ``--device cuda`` to run it on the GPU, which is what ``--spectral auto`` does there).

Prints the median seconds of each, the speed-up over ``reference`` and the stems' SNR against it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvrsep.api import SYNTHESIS_THREADS, Separator  # noqa: E402
from uvrsep.demo import DEMO_SAMPLE_RATE, make_demo_clip  # noqa: E402
from uvrsep.nets import ASPPNetConfig  # noqa: E402
from uvrsep.testing import random_state_dict, snr_db  # noqa: E402

#: Width of the stand-in net (the network's cost must be negligible next to the DSP).
TINY_WIDTH = 4
PARAMS = "4band_v2"


#: name → (Separator keyword settings, reference phase ``exp(1j·angle(X))``) of each candidate.
CANDIDATES = {
    "reference": ({"spectral": "host", "synthesis_threads": 1}, True),
    "phasor": ({"spectral": "host", "synthesis_threads": 1}, False),
    "default": ({"spectral": "host", "synthesis_threads": SYNTHESIS_THREADS}, False),
    "torch": ({"spectral": "device"}, False),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="where the (tiny) net and torch candidate run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    clip = make_demo_clip()["mixture"]
    samples = int(args.seconds * DEMO_SAMPLE_RATE)
    wave = np.tile(clip, (1, samples // clip.shape[1] + 1))[:, :samples]
    weights = random_state_dict(ASPPNetConfig(width=TINY_WIDTH), seed=1)
    separators = {}
    for name, (settings, exact_phase) in CANDIDATES.items():
        separators[name] = Separator(weights, PARAMS, device=args.device, precision="fp32", **settings)
        if exact_phase:
            separators[name].spectral.exact_phase = True
    times: dict[str, list[float]] = {name: [] for name in separators}
    stems: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(args.repeats):
        for name, separator in separators.items():
            start = time.perf_counter()
            stems[name] = separator.separate(wave, DEMO_SAMPLE_RATE).stems
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["reference"])
    rows = []
    for name in separators:
        median = statistics.median(times[name])
        snr = {k: round(snr_db(stems["reference"][k], stems[name][k]), 1) for k in stems["reference"]}
        rows.append({"candidate": name, "seconds": round(median, 3), "all_seconds": [round(t, 3) for t in times[name]],
                     "speedup": round(base / median, 3), "snr_db": snr})
    if args.json:
        print(json.dumps({"audio_seconds": args.seconds, "rows": rows}, indent=1))
    else:
        print(f"{args.seconds:.0f} s stereo input, tiny net, params {PARAMS}, {args.repeats} repeats (median)")
        print(f"{'candidate':>10} {'seconds':>8} {'speed-up':>9}  SNR vs reference (dB)")
        for row in rows:
            snr = " / ".join(f"{k} {v}" for k, v in row["snr_db"].items())
            print(f"{row['candidate']:>10} {row['seconds']:>8.2f} {row['speedup']:>8.2f}x  {snr}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
