#!/usr/bin/env python3
"""CPU-side DSP cost (analysis, phase, synthesis) with stems synthesised one by one or side by side.

    python scripts/bench_dsp.py [--seconds 60] [--repeats 3] [--threads 1 2] [--json]

On a GPU the network takes ~5 % of an end-to-end run and the multi-band synthesis ~60 %
(``scripts/bench_rtf.py``); this measures that part on the CPU by running a tiny net (width 4,
so the network costs next to nothing) through :meth:`Separator.separate`, alternating the
candidates in ONE process (only ratios measured side by side mean something on a shared
machine). Prints the median seconds of each, the ratio to the first, and whether the stems are
bit-identical to the first candidate's.
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

from uvrsep.api import Separator  # noqa: E402
from uvrsep.demo import DEMO_SAMPLE_RATE, make_demo_clip  # noqa: E402
from uvrsep.nets import ASPPNetConfig  # noqa: E402
from uvrsep.testing import random_state_dict  # noqa: E402

#: Width of the stand-in net (the network's cost must be negligible next to the DSP).
TINY_WIDTH = 4
PARAMS = "4band_v2"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    clip = make_demo_clip()["mixture"]
    samples = int(args.seconds * DEMO_SAMPLE_RATE)
    wave = np.tile(clip, (1, samples // clip.shape[1] + 1))[:, :samples]
    weights = random_state_dict(ASPPNetConfig(width=TINY_WIDTH), seed=1)
    separators = {n: Separator(weights, PARAMS, device="cpu", precision="fp32", synthesis_threads=n) for n in args.threads}
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    stems: dict[int, dict[str, np.ndarray]] = {}
    for _ in range(args.repeats):
        for n, separator in separators.items():
            start = time.perf_counter()
            stems[n] = separator.separate(wave, DEMO_SAMPLE_RATE).stems
            times[n].append(time.perf_counter() - start)
    first = args.threads[0]
    base = statistics.median(times[first])
    rows = []
    for n in args.threads:
        median = statistics.median(times[n])
        identical = all(np.array_equal(stems[first][k], stems[n][k]) for k in stems[first])
        rows.append({"synthesis_threads": n, "seconds": round(median, 3), "all_seconds": [round(t, 3) for t in times[n]],
                     "speedup": round(base / median, 3), "identical": identical})
    if args.json:
        print(json.dumps({"audio_seconds": args.seconds, "rows": rows}, indent=1))
    else:
        print(f"{args.seconds:.0f} s stereo input, tiny net, params {PARAMS}, {args.repeats} repeats (median)")
        print(f"{'synthesis threads':>18} {'seconds':>8} {'speed-up':>9} {'identical':>10}")
        for row in rows:
            print(f"{row['synthesis_threads']:>18} {row['seconds']:>8.2f} {row['speedup']:>8.2f}x {str(row['identical']):>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
