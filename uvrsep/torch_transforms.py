"""The multi-band analysis and synthesis of :mod:`uvrsep.transforms`, in torch, on any device.

The same steps with the same constants, so that on a GPU the spectral work runs beside the
network instead of on the host (there the host-side DSP, not the network, bounded the speed):

* STFT/ISTFT: ``torch.stft``/``torch.istft`` with librosa's conventions (periodic Hann, centred,
  zero padding, squared-window normalisation);
* ``polyphase`` resampling: scipy's ``resample_poly`` (the same Kaiser-windowed FIR, the same
  zero-insert / filter / decimate alignment) as a strided convolution;
* ``scipy``/``fft`` resampling: scipy's Fourier method (rfft, crop or zero-pad, the unpaired
  Nyquist bin halved or doubled, irfft, rescale);
* ramps and pre-filter: the numpy steps' own gains, as row vectors; channel transforms and
  mirroring: the same arithmetic.

Params whose chain needs another resampler (libsamplerate's ``sinc_*``, resampy's ``kaiser_*``,
soxr) are not supported here (:func:`supports`); the numpy transforms handle them.

Every function follows its input's dtype: float32/complex64 (what the pipeline uses; ~120 dB
from the float64 reference arithmetic) or float64/complex128 (to check the algorithm itself).
Shapes: waves ``(2, samples)``, spectrograms ``(2, rows, frames)``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch

from .params import ModelParams
from .transforms import (
    FIRST_BAND_UPSAMPLER,
    FOURIER_RESAMPLERS,
    MID_BAND_UPSAMPLER,
    MIRROR_GAP,
    MSB2_INV_MIX,
    MSB2_INV_SCALE,
    MSB2_MIX,
    MultiBandSpectrogram,
    apply_band_ramps,
    pre_filter,
    resampled_length,
)

#: Resamplers implemented here (librosa ``res_type`` names).
POLYPHASE = ("polyphase",)
SUPPORTED_RESAMPLERS = POLYPHASE + FOURIER_RESAMPLERS
#: scipy ``resample_poly``'s filter: a Kaiser window of this beta, ``HALF_LEN_PER_RATE · max(up,
#: down)`` taps on each side of the centre.
POLYPHASE_KAISER_BETA = 5.0
POLYPHASE_HALF_LEN_PER_RATE = 10


def resampling_steps(params: ModelParams) -> list[tuple[int, int, str]]:
    """Every ``(from_sr, to_sr, res_type)`` resampling the analysis and synthesis of ``params`` do."""
    steps = []
    for lower, upper in zip(params.bands[:-1], params.bands[1:]):
        steps.append((upper.sr, lower.sr, lower.res_type))
    for index, (band, upper) in enumerate(zip(params.bands[:-1], params.bands[1:])):
        steps.append((band.sr, upper.sr, FIRST_BAND_UPSAMPLER if index == 0 else MID_BAND_UPSAMPLER))
    return [step for step in steps if step[0] != step[1]]


def supports(params: ModelParams) -> bool:
    """True when every resampling ``params`` needs is implemented here."""
    return all(res_type in SUPPORTED_RESAMPLERS for _, _, res_type in resampling_steps(params))


# -- resampling --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _polyphase_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """scipy ``resample_poly``'s FIR (scaled by ``up``, zero-padded in front) and its pre-pad."""
    from scipy.signal import firwin  # imported here: scipy.signal takes a second to import

    half_len = POLYPHASE_HALF_LEN_PER_RATE * max(up, down)
    taps = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", POLYPHASE_KAISER_BETA))
    pre_pad = down - half_len % down
    return np.concatenate([np.zeros(pre_pad), taps]), (half_len + pre_pad) // down


def resample_poly(wave: torch.Tensor, up: int, down: int) -> torch.Tensor:
    """scipy's ``resample_poly(wave, up, down, axis=-1)`` of ``(C, N)`` (``up``/``down`` coprime)."""
    if up == down == 1:
        return wave.clone()
    channels, n_in = wave.shape
    n_out = -(-n_in * up // down)
    taps, pre_remove = _polyphase_filter(up, down)
    # scipy casts the filter to the input's dtype, then scales it by ``up``
    kernel = (torch.from_numpy(taps).to(wave.dtype) * up).to(wave.device, torch.float64)
    stuffed = wave.to(torch.float64)
    if up > 1:
        stuffed = stuffed.new_zeros(channels, (n_in - 1) * up + 1)
        stuffed[:, ::up] = wave
    # the full convolution, by FFT in float64: exact to rounding, fast on every device (a direct
    # one-channel convolution is slow on CPUs, and cuDNN would run float32 in TensorFloat-32)
    length = stuffed.shape[1] + kernel.shape[0] - 1
    size = 1 << (length - 1).bit_length()  # a power of two: the fastest size for every FFT library
    full = torch.fft.irfft(torch.fft.rfft(stuffed, size) * torch.fft.rfft(kernel, size), size)
    full = full[:, :length:down]
    out = full[:, pre_remove : pre_remove + n_out].to(wave.dtype)
    if out.shape[1] < n_out:
        out = torch.nn.functional.pad(out, (0, n_out - out.shape[1]))
    return out


def resample_fourier(wave: torch.Tensor, num: int) -> torch.Tensor:
    """scipy's ``signal.resample(wave, num, axis=-1)`` (Fourier method) of real ``(C, N)``."""
    n_in = wave.shape[1]
    if num == n_in:
        return wave.clone()
    relevant = min(num, n_in)
    spectrum = torch.fft.rfft(wave)[:, : relevant // 2 + 1]
    if relevant % 2 == 0:
        spectrum = spectrum.clone()
        spectrum[:, relevant // 2] *= 2 if num < n_in else 0.5
    return torch.fft.irfft(spectrum / (n_in / num), n=num)


def resample(wave: torch.Tensor, orig_sr: int, target_sr: int, res_type: str) -> torch.Tensor:
    """librosa's ``resample`` of ``(C, N)`` for the resamplers in :data:`SUPPORTED_RESAMPLERS`."""
    if orig_sr == target_sr:
        return wave
    samples = resampled_length(wave.shape[1], orig_sr, target_sr)
    if res_type in POLYPHASE:
        common = math.gcd(orig_sr, target_sr)
        out = resample_poly(wave, target_sr // common, orig_sr // common)
    elif res_type in FOURIER_RESAMPLERS:
        out = resample_fourier(wave, samples)
    else:
        raise ValueError(f"resampler '{res_type}' is not available in torch; use the numpy transforms")
    return fix_length(out, samples)


def fix_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Trim or zero-pad ``(C, N)`` at the end to ``length`` samples."""
    if wave.shape[1] >= length:
        return wave[:, :length]
    return torch.nn.functional.pad(wave, (0, length - wave.shape[1]))


# -- STFT ----------------------------------------------------------------------------------------


def _hann(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    real = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(n_fft, periodic=True, dtype=real, device=like.device)


def stft(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """librosa's centred, zero-padded, periodic-Hann STFT: ``(2, N)`` → ``(2, n_fft/2+1, 1 + N//hop)``."""
    return torch.stft(
        wave, n_fft, hop, window=_hann(n_fft, wave), center=True, pad_mode="constant", return_complex=True
    )


def istft(spec: torch.Tensor, hop: int) -> torch.Tensor:
    """librosa's inverse of :func:`stft`: ``(2, rows, frames)`` → ``(2, hop·(frames − 1))``."""
    n_fft = 2 * (spec.shape[1] - 1)
    if spec.shape[2] < 2:  # no sample between the centres of the frames (torch would raise)
        return spec.real.new_zeros((spec.shape[0], 0))
    return torch.istft(spec, n_fft, hop, window=_hann(n_fft, spec), center=True)


# -- channel transforms, ramps, pre-filter ---------------------------------------------------------


def channel_transform(wave: torch.Tensor, params: ModelParams) -> torch.Tensor:
    """:func:`uvrsep.transforms.channel_transform` of ``(2, N)``."""
    left, right = wave[0], wave[1]
    if params.reverse:
        return wave.flip(1)
    if params.mid_side:
        return torch.stack([(left + right) / 2, left - right])
    if params.mid_side_b2:
        return torch.stack([right + left * MSB2_MIX, left - right * MSB2_MIX])
    return wave


def inverse_channel_transform(wave: torch.Tensor, params: ModelParams) -> torch.Tensor:
    """:func:`uvrsep.transforms.inverse_channel_transform` of ``(2, N)``."""
    left, right = wave[0], wave[1]
    if params.reverse:
        return wave.flip(1)
    if params.mid_side:
        return torch.stack([left + right / 2, left - right / 2])
    if params.mid_side_b2:
        return torch.stack(
            [right / MSB2_INV_SCALE + MSB2_INV_MIX * left, left / MSB2_INV_SCALE - MSB2_INV_MIX * right]
        )
    return wave


def _row_gains(rows: int, apply: Callable[[np.ndarray], object]) -> np.ndarray:
    """Per-row gains of a numpy row-scaling step (a ramp, the pre-filter): the step applied to
    ones, so both backends share one definition of the gains."""
    ones = np.ones((1, rows, 1))
    apply(ones)
    return ones[0, :, 0]


def _pre_filter_gains(params: ModelParams) -> np.ndarray:
    """Row gains of the combined spectrogram's pre-filter (1 where it does not act)."""
    return _row_gains(params.bins + 1, lambda ones: pre_filter(ones, params))


def _scale_rows(spec: torch.Tensor, gains: np.ndarray) -> torch.Tensor:
    real = spec.real.dtype if spec.is_complex() else spec.dtype
    return spec * torch.from_numpy(gains).to(spec.device, real).reshape(1, -1, 1)


# -- analysis and synthesis ------------------------------------------------------------------------


def band_waves(wave: torch.Tensor, params: ModelParams) -> list[torch.Tensor]:
    """:func:`uvrsep.transforms.band_waves`: one wave per band, lowest band first."""
    waves = [wave]
    for lower, upper in zip(params.bands[-2::-1], params.bands[:0:-1]):
        waves.append(resample(waves[-1], upper.sr, lower.sr, lower.res_type))
    return waves[::-1]


def analyze(wave: torch.Tensor, params: ModelParams, keep_high_end: bool = True) -> MultiBandSpectrogram:
    """:func:`uvrsep.transforms.analyze` of a ``(2, N)`` tensor; the result holds tensors."""
    specs = [
        stft(channel_transform(band_wave, params), band.n_fft, band.hl)
        for band_wave, band in zip(band_waves(wave, params), params.bands)
    ]
    frames = min(spec.shape[2] for spec in specs)
    combined = specs[0].new_zeros((2, params.bins + 1, frames))
    for spec, band, offset in zip(specs, params.bands, params.band_offsets):
        combined[:, offset : offset + band.crop_rows, :] = spec[:, band.crop_start : band.crop_stop, :frames]
    combined = _scale_rows(combined, _pre_filter_gains(params))
    high_end = None
    if keep_high_end:
        top_rows = params.top.n_fft // 2
        high_end = specs[-1][:, top_rows - params.high_end_bins : top_rows, :frames]
    return MultiBandSpectrogram(combined, high_end)  # type: ignore[arg-type]


def unit_phasor(spec: torch.Tensor) -> torch.Tensor:
    """``spec / |spec|`` (1 where ``spec`` is 0)."""
    magnitude = spec.abs()
    return torch.where(magnitude > 0, spec / torch.where(magnitude > 0, magnitude, 1), torch.ones_like(spec))


def mirror_high_end(spec: torch.Tensor, high_end: torch.Tensor, params: ModelParams) -> torch.Tensor:
    """:func:`uvrsep.transforms.mirror_high_end` on tensors."""
    rows = high_end.shape[1]
    top = params.pre_filter_start - MIRROR_GAP
    mirror = spec[:, top - rows : top, :].abs().flip(1) * unit_phasor(high_end)
    return torch.where(high_end.abs() <= mirror.abs(), high_end, mirror)


def synthesize(
    spec: torch.Tensor, params: ModelParams, high_end: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`uvrsep.transforms.synthesize` of a ``(2, bins + 1, frames)`` tensor → ``(2, top.hl ·
    (frames − 1))`` real tensor at ``params.top.sr``."""
    wave: torch.Tensor | None = None
    last = params.n_bands - 1
    for index, (band, offset) in enumerate(zip(params.bands, params.band_offsets)):
        band_spec = spec.new_zeros((2, band.n_bins, spec.shape[2]))
        band_spec[:, band.crop_start : band.crop_stop, :] = spec[:, offset : offset + band.crop_rows, :]
        if index == last and high_end is not None and high_end.shape[1] > 0:
            top_rows = band.n_fft // 2
            band_spec[:, top_rows - high_end.shape[1] : top_rows, :] = high_end
        gains = _row_gains(band.n_bins, lambda ones: apply_band_ramps(ones, params, index))
        band_spec = _scale_rows(band_spec, gains)
        band_wave = inverse_channel_transform(istft(band_spec, band.hl), params)
        if index == last:
            wave = band_wave if wave is None else wave + band_wave
        elif index == 0:
            wave = resample(band_wave, band.sr, params.bands[1].sr, FIRST_BAND_UPSAMPLER)
        else:
            assert wave is not None
            wave = resample(wave + band_wave, band.sr, params.bands[index + 1].sr, MID_BAND_UPSAMPLER)
    assert wave is not None
    return wave
