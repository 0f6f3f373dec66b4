"""Datasets of separated tracks: discovery, reading, and cached multi-band spectrograms.

The one reader of track data: the trainer (:mod:`uvrsep.train`) and ``uvrsep eval``
(:mod:`uvrsep.evaluate`) both find and read their tracks here. Two layouts are read:

* **track folders** (MUSDB-style, what ``scripts/make_dataset.py`` writes): a folder holding
  ``mixture.<ext>`` and true stems — ``vocals.<ext>`` and ``accompaniment.<ext>`` (or, in this
  order of preference, ``instrumental``, ``instrumentals``, ``inst``; or ``bass`` + ``drums`` +
  ``other``, summed into the accompaniment). A folder is a track folder when it holds a mixture,
  or both vocals and an accompaniment (the mixture is then their sum). A missing vocals or
  accompaniment stem is derived as mixture − the other. A mixture without any true stem, or two
  files for one used stem (``vocals.wav`` and ``vocals.flac``), is a problem of that folder.
* **pair folders**: a folder with ``mixtures/`` and ``instrumentals/`` sub-folders holding files
  of the same name (``mixtures/a.wav`` ↔ ``instrumentals/a.flac``); vocals = mixture − instrumental.

A dataset argument is a track folder, a pair folder, or a folder whose sub-folders down to
``depth`` levels are (the trainer searches :data:`SEARCH_DEPTH` levels, ``uvrsep eval`` one).
Hidden files and folders are skipped; a track reached through two arguments is listed once.
:func:`discover_tracks` collects the problems of the arguments and folders it meets;
:func:`find_tracks` raises them.

:func:`read_track` reads a track's mixture, vocals and accompaniment at one rate, in one of two
modes: *lenient* (the trainer's): mono files become stereo, every file is resampled to the
requested rate (default: the first file's), and shorter files are zero-padded at the end to the
longest; *strict* (evaluation's): every file must have the first file's (the mixture's) rate,
channel count and length, else :class:`DatasetError`. The trainer turns each track into its
complex multi-band spectrogram (:func:`track_spectrograms`), cached on disk by content, so a
resumed or repeated run does not analyse the audio again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .audio import AUDIO_EXTENSIONS, read_audio
from .checkpoint import write_atomically
from .errors import UvrsepError
from .params import ModelParams
from .transforms import analyze, fix_length, pad_to_hop, resample

#: Stem names (file stems, lowercase) of a track folder.
MIXTURE = "mixture"
VOCALS = "vocals"
ACCOMPANIMENT = "accompaniment"
#: The true stems of a track, in output order.
STEMS = (VOCALS, ACCOMPANIMENT)
#: Names of the accompaniment stem, in order of preference.
ACCOMPANIMENT_SYNONYMS = ("accompaniment", "instrumental", "instrumentals", "inst")
#: Stems summed into the accompaniment when it is not given (MUSDB's four-stem layout).
MUSDB_STEMS = ("bass", "drums", "other")
#: Sub-folders of the pair layout.
PAIR_MIXTURES = "mixtures"
PAIR_INSTRUMENTALS = "instrumentals"
#: How many folder levels below a dataset argument are searched for tracks by default.
SEARCH_DEPTH = 2
#: Version of the spectrogram cache format (part of every cache key).
CACHE_VERSION = 1
#: Resampler used by lenient reading.
RESAMPLER = "soxr_hq"

#: One dataset argument or several.
PathArgs = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


class DatasetError(UvrsepError):
    """A dataset folder holds no usable track, or a track cannot be read (or, read strictly, its
    files do not match)."""


@dataclass(frozen=True)
class Track:
    """Files of one track.

    Attributes:
        name: display name (the track folder's, or the pair's file stem).
        folder: the track folder (a pair's: the folder holding ``mixtures/`` and ``instrumentals/``).
        mixture: the mixture file, or None (the sum of the stems).
        vocals: the vocals file, or None (derived from the others).
        accompaniment: files summed into the accompaniment (empty: derived).
    """

    name: str
    folder: Path
    mixture: Path | None
    vocals: Path | None
    accompaniment: tuple[Path, ...]

    def _label(self, paths: Sequence[Path]) -> str:
        return " + ".join(path.relative_to(self.folder).as_posix() for path in paths)

    @property
    def sources(self) -> dict[str, str]:
        """``{stem: how it is obtained}`` for every stem of :data:`STEMS`: its file name, a sum
        (``bass.wav + drums.wav + other.wav``) or a difference (``mixture.wav - (vocals.wav)``)."""
        given = {VOCALS: (self.vocals,) if self.vocals else (), ACCOMPANIMENT: self.accompaniment}
        sources = {stem: self._label(paths) for stem, paths in given.items() if paths}
        for stem, other in (STEMS, STEMS[::-1]):
            if stem not in sources:  # then there is a mixture: a track has one, or both stems
                assert self.mixture is not None
                sources[stem] = f"{self._label((self.mixture,))} - ({sources[other]})"
        return {stem: sources[stem] for stem in STEMS}

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the track."""
        return tuple(p for p in (self.mixture, self.vocals, *self.accompaniment) if p is not None)


@dataclass
class TrackAudio:
    """A track read into memory by :func:`read_track`.

    Attributes:
        track: the track's files (``track.sources`` says how each stem was obtained).
        sample_rate: rate of every wave.
        mixture: ``(channels, samples)`` float32 (the stems' sum when the track has no mixture file).
        stems: ``{stem: (channels, samples) float32}`` for every stem of :data:`STEMS`.
    """

    track: Track
    sample_rate: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray]


# -- discovery -------------------------------------------------------------------------------------


def _entries(folder: Path) -> list[Path]:
    """The visible entries of ``folder``, sorted."""
    try:
        return sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list it ({exc.strerror or exc}); check its permissions") from None


def _audio_files(folder: Path) -> dict[str, tuple[Path, ...]]:
    """The audio files directly in ``folder`` grouped by lower-cased file stem."""
    grouped: dict[str, list[Path]] = {}
    for path in _entries(folder):
        if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
            grouped.setdefault(path.stem.lower(), []).append(path)
    return {name: tuple(paths) for name, paths in grouped.items()}


def _one(files: dict[str, tuple[Path, ...]], name: str, folder: Path) -> Path:
    """The single file named ``name`` (any extension) of ``files``, which has that name.

    Raises:
        DatasetError: several files have that name.
    """
    paths = files[name]
    if len(paths) > 1:
        listed = ", ".join(path.name for path in paths)
        raise DatasetError(f"{folder}: several {name} files ({listed}); keep only one")
    return paths[0]


def track_from_folder(folder: Path) -> Track | None:
    """The :class:`Track` a MUSDB-style folder holds, or None when it is not a track folder.

    Raises:
        DatasetError: the folder has a mixture but no true stem, several files for a used stem,
            or cannot be listed.
    """
    files = _audio_files(folder)
    synonym = next((name for name in ACCOMPANIMENT_SYNONYMS if name in files), None)
    part_names = (synonym,) if synonym else MUSDB_STEMS if all(stem in files for stem in MUSDB_STEMS) else ()
    has_mixture, has_vocals = MIXTURE in files, VOCALS in files
    if not has_mixture and not (has_vocals and part_names):
        return None
    if not has_vocals and not part_names:
        raise DatasetError(
            f"{folder}: has {files[MIXTURE][0].name} but no true stems; add vocals.<ext> and/or "
            "accompaniment.<ext> (or bass, drums and other)"
        )
    mixture = _one(files, MIXTURE, folder) if has_mixture else None
    vocals = _one(files, VOCALS, folder) if has_vocals else None
    return Track(folder.name, folder, mixture, vocals, tuple(_one(files, name, folder) for name in part_names))


def _pair_tracks(folder: Path) -> list[Track]:
    """The tracks of a pair folder: every mixture with an instrumental of the same name."""
    mixtures, instrumentals = folder / PAIR_MIXTURES, folder / PAIR_INSTRUMENTALS
    mixture_files, instrumental_files = _audio_files(mixtures), _audio_files(instrumentals)
    tracks = []
    for stem in mixture_files:
        if stem in instrumental_files:
            instrumental = _one(instrumental_files, stem, instrumentals)
            tracks.append(Track(stem, folder, _one(mixture_files, stem, mixtures), None, (instrumental,)))
    return tracks


def _scan(folder: Path, depth: int, problems: list[str]) -> list[Track]:
    """The tracks at or below ``folder`` (``depth`` levels), appending problems instead of raising."""
    try:
        if (folder / PAIR_MIXTURES).is_dir() and (folder / PAIR_INSTRUMENTALS).is_dir():
            return _pair_tracks(folder)
        track = track_from_folder(folder)
        if track is not None:
            return [track]
        subfolders = [path for path in _entries(folder) if path.is_dir()] if depth > 0 else []
    except DatasetError as exc:
        problems.append(str(exc))
        return []
    found: list[Track] = []
    for sub in subfolders:
        found.extend(_scan(sub, depth - 1, problems))
    return found


def discover_tracks(paths: PathArgs, depth: int = SEARCH_DEPTH) -> tuple[list[Track], list[str]]:
    """Every track under the dataset arguments, collecting problems instead of raising them.

    Args:
        paths: dataset arguments (one or several): track folders, pair folders, or folders of them.
        depth: folder levels searched below each argument.

    Returns:
        ``(tracks, problems)``: the tracks in argument order, sorted by path within each argument,
        each once; one-line messages for each argument that is not a folder or holds no track,
        and each folder that looks like a track but cannot be one (no true stems, several files
        for one stem, cannot be listed).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    tracks: list[Track] = []
    problems: list[str] = []
    seen: set[tuple[Path, ...]] = set()
    for arg in map(Path, paths):
        if not arg.is_dir():
            what = "not a folder" if arg.exists() else "no such folder"
            problems.append(f"{arg}: {what}; pass a track folder or a folder of track folders")
            continue
        known = len(problems)
        found = _scan(arg, depth, problems)
        if not found and len(problems) == known:
            problems.append(
                f"{arg}: no tracks found (searched {depth} folder level(s) down); expected folders with "
                f"mixture/vocals/accompaniment files or '{PAIR_MIXTURES}/' + '{PAIR_INSTRUMENTALS}/' sub-folders"
            )
        for track in found:
            key = tuple(path.resolve() for path in track.files)
            if key not in seen:
                seen.add(key)
                tracks.append(track)
    return tracks, problems


def find_tracks(paths: PathArgs, depth: int = SEARCH_DEPTH) -> list[Track]:
    """:func:`discover_tracks`, raising its problems.

    Raises:
        DatasetError: an argument is not a folder or holds no track, or a folder has a problem
            (all of them, in one line).
    """
    tracks, problems = discover_tracks(paths, depth)
    if problems:
        raise DatasetError("; ".join(problems))
    return tracks


# -- reading ---------------------------------------------------------------------------------------


class _Reader:
    """Reads the files of one track at one rate; strict: checks each against the first file."""

    def __init__(self, track: Track, sample_rate: int | None, strict: bool) -> None:
        self.track, self.sample_rate, self.strict = track, sample_rate, strict
        self.first: tuple[Path, int, tuple[int, ...]] | None = None

    @property
    def rate(self) -> int:
        assert self.first is not None
        return self.sample_rate if self.sample_rate is not None else self.first[1]

    def read(self, path: Path) -> np.ndarray:
        wave, info = read_audio(path)
        rate = info.sample_rate
        if self.first is None:
            self.first = (path, rate, wave.shape)
        elif self.strict and (rate, wave.shape) != self.first[1:]:
            first, first_rate, (channels, samples) = self.first
            match = "the mixture" if self.track.mixture is not None else "each other"
            raise DatasetError(
                f"{path}: {rate} Hz, {wave.shape[0]} channel(s), {wave.shape[1]} samples, but {first.name} has "
                f"{first_rate} Hz, {channels} channel(s), {samples} samples; the true stems must match {match}"
            )
        if not self.strict and wave.shape[0] == 1:
            wave = np.concatenate([wave, wave])
        if rate != self.rate:
            wave = resample(wave, rate, self.rate, RESAMPLER)
        return wave.astype(np.float32)


def read_track(track: Track, sample_rate: int | None = None, *, strict: bool = False) -> TrackAudio:
    """Read a track's mixture and stems, deriving what is missing.

    The mixture is read first; the vocals come from their file, the accompaniment from its file or
    the sum of its parts; a missing stem is the mixture minus the other, a missing mixture the sum
    of the stems.

    Args:
        track: from :func:`find_tracks` / :func:`discover_tracks`.
        sample_rate: resample every file to this rate (None: the first file's rate).
        strict: every file must have the first file's rate, channel count and length (evaluation);
            else mono files become stereo, other rates are resampled and shorter files are
            zero-padded at the end to the longest (training).

    Raises:
        DatasetError: strict, and a file's rate, channels or length differ from the first file's.
        AudioError: a file cannot be read.
    """
    reader = _Reader(track, sample_rate, strict)
    waves: dict[str, np.ndarray] = {}
    given = ((MIXTURE, (track.mixture,) if track.mixture else ()), (VOCALS, (track.vocals,) if track.vocals else ()), (ACCOMPANIMENT, track.accompaniment))
    for key, files in given:
        for path in files:
            wave = reader.read(path)
            if key in waves:
                length = max(waves[key].shape[1], wave.shape[1])
                waves[key] = fix_length(waves[key], length) + fix_length(wave, length)
            else:
                waves[key] = wave
    length = max(w.shape[1] for w in waves.values())
    waves = {key: fix_length(w, length) for key, w in waves.items()}
    if MIXTURE not in waves:
        waves[MIXTURE] = waves[VOCALS] + waves[ACCOMPANIMENT]
    for stem, other in (STEMS, STEMS[::-1]):
        if stem not in waves:
            waves[stem] = waves[MIXTURE] - waves[other]
    return TrackAudio(track, reader.rate, waves[MIXTURE], {stem: waves[stem] for stem in STEMS})


def load_track(track: Track, sample_rate: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(vocals, accompaniment, rate)`` read leniently (:func:`read_track`): stereo ``(2, N)``
    float32 waves of equal length.

    Args:
        track: the track.
        sample_rate: resample to this rate (None: the first file's rate).
    """
    audio = read_track(track, sample_rate)
    return audio.stems[VOCALS], audio.stems[ACCOMPANIMENT], audio.sample_rate


# -- spectrograms ----------------------------------------------------------------------------------


def _cache_key(track: Track, params: ModelParams) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{params.name}|{params.bins}|{params.top.sr}".encode())
    for path in (track.mixture, track.vocals, *track.accompaniment):
        if path is None:
            digest.update(b"-")
            continue
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _load_cached(path: Path, params: ModelParams) -> np.ndarray | None:
    """A cached spectrogram, or None when the file is truncated, foreign or of the wrong shape
    (it is then computed again and the cache entry rewritten: a cache never sinks a run)."""
    try:
        specs = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if (
        not isinstance(specs, np.ndarray) or specs.dtype != np.complex64 or specs.ndim != 4
        or specs.shape[:3] != (2, 2, params.bins + 1)
    ):
        return None
    return specs


def track_spectrograms(
    track: Track, params: ModelParams, cache_dir: Path | None = None
) -> np.ndarray:
    """Complex multi-band spectrograms of a track's vocals and accompaniment.

    The analysis is :func:`uvrsep.transforms.analyze` (the inference's), which is linear, so a
    mixture's spectrogram is the sum of its stems' — the trainer remixes stems in that domain.

    Returns:
        ``(2 stems [vocals, accompaniment], 2 channels, bins + 1, frames)`` complex64.
    """
    cached = cache_dir / f"{_cache_key(track, params)}.npy" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        specs = _load_cached(cached, params)
        if specs is not None:
            return specs
    vocals, accompaniment, _ = load_track(track, params.top.sr)
    vocals, accompaniment = (pad_to_hop(w, params.top.hl) for w in (vocals, accompaniment))
    specs = np.stack(
        [analyze(np.ascontiguousarray(w), params, keep_high_end=False).spec for w in (vocals, accompaniment)]
    ).astype(np.complex64)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(cached, lambda handle: np.save(handle, specs))
    return specs
