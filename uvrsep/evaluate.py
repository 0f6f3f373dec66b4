"""Objective evaluation: BSS-eval SDR/SIR/SAR of a model, and of baselines, on tracks with true stems.

The tracks are those of :mod:`uvrsep.dataset` (track folders holding ``mixture.<ext>`` and the
true stems ``vocals.<ext>`` and/or ``accompaniment.<ext>`` — the layout of MUSDB18 exported with
``musdb``/``stempeg`` — or the trainer's ``mixtures/`` + ``instrumentals/`` pairs), found by
:func:`uvrsep.dataset.discover_tracks` (``uvrsep eval`` searches :data:`EVAL_SEARCH_DEPTH` level
below each argument) and read strictly (:func:`uvrsep.dataset.read_track`: every stem must have
the mixture's rate, channels and length). :func:`evaluate` runs every method on every track and
scores it with :func:`bss_eval`.

A *method* is a function ``(mixture (channels, samples), sample_rate) -> {"vocals": (channels,
samples), "accompaniment": (channels, samples)}``: :func:`model_method` wraps a
:class:`uvrsep.api.Separator`; :data:`BASELINES` holds ``mixture`` (the mixture as both
estimates: the floor any separator must beat), ``hpss`` (two-stage harmonic/percussive
separation) and ``repet-sim`` (similarity-based repetition, librosa's "vocal separation" example).

The scores are whole-track BSS-eval (one time-invariant distortion filter per track and channel,
no framing) computed with ``fast_bss_eval``: they are comparable between methods here, but not
equal to museval's framewise medians that MUSDB18 papers report.
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from .dataset import STEMS, Track, TrackAudio, read_track
from .errors import UvrsepError

if TYPE_CHECKING:  # pragma: no cover
    from .api import Separator

#: Taps of the time-invariant distortion filter BSS-eval allows (v4's default: 512).
FILTER_LENGTH = 512
#: Metrics are clamped to ±this many dB (a perfect estimate reaches the ceiling instead of ±inf).
METRIC_CEILING_DB = 100.0
#: Added to the diagonal of BSS-eval's (unit-energy) correlation matrices, so that references
#: whose delayed copies are linearly dependent in float64 (pure tones, duplicates) stay solvable;
#: it lowers a perfect estimate's SDR to ~10·log10(1/REGULARIZATION) dB, far above the ceiling.
REGULARIZATION = 1e-12
#: A reference channel whose RMS is below this (dBFS) is silent: its metrics are undefined (NaN).
SILENCE_DBFS = -80.0
#: Decibels of a power ratio: 10·log10.
DB_PER_DECADE = 10.0

#: The metrics computed, in output order (the stems scored: :data:`uvrsep.dataset.STEMS`).
METRICS = ("sdr", "sir", "sar")
#: Folder levels ``uvrsep eval`` searches for tracks below each argument (the trainer: two).
EVAL_SEARCH_DEPTH = 1
#: A model's stem names (:func:`uvrsep.api.stem_names`) → the stem they estimate.
MODEL_STEMS = {"vocals": "vocals", "instrumental": "accompaniment"}

#: STFT hop = frame length / this, for the baselines.
HOP_DIVISOR = 4
#: HPSS stage 1: long frames (≈186 ms: 8192 samples at 44.1 kHz), where a voice's vibrato and
#: glides smear it across bins and it separates as "percussive" from sustained instruments.
HPSS_LONG_FRAME_S = 0.186
#: HPSS stage 2: short frames (≈23 ms: 1024 samples at 44.1 kHz), where the voice is "harmonic"
#: next to the drums.
HPSS_SHORT_FRAME_S = 0.023
#: Median-filter length (bins and frames) of both HPSS stages (librosa's default).
HPSS_KERNEL = 31
#: HPSS mask margin: 1 makes the two soft masks sum to one (nothing of the mixture is lost).
HPSS_MARGIN = 1.0
#: REPET-SIM frame length (≈93 ms: librosa's example, 2048 samples at 22.05 kHz).
REPET_FRAME_S = 0.093
#: REPET-SIM: similar frames closer than this are not used (librosa's example: 2 s).
REPET_MIN_DISTANCE_S = 2.0
#: REPET-SIM soft-mask margins of the background (accompaniment) and foreground (vocals) masks.
REPET_MARGIN_BACKGROUND = 2.0
REPET_MARGIN_FOREGROUND = 10.0
#: REPET-SIM soft-mask exponent.
REPET_MASK_POWER = 2.0
#: Fewest STFT frames REPET-SIM needs (librosa's recurrence matrix needs a width of at least 1,
#: below ``(frames - 1) // 2``).
REPET_MIN_FRAMES = 5

#: A separation method: ``(mixture (C, N), sample_rate) -> {stem: (C, N)}`` for every stem of STEMS.
Method = Callable[[np.ndarray, int], dict[str, np.ndarray]]
#: ``{method: {stem: {metric: dB}}}``.
Scores = dict[str, dict[str, dict[str, float]]]


class EvalError(UvrsepError):
    """A method cannot be evaluated (e.g. a model whose stems are not vocals/instrumental, or an
    estimate of the wrong shape). Tracks that cannot be found or read raise
    :class:`uvrsep.dataset.DatasetError`."""


# -- metrics ---------------------------------------------------------------------------------------


def _unit_energy(signals: np.ndarray) -> np.ndarray:
    """``(..., samples)`` scaled to unit energy along the last axis; all-zero signals stay zero."""
    norms = np.linalg.norm(signals, axis=-1, keepdims=True)
    return signals / np.where(norms > 0, norms, 1.0)


def energy_ratio_db(signal: np.ndarray, reference: np.ndarray) -> float:
    """Energy of ``signal`` relative to ``reference`` in dB (any shapes; float64 sums), clamped
    to ±:data:`METRIC_CEILING_DB`: e.g. how much of a song a model's vocals stem holds (its
    "leakage" on a track without singing). A silent ``signal`` reads as the floor."""
    signal_energy = float(np.sum(np.square(np.asarray(signal, dtype=np.float64))))
    reference_energy = float(np.sum(np.square(np.asarray(reference, dtype=np.float64))))
    return _energy_ratio_db(signal_energy, reference_energy)


def band_energy_ratios_db(
    signal: np.ndarray, reference: np.ndarray, sample_rate: int, edges_hz: tuple[float, ...]
) -> list[float]:
    """:func:`energy_ratio_db` per frequency band: ``[lo, hi)`` between consecutive
    ``edges_hz`` (the last band also takes the Nyquist frequency), from the spectra of the
    whole signals (``(samples,)`` or ``(channels, samples)``, same length; channels summed).
    E.g. in which band a model's vocals stem holds too much (accompaniment leaking in) or too
    little (voice lost)."""
    signal = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    if signal.shape[-1] != reference.shape[-1]:
        raise ValueError(f"signals of {signal.shape[-1]} and {reference.shape[-1]} samples")
    frequencies = np.fft.rfftfreq(signal.shape[-1], 1.0 / sample_rate)
    signal_power = np.square(np.abs(np.fft.rfft(signal, axis=-1))).sum(axis=0)
    reference_power = np.square(np.abs(np.fft.rfft(reference, axis=-1))).sum(axis=0)
    ratios = []
    for index, (low, high) in enumerate(zip(edges_hz[:-1], edges_hz[1:])):
        last = index == len(edges_hz) - 2
        band = (frequencies >= low) & ((frequencies <= high) if last else (frequencies < high))
        ratios.append(_energy_ratio_db(float(signal_power[band].sum()), float(reference_power[band].sum())))
    return ratios


def _energy_ratio_db(signal_energy: float, reference_energy: float) -> float:
    """``10·log10(signal / reference)`` clamped to ±:data:`METRIC_CEILING_DB` (see
    :func:`energy_ratio_db`)."""
    floor = 10.0 ** (-METRIC_CEILING_DB / DB_PER_DECADE)
    if reference_energy <= 0.0:
        return METRIC_CEILING_DB if signal_energy > 0.0 else 0.0
    ratio = max(signal_energy / reference_energy, floor)
    return float(min(DB_PER_DECADE * np.log10(ratio), METRIC_CEILING_DB))


def _coherence_db(coherence: np.ndarray) -> np.ndarray:
    """A squared cosine ``c`` between a signal and a subspace → ``10·log10(c / (1 − c))`` dB,
    clamped to ±:data:`METRIC_CEILING_DB` (NaN stays NaN)."""
    floor = 10.0 ** (-METRIC_CEILING_DB / DB_PER_DECADE)
    eps = floor / (1.0 + floor)
    coherence = np.clip(coherence, eps, 1.0 - eps)
    return DB_PER_DECADE * np.log10(coherence / (1.0 - coherence))


def _channel_metrics(references: np.ndarray, estimates: np.ndarray, filter_length: int) -> np.ndarray:
    """BSS-eval of one channel's active sources.

    Args:
        references: ``(sources, samples)`` float64, none silent.
        estimates: ``(sources, samples)`` float64, in the same order.
        filter_length: distortion-filter taps.

    Returns:
        ``(3, sources)``: SDR, SIR, SAR in dB.
    """
    from fast_bss_eval.numpy.metrics import square_cosine_metrics

    # pairwise: fast_bss_eval's non-pairwise path calls np.linalg.solve with a stack of vectors,
    # which NumPy 2 reads as one matrix; the (reference, estimate) diagonal is what is needed
    with np.errstate(divide="ignore", invalid="ignore"):
        target, everything = square_cosine_metrics(
            _unit_energy(references), _unit_energy(estimates),
            filter_length=filter_length, pairwise=True, load_diag=REGULARIZATION,
        )
        target, everything = np.diagonal(target), np.diagonal(everything)
        interference = target / everything  # undefined (NaN) for a silent estimate
    metrics = np.stack([_coherence_db(target), _coherence_db(interference), _coherence_db(everything)])
    if references.shape[0] == 1:
        metrics[METRICS.index("sir")] = np.nan  # no other source can interfere
    return metrics


def bss_eval(
    references: np.ndarray, estimates: np.ndarray, filter_length: int = FILTER_LENGTH
) -> dict[str, np.ndarray]:
    """BSS-eval SDR, SIR and SAR of estimates of several sources (with ``fast_bss_eval``).

    Each channel is evaluated as its own signal: the estimate of a source in that channel is
    projected on the delayed copies (``filter_length`` taps) of all references in that channel
    and on those of its own reference; SDR = 10·log10(‖s_target‖² / ‖e_interf + e_artif‖²),
    SIR = 10·log10(‖s_target‖² / ‖e_interf‖²), SAR = 10·log10(‖s_target + e_interf‖² /
    ‖e_artif‖²). The metrics are then averaged over channels in dB. The estimates are taken in
    the given order (no permutation search) and metrics are clamped to
    ±:data:`METRIC_CEILING_DB`.

    Silence: a reference channel below :data:`SILENCE_DBFS` RMS is left out of that channel's
    projection, and its source's metrics in that channel are NaN; a source silent in every
    channel gets NaN metrics (``silent`` is True). With a single active source in a channel the
    SIR is NaN (no other source can interfere). A silent *estimate* of an active source gets
    SDR = SAR = −ceiling and an undefined (NaN) SIR.

    Cost: ``fast_bss_eval`` correlates whole signals by FFT (of the next power of two above
    twice their length), one channel at a time: its peak memory is about 250 MB for 7 s of
    44.1 kHz audio, and ~7 GB for a 4–6 minute track.

    Args:
        references: ``(sources, channels, samples)`` true sources.
        estimates: ``(sources, channels, samples)`` their estimates, in the same order.
        filter_length: taps of the distortion filter (BSS-eval v4: 512).

    Returns:
        ``{"sdr": (sources,), "sir": (sources,), "sar": (sources,)}`` float64 dB, plus
        ``"silent": (sources,)`` bool.

    Raises:
        ValueError: the arrays are not 3-D, their shapes differ, or they are shorter than
            ``filter_length`` (but not empty).
    """
    refs = np.asarray(references, dtype=np.float64)
    ests = np.asarray(estimates, dtype=np.float64)
    if refs.ndim != 3 or refs.shape != ests.shape:
        raise ValueError(f"references and estimates must both be (sources, channels, samples), got {refs.shape} and {ests.shape}")
    sources, channels, samples = refs.shape
    if 0 < samples < filter_length:
        raise ValueError(f"signals of {samples} samples are shorter than the {filter_length}-tap distortion filter")
    rms = np.sqrt(np.mean(np.square(refs), axis=-1)) if samples else np.zeros((sources, channels))
    active = rms > 10.0 ** (SILENCE_DBFS / (2 * DB_PER_DECADE))  # (sources, channels)
    per_channel = np.full((len(METRICS), channels, sources), np.nan)
    for channel in range(channels):
        which = np.flatnonzero(active[:, channel])
        if which.size:
            per_channel[:, channel, which] = _channel_metrics(refs[which, channel], ests[which, channel], filter_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an all-NaN slice
        means = np.nanmean(per_channel, axis=1)
    result = {metric: means[i] for i, metric in enumerate(METRICS)}
    result["silent"] = ~active.any(axis=1)
    return result


# -- methods ---------------------------------------------------------------------------------------


def _frame_length(sample_rate: int, seconds: float) -> int:
    """The power of two nearest to ``seconds`` of samples (STFT frame length)."""
    return int(2 ** round(np.log2(max(seconds * sample_rate, 1.0))))


def _stft(wave: np.ndarray, n_fft: int) -> np.ndarray:
    """``(C, N)`` → complex ``(C, 1 + n_fft/2, frames)``."""
    import librosa

    return librosa.stft(wave, n_fft=n_fft, hop_length=n_fft // HOP_DIVISOR)


def _istft(spec: np.ndarray, n_fft: int, length: int) -> np.ndarray:
    """Inverse of :func:`_stft`, ``(C, length)`` float32."""
    import librosa

    return librosa.istft(spec, n_fft=n_fft, hop_length=n_fft // HOP_DIVISOR, length=length).astype(np.float32)


def mixture_baseline(mixture: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """The mixture itself as the estimate of every stem (the score a separator must beat).

    Args:
        mixture: ``(channels, samples)``.
        sample_rate: its rate (unused).

    Returns:
        ``{stem: (channels, samples)}``: copies of the mixture.
    """
    return {stem: mixture.copy() for stem in STEMS}


def _hpss(wave: np.ndarray, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic/percussive split of ``(C, N)`` with soft median-filter masks summing to one.

    Returns:
        ``(harmonic, percussive)``, each ``(C, N)`` float32; they sum to ``wave``.
    """
    import librosa

    spec = _stft(wave, n_fft)
    harmonic, percussive = librosa.decompose.hpss(np.abs(spec), kernel_size=HPSS_KERNEL, mask=True, margin=HPSS_MARGIN)
    return _istft(spec * harmonic, n_fft, wave.shape[1]), _istft(spec * percussive, n_fft, wave.shape[1])


def hpss_baseline(mixture: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Two-stage HPSS (Tachibana et al. 2010, as FitzGerald & Gainza 2010) as a vocal separator.

    Stage 1, long frames: sustained instruments are harmonic; the voice (vibrato, glides) and the
    drums come out "percussive". Stage 2 splits that percussive part with short frames, where
    the voice is harmonic and the drums percussive. Vocals = stage 2's harmonic part;
    accompaniment = stage 1's harmonic part + stage 2's percussive part (the estimates sum to the
    mixture).

    Args:
        mixture: ``(channels, samples)``.
        sample_rate: its rate (sets the frame lengths).

    Returns:
        ``{"vocals": (channels, samples), "accompaniment": (channels, samples)}`` float32.
    """
    sustained, varying = _hpss(mixture, _frame_length(sample_rate, HPSS_LONG_FRAME_S))
    vocals, drums = _hpss(varying, _frame_length(sample_rate, HPSS_SHORT_FRAME_S))
    return {"vocals": vocals, "accompaniment": sustained + drums}


def repet_sim_baseline(mixture: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """REPET-SIM (Rafii & Pardo 2012) as in librosa's "vocal separation" example.

    The repeating background of each frame is the median of its most similar frames (cosine
    similarity of the magnitude spectra of all channels, frames at least
    :data:`REPET_MIN_DISTANCE_S` apart, shortened for short inputs), capped by the frame itself.
    Soft masks with margins :data:`REPET_MARGIN_BACKGROUND` / :data:`REPET_MARGIN_FOREGROUND`
    give the background (accompaniment) and the foreground (vocals); as in the example the masks
    do not sum to one, so the estimates need not sum to the mixture.

    Args:
        mixture: ``(channels, samples)``.
        sample_rate: its rate.

    Returns:
        ``{"vocals": (channels, samples), "accompaniment": (channels, samples)}`` float32.

    Raises:
        EvalError: the input is too short (fewer than :data:`REPET_MIN_FRAMES` STFT frames).
    """
    import librosa

    n_fft = _frame_length(sample_rate, REPET_FRAME_S)
    hop = n_fft // HOP_DIVISOR
    frames = 1 + mixture.shape[1] // hop  # of the centred STFT
    if frames < REPET_MIN_FRAMES:
        raise EvalError(
            f"repet-sim needs at least {REPET_MIN_FRAMES} STFT frames ({(REPET_MIN_FRAMES - 1) * hop / sample_rate:.2f} s); "
            f"the input has {frames}"
        )
    spec = _stft(mixture, n_fft)
    magnitude = np.abs(spec)
    width = int(librosa.time_to_frames(REPET_MIN_DISTANCE_S, sr=sample_rate, hop_length=hop))
    width = max(1, min(width, (frames - 1) // 2 - 1))
    repeating = librosa.decompose.nn_filter(magnitude, aggregate=np.median, metric="cosine", width=width)
    repeating = np.minimum(magnitude, repeating)
    foreground = magnitude - repeating
    background_mask = librosa.util.softmask(repeating, REPET_MARGIN_BACKGROUND * foreground, power=REPET_MASK_POWER)
    foreground_mask = librosa.util.softmask(foreground, REPET_MARGIN_FOREGROUND * repeating, power=REPET_MASK_POWER)
    length = mixture.shape[1]
    return {"vocals": _istft(spec * foreground_mask, n_fft, length), "accompaniment": _istft(spec * background_mask, n_fft, length)}


#: The baselines by CLI name.
BASELINES: dict[str, Method] = {"mixture": mixture_baseline, "hpss": hpss_baseline, "repet-sim": repet_sim_baseline}


def model_method(separator: Separator) -> Method:
    """A :class:`uvrsep.api.Separator` as a method: its ``vocals`` stem estimates the vocals and
    its ``instrumental`` stem the accompaniment.

    Raises:
        EvalError: the model's stems are not vocals/instrumental (e.g. a de-echo model).
    """
    names = separator.stem_names
    if any(name not in MODEL_STEMS for name in names):
        raise EvalError(
            f"the model separates {names[0]}/{names[1]}; eval scores vocals/accompaniment, so it needs "
            "a vocals or instrumental model"
        )

    def separate(mixture: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        stems = separator.separate(mixture, sample_rate).stems
        return {MODEL_STEMS[name]: stem for name, stem in stems.items()}

    return separate


def reference_pairs(mixtures: Path, references: Path, stems: Sequence[str]) -> list[tuple[Path, dict[str, Path]]]:
    """Mixtures with references kept apart: each ``mixtures/X.flac`` with its
    ``references/X_{stem}.flac`` for every stem (e.g. songs and a strong separator's stems,
    pseudo-references), sorted by name; a mixture missing any of them is left out."""
    pairs = []
    for mixture in sorted(mixtures.glob("*.flac")):
        paths = {stem: references / f"{mixture.stem}_{stem}.flac" for stem in stems}
        if all(path.is_file() for path in paths.values()):
            pairs.append((mixture, paths))
    return pairs


# -- evaluation ------------------------------------------------------------------------------------


@dataclass
class TrackResult:
    """One track's scores.

    Attributes:
        name: the track folder's name.
        folder: its path.
        sources: how each true stem was obtained (see :attr:`uvrsep.dataset.Track.sources`).
        duration: seconds of audio.
        scores: ``{method: {stem: {metric: dB}}}`` (NaN where undefined).
        seconds: ``{method: seconds its separation took}``.
        silent: stems whose reference is silent (their metrics are NaN).
        error: why the track failed (None when it was scored).
    """

    name: str
    folder: str
    sources: dict[str, str] = field(default_factory=dict)
    duration: float | None = None
    scores: Scores = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    silent: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class EvalResult:
    """Scores of every method on every track, and their medians over the scored tracks.

    Attributes:
        methods: method names, in evaluation order.
        tracks: one result per track (failed ones included).
        median: ``{method: {stem: {metric: dB}}}``, the NaN-ignoring median over scored tracks.
        seconds: ``{method: total separation seconds}``.
        filter_length: BSS-eval filter taps used.
    """

    methods: list[str]
    tracks: list[TrackResult]
    median: Scores
    seconds: dict[str, float]
    filter_length: int = FILTER_LENGTH

    @property
    def failed(self) -> int:
        return sum(not track.ok for track in self.tracks)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy (NaN → None)."""
        return json_ready({
            "filter_length": self.filter_length,
            "methods": self.methods,
            "tracks": [vars(track) for track in self.tracks],
            "median": self.median,
            "seconds": self.seconds,
            "ok": len(self.tracks) - self.failed,
            "failed": self.failed,
        })


def json_ready(value: object) -> object:
    """Nested dicts/lists with non-finite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _check_estimates(estimates: Mapping[str, np.ndarray], shape: tuple[int, ...], method: str) -> np.ndarray:
    """The estimates as ``(len(STEMS), C, N)``, checking every stem is there with the mixture's shape."""
    missing = [stem for stem in STEMS if stem not in estimates]
    if missing:
        raise EvalError(f"method {method} gave no {', '.join(missing)} estimate")
    for stem in STEMS:
        if np.shape(estimates[stem]) != shape:
            raise EvalError(f"method {method}: {stem} estimate has shape {np.shape(estimates[stem])}, the mixture {shape}")
    return np.stack([np.asarray(estimates[stem]) for stem in STEMS])


def _score_track(track: TrackAudio, methods: Mapping[str, Method], result: TrackResult, filter_length: int) -> None:
    """Run every method on a loaded track and fill ``result``'s scores and timings."""
    references = np.stack([track.stems[stem] for stem in STEMS])
    for name, method in methods.items():
        start = time.perf_counter()
        estimates = method(track.mixture, track.sample_rate)
        result.seconds[name] = round(time.perf_counter() - start, 3)
        metrics = bss_eval(references, _check_estimates(estimates, track.mixture.shape, name), filter_length)
        result.scores[name] = {
            stem: {metric: float(metrics[metric][i]) for metric in METRICS} for i, stem in enumerate(STEMS)
        }
        result.silent = [stem for stem, silent in zip(STEMS, metrics["silent"]) if silent]


def _failure(exc: BaseException, folder: Path) -> str:
    """A one-line message for an exception that sank a track."""
    if isinstance(exc, UvrsepError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"{folder}: out of memory; evaluate shorter tracks or fewer at once"
    if isinstance(exc, OSError):
        return f"{folder}: {exc.strerror or exc}"
    return f"{folder}: internal error ({type(exc).__name__}: {exc}); please report it"


def _median(tracks: Sequence[TrackResult], methods: Sequence[str]) -> Scores:
    """NaN-ignoring median over the scored tracks (NaN when no track has a value)."""
    scored = [track for track in tracks if track.ok]
    median: Scores = {}
    for method in methods:
        median[method] = {}
        for stem in STEMS:
            values = np.array([[t.scores[method][stem][m] for m in METRICS] for t in scored]).reshape(-1, len(METRICS))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column
                medians = np.nanmedian(values, axis=0) if len(values) else np.full(len(METRICS), np.nan)
            median[method][stem] = {metric: float(value) for metric, value in zip(METRICS, medians)}
    return median


def evaluate(
    tracks: Sequence[Track],
    methods: Mapping[str, Method],
    *,
    filter_length: int = FILTER_LENGTH,
    on_track: Callable[[TrackResult], None] | None = None,
    verbose: bool = False,
) -> EvalResult:
    """Score every method on every track.

    A track that cannot be read, or on which a method fails, is recorded with its error and
    the others are still evaluated.

    Args:
        tracks: from :func:`uvrsep.dataset.find_tracks` / :func:`uvrsep.dataset.discover_tracks`.
        methods: ``{name: method}`` (see :data:`Method`, :data:`BASELINES`, :func:`model_method`).
        filter_length: BSS-eval distortion-filter taps.
        on_track: called with each track's result as soon as it is done (progress).
        verbose: print the traceback of an internal error to stderr.

    Returns:
        Per-track, per-method, per-stem SDR/SIR/SAR, their medians, and separation times.
    """
    results = []
    for track in tracks:
        result = TrackResult(name=track.name, folder=str(track.folder))
        try:
            audio = read_track(track, strict=True)
            result.sources = track.sources
            result.duration = round(audio.mixture.shape[1] / audio.sample_rate, 6)
            if audio.mixture.shape[1] < filter_length:
                raise EvalError(
                    f"{track.folder}: too short to score ({audio.mixture.shape[1]} samples; BSS-eval's "
                    f"{filter_length}-tap distortion filter needs at least {filter_length})"
                )
            _score_track(audio, methods, result, filter_length)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad track must not sink the evaluation
            result.error = _failure(exc, track.folder)
            result.scores, result.seconds = {}, {}
            if verbose and not isinstance(exc, UvrsepError):
                traceback.print_exc()
        results.append(result)
        if on_track is not None:
            on_track(result)
    names = list(methods)
    seconds = {name: round(sum(r.seconds.get(name, 0.0) for r in results), 3) for name in names}
    return EvalResult(names, results, _median(results, names), seconds, filter_length)
