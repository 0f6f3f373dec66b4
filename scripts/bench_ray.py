#!/usr/bin/env python3
"""``uvrsep split`` single-process vs ``uvrsep split --ray`` on the same files, side by side.

    python scripts/bench_ray.py [--files 16] [--seconds 30] [--model bundled|PATH] [--rounds 2]
                                [--ray-workers N] [--ray-gpus-per-worker F] [--device auto]

Writes ``--files`` stereo 44.1 kHz WAVs of ``--seconds`` each (the demo song tiled, with a
little noise), then alternates, per round: the single-process CLI on one short file and on all
files, and ``--ray`` (a local cluster the command starts and stops itself) on one short file
and on all files. Every run is a fresh ``uvrsep`` process writing to an empty folder, so each
wall time includes start-up: interpreter and torch import, model load, and for ``--ray`` the
cluster and its workers. The one-short-file runs measure that fixed cost; throughput "once
started" is the batch's audio over (batch wall − fixed cost). It also checks that both paths
wrote the same bytes. Prints the CPU, the medians and the ratios.
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


def run(args: argparse.Namespace, inputs: list[Path], out: Path, ray: bool) -> float:
    cmd = [sys.executable, "-m", "uvrsep", "split", *map(str, inputs), "-o", str(out), "-q", "--device", args.device]
    if args.model != "bundled":
        cmd += ["-m", args.model]
    if ray:
        cmd += ["--ray"]
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
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="uvrsep-bench-ray-") as folder:
        base = Path(folder)
        files = write_inputs(base / "in", args.files, args.seconds)
        short = write_inputs(base / "short", 1, SHORT_SECONDS)
        walls: dict[str, list[float]] = {name: [] for name in ("single fixed", "single batch", "ray fixed", "ray batch")}
        for round_ in range(args.rounds):
            for ray in (False, True):
                name = "ray" if ray else "single"
                walls[f"{name} fixed"].append(run(args, short, base / f"o{round_}{name}short", ray))
                walls[f"{name} batch"].append(run(args, files, base / f"o{round_}{name}", ray))
                print(f"round {round_ + 1} {name:6s}: fixed {walls[f'{name} fixed'][-1]:6.1f} s, "
                      f"batch {walls[f'{name} batch'][-1]:6.1f} s", flush=True)
        same = all(
            (base / "o0single" / p.name).read_bytes() == p.read_bytes() for p in sorted((base / "o0ray").iterdir())
        ) and len(list((base / "o0ray").iterdir())) == 2 * args.files
        audio = args.files * args.seconds
        med = {name: statistics.median(values) for name, values in walls.items()}
        print(f"\nCPU: {cpu_description()}; model {args.model}; device {args.device}")
        print(f"{args.files} files x {args.seconds:.0f} s = {audio / 60:.1f} min of audio; medians of {args.rounds} rounds")
        print(f"{'':24s} {'single':>9s} {'--ray':>9s}")
        print(f"{'fixed cost (1 s file)':24s} {med['single fixed']:8.1f}s {med['ray fixed']:8.1f}s")
        print(f"{'batch wall':24s} {med['single batch']:8.1f}s {med['ray batch']:8.1f}s")
        started = {name: audio / max(med[f"{name} batch"] - med[f"{name} fixed"], 1e-9) for name in ("single", "ray")}
        print(f"{'x real time, end to end':24s} {audio / med['single batch']:9.2f} {audio / med['ray batch']:9.2f}")
        print(f"{'x real time, once started':24s} {started['single']:9.2f} {started['ray']:9.2f}")
        print(f"ray / single throughput: end to end {med['single batch'] / med['ray batch']:.2f}, "
              f"once started {started['ray'] / started['single']:.2f}; Ray's extra start-up "
              f"{med['ray fixed'] - med['single fixed']:.1f} s")
        print(f"stems identical: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
