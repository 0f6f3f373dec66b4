"""Files, workers and the command line of the generator (``uvrsep.synth.writer.main``).

Seeds track ``i`` of a split from ``SeedSequence(seed, spawn_key=(split, i))``, renders tracks
in a process pool (the same bytes whatever ``--jobs``), writes MUSDB-style track folders and
``recipe.json``. ``scripts/make_dataset.py`` is a thin entry point to :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import wavfile

from .voice import DEFAULT_SAMPLE_RATE
from .arrangement import SECTION_HORNS, sample_section
from .backends import ESPEAK, FESTIVAL, FLUIDSYNTH, festival_voices
from .mixing import Backends, plan_facts, plan_track, render_track


GENERATOR_VERSION = "1.2.0"

DEFAULT_SECONDS = 20.0
DEFAULT_TRACKS = 200
DEFAULT_TEST_TRACKS = 20
DEFAULT_INSTRUMENTAL_FRACTION = 0.1
SUBTYPES = ("FLOAT", "PCM_16")
ACCOMPANIMENT_BACKENDS = ("numpy", "fluidsynth")
VOICE_BACKENDS = ("numpy", "espeak", "festival")
#: Lead timbres: the numpy synth leads, or sampled voice-like ones through the SoundFont.
LEAD_SETS = ("synth", "sampled")
SPLITS = ("train", "test")
STEMS = ("mixture", "vocals", "accompaniment")
TRACK_DIR_FORMAT = "track_{:04d}"
#: Extra spawn-key element of the instrumental draw: independent of the rest of a track's stream.
INSTRUMENTAL_STREAM = 1_000_003
#: The same for the horn section (``--horn-sections``): a track with one is the same track
#: without it apart from the section's horns.
SECTION_STREAM = 1_000_033
PCM16_SCALE = 32767.0


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, subtype: str) -> None:
    """Write ``(n, channels)`` float32 audio as a WAV without timestamps (byte-reproducible).

    ``soundfile`` adds a PEAK chunk carrying the current time to float WAVs, so the plain
    ``scipy.io.wavfile`` writer is used instead.
    """
    if subtype == "PCM_16":
        data = np.round(np.clip(audio, -1.0, 1.0) * PCM16_SCALE).astype(np.int16)
    else:
        data = audio.astype(np.float32)
    wavfile.write(str(path), sample_rate, data)


@dataclass(frozen=True)
class TrackTask:
    """One track to make (picklable for the worker pool)."""

    out_dir: str
    split: int
    index: int
    seed: int
    seconds: float
    sample_rate: int
    subtype: str
    instrumental_fraction: float
    backends: Backends = Backends()
    horn_sections: float = 0.0


def track_rng(seed: int, split: int, index: int, *extra: int) -> np.random.Generator:
    """The generator of a track: ``SeedSequence(seed, spawn_key=(split, index, *extra))``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split, index, *extra)))


def make_track(task: TrackTask) -> tuple[dict[str, Any], float]:
    """Render and write one track; returns its facts and the CPU seconds it took.

    The CPU time is this process's only: external tools' (fluidsynth, espeak-ng) is not counted.
    """
    cpu = time.process_time()
    instrumental = bool(
        track_rng(task.seed, task.split, task.index, INSTRUMENTAL_STREAM).random() < task.instrumental_fraction
    )
    rng = track_rng(task.seed, task.split, task.index)
    plan = plan_track(rng, instrumental, task.backends.leads)
    if task.horn_sections and plan.lead in SECTION_HORNS:
        section_rng = track_rng(task.seed, task.split, task.index, SECTION_STREAM)
        if section_rng.random() < task.horn_sections:
            plan.section = sample_section(section_rng)
    vocals, acc, extra = render_track(rng, plan, task.seconds, task.sample_rate, task.backends)
    mixture = vocals + acc
    folder = Path(task.out_dir) / SPLITS[task.split] / TRACK_DIR_FORMAT.format(task.index)
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in zip(STEMS, (mixture, vocals, acc)):
        write_wav(folder / f"{name}.wav", audio, task.sample_rate, task.subtype)
    facts = {"split": SPLITS[task.split], "index": task.index, "name": folder.name, **plan_facts(plan), **extra}
    return facts, time.process_time() - cpu


def progress(items: Iterable[Any], total: int) -> Iterable[Any]:
    """A tqdm progress bar on a TTY (if tqdm is installed), else the items unchanged."""
    if not sys.stderr.isatty():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, unit="track")


def run_tasks(tasks: list[TrackTask], jobs: int) -> Iterator[tuple[dict[str, Any], float]]:
    """Results of ``make_track`` over ``tasks`` in order, in ``jobs`` processes (1: in-process)."""
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(make_track, tasks)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(min(jobs, len(tasks))) as pool:
        yield from pool.imap(make_track, tasks)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="output folder (train/, test/, recipe.json)")
    parser.add_argument("--tracks", type=int, default=DEFAULT_TRACKS, help="training tracks")
    parser.add_argument("--test-tracks", type=int, default=DEFAULT_TEST_TRACKS, help="test tracks")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of every track")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE)
    parser.add_argument(
        "--subtype",
        choices=SUBTYPES,
        default=SUBTYPES[0],
        help="FLOAT keeps mixture == vocals + accompaniment exact; PCM_16 rounds each file",
    )
    parser.add_argument(
        "--instrumental-fraction",
        type=float,
        default=DEFAULT_INSTRUMENTAL_FRACTION,
        help="probability that a track has silent vocals",
    )
    parser.add_argument(
        "--accompaniment",
        choices=ACCOMPANIMENT_BACKENDS,
        default=ACCOMPANIMENT_BACKENDS[0],
        help="numpy synthesis, or the arrangement as MIDI through fluidsynth (needs --soundfont)",
    )
    parser.add_argument("--soundfont", type=Path, help="SoundFont (.sf2) of the fluidsynth backend")
    parser.add_argument(
        "--voice",
        choices=VOICE_BACKENDS,
        default=VOICE_BACKENDS[0],
        help="numpy source-filter voices; espeak-ng for the spoken/rapped ones; or Festival (voices of real "
        "speakers, several languages) for all of them (singing through its singing mode)",
    )
    parser.add_argument(
        "--leads",
        choices=LEAD_SETS,
        default=LEAD_SETS[0],
        help="synth leads (flute, brass, synth lead), or sampled voice-like leads (harmonica, saxes, "
        "trumpet, trombone, brass section, flute, violin, strings, piano, organ, lead guitar) in a singer's "
        "register with vibrato, scoops and legato, in most tracks and every instrumental one "
        "(needs --accompaniment fluidsynth)",
    )
    parser.add_argument(
        "--horn-sections",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="fraction of the tracks whose sampled horn lead (saxes, trumpet, trombone, brass section) is "
        "harmonised by 2-4 more horns, as a big band's sections play (needs --leads sampled; default 0)",
    )
    args = parser.parse_args(argv)
    if args.tracks < 0 or args.test_tracks < 0 or args.seconds <= 0 or args.jobs < 1:
        parser.error("--tracks/--test-tracks must be >= 0, --seconds > 0, --jobs >= 1")
    if not 0.0 <= args.instrumental_fraction <= 1.0:
        parser.error("--instrumental-fraction must be in [0, 1]")
    if args.accompaniment == "fluidsynth":
        if shutil.which(FLUIDSYNTH) is None:
            parser.error(f"--accompaniment fluidsynth needs the {FLUIDSYNTH} command")
        if args.soundfont is None or not args.soundfont.is_file():
            parser.error("--accompaniment fluidsynth needs --soundfont FILE.sf2")
    if not 0.0 <= args.horn_sections <= 1.0:
        parser.error("--horn-sections must be in [0, 1]")
    if args.horn_sections and args.leads != "sampled":
        parser.error("--horn-sections needs --leads sampled (the sections are sampled horns)")
    if args.leads == "sampled" and args.accompaniment != "fluidsynth":
        parser.error("--leads sampled needs --accompaniment fluidsynth (the numpy instruments have no such timbres)")
    if args.voice == "espeak" and shutil.which(ESPEAK) is None:
        parser.error(f"--voice espeak needs the {ESPEAK} command")
    if args.voice == "festival" and (shutil.which(FESTIVAL) is None or not festival_voices()):
        parser.error(f"--voice festival needs Festival's {FESTIVAL} command and one of its voices (Debian: festival festvox-kallpc16k ...)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Generate the dataset; returns the exit status."""
    args = parse_args(argv)
    wall = time.perf_counter()
    backends = Backends(
        args.accompaniment, args.voice, str(args.soundfont.resolve()) if args.soundfont else None, args.leads
    )
    tasks = [
        TrackTask(
            str(args.out),
            split,
            index,
            args.seed,
            args.seconds,
            args.sample_rate,
            args.subtype,
            args.instrumental_fraction,
            backends,
            args.horn_sections,
        )
        for split, count in enumerate((args.tracks, args.test_tracks))
        for index in range(count)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    results = list(progress(run_tasks(tasks, args.jobs), len(tasks)))
    facts = [f for f, _ in results]
    cpu = [c for _, c in results]
    recipe = {
        "generator": "uvrsep scripts/make_dataset.py",
        "version": GENERATOR_VERSION,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "jobs"},
        "backends": asdict(backends),
        "sample_rate": args.sample_rate,
        "seconds": args.seconds,
        "stems": list(STEMS),
        "splits": {name: [f for f in facts if f["split"] == name] for name in SPLITS},
    }
    (args.out / "recipe.json").write_text(json.dumps(recipe, indent=1) + "\n")
    elapsed = time.perf_counter() - wall
    mean_cpu = sum(cpu) / len(cpu) if cpu else 0.0
    print(
        f"{len(tasks)} tracks ({args.tracks} train, {args.test_tracks} test), "
        f"{len(tasks) * args.seconds:.0f} s of audio in {elapsed:.1f} s wall "
        f"({mean_cpu:.2f} s CPU per track, {args.jobs} jobs) -> {args.out}"
    )
    return 0
