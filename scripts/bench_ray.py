#!/usr/bin/env python3
"""``uvrsep split`` single-process vs ``uvrsep split --ray`` on the same files, side by side.

    python scripts/bench_ray.py [--files 16] [--seconds 30] [--model bundled|PATH] [--rounds 2]
                                [--ray-workers N] [--ray-gpus-per-worker F] [--device auto]
                                [--candidates single ray ray-io]

Writes ``--files`` stereo 44.1 kHz WAVs of ``--seconds`` each (the demo song tiled, with a
little noise), then alternates, per round, the candidates: the single-process CLI, ``--ray``
(a local cluster the command starts and stops itself), and ``--ray --ray-io-tasks`` (inputs
decoded and stems written in CPU tasks apart from the separator workers), each on one short
file and on all files. Every run is a fresh ``uvrsep`` process writing to an empty folder, so
each wall time includes start-up: interpreter and torch import, model load, and for ``--ray``
the cluster and its workers. The one-short-file runs measure that fixed cost; throughput "once
started" is the batch's audio over (batch wall − fixed cost). It also checks that every
candidate wrote the single-process run's bytes. Prints the CPU, the medians and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_net import cpu_description  # noqa: E402
from uvrsep.demo import DEMO_SAMPLE_RATE, make_demo_clip  # noqa: E402

NOISE_LEVEL = 0.02
#: Length of the file of the fixed-cost runs (seconds).
SHORT_SECONDS = 1.0


def write_inputs(folder: Path, count: int, seconds: float) -> list[Path]:
    clip = make_demo_clip()["mixture"]
    n = int(seconds * DEMO_SAMPLE_RATE)
    tiled = np.tile(clip, int(np.ceil(n / clip.shape[1])) + 1)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        rng = np.random.default_rng(index)
        start = (index * DEMO_SAMPLE_RATE) % clip.shape[1]  # each file starts elsewhere in the song
        wave = tiled[:, start : start + n] + NOISE_LEVEL * rng.standard_normal((2, n)).astype(np.float32)
        path = folder / f"track{index:03d}.wav"
        sf.write(path, np.clip(wave, -1, 1).T, DEMO_SAMPLE_RATE, subtype="PCM_16")
        files.append(path)
    return files


#: The candidates: their extra ``uvrsep split`` options (None: the single-process CLI).
CANDIDATES: dict[str, list[str] | None] = {"single": None, "ray": [], "ray-io": ["--ray-io-tasks"]}


def run(args: argparse.Namespace, inputs: list[Path], out: Path, candidate: str) -> float:
    cmd = [sys.executable, "-m", "uvrsep", "split", *map(str, inputs), "-o", str(out), "-q", "--device", args.device]
    if args.model != "bundled":
        cmd += ["-m", args.model]
    extra = CANDIDATES[candidate]
    if extra is not None:
        cmd += ["--ray", *extra]
        if args.ray_workers:
            cmd += ["--ray-workers", str(args.ray_workers)]
        if args.ray_gpus_per_worker is not None:
            cmd += ["--ray-gpus-per-worker", str(args.ray_gpus_per_worker)]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}  # a local cluster
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default="bundled", help="bundled, or a .pth / registry name")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ray-workers", type=int)
    parser.add_argument("--ray-gpus-per-worker", type=float)
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    args = parser.parse_args(argv)
    names = ["single", *(name for name in args.candidates if name != "single")]  # the baseline always

    with tempfile.TemporaryDirectory(prefix="uvrsep-bench-ray-") as folder:
        base = Path(folder)
        files = write_inputs(base / "in", args.files, args.seconds)
        short = write_inputs(base / "short", 1, SHORT_SECONDS)
        fixed: dict[str, list[float]] = {name: [] for name in names}
        batch: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            for name in names:
                fixed[name].append(run(args, short, base / f"o{round_}{name}short", name))
                batch[name].append(run(args, files, base / f"o{round_}{name}", name))
                print(f"round {round_ + 1} {name:7s}: fixed {fixed[name][-1]:6.1f} s, batch {batch[name][-1]:6.1f} s", flush=True)
        expected = {p.name: p.read_bytes() for p in (base / "o0single").iterdir()}
        same = {
            name: {p.name: p.read_bytes() for p in (base / f"o0{name}").iterdir()} == expected and len(expected) == 2 * args.files
            for name in names[1:]
        }
        audio = args.files * args.seconds
        fix = {name: statistics.median(values) for name, values in fixed.items()}
        wall = {name: statistics.median(values) for name, values in batch.items()}
        started = {name: audio / max(wall[name] - fix[name], 1e-9) for name in names}
        print(f"\nCPU: {cpu_description()}; model {args.model}; device {args.device}")
        print(f"{args.files} files x {args.seconds:.0f} s = {audio / 60:.1f} min of audio; medians of {args.rounds} rounds")
        print(f"{'':26s}" + "".join(f"{name:>10s}" for name in names))
        print(f"{'fixed cost (1 s file), s':26s}" + "".join(f"{fix[name]:10.1f}" for name in names))
        print(f"{'batch wall, s':26s}" + "".join(f"{wall[name]:10.1f}" for name in names))
        print(f"{'x real time, end to end':26s}" + "".join(f"{audio / wall[name]:10.2f}" for name in names))
        print(f"{'x real time, once started':26s}" + "".join(f"{started[name]:10.2f}" for name in names))
        for name in names[1:]:
            print(f"{name} / single throughput: end to end {wall['single'] / wall[name]:.2f}, "
                  f"once started {started[name] / started['single']:.2f}; extra start-up "
                  f"{fix[name] - fix['single']:.1f} s; stems identical: {same[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
