"""Where the spectral work of a separation runs: on the host (numpy) or on the net's device (torch).

A :class:`Separator` analyses the input, hands the magnitude to the network, and renders the
stems (postprocess, phase, subtraction, mirroring, multi-band synthesis). Two interchangeable
backends do the analysing and rendering:

* :class:`HostSpectral`: :mod:`uvrsep.transforms` in numpy: the reference's arithmetic (with
  ``exact_phase``, bit for bit); the two stems synthesise in threads.
* :class:`DeviceSpectral`: :mod:`uvrsep.torch_transforms` on the net's device, so that on a GPU
  nothing but the wave crosses to the host (~120 dB from the host's float64 arithmetic).

:func:`choose_spectral` picks one for a setting (``auto``: the device on CUDA when the params'
resamplers exist in torch, else the host).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol

import numpy as np
import torch

from . import torch_transforms
from .errors import SettingsError
from .inference import Array, mask_silence
from .params import ModelParams
from .transforms import MultiBandSpectrogram, analyze, mirror_high_end, synthesize

SpectralMode = Literal["auto", "host", "device"]
SPECTRAL_MODES = ("auto", "host", "device")


class Spectral(Protocol):
    """Analysis and rendering of one separation (arrays are numpy or torch, per backend)."""

    mode: str

    def analyze(self, wave: np.ndarray, keep_high_end: bool) -> MultiBandSpectrogram: ...

    def magnitude(self, spec: Array) -> Array: ...

    def render(
        self, analysis: MultiBandSpectrogram, mag: Array, pred: Array, frames: int, first: int = 0,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


def unit_phasor(spec: np.ndarray) -> np.ndarray:
    """``spec / |spec|`` (1 where ``spec`` is 0): the reference's ``exp(1j·angle(spec))`` without
    the two transcendental passes (8x cheaper; equal within float rounding, ~3e-7)."""
    magnitude = np.abs(spec)
    return np.divide(spec, magnitude, out=np.ones_like(spec), where=magnitude > 0)


class HostSpectral:
    """numpy analysis and rendering (the reference's arithmetic).

    Args:
        params: model params.
        postprocess_threshold: the ``mask_silence`` threshold, or None for no postprocess.
        exact_phase: the reference's ``exp(1j·angle(X))`` instead of ``X/|X|``.
        threads: threads synthesising the two stems side by side (identical output).
    """

    mode = "host"

    def __init__(
        self, params: ModelParams, postprocess_threshold: float | None, exact_phase: bool, threads: int
    ) -> None:
        self.params = params
        self.postprocess_threshold = postprocess_threshold
        self.exact_phase = exact_phase
        self.threads = threads

    def analyze(self, wave: np.ndarray, keep_high_end: bool) -> MultiBandSpectrogram:
        return analyze(wave, self.params, keep_high_end=keep_high_end)

    def magnitude(self, spec: Array) -> np.ndarray:
        return np.abs(spec)

    def render(
        self, analysis: MultiBandSpectrogram, mag: Array, pred: Array, frames: int, first: int = 0,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both stems from frames ``[first, frames)``: ``(2, hop·(frames − first − 1))`` float64
        each, starting at sample ``hop·first``, primary first; ``threads`` (None:
        :attr:`threads`) synthesise them side by side."""
        spec = analysis.spec[:, :, first:frames]
        pred = np.asarray(pred)[:, :, first:frames]
        if self.postprocess_threshold is not None:
            residue = np.clip(np.asarray(mag)[:, :, first:frames] - pred, 0, np.inf)
            pred = mask_silence(pred, residue, self.postprocess_threshold)
        phase = np.exp(1.0j * np.angle(spec)) if self.exact_phase else unit_phasor(spec)
        primary = pred * phase
        del phase  # long inputs: keep the peak down while the stems synthesise
        high_end = analysis.high_end[:, :, first:frames] if analysis.high_end is not None else None

        def render(stem_spec: np.ndarray) -> np.ndarray:
            stem_high_end = None if high_end is None else mirror_high_end(stem_spec, high_end, self.params)
            return synthesize(stem_spec, self.params, stem_high_end)

        stem_specs = (primary, spec - primary)
        threads = self.threads if threads is None else threads
        if threads > 1:  # FFTs and resamplers release the GIL
            with ThreadPoolExecutor(min(threads, len(stem_specs))) as pool:
                first_wave, second_wave = pool.map(render, stem_specs)
        else:
            first_wave, second_wave = (render(stem_spec) for stem_spec in stem_specs)
        return first_wave, second_wave


class DeviceSpectral:
    """torch analysis and rendering on ``device`` (see :mod:`uvrsep.torch_transforms`).

    Args:
        params: model params (:func:`uvrsep.torch_transforms.supports` must hold).
        device: where the tensors live.
        postprocess_threshold: the ``mask_silence`` threshold, or None (that step runs on the
            host: it walks runs of quiet frames).
    """

    mode = "device"

    def __init__(self, params: ModelParams, device: torch.device, postprocess_threshold: float | None) -> None:
        if device.type not in ("cpu", "cuda"):  # MPS has no float64 (the polyphase FFT needs it)
            raise SettingsError(f"the spectral work cannot run on {device.type}; use --spectral host")
        if not torch_transforms.supports(params):
            raise SettingsError(
                "these params need a resampler that only the host has; use --spectral host"
            )
        self.params = params
        self.device = device
        self.postprocess_threshold = postprocess_threshold

    def analyze(self, wave: np.ndarray, keep_high_end: bool) -> MultiBandSpectrogram:
        tensor = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)).to(self.device)
        return torch_transforms.analyze(tensor, self.params, keep_high_end=keep_high_end)

    def magnitude(self, spec: Array) -> torch.Tensor:
        assert isinstance(spec, torch.Tensor)
        return spec.abs()

    def render(
        self, analysis: MultiBandSpectrogram, mag: Array, pred: Array, frames: int, first: int = 0,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`HostSpectral.render`, float32 (one stem after the other: ``threads`` is
        ignored)."""
        spec = analysis.spec[:, :, first:frames]
        pred = torch.as_tensor(pred, device=self.device)[:, :, first:frames]
        if self.postprocess_threshold is not None:
            residue = (torch.as_tensor(mag, device=self.device)[:, :, first:frames] - pred).clamp(min=0)
            host = mask_silence(pred.cpu().numpy(), residue.cpu().numpy(), self.postprocess_threshold)
            pred = torch.from_numpy(host).to(self.device)
        primary = pred * torch_transforms.unit_phasor(spec)
        high_end = analysis.high_end[:, :, first:frames] if analysis.high_end is not None else None
        waves = []
        for stem_spec in (primary, spec - primary):
            stem_high_end = None
            if high_end is not None:
                stem_high_end = torch_transforms.mirror_high_end(stem_spec, high_end, self.params)
            waves.append(torch_transforms.synthesize(stem_spec, self.params, stem_high_end).cpu().numpy())
        return waves[0], waves[1]


def resolve_spectral_mode(mode: str, device: torch.device, params: ModelParams, exact_phase: bool = False) -> str:
    """``auto`` → ``device`` on CUDA when the params' resamplers exist in torch (and the
    reference's exact arithmetic is not asked for), else ``host``."""
    if mode not in SPECTRAL_MODES:
        raise SettingsError(f"spectral must be one of {', '.join(SPECTRAL_MODES)}, got '{mode}'")
    if mode != "auto":
        return mode
    if device.type == "cuda" and torch_transforms.supports(params) and not exact_phase:
        return "device"
    return "host"


def choose_spectral(
    mode: str,
    params: ModelParams,
    device: torch.device,
    postprocess_threshold: float | None,
    exact_phase: bool,
    threads: int,
) -> Spectral:
    """The backend for a (resolved or ``auto``) mode."""
    if resolve_spectral_mode(mode, device, params, exact_phase) == "device":
        if exact_phase:
            raise SettingsError("the reference's exact arithmetic (optimize=False) runs on the host only")
        return DeviceSpectral(params, device, postprocess_threshold)
    return HostSpectral(params, postprocess_threshold, exact_phase, threads)
