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

from typing import Callable, Sequence

import numpy as np

#: The reference's softmask for ``invert`` (``reduce_vocal_aggressively(X, y, 0.2)``).
INVERT_SOFTMASK = 0.2

SpecRule = Callable[[Sequence[np.ndarray]], np.ndarray]
WaveRule = Callable[[Sequence[np.ndarray]], np.ndarray]


def crop_frames(specs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The spectrograms cut to the fewest frames (last axis)."""
    frames = min(spec.shape[-1] for spec in specs)
    return [spec[..., :frames] for spec in specs]


def _fold(specs: Sequence[np.ndarray], take: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    if not specs:
        raise ValueError("no spectrograms to combine")
    members = crop_frames(specs)
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
    members = crop_frames(specs)
    return np.mean(np.stack(members), axis=0).astype(members[0].dtype)


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
    mixture, stem = crop_frames([mixture, stem])
    return mixture - reduce_aggressively(mixture, stem)


def invert_p(mixture: np.ndarray, stem: np.ndarray) -> np.ndarray:
    """The larger of the mixture's and the stem's magnitudes, with the mixture's phase, minus
    the stem (the reference's result with its polarity put right)."""
    mixture, stem = crop_frames([mixture, stem])
    larger = np.maximum(np.abs(mixture), np.abs(stem))
    return -(stem - larger * np.exp(1j * np.angle(mixture)))


def deep(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The reference's ``deep``: per bin the smaller-magnitude of the two (ties: the first),
    minus the second (so only the bins where the first is quieter remain)."""
    first, second = crop_frames([first, second])
    return np.where(np.abs(first) <= np.abs(second), first, second) - second


def crop_samples(waves: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The waves cut to the fewest samples (last axis)."""
    if not waves:
        raise ValueError("no waves to combine")
    samples = min(wave.shape[-1] for wave in waves)
    return [wave[..., :samples] for wave in waves]


def avg_wave(waves: Sequence[np.ndarray]) -> np.ndarray:
    """The per-sample mean."""
    members = crop_samples(waves)
    return np.mean(np.stack(members), axis=0).astype(members[0].dtype)


def median_wave(waves: Sequence[np.ndarray]) -> np.ndarray:
    """The per-sample median."""
    members = crop_samples(waves)
    return np.median(np.stack(members), axis=0).astype(members[0].dtype)


#: Rules combining any number of spectrograms.
SPEC_RULES: dict[str, SpecRule] = {"min_mag": min_mag, "max_mag": max_mag, "avg_spec": avg_spec}
#: Rules combining any number of waves.
WAVE_RULES: dict[str, WaveRule] = {"avg_wave": avg_wave, "median_wave": median_wave}
#: Rules of exactly two spectrograms, in order (a mixture and one stem for the inverts).
INVERT_RULES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"invert": invert, "invert_p": invert_p, "deep": deep}
