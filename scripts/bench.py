#!/usr/bin/env python3
"""Speed of uvrsep against a reference-style baseline, measured side by side in ONE process.

    python scripts/bench.py [--input FILE] [--seconds 30] [--model PTH] [--params 4band_v2]
        [--device cpu] [--repeats 3] [--json]

Candidates, run alternately ``--repeats`` times each (this machine is shared and noisy; only the
ratios measured in the same run mean something):

* ``reference``: the reference's arithmetic — float32, NCHW, batch 1, no BatchNorm folding;
* ``default``: uvrsep's defaults (``--precision auto``, folded BatchNorm, channels-last, batching);
* ``fp32``: the defaults with ``--precision fp32`` (exact arithmetic, fast path);
* ``compiled``: the defaults with ``--compile on`` (``torch.compile``; its cache is filled by a
  warm-up before the timed rounds, whose time is printed as the first-run cost);
* ``fp32-compiled``: ``--precision fp32 --compile on``: what ``--precision auto`` runs on a CPU
  without native bfloat16 once an input is long enough for ``--compile auto`` (run with
  ``ONEDNN_MAX_CPU_ISA=AVX2 ... --only fp32 --only fp32-compiled`` to see an AVX2-only CPU).

The CPU's model name and ISA flags are printed with the table.

Prints the median seconds of each, the speed-up over ``reference``, each candidate's stem SNR
against ``reference``, and the peak RSS seen during its runs. Without ``--model``, the 123812 net
with the fixtures' deterministic weights (seed 1) is used; without ``--input``, a deterministic
30 s stereo 44.1 kHz signal (the demo song, repeated).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_net import cpu_description  # noqa: E402
from uvrsep.api import Separator  # noqa: E402
from uvrsep.demo import DEMO_SAMPLE_RATE, make_demo_clip  # noqa: E402
from uvrsep.nets import config_from_name  # noqa: E402
from uvrsep.testing import random_state_dict, snr_db  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
RSS_POLL_SECONDS = 0.02


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakRss:
    """Samples this process's RSS in a thread while active; ``peak`` in bytes."""

    def __enter__(self) -> "PeakRss":
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(RSS_POLL_SECONDS):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def test_signal(seconds: float) -> tuple[np.ndarray, int]:
    clip = make_demo_clip()["mixture"]
    reps = int(np.ceil(seconds * DEMO_SAMPLE_RATE / clip.shape[1]))
    return np.tile(clip, reps)[:, : int(seconds * DEMO_SAMPLE_RATE)], DEMO_SAMPLE_RATE


def candidates(model: object, params: str, device: str) -> dict[str, Separator]:
    return {
        "reference": Separator(model, params, device=device, precision="fp32", batch_size=1, optimize=False),
        "default": Separator(model, params, device=device),
        "fp32": Separator(model, params, device=device, precision="fp32"),
        "compiled": Separator(model, params, device=device, compile="on"),
        "fp32-compiled": Separator(model, params, device=device, precision="fp32", compile="on"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="audio file (default: a generated signal)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the generated signal")
    parser.add_argument("--model", help="path to a .pth (default: 123812 net, deterministic weights)")
    parser.add_argument("--params", default="4band_v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only these candidates")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    if args.input:
        from uvrsep.audio import read_audio

        wave, info = read_audio(args.input)
        sr = info.sample_rate
    else:
        wave, sr = test_signal(args.seconds)
    model = args.model or random_state_dict(config_from_name("123812"), seed=1)
    seps = candidates(model, args.params, args.device)
    if args.only:
        seps = {name: sep for name, sep in seps.items() if name in args.only or name == "reference"}
    first_run = {}
    for name, sep in seps.items():
        if sep.settings.compile == "on":  # compiles (or loads from the cache) before timing
            start = time.perf_counter()
            sep.separate(wave[:, : sr * 2], sr)
            first_run[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in seps}
    peaks: dict[str, int] = {name: 0 for name in seps}
    stems: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(args.repeats):
        for name, sep in seps.items():
            with PeakRss() as rss:
                start = time.perf_counter()
                result = sep.separate(wave, sr)
                times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], rss.peak)
            stems[name] = result.stems
    base = statistics.median(times["reference"])
    rows = []
    for name in seps:
        median = statistics.median(times[name])
        snr = {stem: snr_db(stems["reference"][stem], stems[name][stem]) for stem in stems[name]}
        rows.append({
            "candidate": name,
            "precision": seps[name].precision,
            "seconds": round(median, 3),
            "all_seconds": [round(t, 3) for t in times[name]],
            "speedup": round(base / median, 3),
            "snr_db": {k: round(v, 1) for k, v in snr.items()},
            "peak_rss_mb": round(peaks[name] / 2**20, 1),
        })
    audio_seconds = wave.shape[-1] / sr
    if args.json:
        print(json.dumps({"audio_seconds": audio_seconds, "device": args.device, "cpu": cpu_description(),
                          "compile_warmup_seconds": first_run, "rows": rows}, indent=1))
        return 0
    print(cpu_description())
    print(f"input {audio_seconds:.1f} s, device {args.device}, {args.repeats} repeats (median)")
    for name, seconds in first_run.items():
        print(f"{name}: warm-up on a 2 s clip (compiling, or loading from the cache) {seconds:.1f} s")
    print(f"{'candidate':14s} {'precision':9s} {'seconds':>8s} {'speed-up':>9s} {'min SNR dB':>11s} {'peak RSS MB':>12s}")
    for row in rows:
        print(
            f"{row['candidate']:14s} {row['precision']:9s} {row['seconds']:8.2f} {row['speedup']:8.2f}x "
            f"{min(row['snr_db'].values()):11.1f} {row['peak_rss_mb']:12.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
