"""Windowed inference: padding, batching, aggressiveness, test-time augmentation, postprocess.

The network sees the normalised magnitude in windows of ``window`` frames; only each window's
central ``roi = window − 2·offset`` frames are kept. Window ``i`` starts at frame ``i·roi`` of the
input padded with ``offset`` zero frames on the left, so it produces frames ``[i·roi, (i+1)·roi)``.
TTA runs a second pass shifted by ``roi/2`` and averages the two.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np
import torch

from .compiled import CompiledForward, cache_key, cxx_compiler, is_cached, notice, wants_compile
from .errors import SettingsError
from .nets import VRNet

#: Below ``split_bin`` the aggressiveness exponent is ``1 + value / LOW_BAND_DIVISOR``.
LOW_BAND_DIVISOR = 3
#: Aggressiveness is given in percent; the exponent uses ``percent / PERCENT``.
PERCENT = 100
#: Default window (frames) and the default aggressiveness of the seed / RVC.
DEFAULT_WINDOW = 512
#: Largest window accepted: the net's activation memory grows linearly with it, and the
#: reference's own choices are 320–1024.
MAX_WINDOW = 4096
DEFAULT_AGGRESSIVENESS = 10
#: Postprocess (``mask_silence``) defaults of the reference.
POSTPROCESS_THRESHOLD = 0.2
POSTPROCESS_MIN_RANGE = 64
POSTPROCESS_FADE = 32

ProgressCallback = Callable[[int], None]
Array = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class Aggressiveness:
    """How much harder to push the mask towards 0 (the reference's ``{"value", "split_bin"}`` dict).

    Attributes:
        value: ``aggressiveness / 100`` (0.1 for the default 10).
        split_bin: combined-spectrogram row where the stronger exponent starts (by default the
            params' first band's ``crop_stop``).
    """

    value: float
    split_bin: int

    @classmethod
    def from_percent(cls, percent: int, split_bin: int) -> "Aggressiveness":
        if not 0 <= percent <= PERCENT:
            raise SettingsError(f"aggressiveness must be between 0 and {PERCENT}, got {percent}")
        if split_bin < 0:
            raise SettingsError(f"split bin must be >= 0, got {split_bin}")
        return cls(percent / PERCENT, split_bin)

    @property
    def low_exponent(self) -> float:
        """Exponent of the mask rows below ``split_bin``."""
        return 1 + self.value / LOW_BAND_DIVISOR

    @property
    def high_exponent(self) -> float:
        """Exponent of the mask rows at and above ``split_bin``."""
        return 1 + self.value

    def apply(self, mask: torch.Tensor) -> torch.Tensor:
        """Raise ``mask`` (N, C, rows, T) to the exponents in place and return it."""
        split = self.split_bin
        mask[:, :, :split] = torch.pow(mask[:, :, :split], self.low_exponent)
        mask[:, :, split:] = torch.pow(mask[:, :, split:], self.high_exponent)
        return mask


@dataclass(frozen=True)
class WindowPlan:
    """Padding and window layout of one inference pass over ``frames`` frames.

    Attributes:
        left: zero frames padded before the input.
        right: zero frames padded after it.
        roi: frames each window contributes.
        windows: number of windows.
        shift: extra frames of left padding (``roi // 2`` for the TTA pass), dropped afterwards.
    """

    left: int
    right: int
    roi: int
    windows: int
    shift: int = 0


def plan_windows(frames: int, window: int, offset: int, shifted: bool = False) -> WindowPlan:
    """The reference's ``make_padding`` (plus the TTA shift) for ``frames`` input frames."""
    roi = window - 2 * offset
    if roi <= 0:
        raise SettingsError(f"window size {window} must be larger than {2 * offset}")
    right = roi - frames % roi + offset
    windows = math.ceil(frames / roi)
    shift = roi // 2 if shifted else 0
    return WindowPlan(offset + shift, right + shift, roi, windows + (1 if shifted else 0), shift)


def validate_window(window: int, offset: int, multiple: int) -> None:
    """Raise :class:`SettingsError` unless ``window`` is a multiple of ``multiple`` above ``2·offset``."""
    if window > MAX_WINDOW:
        raise SettingsError(f"window size {window} is above the limit of {MAX_WINDOW} frames (the usual ones are 320, 512, 1024)")
    if window % multiple or window <= 2 * offset:
        raise SettingsError(
            f"window size must be a multiple of {multiple} larger than {2 * offset} "
            f"(e.g. 320, 512, 1024), got {window}"
        )


@dataclass
class NetRunner:
    """Runs a :class:`VRNet` over windows on a device, in batches.

    Attributes:
        net: the network (eval mode, on ``device``).
        device: torch device.
        dtype: input dtype for the net (float32, or float16 for a half-precision model).
        autocast: optional autocast dtype (bfloat16 on CPU / float16 on CUDA); None for none.
        batch_size: windows per forward call.
        channels_last: feed the net channels-last tensors (when it was converted to that layout).
        roi_only: let the net compute only what the kept frames need (:meth:`VRNet.predict_mask`).
        cudnn: let CUDA convolutions use cuDNN (False: PyTorch's own kernels; see
            :func:`uvrsep.api.cudnn_is_safe`).
        compile: ``torch.compile`` the net: ``auto``, ``on`` or ``off`` (:mod:`uvrsep.compiled`).
        exact: the user asked for exact float32, which ``compile="auto"`` leaves eager.
        expected_windows: windows the current run still takes, this call's included (a
            streamed run is several :meth:`masks` calls), for ``compile="auto"``; None: those
            of each call.
        windows_run: windows this runner has run so far (all calls). ``compile="auto"``
            weighs these plus the current run's windows left, times :attr:`eager_window_s`,
            so a batch of short inputs compiles once enough of them were run (a 3-minute song
            is ~31 windows of 4band_v2; see :data:`~uvrsep.compiled.MIN_EAGER_SECONDS`).
        eager_window_s: seconds per window of the fastest eager batch run so far (None: none
            run yet, so ``auto`` runs the first batch eagerly before it decides).
        report: where the one line about a compiler that cannot be used goes.
    """

    net: VRNet
    device: torch.device
    dtype: torch.dtype = torch.float32
    autocast: torch.dtype | None = None
    batch_size: int = 1
    channels_last: bool = False
    roi_only: bool = True
    cudnn: bool = True
    compile: str = "off"
    exact: bool = False
    expected_windows: int | None = None
    windows_run: int = 0
    eager_window_s: float | None = None
    report: Callable[[str], None] = notice
    _compiled: dict[str, CompiledForward] = field(default_factory=dict, repr=False)
    _no_compiler_reported: bool = field(default=False, repr=False)

    def _eager(self, batch: torch.Tensor) -> torch.Tensor:
        if self.roi_only:
            return self.net.predict_mask(batch)
        offset = self.net.offset  # the reference's way: the whole window through the net, then the crop
        return self.net(batch)[:, :, :, offset : batch.shape[3] - offset]

    def _forward(self, shape: tuple[int, ...], windows: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The eager net, or its compiled form when :attr:`compile` asks for it and it pays
        (asked again for each batch while it does not: ``auto`` weighs the eager windows it
        times on the CPU, :meth:`_timed_eager`)."""
        if self.compile == "off":
            return self._eager
        key = cache_key(self.net, shape, self.dtype)
        if key in self._compiled:
            return self._compiled[key]
        timed = self.compile == "auto" and self.device.type == "cpu"
        eager = self._timed_eager if timed else self._eager
        if timed and self.eager_window_s is None:
            return eager  # time a batch first
        eager_seconds = windows * (self.eager_window_s or 0.0)
        if not wants_compile(self.compile, self.device, self.dtype, eager_seconds, is_cached(key), self.exact):
            return eager
        if cxx_compiler() is None:
            if not self._no_compiler_reported:
                self._no_compiler_reported = True
                self.report("no C++ compiler found (g++, clang++ or $CXX), so torch.compile is not used; the network runs without it")
            return eager
        compiled = self._compiled[key] = CompiledForward(self._eager, key, self.report)
        return compiled

    def _timed_eager(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`_eager`, timed into :attr:`eager_window_s` (the fastest per window so far; on
        the CPU, where the net runs synchronously: ``auto`` compiles nothing elsewhere)."""
        start = time.perf_counter()
        mask = self._eager(batch)
        self._record_eager(time.perf_counter() - start, batch.shape[0])
        return mask

    def _record_eager(self, seconds: float, windows: int) -> None:
        per_window = seconds / max(windows, 1)
        self.eager_window_s = per_window if self.eager_window_s is None else min(self.eager_window_s, per_window)

    def masks(
        self,
        padded: Array,
        plan: WindowPlan,
        window: int,
        aggressiveness: Aggressiveness | None,
        progress: ProgressCallback | None = None,
    ) -> Array:
        """Masks of every window's ROI, concatenated: ``(2, rows, windows·roi)`` float32.

        Args:
            padded: normalised magnitude ``(2, rows, left + frames + right)`` float32, numpy or
                a tensor (on any device; the masks come back where it is, in its type).
            plan: the window layout ``padded`` was made for.
            window: window width in frames.
            aggressiveness: exponents to apply (None: raw mask).
            progress: called with the number of windows finished after each batch.
        """
        as_numpy = isinstance(padded, np.ndarray)
        source = torch.from_numpy(padded) if as_numpy else padded
        out = torch.empty(
            (source.shape[0], source.shape[1], plan.windows * plan.roi), dtype=torch.float32, device=source.device
        )
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast)
            if self.autocast is not None
            else nullcontext()
        )
        kernels = nullcontext() if self.cudnn else torch.backends.cudnn.flags(enabled=False)
        windows = self.windows_run + (self.expected_windows or plan.windows)
        with torch.inference_mode(), autocast, kernels:
            for first in range(0, plan.windows, self.batch_size):
                starts = [i * plan.roi for i in range(first, min(first + self.batch_size, plan.windows))]
                batch = torch.stack([source[:, :, s : s + window] for s in starts])
                batch = batch.to(self.device, self.dtype)
                if self.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                mask = self._forward(tuple(batch.shape), windows)(batch).float()
                if aggressiveness is not None:
                    aggressiveness.apply(mask)
                mask = mask.to(out.device)
                for k, start in enumerate(starts):
                    out[:, :, start : start + plan.roi] = mask[k]
                if progress is not None:
                    progress(len(starts))
        self.windows_run += plan.windows
        return out.numpy() if as_numpy else out


def predict_magnitude(
    runner: NetRunner,
    mag: Array,
    valid_frames: int,
    window: int,
    aggressiveness: Aggressiveness | None,
    tta: bool = False,
    progress: ProgressCallback | None = None,
) -> Array:
    """The network's estimate of the primary stem's normalised magnitude.

    Args:
        runner: network runner.
        mag: normalised mixture magnitude ``(2, rows, frames)`` float32 (numpy, or a tensor on
            any device: the result is of the same kind).
        valid_frames: frames the network may see; later frames (a tail added so that the output
            keeps every input sample) are given to the network as zeros, exactly like the
            reference's right padding, and their estimate is the mask there × the magnitude.
        window: window width in frames.
        aggressiveness: mask exponents, or None (LSTM nets: the reference ignores it).
        tta: also run the half-ROI-shifted pass and average.
        progress: window-progress callback.

    Returns:
        ``mask · mag`` of shape ``(2, rows, frames)`` float32.
    """
    frames = mag.shape[2]
    net_input = mag
    if valid_frames < frames:
        net_input = mag.copy() if isinstance(mag, np.ndarray) else mag.clone()
        net_input[:, :, valid_frames:] = 0
    offset = runner.net.offset
    passes = [False, True] if tta else [False]
    preds = []
    for shifted in passes:
        plan = plan_windows(frames, window, offset, shifted)
        if isinstance(net_input, np.ndarray):
            padded = np.pad(net_input, ((0, 0), (0, 0), (plan.left, plan.right)))
        else:
            padded = torch.nn.functional.pad(net_input, (plan.left, plan.right))
        mask = runner.masks(padded, plan, window, aggressiveness, progress)
        preds.append(mask[:, :, plan.shift : plan.shift + frames] * mag)
    if tta:
        return (preds[0] + preds[1]) * 0.5
    return preds[0]


def windows_needed(frames: int, window: int, offset: int, tta: bool) -> int:
    """Total windows :func:`predict_magnitude` runs (for progress bars)."""
    total = plan_windows(frames, window, offset).windows
    return total + (plan_windows(frames, window, offset, True).windows if tta else 0)


def mask_silence(
    mag: np.ndarray,
    ref: np.ndarray,
    threshold: float = POSTPROCESS_THRESHOLD,
    min_range: int = POSTPROCESS_MIN_RANGE,
    fade: int = POSTPROCESS_FADE,
) -> np.ndarray:
    """The reference's postprocess: give back to the primary stem what it lost in quiet stretches.

    Frames where the secondary residue ``ref`` averages below ``threshold`` form runs; in runs
    longer than ``min_range`` frames, ``ref`` is added back into ``mag`` with ``fade``-frame linear
    fades. Where the reference would raise (no quiet frame at all), ``mag`` is returned unchanged.

    Args:
        mag: primary magnitude ``(2, rows, frames)`` float32.
        ref: secondary residue ``clip(|X| − mag, 0, ∞)``, same shape.

    Returns:
        A new array.
    """
    if min_range < fade * 2:
        raise SettingsError("postprocess min_range must be >= 2 * fade")
    try:
        return _mask_silence(mag, ref, threshold, min_range, fade)
    except (ValueError, IndexError):  # the reference crashes here (e.g. a too-short quiet run)
        return mag.copy()


def _mask_silence(mag: np.ndarray, ref: np.ndarray, threshold: float, min_range: int, fade: int) -> np.ndarray:
    mag = mag.copy()
    quiet = np.where(ref.mean(axis=(0, 1)) < threshold)[0]
    if len(quiet) == 0:
        return mag
    breaks = np.where(np.diff(quiet) != 1)[0]
    starts = np.insert(quiet[breaks + 1], 0, quiet[0])
    ends = np.append(quiet[breaks], quiet[-1])
    long_runs = np.where(ends - starts > min_range)[0]
    previous_end = None
    for start, end in zip(starts[long_runs], ends[long_runs]):
        if previous_end is not None and start - previous_end < fade:
            start = previous_end - fade * 2
        if start != 0:
            weight = np.linspace(0, 1, fade)
            mag[:, :, start : start + fade] += weight * ref[:, :, start : start + fade]
        else:
            start -= fade
        if end != mag.shape[2]:
            weight = np.linspace(1, 0, fade)
            mag[:, :, end - fade : end] += weight * ref[:, :, end - fade : end]
        else:
            end += fade
        mag[:, :, start + fade : end - fade] += ref[:, :, start + fade : end - fade]
        previous_end = end
    return mag
