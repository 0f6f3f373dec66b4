#!/usr/bin/env python3
"""Seeded, procedural vocal/accompaniment training set: the entry point of :mod:`uvrsep.synth`.

    python scripts/make_dataset.py OUT --tracks 200 --test-tracks 20 --seconds 20 --seed 0 \\
        --jobs 16 [--sample-rate 44100] [--subtype FLOAT|PCM_16] [--instrumental-fraction 0.1]

See :mod:`uvrsep.synth` for what a track holds and :func:`uvrsep.synth.writer.main` for the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from uvrsep.synth.writer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
