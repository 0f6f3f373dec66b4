#!/usr/bin/env python3
"""The network alone on the CPU: one batch of windows per precision mode, side by side.

    python scripts/bench_net.py [--arch 123812] [--window 512] [--repeats 3]
        [--modes fp32 autocast bf16 bf16+compile]

Modes (all on the prepared net: BatchNorm folded, channels-last, ROI decoding):

* ``fp32``: exact float32;
* ``autocast``: float32 weights, ``torch.autocast(bfloat16)``;
* ``bf16``: weights and activations in bfloat16, the mask head in float32, each U-Net's first
  conv with its weights in two bfloat16 parts (what ``--precision bf16`` runs on the CPU:
  :data:`uvrsep.fast.BF16_ON_CPU`, :data:`uvrsep.fast.SPLIT_FIRST_CONVS`);
* ``bf16-pure``: the same with the first convs in bfloat16 too;
* ``winograd``: float32 with the wide 3×3 convs through NNPACK's Winograd algorithm and the
  other decoder convs split over their inputs (what ``--precision auto`` runs on a CPU without
  native bfloat16: :class:`uvrsep.fast.WinogradConv`, :class:`uvrsep.fast.SplitInputConv`);
* ``X+compile``: mode X under ``torch.compile`` (inductor; its cache is this run's own
  temporary folder unless ``$TORCHINDUCTOR_CACHE_DIR`` is set), first call (compiling) and
  later calls reported apart.

Prints the CPU's model name and ISA flags, then per mode the first call, the median of the
timed calls (modes alternate, ``--repeats`` rounds) and the mask's SNR against fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvrsep.fast import prepare_net  # noqa: E402
from uvrsep.nets import config_from_name, net_from_state_dict  # noqa: E402
from uvrsep.testing import random_state_dict, snr_db  # noqa: E402

#: /proc/cpuinfo flags that decide the CPU class.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
#: Rows of the network input for 4band_v2 (n_fft 2048: bins + 1).
ROWS = 1025


def cpu_description() -> str:
    """``model name`` and the ISA flags present, from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    present = [flag for flag in ISA_FLAGS if flag in flags]
    return f"{model}, {os.cpu_count()} CPUs, flags: {' '.join(present) or 'none of ' + ' '.join(ISA_FLAGS)}"


def build(mode: str, arch: str):
    base = mode.removesuffix("+compile")
    dtype = torch.bfloat16 if base.startswith("bf16") else torch.float32
    net = prepare_net(
        net_from_state_dict(random_state_dict(config_from_name(arch), seed=1)), torch.device("cpu"), dtype,
        split_first=base != "bf16-pure", winograd=base == "winograd",
    )
    context = torch.autocast("cpu", dtype=torch.bfloat16) if base == "autocast" else nullcontext()
    forward = torch.compile(net.predict_mask, dynamic=False) if mode.endswith("+compile") else net.predict_mask
    return forward, context, dtype


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="123812")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["fp32", "autocast", "bf16", "bf16+compile"])
    args = parser.parse_args(argv)
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="uvrsep-bench-inductor-")
    print(cpu_description())
    print(f"net {args.arch}, window {args.window}, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.repeats} rounds")
    x = torch.rand(args.batch, 2, ROWS, args.window, generator=torch.Generator().manual_seed(0))
    built = {mode: build(mode, args.arch) for mode in args.modes}
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {mode: [] for mode in args.modes}
    masks: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for round_ in range(args.repeats + 1):
            for mode, (forward, context, dtype) in built.items():
                batch = x.to(dtype).contiguous(memory_format=torch.channels_last)
                start = time.perf_counter()
                with context:
                    masks[mode] = forward(batch).float()
                elapsed = time.perf_counter() - start
                if round_ == 0:
                    first[mode] = elapsed
                else:
                    times[mode].append(elapsed)
    reference = masks.get("fp32")
    print(f"{'mode':16s} {'first s':>8s} {'median s':>9s} {'vs fp32':>8s} {'mask SNR vs fp32':>17s}")
    base = statistics.median(times["fp32"]) if "fp32" in times else None
    for mode in args.modes:
        median = statistics.median(times[mode])
        ratio = f"{base / median:7.2f}x" if base else "       -"
        snr = f"{snr_db(reference.numpy(), masks[mode].numpy()):14.1f} dB" if reference is not None else "-"
        print(f"{mode:16s} {first[mode]:8.2f} {median:9.2f} {ratio} {snr}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
