#!/usr/bin/env python3
"""Memory and time of long inputs through ``uvrsep split`` (streamed), and streamed vs whole-file.

    python scripts/bench_stream.py memory [--minutes 5 15 60] [--arch tiny|31191|123812] [--format wav m4a]
    python scripts/bench_stream.py parity [--input FILE | --minutes 3] [--arch 31191]

``memory``: writes a stereo 44.1 kHz WAV of each length (the demo song tiled, with noise), runs
``uvrsep split`` on it in a child process and prints wall time, time per audio minute and the
child's peak RSS (``ru_maxrss``) and the most bytes of temporary files (under a private
``$TMPDIR``) it held open at once, unlinked ones included (Linux ``/proc``). With ``--format m4a`` the WAV is
encoded to AAC first (decoded by ffmpeg in the run). Linear growth shows as a flat
time-per-minute column and a flat peak RSS.

``parity``: separates one input with :meth:`Separator.separate` (whole file in memory) and with
:meth:`Separator.separate_stream` (chunks) and prints each stem's SNR between the two.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvrsep.api import Separator  # noqa: E402
from uvrsep.demo import DEMO_SAMPLE_RATE, make_demo_clip  # noqa: E402
from uvrsep.nets import ASPPNetConfig, config_from_name  # noqa: E402
from uvrsep.stream import ArraySource  # noqa: E402
from uvrsep.testing import random_state_dict, snr_db  # noqa: E402

BLOCK_SECONDS = 60
NOISE_LEVEL = 0.02
#: How often the child's open temporary files are looked at during a run (seconds).
DISK_POLL_S = 0.2


def net_config(arch: str):
    return ASPPNetConfig(width=4) if arch == "tiny" else config_from_name(arch)


def write_long_wav(path: Path, minutes: float) -> None:
    """The demo song tiled to ``minutes``, with a little noise, written block by block."""
    clip = make_demo_clip()["mixture"]
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * DEMO_SAMPLE_RATE)
    block = BLOCK_SECONDS * DEMO_SAMPLE_RATE
    tiled = np.tile(clip, int(np.ceil(block / clip.shape[1])))[:, :block]
    with sf.SoundFile(path, "w", DEMO_SAMPLE_RATE, 2, "PCM_16") as out:
        for start in range(0, total, block):
            n = min(block, total - start)
            noise = NOISE_LEVEL * rng.standard_normal((2, n)).astype(np.float32)
            out.write(np.clip(tiled[:, :n] + noise, -1, 1).T)


def _temp_bytes(pid: int, tmpdir: Path) -> int:
    """Bytes of the files under ``tmpdir`` that process ``pid`` (or its children) holds open,
    unlinked ones included (Linux ``/proc``; 0 elsewhere)."""
    total = 0
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for one in pids:
        try:
            fds = list(Path(f"/proc/{one}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd).startswith(str(tmpdir)):
                    total += os.stat(fd).st_size
            except OSError:
                continue
    return total


def _run_polling_temp(cmd: list[str], tmpdir: Path) -> tuple[int, str, int]:
    """Run ``cmd`` with ``$TMPDIR`` = ``tmpdir``; returns its exit code, stderr, and the most
    bytes of temporary files it held open at once."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True,
                                env={**os.environ, "TMPDIR": str(tmpdir)})
        most = 0
        while proc.poll() is None:
            most = max(most, _temp_bytes(proc.pid, tmpdir))
            time.sleep(DISK_POLL_S)
        err.seek(0)
        return proc.returncode, err.read(), most


def memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="uvrsep-bench-") as folder:
        model = Path(folder) / f"{args.arch}.pth"
        torch.save(random_state_dict(net_config(args.arch), seed=1), model)
        tmpdir = Path(folder) / "tmp"
        tmpdir.mkdir()
        print(f"{'minutes':>8s} {'format':>6s} {'seconds':>9s} {'s/min':>7s} {'peak RSS MB':>12s} {'temp disk MB':>13s}")
        for minutes in args.minutes:
            song = Path(folder) / f"long_{minutes}.wav"
            write_long_wav(song, minutes)
            for fmt in args.format:
                source = song
                if fmt != "wav":
                    source = song.with_suffix("." + fmt)
                    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(song), str(source)], check=True)
                cmd = [sys.executable, "-c", "import sys, resource; from uvrsep.cli import main; code = main(sys.argv[1:]); "
                       "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)",
                       "split", str(source), "-m", str(model), "-p", args.params, "-o", str(Path(folder) / "out"),
                       "--device", "cpu", "-q", "--overwrite"]
                start = time.perf_counter()
                code, stderr, disk = _run_polling_temp(cmd, tmpdir)
                seconds = time.perf_counter() - start
                if code != 0:
                    raise SystemExit(stderr)
                peak_kb = int(stderr.strip().splitlines()[-1])
                print(f"{minutes:8.1f} {fmt:>6s} {seconds:9.1f} {seconds / minutes:7.1f} {peak_kb / 1024:12.0f} "
                      f"{disk / 2**20:13.0f}", flush=True)
                if source != song:
                    source.unlink()
            song.unlink()


def parity(args: argparse.Namespace) -> None:
    if args.input:
        from uvrsep.audio import read_audio

        wave, info = read_audio(args.input)
        rate = info.sample_rate
    else:
        clip = make_demo_clip()["mixture"]
        n = int(args.minutes * 60 * DEMO_SAMPLE_RATE)
        wave, rate = np.tile(clip, int(np.ceil(n / clip.shape[1])))[:, :n], DEMO_SAMPLE_RATE
    sep = Separator(random_state_dict(net_config(args.arch), seed=1), args.params, device="cpu", precision=args.precision)
    start = time.perf_counter()
    whole = sep.separate(wave, rate).stems
    t_whole = time.perf_counter() - start
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in whole}
    start = time.perf_counter()
    sep.separate_stream(ArraySource(wave, rate), {name: pieces[name].append for name in whole})
    t_stream = time.perf_counter() - start
    print(f"input {wave.shape[1] / rate:.1f} s at {rate} Hz, arch {args.arch}, params {args.params}, precision {sep.precision}")
    print(f"whole-file {t_whole:.1f} s, streamed {t_stream:.1f} s")
    for name, stem in whole.items():
        streamed = np.concatenate(pieces[name], axis=1)
        print(f"{name:14s} streamed vs whole-file SNR {snr_db(stem, streamed):6.1f} dB  (shapes {stem.shape} {streamed.shape})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--minutes", type=float, nargs="+", default=[5, 15, 60])
    mem.add_argument("--arch", default="tiny")
    mem.add_argument("--params", default="4band_v2")
    mem.add_argument("--format", nargs="+", default=["wav"], help="input formats to run (wav, m4a, ...)")
    par = sub.add_parser("parity")
    par.add_argument("--input", type=Path)
    par.add_argument("--minutes", type=float, default=3.0)
    par.add_argument("--arch", default="31191")
    par.add_argument("--params", default="4band_v2")
    par.add_argument("--precision", default="fp32")
    args = parser.parse_args(argv)
    memory(args) if args.mode == "memory" else parity(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
