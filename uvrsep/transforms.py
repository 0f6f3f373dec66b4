"""Multi-band spectral analysis and synthesis of UVR v5 (``spec_utils``), step by step.

Analysis (:func:`analyze`): the top band's wave is resampled down band by band (each from the one
above, with that band's ``res_type``), each band gets the params' channel transform and its own
STFT, the bands' crop ranges are stacked into one ``bins + 1``-row spectrogram, and a pre-filter
fades its top rows. The top band's highest bins (the "high end") are kept for mirroring.

Synthesis (:func:`synthesize`): each band's rows are put back into an ``n_fft/2 + 1``-row
spectrogram (zeros elsewhere: the reference used uninitialised memory there), low/high-pass ramps
cross-fade neighbouring bands, each band is inverted and upsampled into the next, and the top band
optionally receives the (mirrored) high end.

Shapes: waves are ``(2, samples)``; spectrograms ``(2, rows, frames)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import librosa
import numpy as np

from .params import BandParams, ModelParams

#: Resampler the reference uses to bring band 1's inverse up to band 2's rate.
FIRST_BAND_UPSAMPLER = "sinc_fastest"
#: Resampler the reference uses to bring the other lower bands' inverses up.
MID_BAND_UPSAMPLER = "scipy"
#: librosa's names of scipy's Fourier resampler (``scipy.signal.resample``), done here with
#: ``numpy.fft`` (:func:`resample_fourier`).
FOURIER_RESAMPLERS = ("scipy", "fft")
#: Multi-band pre-filter: gain of row b is 10^(-(b - start)·(PRE_FILTER_SLOPE - previous gain)/20).
PRE_FILTER_SLOPE = 3.5
#: Mirroring reflects rows ending this far below ``pre_filter_start``.
MIRROR_GAP = 10
#: Channel transform constants of ``mid_side_b2`` (analysis mixes by 0.5; synthesis undoes it).
MSB2_MIX = 0.5
MSB2_INV_SCALE = 1.25
MSB2_INV_MIX = 0.4


@dataclass
class MultiBandSpectrogram:
    """Result of :func:`analyze`.

    Attributes:
        spec: combined spectrogram ``(2, bins + 1, frames)`` complex64.
        high_end: top band's high-end rows ``(2, high_end_bins, frames)`` complex64, or None.
    """

    spec: np.ndarray
    high_end: np.ndarray | None

    @property
    def frames(self) -> int:
        return self.spec.shape[2]


def channel_transform(wave: np.ndarray, params: ModelParams) -> np.ndarray:
    """Apply the params' stereo transform (reverse / mid-side / mid_side_b2) to ``(2, N)``."""
    left, right = wave[0], wave[1]
    if params.reverse:
        return np.stack([left[::-1], right[::-1]])
    if params.mid_side:
        return np.stack([np.add(left, right) / 2, np.subtract(left, right)])
    if params.mid_side_b2:
        return np.stack([np.add(right, left * MSB2_MIX), np.subtract(left, right * MSB2_MIX)])
    return wave


def inverse_channel_transform(wave: np.ndarray, params: ModelParams) -> np.ndarray:
    """Undo :func:`channel_transform` on ``(2, N)`` (exactly as the reference does)."""
    left, right = wave[0], wave[1]
    if params.reverse:
        return np.stack([left[::-1], right[::-1]])
    if params.mid_side:
        return np.stack([np.add(left, right / 2), np.subtract(left, right / 2)])
    if params.mid_side_b2:
        return np.stack(
            [
                np.add(right / MSB2_INV_SCALE, MSB2_INV_MIX * left),
                np.subtract(left / MSB2_INV_SCALE, MSB2_INV_MIX * right),
            ]
        )
    return wave


def stft(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred, zero-padded, periodic-Hann STFT of ``(2, N)`` float32 → ``(2, n_fft/2+1, 1 + N//hop)``
    complex64 (librosa's, as the reference)."""
    with warnings.catch_warnings():  # short inputs: librosa warns that n_fft > length (fine: padded)
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        return np.stack([librosa.stft(np.ascontiguousarray(ch), n_fft=n_fft, hop_length=hop) for ch in wave])


def istft(spec: np.ndarray, hop: int) -> np.ndarray:
    """Inverse of :func:`stft` for ``(2, rows, frames)`` → ``(2, hop·(frames − 1))``."""
    return np.stack([librosa.istft(np.asfortranarray(ch), hop_length=hop) for ch in spec])


def resampled_length(samples: int, orig_sr: int, target_sr: int) -> int:
    """librosa's resampled length: ``ceil(samples · (target_sr / orig_sr))``, with its float rounding."""
    return int(np.ceil(samples * (float(target_sr) / orig_sr)))


def resample_fourier(wave: np.ndarray, num: int) -> np.ndarray:
    """scipy's ``signal.resample(wave, num, axis=-1)`` (Fourier method) of real ``(C, N)``, in the
    input's dtype, through ``numpy.fft``.

    scipy's FFT keeps up to 16 plans in a cache that lives as long as the process; a plan for a
    length with a large prime factor (Bluestein's algorithm) holds several times the signal's
    size, so a streamed run whose chunks have a few such lengths kept hundreds of MB it no longer
    used. numpy's FFT keeps none; the arithmetic (pocketfft) is the same.
    """
    n_in = wave.shape[1]
    if num == n_in:
        return wave.copy()
    relevant = min(num, n_in)
    spectrum = np.fft.rfft(wave, axis=1)[:, : relevant // 2 + 1]
    if relevant % 2 == 0:  # the unpaired bin at relevant/2, as scipy
        spectrum[:, relevant // 2] *= 2 if num < n_in else 0.5
    return np.fft.irfft(spectrum / (n_in / num), n=num, axis=1).astype(wave.dtype, copy=False)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int, res_type: str) -> np.ndarray:
    """librosa resampling of ``(C, N)``; identity when the rates are equal (as librosa's)."""
    if orig_sr == target_sr:
        return wave
    if res_type in FOURIER_RESAMPLERS:
        return resample_fourier(wave, resampled_length(wave.shape[1], orig_sr, target_sr))
    return librosa.resample(wave, orig_sr=orig_sr, target_sr=target_sr, res_type=res_type)


def fix_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad ``(C, N)`` at the end to ``length`` samples."""
    if wave.shape[1] >= length:
        return wave[:, :length]
    return np.pad(wave, ((0, 0), (0, length - wave.shape[1])))


def pad_to_hop(wave: np.ndarray, hop: int) -> np.ndarray:
    """Zero-pad ``(C, N)`` at the end to a whole number of hops."""
    remainder = wave.shape[1] % hop
    return np.pad(wave, ((0, 0), (0, hop - remainder))) if remainder else wave


def lowpass_ramp(spec: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Fade rows ``[start, stop)`` linearly down (in place) and zero every row from ``stop`` on."""
    gain = 1.0
    for row in range(start, stop):
        gain -= 1 / (stop - start)
        spec[:, row, :] = gain * spec[:, row, :]
    spec[:, stop:, :] *= 0
    return spec


def highpass_ramp(spec: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Fade rows ``start`` down to ``stop + 1`` linearly (in place) and zero rows ``0..stop``."""
    gain = 1.0
    for row in range(start, stop, -1):
        gain -= 1 / (start - stop)
        spec[:, row, :] = gain * spec[:, row, :]
    spec[:, 0 : stop + 1, :] *= 0
    return spec


def pre_filter(spec: np.ndarray, params: ModelParams) -> None:
    """Fade the combined spectrogram's top rows (in place), as the reference's combine step."""
    start, stop = params.pre_filter_start, params.pre_filter_stop
    if start <= 0:
        return
    if params.n_bands == 1:
        lowpass_ramp(spec, start, stop)
        return
    previous = 1.0
    for row in range(start + 1, stop):
        gain = math.pow(10, -(row - start) * (PRE_FILTER_SLOPE - previous) / 20.0)
        previous = gain
        spec[:, row, :] *= gain


def band_waves(wave: np.ndarray, params: ModelParams) -> list[np.ndarray]:
    """The per-band waves: the top band is ``wave``; each lower band is resampled from the one above.

    Args:
        wave: ``(2, N)`` float32 at ``params.top.sr``.

    Returns:
        One ``(2, N_d)`` float32 wave per band, lowest band first.
    """
    waves = [wave]
    for lower, upper in zip(params.bands[-2::-1], params.bands[:0:-1]):
        waves.append(resample(waves[-1], upper.sr, lower.sr, lower.res_type))
    return waves[::-1]


def analyze(wave: np.ndarray, params: ModelParams, keep_high_end: bool = True) -> MultiBandSpectrogram:
    """Multi-band analysis of a stereo wave at the top band's rate.

    Args:
        wave: ``(2, N)`` float32 at ``params.top.sr``.
        params: model params.
        keep_high_end: capture the top band's high-end rows (needed for mirroring).

    Returns:
        The combined spectrogram ``(2, bins + 1, frames)``, ``frames = 1 + N // top.hl``.
    """
    specs = [
        stft(channel_transform(band_wave, params), band.n_fft, band.hl)
        for band_wave, band in zip(band_waves(wave, params), params.bands)
    ]
    frames = min(spec.shape[2] for spec in specs)
    combined = np.zeros((2, params.bins + 1, frames), dtype=np.complex64)
    for spec, band, offset in zip(specs, params.bands, params.band_offsets):
        combined[:, offset : offset + band.crop_rows, :] = spec[:, band.crop_start : band.crop_stop, :frames]
    pre_filter(combined, params)
    high_end = None
    if keep_high_end:
        top_rows = params.top.n_fft // 2
        high_end = specs[-1][:, top_rows - params.high_end_bins : top_rows, :frames]
    return MultiBandSpectrogram(combined, high_end)


def mirror_high_end(spec: np.ndarray, high_end: np.ndarray, params: ModelParams) -> np.ndarray:
    """UVR's "mirroring": rebuild the high end from a reflection of the stem's own upper rows.

    The reflected magnitudes take the mixture's high-end phase; each bin keeps whichever of the
    mixture's high end and the reflection has the smaller magnitude.

    Args:
        spec: a stem's combined spectrogram ``(2, bins + 1, frames)`` complex64.
        high_end: the mixture's high end ``(2, he_h, frames)`` complex64.

    Returns:
        ``(2, he_h, frames)`` complex64.
    """
    rows = high_end.shape[1]
    top = params.pre_filter_start - MIRROR_GAP
    mirror = np.flip(np.abs(spec[:, top - rows : top, :]), 1)
    mirror = mirror * np.exp(1.0j * np.angle(high_end))
    return np.where(np.abs(high_end) <= np.abs(mirror), high_end, mirror)


def _band_spectrogram(spec: np.ndarray, band: BandParams, offset: int) -> np.ndarray:
    """Rows of ``band`` put back at their place in a zeroed ``(C, n_fft/2+1, frames)`` complex128."""
    out = np.zeros((spec.shape[0], band.n_bins, spec.shape[2]), dtype=np.complex128)
    out[:, band.crop_start : band.crop_stop, :] = spec[:, offset : offset + band.crop_rows, :]
    return out


def apply_band_ramps(band_spec: np.ndarray, params: ModelParams, index: int) -> np.ndarray:
    """The crossover ramps synthesis gives band ``index``'s ``(C, n_fft/2+1, frames)`` spectrogram
    (in place, in the reference's order): the top band a high-pass (if any), the first a
    low-pass, the others both."""
    band = params.bands[index]
    if index == params.n_bands - 1:
        if band.hpf_start is not None and band.hpf_start > 0:
            highpass_ramp(band_spec, band.hpf_start, band.hpf_stop - 1)
    elif index == 0:
        lowpass_ramp(band_spec, band.lpf_start, band.lpf_stop)
    else:
        highpass_ramp(band_spec, band.hpf_start, band.hpf_stop - 1)
        lowpass_ramp(band_spec, band.lpf_start, band.lpf_stop)
    return band_spec


def _band_wave(
    spec: np.ndarray, params: ModelParams, index: int, high_end: np.ndarray | None
) -> np.ndarray:
    """Band ``index``'s inverse STFT ``(C, hl·(frames − 1))`` float64: its rows put back, the
    high end (top band) placed, the crossover ramps applied. Channel by channel, so that only
    one channel's complex128 band spectrogram exists at a time (the arithmetic is per channel)."""
    band, offset = params.bands[index], params.band_offsets[index]
    last = params.n_bands - 1
    waves = []
    for channel in range(spec.shape[0]):
        band_spec = _band_spectrogram(spec[channel : channel + 1], band, offset)
        if index == last and high_end is not None and high_end.shape[1] > 0:
            top_rows = band.n_fft // 2
            band_spec[:, top_rows - high_end.shape[1] : top_rows, :] = high_end[channel : channel + 1]
        apply_band_ramps(band_spec, params, index)
        waves.append(istft(band_spec, band.hl)[0])
        del band_spec
    return np.stack(waves)


def synthesize(spec: np.ndarray, params: ModelParams, high_end: np.ndarray | None = None) -> np.ndarray:
    """Multi-band synthesis (the reference's ``cmb_spectrogram_to_wave``).

    Args:
        spec: combined spectrogram ``(2, bins + 1, frames)``.
        params: model params.
        high_end: rows to place at the top band's high end ``(2, he_h, frames)``, or None.

    Returns:
        ``(2, top.hl · (frames − 1))`` float64 at ``params.top.sr``.
    """
    wave: np.ndarray | None = None
    last = params.n_bands - 1
    for index, band in enumerate(params.bands):
        band_wave = inverse_channel_transform(_band_wave(spec, params, index, high_end), params)
        if index == last:
            wave = band_wave if wave is None else np.add(wave, band_wave)
            continue
        next_sr = params.bands[index + 1].sr
        if index == 0:
            wave = resample(band_wave, band.sr, next_sr, FIRST_BAND_UPSAMPLER)
        else:
            wave = resample(np.add(wave, band_wave), band.sr, next_sr, MID_BAND_UPSAMPLER)
    assert wave is not None
    return wave
