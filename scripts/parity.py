#!/usr/bin/env python3
"""Run the parity fixtures through the public API and print each stem's SNR against the reference.

    python scripts/parity.py [--data tests/data/parity] [--case v1_4band_v2_default ...]
        [--device cpu] [--precision fp32] [--batch-size N] [--spectral auto|host|device]
        [--chunk-windows N] [--json]

SNR = 10·log10(Σref² / Σ(out − ref)²) over the reference's ``expected_frames`` samples (from the
case's ``reference_output_offset`` on, for params that reverse the signal). ``--chunk-windows N``
streams each input in chunks of N network windows (``Separator.separate_stream``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvrsep.testing import run_parity_case  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "parity")
    parser.add_argument("--case", action="append", help="case folder name (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--spectral", default="auto", choices=["auto", "host", "device"])
    parser.add_argument("--chunk-windows", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    names = args.case or sorted(p.name for p in args.data.iterdir() if (p / "case.json").exists())
    rows = [run_parity_case(args.data / n, args.device, args.precision, args.batch_size, args.spectral, args.chunk_windows) for n in names]
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
        return 0
    print(f"{'case':28s} {'instrumental dB':>16s} {'vocals dB':>10s} {'seconds':>8s} {'audio s':>8s}")
    for r in rows:
        s = r.snr_db
        print(f"{r.case:28s} {s['instrumental']:16.1f} {s['vocals']:10.1f} {r.seconds:8.1f} {r.input_seconds:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
