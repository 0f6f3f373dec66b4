"""Combining the same stem from several models, and the reference's spectrogram combine tools.

Spectrogram rules take complex spectrograms ``(2, bins, frames)``; members are first cut to
the fewest frames, as the reference's ``ensembling`` does:

* ``min_mag`` / ``max_mag``: the reference's ``ensembling`` (``spec_utils.py``), a fold over
  the members in order keeping, per bin, the value of smaller / larger magnitude (on a tie, the
  later member's);
* ``avg_spec``: the complex mean;
* ``invert``: the mixture minus the stem after the reference's ``reduce_vocal_aggressively``
  (softmask :data:`INVERT_SOFTMASK`), as its ``spec_utils`` command line does;
* ``invert_p``: the larger of the two magnitudes with the mixture's phase, minus the stem. The
  reference computes the stem minus that (``y − max(|X|, |y|)·e^{i∠X}``) and writes it with
  inverted polarity; here it is negated, so that it adds back to the mixture with the stem;
* ``deep``: per bin the smaller of two spectrograms minus the second, as the reference's later
  ``spec_utils`` has it (earlier copies compare with the last file's raw band-1 spectrogram,
  ``spec[1]`` for ``specs[1]``, which fails on multi-band params).

Wave rules take ``(channels, samples)`` waves, cut to the shortest: ``avg_wave`` (the mean)
and ``median_wave`` (the per-sample median).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .api import Separation, Separator
    from .stream import AudioSource

#: The reference's softmask for ``invert`` (``reduce_vocal_aggressively(X, y, 0.2)``).
INVERT_SOFTMASK = 0.2

SpecRule = Callable[[Sequence[np.ndarray]], np.ndarray]
WaveRule = Callable[[Sequence[np.ndarray]], np.ndarray]


def crop_to_shortest(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The arrays cut to the shortest last axis: spectrograms to the fewest frames, waves to
    the fewest samples."""
    if not arrays:
        raise ValueError("nothing to combine")
    length = min(array.shape[-1] for array in arrays)
    return [array[..., :length] for array in arrays]


def _stacked(arrays: Sequence[np.ndarray], reduce: Callable[..., np.ndarray]) -> np.ndarray:
    """``reduce`` (``np.mean``, ``np.median``) across the members, in the first one's dtype."""
    members = crop_to_shortest(arrays)
    return reduce(np.stack(members), axis=0).astype(members[0].dtype)


def _fold(specs: Sequence[np.ndarray], take: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    members = crop_to_shortest(specs)
    combined = members[0]
    for member in members[1:]:
        combined = np.where(take(np.abs(member), np.abs(combined)), member, combined)
    return combined


def min_mag(specs: Sequence[np.ndarray]) -> np.ndarray:
    """Per bin, the member of smallest magnitude (ties: the later member)."""
    return _fold(specs, np.less_equal)


def max_mag(specs: Sequence[np.ndarray]) -> np.ndarray:
    """Per bin, the member of largest magnitude (ties: the later member)."""
    return _fold(specs, np.greater_equal)


def avg_spec(specs: Sequence[np.ndarray]) -> np.ndarray:
    """The complex mean of the members."""
    return _stacked(specs, np.mean)


def reduce_aggressively(mixture: np.ndarray, stem: np.ndarray, softmask: float = INVERT_SOFTMASK) -> np.ndarray:
    """The reference's ``reduce_vocal_aggressively``: where the rest of the mixture is louder
    than the stem, the stem's magnitude is lowered by ``softmask`` times the rest's (never
    below 0); the stem keeps its phase."""
    rest = np.abs(mixture - stem)
    stem_mag = np.abs(stem)
    reduced = np.clip(stem_mag - rest * (rest > stem_mag) * softmask, 0, np.inf)
    return reduced * np.exp(1j * np.angle(stem))


def invert(mixture: np.ndarray, stem: np.ndarray) -> np.ndarray:
    """The mixture minus the (aggressively reduced) stem: the other stem."""
    mixture, stem = crop_to_shortest([mixture, stem])
    return mixture - reduce_aggressively(mixture, stem)


def invert_p(mixture: np.ndarray, stem: np.ndarray) -> np.ndarray:
    """The larger of the mixture's and the stem's magnitudes, with the mixture's phase, minus
    the stem (the reference's result with its polarity put right)."""
    mixture, stem = crop_to_shortest([mixture, stem])
    larger = np.maximum(np.abs(mixture), np.abs(stem))
    return -(stem - larger * np.exp(1j * np.angle(mixture)))


def deep(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The reference's ``deep``: per bin the smaller-magnitude of the two (ties: the first),
    minus the second (so only the bins where the first is quieter remain)."""
    first, second = crop_to_shortest([first, second])
    return np.where(np.abs(first) <= np.abs(second), first, second) - second


def avg_wave(waves: Sequence[np.ndarray]) -> np.ndarray:
    """The per-sample mean."""
    return _stacked(waves, np.mean)


def median_wave(waves: Sequence[np.ndarray]) -> np.ndarray:
    """The per-sample median."""
    return _stacked(waves, np.median)


#: Rules combining any number of spectrograms.
SPEC_RULES: dict[str, SpecRule] = {"min_mag": min_mag, "max_mag": max_mag, "avg_spec": avg_spec}
#: Rules combining any number of waves.
WAVE_RULES: dict[str, WaveRule] = {"avg_wave": avg_wave, "median_wave": median_wave}
#: Rules of exactly two spectrograms, in order (a mixture and one stem for the inverts).
INVERT_RULES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"invert": invert, "invert_p": invert_p, "deep": deep}


# -- combining streams of stems (several models on one input) -----------------------------------

#: STFT of the spectral rules on stems (``split --ensemble``): UVR's GUI combines the stems'
#: waves through one plain STFT too (its ``ensemble_inputs``), whatever the models' params.
ENSEMBLE_N_FFT = 2048
#: Hop of that STFT: 75 % overlap, so a periodic Hann window squared sums to a constant.
ENSEMBLE_HOP = 512
#: The combine rule of each ``--ensemble`` name, for a primary and a secondary stem: one rule
#: for both, or ``max_min`` (UVR's default: the primary stem by ``max_mag``, the secondary by
#: ``min_mag``).
ENSEMBLE_RULES: dict[str, tuple[str, str]] = {
    "max_spec": ("max_mag", "max_mag"),
    "min_spec": ("min_mag", "min_mag"),
    "avg_spec": ("avg_spec", "avg_spec"),
    "avg_wave": ("avg_wave", "avg_wave"),
    "median_wave": ("median_wave", "median_wave"),
    "max_min": ("max_mag", "min_mag"),
}
#: ``split --ensemble`` names.
ENSEMBLE_ALGORITHMS = tuple(ENSEMBLE_RULES)


class StreamCombiner:
    """Combines K aligned streams of ``(C, n)`` blocks into one, block by block, in bounded memory.

    Wave rules combine each block as it comes. Spectral rules run a streaming STFT (periodic
    Hann, :data:`ENSEMBLE_N_FFT`, hop :data:`ENSEMBLE_HOP`, centred frames with zero padding as
    ``librosa.stft(center=True, pad_mode="constant")``), combine each frame with the rule and
    overlap-add the inverse (divided by the summed squared window), so the output lags the input
    by up to one FFT length and catches up on the ``last`` block. Members that are all equal come
    out as they went in, up to float rounding.
    """

    def __init__(self, rule: str, n_fft: int = ENSEMBLE_N_FFT, hop: int = ENSEMBLE_HOP) -> None:
        if rule not in SPEC_RULES and rule not in WAVE_RULES:
            raise ValueError(f"unknown combine rule '{rule}'")
        self.rule = rule
        self.n_fft, self.hop = n_fft, hop
        self.window = np.hanning(n_fft + 1)[:-1]  # periodic
        self._inputs: list[np.ndarray] | None = None  # per member, padded samples not yet framed
        self._acc = np.zeros((0, n_fft))  # overlap-add of the frames not finished yet
        self._wsum = np.zeros(n_fft)
        self._received = 0
        self._out_pos = 0

    def push(self, blocks: Sequence[np.ndarray], last: bool = False) -> np.ndarray:
        """The next ``(C, m)`` float32 samples of the combination (all of it once ``last``)."""
        lengths = {block.shape[-1] for block in blocks}
        if len(lengths) != 1:
            raise ValueError(f"members' blocks differ in length: {sorted(lengths)}")
        if self.rule in WAVE_RULES:
            return np.asarray(WAVE_RULES[self.rule](blocks), dtype=np.float32)
        return self._push_spectral(blocks, last)

    def _push_spectral(self, blocks: Sequence[np.ndarray], last: bool) -> np.ndarray:
        n_fft, hop, half = self.n_fft, self.hop, self.n_fft // 2
        channels = blocks[0].shape[0]
        if self._inputs is None:  # centred frames: n_fft/2 zeros before the first sample
            self._inputs = [np.zeros((channels, half)) for _ in blocks]
            self._acc = np.zeros((channels, n_fft))
        self._inputs = [np.concatenate([held, np.asarray(block, np.float64)], axis=1) for held, block in zip(self._inputs, blocks)]
        self._received += blocks[0].shape[1]
        if last:  # n_fft/2 zeros after the last sample, and up to a hop more to end on a frame
            tail = half + (-(self._inputs[0].shape[1] + half - n_fft)) % hop
            self._inputs = [np.pad(held, ((0, 0), (0, tail))) for held in self._inputs]
        pieces = []
        while self._inputs[0].shape[1] >= n_fft:
            frames = [np.fft.rfft(held[:, :n_fft] * self.window, axis=1)[:, :, None] for held in self._inputs]
            combined = SPEC_RULES[self.rule](frames)[:, :, 0]
            self._acc += np.fft.irfft(combined, n=n_fft, axis=1) * self.window
            self._wsum += self.window**2
            pieces.append(self._finished(hop))
            self._inputs = [held[:, hop:] for held in self._inputs]
        if last:  # what the last frames overlap-added beyond their first hop
            pieces.append(self._finished(n_fft - hop))
        out = np.concatenate(pieces, axis=1) if pieces else np.zeros((channels, 0))
        # output position p (counted in the padded stream) is the input's sample p - n_fft/2
        first = self._out_pos
        self._out_pos += out.shape[1]
        skip = max(0, half - first)
        start = first + skip - half  # the input sample out[:, skip] stands for
        out = out[:, skip : skip + max(0, self._received - start)]
        return np.ascontiguousarray(out, dtype=np.float32)

    def _finished(self, count: int) -> np.ndarray:
        """The next ``count`` overlap-added samples, normalised, shifted out of the accumulator."""
        tiny = np.finfo(np.float64).tiny
        done = self._acc[:, :count] / np.maximum(self._wsum[:count], tiny)
        self._acc = np.concatenate([self._acc[:, count:], np.zeros((self._acc.shape[0], count))], axis=1)
        self._wsum = np.concatenate([self._wsum[count:], np.zeros(count)])
        return done


#: Samples per block of the combining pass over the members' stems.
COMBINE_BLOCK = 1 << 18


class Ensemble:
    """Several :class:`~uvrsep.api.Separator`\\ s on one input; each stem is the combination of
    the members' same-named stems by :data:`ENSEMBLE_RULES` (``algorithm``).

    The members run one after another through their own (streamed) pipeline, on the input
    decoded once; a streamed run keeps each member's stems in temporary float32 files (under
    ``$TMPDIR``: 4 bytes per sample and channel, per member and stem) and combines them in a
    last pass, block by block, so memory stays flat. Spectral rules work on the stems' waves
    through one plain STFT (:class:`StreamCombiner`), whatever each member's params, as UVR's
    GUI does.

    Attributes:
        stem_names: the first member's ``(primary, secondary)``; ``shared`` lists those every
            member writes (a member whose pair differs can only give the stems they share).
    """

    def __init__(self, members: Sequence["Separator"], algorithm: str) -> None:
        from .errors import SettingsError

        if algorithm not in ENSEMBLE_RULES:
            raise SettingsError(f"ensemble algorithm must be one of {', '.join(ENSEMBLE_ALGORITHMS)}, got '{algorithm}'")
        if len(members) < 2:
            raise SettingsError("an ensemble needs at least two models")
        self.members = list(members)
        self.algorithm = algorithm
        first = self.members[0]
        self.stem_names = first.stem_names
        self.shared = [name for name in first.stem_names if all(name in m.stem_names for m in self.members)]
        self.rules = dict(zip(first.stem_names, ENSEMBLE_RULES[algorithm]))
        self.params = first.params  # the rate of "--sample-rate model"

    def planned_windows(self, input_samples: int, input_rate: int) -> int:
        return sum(m.planned_windows(input_samples, input_rate) for m in self.members)

    def _check(self, stems: Sequence[str]) -> None:
        from .errors import SettingsError

        missing = [name for name in stems if name not in self.shared]
        if missing:
            raise SettingsError(f"not every model of the ensemble gives '{missing[0]}'; the stems they share: {', '.join(self.shared) or 'none'}")

    def separate(
        self, wave: np.ndarray, sample_rate: int, *, output_sample_rate: int | None = None,
        mono_output: bool | None = None, progress: Callable[[int], None] | None = None,
    ) -> "Separation":
        """Every member's :meth:`~uvrsep.api.Separator.separate`, combined stem by stem (the
        stems all members share)."""
        from .api import Separation

        results = [
            m.separate(wave, sample_rate, output_sample_rate=output_sample_rate, mono_output=mono_output, progress=progress)
            for m in self.members
        ]
        stems = {
            name: StreamCombiner(self.rules[name]).push([r.stems[name] for r in results], last=True)
            for name in self.shared
        }
        return Separation(stems, results[0].sample_rate, {"ensemble": self.algorithm})

    def separate_stream(
        self, source: "AudioSource", sinks: dict[str, Callable[[np.ndarray], object]], *,
        output_sample_rate: int | None = None, mono_output: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Like :meth:`~uvrsep.api.Separator.separate_stream` for the ensemble: ``sinks`` get
        the combined stems block by block; returns the samples written to each."""
        import tempfile

        from .stream import ArraySource, RawStemFile

        self._check(list(sinks))
        with tempfile.TemporaryDirectory(prefix="uvrsep-ensemble-") as folder:
            decoded = RawStemFile(Path(folder) / "input.f32")
            for start in range(0, source.frames, COMBINE_BLOCK):  # decoded once for all members
                decoded.write(source.read(start, min(source.frames, start + COMBINE_BLOCK)))
            if not decoded.frames:
                decoded.channels = source.channels
            once = ArraySource(decoded.view(), source.sample_rate)
            outputs: list[dict[str, RawStemFile]] = []
            for index, member in enumerate(self.members):
                raw = {name: RawStemFile(Path(folder) / f"{index}_{name}.f32") for name in sinks}
                member.separate_stream(
                    once, {name: stem.write for name, stem in raw.items()},
                    output_sample_rate=output_sample_rate, mono_output=mono_output, progress=progress,
                )
                outputs.append(raw)
            written = 0
            for name, sink in sinks.items():
                views = [raw[name].view() for raw in outputs]
                total = min(view.shape[1] for view in views)
                combiner = StreamCombiner(self.rules[name])
                written = 0
                for start in range(0, max(total, 1), COMBINE_BLOCK):
                    stop = min(total, start + COMBINE_BLOCK)
                    block = combiner.push([np.asarray(v[:, start:stop]) for v in views], last=stop >= total)
                    if block.shape[1]:
                        sink(block)
                        written += block.shape[1]
                del views
        return written
