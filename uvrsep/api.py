"""Python API: construct a :class:`Separator` once, then separate waves or files.

Example::

    from uvrsep.api import Separator
    sep = Separator("2_HP-UVR.pth", params="4band_v2", device="cpu")
    stems = sep.separate(wave, 44100)      # {"instrumental": (2, N), "vocals": (2, N)}

The pipeline follows the reference (RVC ``AudioPre`` = the seed) step by step, with these fixes:
the output keeps every input sample (the reference drops the last ``N mod hop``), silent input
gives silent stems (the reference divides by zero), inputs shorter than one hop work, and no
uninitialised memory reaches the output.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence, Union

import numpy as np
import soxr
import torch

from .checkpoint import check_finite_weights, load_state_dict_file
from .compiled import COMPILE_MODES, CompileMode
from .errors import SettingsError
from .fast import BF16_ON_CPU, cpu_has_native_bf16, prepare_net
from .inference import (
    DEFAULT_AGGRESSIVENESS,
    DEFAULT_WINDOW,
    POSTPROCESS_THRESHOLD,
    Aggressiveness,
    Array,
    NetRunner,
    predict_magnitude,
    validate_window,
    windows_needed,
)
from .nets import VRNet, net_from_state_dict
from .params import ModelParams, load_params
from .stream import AudioSource, Chunk, ModelRateSource, plan_chunks, release_free_memory
from .spectral import SpectralMode, choose_spectral
from .transforms import MultiBandSpectrogram, fix_length, pad_to_hop, resample

HighEnd = Literal["mirroring", "none"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
ModelSource = Union[str, os.PathLike, Mapping[str, torch.Tensor], VRNet]

#: Resampler used to bring the stems back to the input's rate.
OUTPUT_RESAMPLER = "soxr_hq"
#: The reference's primary stem for models of unknown origin.
DEFAULT_PRIMARY_STEM = "Instrumental"
HIGH_END_MODES = ("mirroring", "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Network windows per chunk core when streaming, per spectral backend (× 256 frames for
#: 4band_v2: 12 ≈ 33 s, 32 ≈ 89 s). On the host the peak is the chunk's synthesis. A 20-minute
#: input through the 33966 net in bfloat16 (2026-12-06, 2-core EPYC, stems synthesised one at a
#: time) peaked at 1.35 GB with 12-window chunks, flat from the first minutes on; 5 minutes
#: took 77.7 s with 12 and 78.0 s with 16 (the margins' share grows as chunks shrink, the
#: spectral work's arrays stay in cache better). On the device host memory is no concern.
STREAM_CHUNK_WINDOWS = {"host": 12, "device": 32}
#: Windows of margin read on each side of a chunk core (absorbs every edge effect).
STREAM_MARGIN_WINDOWS = 1
#: soxr quality of the streamed output resampler (the same filter as OUTPUT_RESAMPLER).
STREAM_RESAMPLER_QUALITY = "HQ"
#: Frames synthesised for the samples past the reference's end (the tail): enough context that
#: the edge of that partial synthesis lies far before the samples it provides.
TAIL_FRAMES = 64
#: Threads that synthesise the two stems side by side when the spectral work runs on the host
#: (identical output; faster when the machine has a core to spare).
SYNTHESIS_THREADS = 2
#: Streamed runs synthesise their two stems one at a time whatever ``synthesis_threads`` says:
#: side by side, a 20-minute input through the 33966 net peaked at 1.64 GB instead of 1.35 GB
#: (two syntheses' FFT buffers at once), and it was no faster.
STREAM_SYNTHESIS_THREADS = 1
#: Windows per batch when none is given.
DEFAULT_BATCH = {"cpu": 1, "cuda": 8, "mps": 4}


def stem_names(primary: str) -> tuple[str, str]:
    """File-friendly names of the primary stem and its complement.

    ``"Instrumental"`` → ``("instrumental", "vocals")``, ``"Vocals"`` → ``("vocals",
    "instrumental")``, ``"No Echo"`` → ``("no_echo", "echo")``, ``"Noise"`` → ``("noise",
    "no_noise")``.
    """
    slug = "_".join(primary.strip().lower().replace("-", " ").split())
    pairs = {"instrumental": "vocals", "vocals": "instrumental"}
    if slug in pairs:
        return slug, pairs[slug]
    if slug.startswith("no_"):
        return slug, slug[len("no_") :]
    return slug, f"no_{slug}"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA if available, else MPS, else CPU; other values are checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise SettingsError(f"unknown device '{device}'; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise SettingsError("device 'mps' was asked for but MPS is not available; use --device cpu")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise SettingsError(f"unsupported device '{device}'; use auto, cpu, cuda, cuda:N or mps")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → the fastest mode that keeps the stems within 40 dB of float32: fp16 on CUDA,
    bf16 on CPUs with native bfloat16 (AVX512-BF16/AMX; the net in bfloat16, see
    :data:`uvrsep.fast.BF16_ON_CPU`), else fp32 — which :class:`Separator` then runs with its
    wide 3×3 convs through NNPACK's Winograd algorithm on the CPU (:class:`uvrsep.fast.WinogradConv`)
    and its other decoder convs split over their inputs (:class:`uvrsep.fast.SplitInputConv`), ≥ 80
    dB from exact float32; ``fp32`` asked for by name stays the exact arithmetic."""
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def _precision_dtypes(precision: str, device: torch.device) -> tuple[torch.dtype, torch.dtype | None]:
    """(weights/input dtype, autocast dtype) for a resolved precision (not ``auto``) on a device."""
    if precision == "fp32":
        if device.type == "cuda":  # exact fp32: no TensorFloat-32 (cuDNN's default for convs)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        return torch.float32, None
    if precision == "fp16":
        if device.type == "cpu":
            raise SettingsError("fp16 is not supported on the CPU; use --precision bf16 or fp32")
        return torch.float16, None
    if device.type == "cpu" and BF16_ON_CPU == "native":  # the net in bfloat16, casts at its edges
        return torch.bfloat16, None
    return torch.float32, torch.bfloat16


def cudnn_is_safe(precision: str, device: torch.device) -> bool:
    """Whether the net may use cuDNN for this precision on this device.

    Not for exact float32 on CUDA: with TensorFloat-32 off, cuDNN (9.x, H200, torch 2.13) picks
    for some batch shapes of the 123812 net an algorithm that asks for ~100 GB of workspace and
    returns wrong masks (relative error 0.23 against the CPU where other batch sizes give 1e-6;
    ``tests/test_gpu.py``). PyTorch's own kernels give 1e-6 at the same speed (44 vs 38-48
    windows/s), so fp32 on CUDA runs without cuDNN. fp16/bf16 use cuDNN (9e-4 at every batch).
    """
    return not (device.type == "cuda" and precision == "fp32")


@dataclass
class SeparatorSettings:
    """Inference settings (all have the reference's defaults).

    Attributes:
        window_size: frames per network window (multiple of 16, > 2·offset).
        batch_size: windows per forward call (None: a default for the device).
        aggressiveness: 0–100; exponent ``1 + a/100`` above ``split_bin``, ``1 + a/300`` below.
        split_bin: row where the strong exponent starts (None: the params' first band's crop_stop).
        tta: test-time augmentation (second pass shifted by half a window's ROI).
        postprocess: the reference's ``mask_silence`` postprocess.
        postprocess_threshold: its threshold.
        high_end: "mirroring" (reference default) or "none".
        optimize: fold BatchNorm into the convolutions, use channels-last memory, and decode
            only the frames each window keeps (same function, faster); False runs the
            reference's exact arithmetic.
        synthesis_threads: threads synthesising the stems on the host in a whole-file run (the
            same arithmetic; 1: one by one); streamed runs use :data:`STREAM_SYNTHESIS_THREADS`.
        spectral: where analysis and synthesis run: ``host`` (numpy, the reference's
            arithmetic), ``device`` (torch on the net's device; ~120 dB from the host's), or
            ``auto`` (the device on CUDA when the params' resamplers exist in torch).
        compile: ``torch.compile`` the net on the CPU: ``auto`` (when the run is long enough
            to pay for it, and not when ``precision`` is ``fp32``, the exact arithmetic;
            :mod:`uvrsep.compiled`), ``on`` or ``off``. Only with ``optimize``.
    """

    window_size: int = DEFAULT_WINDOW
    batch_size: int | None = None
    aggressiveness: int = DEFAULT_AGGRESSIVENESS
    split_bin: int | None = None
    tta: bool = False
    postprocess: bool = False
    postprocess_threshold: float = POSTPROCESS_THRESHOLD
    high_end: HighEnd = "mirroring"
    optimize: bool = True
    synthesis_threads: int = SYNTHESIS_THREADS
    spectral: SpectralMode = "auto"
    compile: CompileMode = "auto"


@dataclass
class Separation:
    """What :meth:`Separator.separate` returns besides the stems.

    Attributes:
        stems: ``{name: (channels, samples) float32}``, primary stem first.
        sample_rate: rate of the stems.
    """

    stems: dict[str, np.ndarray]
    sample_rate: int
    info: dict[str, object] = field(default_factory=dict)


#: A 2-D wave whose first axis is longer than this and whose second is at most this is taken
#: as ``(frames, channels)`` (soundfile's layout) and transposed.
MAX_WAVE_CHANNELS = 8


def _check_rate(value: object, name: str) -> int:
    """A sample rate: a positive, finite, integer-valued number (bool and strings refused)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        as_float = float(value)  # type: ignore[arg-type]
        ok = np.isfinite(as_float) and as_float > 0 and as_float == int(as_float)
    if not ok:
        raise SettingsError(f"{name} must be a positive whole number of Hz, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def _as_channels_first(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.dtype == object or wave.dtype.kind not in "fiub":
        raise SettingsError(f"audio must be a real numeric array, got dtype {wave.dtype}")
    if wave.dtype.kind in "iu":
        # integer PCM → [-1, 1): signed by 2**(bits-1), unsigned centred on 2**(bits-1)
        half = float(2 ** (wave.dtype.itemsize * 8 - 1))
        as_float = wave.astype(np.float64)
        wave = ((as_float - half) if wave.dtype.kind == "u" else as_float) / half
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        return wave[None, :]
    if wave.ndim != 2:
        raise SettingsError(f"audio must be (channels, samples) or (samples,), got shape {wave.shape}")
    if wave.shape[0] > MAX_WAVE_CHANNELS and wave.shape[1] <= MAX_WAVE_CHANNELS:
        wave = wave.T  # soundfile's (frames, channels) layout
    if wave.shape[0] == 0:
        raise SettingsError(f"audio has no channels (shape {wave.shape})")
    if wave.shape[0] > 2:
        from .audio import downmix_to_stereo

        return downmix_to_stereo(wave)
    return wave


class Separator:
    """A loaded model plus settings; call :meth:`separate` on waves or :meth:`separate_file`.

    Args:
        model: path to a ``.pth``, a state dict, or a built :class:`VRNet`.
        params: params name (``"4band_v2"``), JSON path, or :class:`ModelParams`.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        precision: ``fp32`` (exact), ``bf16`` (the net in bfloat16 on the CPU, autocast on a
            GPU), ``fp16`` (GPU), ``auto`` (see
            :func:`resolve_precision`).
        primary_stem: the model's primary stem ("Instrumental" unless the registry says otherwise).
        settings: inference settings; keyword overrides of its fields are accepted too.
    """

    def __init__(
        self,
        model: ModelSource,
        params: str | os.PathLike | ModelParams,
        *,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        primary_stem: str = DEFAULT_PRIMARY_STEM,
        settings: SeparatorSettings | None = None,
        **overrides: object,
    ) -> None:
        self.settings = settings or SeparatorSettings()
        for key, value in overrides.items():
            if not hasattr(self.settings, key):
                raise TypeError(f"unknown setting '{key}'")
            setattr(self.settings, key, value)
        self.params = params if isinstance(params, ModelParams) else load_params(params)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        dtype, autocast = _precision_dtypes(self.precision, self.device)
        self.net = self._load_net(model)
        self.net.check_bins(self.params.bins)
        if self.settings.optimize:  # Winograd: auto's float32 on the CPU, not the exact arithmetic
            prepare_net(self.net, self.device, dtype, winograd=precision != "fp32")
        else:
            self.net.to(self.device, dtype)
        self.primary_stem = primary_stem
        self.stem_names = stem_names(primary_stem)
        s = self.settings
        if s.high_end not in HIGH_END_MODES:
            raise SettingsError(f"high end must be one of {', '.join(HIGH_END_MODES)}, got '{s.high_end}'")
        validate_window(s.window_size, self.net.offset, self.net.config.size_multiple)
        split_bin = self.params.split_bin if s.split_bin is None else s.split_bin
        if not 0 <= split_bin <= self.params.bins:
            raise SettingsError(f"split bin must be between 0 and {self.params.bins}, got {split_bin}")
        self.aggressiveness = Aggressiveness.from_percent(s.aggressiveness, split_bin)
        batch = s.batch_size or DEFAULT_BATCH.get(self.device.type, 1)
        if batch < 1:
            raise SettingsError(f"batch size must be >= 1, got {batch}")
        self.spectral = choose_spectral(
            s.spectral, self.params, self.device,
            postprocess_threshold=s.postprocess_threshold if s.postprocess else None,
            exact_phase=not s.optimize,
            threads=s.synthesis_threads,
        )
        if s.compile not in COMPILE_MODES:
            raise SettingsError(f"compile must be one of {', '.join(COMPILE_MODES)}, got '{s.compile}'")
        self.runner = NetRunner(
            self.net, self.device, dtype, autocast, batch,
            channels_last=self.settings.optimize and self.device.type in ("cpu", "cuda"),
            roi_only=self.settings.optimize,
            cudnn=cudnn_is_safe(self.precision, self.device),
            compile=s.compile if s.optimize else "off",
            exact=precision == "fp32",  # asked for, not resolved from auto
        )

    @staticmethod
    def _load_net(model: ModelSource) -> VRNet:
        if isinstance(model, VRNet):
            check_finite_weights(model.state_dict(), "model")
            return model.eval()
        if isinstance(model, Mapping):
            check_finite_weights(model, "model")
            return net_from_state_dict(model)
        return net_from_state_dict(load_state_dict_file(model))

    # -- the pipeline ------------------------------------------------------------------------

    def windows_for(self, samples: int) -> int:
        """Network windows a wave of ``samples`` samples at the model's rate needs (progress)."""
        hop = self.params.top.hl
        frames = 1 + samples // hop + (1 if samples % hop else 0)
        return windows_needed(frames, self.settings.window_size, self.net.offset, self.settings.tta)

    def separate(
        self,
        wave: np.ndarray,
        sample_rate: int,
        *,
        output_sample_rate: int | None = None,
        mono_output: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Separation:
        """Separate a wave.

        Args:
            wave: ``(channels, samples)`` or ``(samples,)``; 1 or 2 channels (more are downmixed).
                A 2-D array whose first axis is longer than 8 and whose second axis is at most 8
                is taken as ``(frames, channels)`` (the layout of ``soundfile.read``) and
                transposed. Integer PCM is scaled to [-1, 1): ``int16 / 32768``, ``int32 / 2**31``,
                ``uint8`` as ``(x - 128) / 128``; floats are used as they are. Other arrays (3-D,
                complex, object, no channels) raise :class:`SettingsError`.
            sample_rate: its rate, a positive whole number of Hz (else :class:`SettingsError`).
            output_sample_rate: rate of the stems (None: the input's rate; the model's rate is
                ``self.params.sr``); a positive whole number of Hz.
            mono_output: return mono stems (the channel average); None: mono iff the input is.
            progress: called with the number of network windows done after each batch.

        Returns:
            A :class:`Separation` with ``stems[primary]`` and ``stems[secondary]``, each
            ``(channels, samples)`` float32 with ``samples = ceil(len · out_rate / in_rate)``.
        """
        sample_rate = _check_rate(sample_rate, "sample_rate")
        if output_sample_rate is not None:
            output_sample_rate = _check_rate(output_sample_rate, "output_sample_rate")
        wave = _as_channels_first(wave)
        mono = wave.shape[0] == 1
        input_samples = wave.shape[1]
        output_sample_rate = output_sample_rate or sample_rate
        wave = np.nan_to_num(wave, nan=0.0, posinf=0.0, neginf=0.0)
        model_sr = self.params.top.sr
        wave = resample(wave, sample_rate, model_sr, self.params.top.res_type)
        if mono:
            wave = as_stereo(wave)
        stems = self._separate_model_rate(np.ascontiguousarray(wave, dtype=np.float32), progress)
        target_len = int(np.ceil(input_samples * output_sample_rate / sample_rate))
        out: dict[str, np.ndarray] = {}
        for name, stem in stems.items():
            stem = resample(stem, model_sr, output_sample_rate, OUTPUT_RESAMPLER)
            stem = fix_length(stem, target_len)
            if mono if mono_output is None else mono_output:
                stem = stem.mean(axis=0, keepdims=True)
            out[name] = np.ascontiguousarray(stem, dtype=np.float32)
        return Separation(out, output_sample_rate)

    def separate_file(self, path: str | os.PathLike, **kwargs: object) -> Separation:
        """Read an audio file (see :func:`uvrsep.audio.read_audio`) and :meth:`separate` it."""
        from .audio import read_audio

        wave, info = read_audio(Path(path))
        return self.separate(wave, info.sample_rate, **kwargs)  # type: ignore[arg-type]

    # -- streaming -----------------------------------------------------------------------------

    def _stream_plan(self, samples: int, chunk_windows: int | None = None) -> list[Chunk]:
        chunk_windows = chunk_windows or STREAM_CHUNK_WINDOWS[self.spectral.mode]
        roi = self.settings.window_size - 2 * self.net.offset
        return plan_chunks(
            samples, roi * self.params.top.hl, chunk_windows, STREAM_MARGIN_WINDOWS,
            from_end=self.params.reverse, align=self.params.sample_grid,
        )

    def planned_windows(self, input_samples: int, input_rate: int, chunk_windows: int | None = None) -> int:
        """Network windows :meth:`separate_stream` will run for an input (progress bars)."""
        samples = int(np.ceil(input_samples * self.params.top.sr / max(input_rate, 1)))
        return self._windows_in(self._stream_plan(samples, chunk_windows))

    def _windows_in(self, chunks: Sequence[Chunk]) -> int:
        """Network windows the chunks of a streamed run take, margins included."""
        return sum(self.windows_for(c.read_stop - c.read_start) for c in chunks)

    def stream_plan(
        self,
        source: AudioSource,
        *,
        output_sample_rate: int | None = None,
        mono_output: bool | None = None,
        chunk_windows: int | None = None,
    ) -> StreamPlan:
        """How :meth:`separate_stream` cuts ``source`` (same arguments): its chunks at the
        model's rate, the stems' rate, channels and length. Its pieces (:meth:`chunk_peak`,
        :meth:`run_chunks`, :class:`StemEmitter`) may run apart, in other processes, and still
        give :meth:`separate_stream`'s stems bit for bit (``uvrsep split --ray`` spreads a long
        file over workers so)."""
        in_rate = source.sample_rate
        out_rate = output_sample_rate or in_rate
        mono = source.channels == 1
        chunks = tuple(self._stream_plan(self.model_rate_source(source).frames, chunk_windows))
        return StreamPlan(
            chunks=chunks,
            model_rate=self.params.top.sr,
            output_rate=out_rate,
            mono=mono if mono_output is None else mono_output,
            target=int(np.ceil(source.frames * out_rate / in_rate)) if source.frames else 0,
            windows=self._windows_in(chunks),
        )

    def model_rate_source(self, source: AudioSource) -> ModelRateSource:
        """``source`` as the chunks of a :class:`StreamPlan` read it: at the model's rate."""
        return ModelRateSource(source, self.params.top.sr, self.params.top.res_type)

    def separate_stream(
        self,
        source: AudioSource,
        sinks: Mapping[str, Callable[[np.ndarray], object]],
        *,
        output_sample_rate: int | None = None,
        mono_output: bool | None = None,
        progress: Callable[[int], None] | None = None,
        chunk_windows: int | None = None,
    ) -> int:
        """Separate a long input chunk by chunk, so memory does not grow with its length.

        Each chunk's core starts on the network's window grid (counted from the input's end for
        params that reverse the signal) and is read with one window of margin on each side; the network input is normalised by the whole input's peak (a
        first, analysis-only pass). The stems therefore equal :meth:`separate`'s except for
        float rounding, and except that ``postprocess`` (which looks at whole runs of quiet
        frames) acts per chunk. An input of one chunk goes through :meth:`separate` itself.

        Args:
            source: the input (see :mod:`uvrsep.stream`).
            sinks: ``{stem: callable}`` receiving consecutive ``(channels, n)`` float32 blocks of
                the stems wanted (a subset of :attr:`stem_names`).
            output_sample_rate: stems' rate (None: the input's).
            mono_output: mono stems (None: mono iff the input is).
            progress: called with the number of windows done after each batch.
            chunk_windows: network windows per chunk core (None: :data:`STREAM_CHUNK_WINDOWS`
                of the spectral backend).

        Returns:
            Samples per channel written to each sink (``ceil(len · out_rate / in_rate)``).
        """
        plan = self.stream_plan(
            source, output_sample_rate=output_sample_rate, mono_output=mono_output, chunk_windows=chunk_windows
        )
        if len(plan.chunks) == 1:
            result = self.separate(
                source.read(0, source.frames), source.sample_rate, output_sample_rate=plan.output_rate,
                mono_output=mono_output, progress=progress,
            )
            for name, sink in sinks.items():
                sink(result.stems[name])
            return plan.target

        model = self.model_rate_source(source)
        coef = max(self.chunk_peak(model, plan, index) for index in range(len(plan.chunks)))
        self.run_chunks(model, plan, 0, len(plan.chunks), coef, StemEmitter(plan, sinks).emit, progress)
        return plan.target

    def run_chunks(
        self,
        model: ModelRateSource,
        plan: StreamPlan,
        first: int,
        stop: int,
        coef: float,
        emit: Callable[[dict[str, np.ndarray]], object],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Chunks ``first`` to ``stop − 1`` of ``plan`` through the network, normalised by
        ``coef`` (the stream's peak); ``emit`` gets each chunk's core stems ``{stem: (2, core)
        float32}`` at the model's rate, in order, on a thread of its own.

        A pipeline: while the network runs on a chunk, the next one is read (decoded,
        resampled) and analysed on one thread, and the previous one's stems emitted (resampled
        back, encoded, written) on another, in order; at most one chunk waits on each side, so
        memory stays flat. Rendering stays after the network on this thread: overlapped with it
        too (a third chunk in flight), a 5-minute input through the 33966 net on 2 cores ran no
        faster (78.6 s vs 78.3 s) and peaked 280 MB higher.
        """
        if stop <= first:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="uvrsep-read") as reader, \
                ThreadPoolExecutor(1, thread_name_prefix="uvrsep-write") as writer:
            upcoming = reader.submit(self._analyze_chunk, model, plan.chunks[first])
            writing: Future[object] | None = None
            for index in range(first, stop):
                analysed = upcoming.result()
                if index + 1 < stop:
                    upcoming = reader.submit(self._analyze_chunk, model, plan.chunks[index + 1])
                left = self._windows_in(plan.chunks[index:])  # this chunk's and the later ones'
                stems = self._chunk_core(analysed, plan.chunks[index], left, coef, progress)
                del analysed
                if writing is not None:
                    writing.result()
                writing = writer.submit(emit, stems)
                del stems
                release_free_memory()
            assert writing is not None
            writing.result()

    def chunk_peak(self, model: ModelRateSource, plan: StreamPlan, index: int) -> float:
        """Chunk ``index``'s share of the whole input's peak analysis magnitude (the reference's
        normalisation): the stream's ``coef`` is the largest over all chunks.

        Each chunk is analysed here and again when it is separated: keeping the analyses would
        make memory grow with the input, which streaming exists to avoid.
        """
        hop = self.params.top.hl
        chunk, last = plan.chunks[index], len(plan.chunks) - 1
        segment = as_stereo(model.read(chunk.read_start, chunk.read_stop))
        if not self.params.reverse:  # reversed frames count back from the segment's end: no padding
            segment = pad_to_hop(segment, hop)
        mag = self.spectral.magnitude(self.spectral.analyze(segment, keep_high_end=False).spec)
        if self.params.reverse:
            first = (chunk.read_stop - chunk.stop) // hop
            stop = mag.shape[2] if index == 0 else (chunk.read_stop - chunk.start) // hop
        else:
            first = (chunk.start - chunk.read_start) // hop
            stop = (chunk.stop - chunk.read_start) // hop
            if index == last:
                stop = 1 + (chunk.read_stop - chunk.read_start) // hop
        return float(mag[:, :, first:stop].max()) if stop > first else 0.0

    def _analyze_chunk(self, model: ModelRateSource, chunk: Chunk) -> "_Analysed":
        return self._analyze(as_stereo(model.read(chunk.read_start, chunk.read_stop)))

    def _chunk_core(
        self, analysed: "_Analysed", chunk: Chunk, windows_left: int, coef: float,
        progress: Callable[[int], None] | None,
    ) -> dict[str, np.ndarray]:
        # whether ``compile="auto"`` pays depends on the stream's windows left, not the chunk's
        self.runner.expected_windows = windows_left
        try:
            stems = self._render(analysed, self._predict(analysed, progress, coef), STREAM_SYNTHESIS_THREADS)
        finally:
            self.runner.expected_windows = None
        core = slice(chunk.start - chunk.read_start, chunk.stop - chunk.read_start)
        return {name: stem[:, core] for name, stem in stems.items()}

    def _separate_model_rate(
        self, wave: np.ndarray, progress: Callable[[int], None] | None, coef: float | None = None
    ) -> dict[str, np.ndarray]:
        """Stereo ``(2, N)`` at the model's rate → ``{name: (2, N) float32}``: :meth:`_analyze`,
        :meth:`_predict` and :meth:`_render` in turn (a streamed run overlaps them across chunks).

        The reference keeps ``hop·(N // hop)`` samples. Here the input is padded so that one
        frame more is analysed; the network sees that frame as the zero padding the reference
        gives it (and the normalisation peak ignores it), so every frame the reference computes
        is unchanged. The samples the reference keeps come from a synthesis of its frames only
        (bit-for-bit its arithmetic); the rest come from a synthesis of the last frames.
        ``coef`` overrides the normalisation (streaming passes the whole input's).

        Params that reverse the signal analyse each band backwards, so the reference's frame
        grid starts at the input's END and it keeps the LAST ``hop·(N // hop)`` samples. The
        input is then padded at its start, by a multiple of :attr:`ModelParams.sample_grid` so
        that the lower bands (resampled from the padded wave) keep the reference's samples; the
        extra frame renders the input's first ``N mod hop`` samples.
        """
        analysed = self._analyze(wave)
        return self._render(analysed, self._predict(analysed, progress, coef))

    def _analyze(self, wave: np.ndarray) -> "_Analysed":
        """Stage 1 (host or device spectral work): the padded input's analysis and magnitude."""
        samples = wave.shape[1]
        hop = self.params.top.hl
        if samples == 0:
            return _Analysed(0, 0, None, None)
        front = reversed_front_padding(samples, hop, self.params.sample_grid) if self.params.reverse else 0
        padded = np.pad(wave, ((0, 0), (front, 0))) if self.params.reverse else pad_to_hop(wave, hop)
        analysis = self.spectral.analyze(padded, keep_high_end=self.settings.high_end == "mirroring")
        del padded
        return _Analysed(samples, front, analysis, self.spectral.magnitude(analysis.spec))

    def _predict(
        self, analysed: "_Analysed", progress: Callable[[int], None] | None, coef: float | None = None
    ) -> Array | None:
        """Stage 2 (the network): the primary stem's magnitude, or None for silence (nothing to
        separate: the reference divides by zero there)."""
        if analysed.mag is None:
            return None
        ref_frames = 1 + analysed.samples // self.params.top.hl
        if coef is None:
            coef = float(analysed.mag[:, :, :ref_frames].max())
        if not np.isfinite(coef) or coef <= 0:
            return None
        pred = predict_magnitude(
            self.runner,
            analysed.mag / coef,
            ref_frames,
            self.settings.window_size,
            self.aggressiveness if self.net.supports_aggressiveness else None,
            self.settings.tta,
            progress,
        )
        return pred * coef

    def _render(
        self, analysed: "_Analysed", pred: Array | None, threads: int | None = None
    ) -> dict[str, np.ndarray]:
        """Stage 3 (spectral work again): both stems ``{name: (2, N) float32}`` from the
        prediction (silence where :meth:`_predict` found nothing to separate); ``threads``
        overrides the host's synthesis threads."""
        samples, front, analysis, mag = analysed.samples, analysed.front, analysed.analysis, analysed.mag
        if pred is None or analysis is None:
            return {name: np.zeros((2, samples), np.float32) for name in self.stem_names}
        hop = self.params.top.hl
        ref_frames = 1 + samples // hop
        remainder = samples % hop

        def render(frames: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
            return self.spectral.render(analysis, mag, pred, frames, first, threads=threads)

        body = dict(zip(self.stem_names, render(ref_frames))) if ref_frames > 1 else None
        # the samples past the reference's end come from a synthesis of the last frames only
        tail_first = max(0, analysis.frames - TAIL_FRAMES)
        tail = None
        if remainder:
            tail = dict(zip(self.stem_names, render(analysis.frames, tail_first)))
        result = {}
        for name in self.stem_names:
            pieces = [] if body is None else [body[name]]
            if tail is not None and self.params.reverse:
                # rendered backwards: the tail's sample j is the padded wave's sample
                # ``(front + N) mod hop + j``, i.e. the input's sample j + that − front
                first = front - (front + samples) % hop
                pieces.insert(0, tail[name][:, first : first + remainder])
            elif tail is not None:
                kept = 0 if body is None else body[name].shape[1]
                pieces.append(tail[name][:, kept - tail_first * hop : samples - tail_first * hop])
            result[name] = fix_length(np.concatenate(pieces, axis=1), samples).astype(np.float32)
        return result


@dataclass
class _Analysed:
    """A wave at the model's rate, analysed (:meth:`Separator._analyze`).

    Attributes:
        samples: its length ``N``.
        front: zeros put before it (params that reverse the signal), else 0.
        analysis: the padded wave's multi-band analysis (None for an empty wave).
        mag: its magnitude ``(2, rows, frames)`` (None for an empty wave).
    """

    samples: int
    front: int
    analysis: MultiBandSpectrogram | None
    mag: Array | None


@dataclass(frozen=True)
class StreamPlan:
    """How :meth:`Separator.separate_stream` cuts one input (:meth:`Separator.stream_plan`).

    Attributes:
        chunks: the chunks, in time order, in samples at the model's rate.
        model_rate: the model's rate.
        output_rate: the stems' rate.
        mono: mono stems (the channel average).
        target: samples per channel of each stem (``ceil(len · out_rate / in_rate)``).
        windows: network windows of all chunks, margins included.
    """

    chunks: tuple[Chunk, ...]
    model_rate: int
    output_rate: int
    mono: bool
    target: int
    windows: int


class StemEmitter:
    """Turns each chunk's core stems (from :meth:`Separator.run_chunks`, in chunk order) into the
    stems' blocks: the channel average for mono stems, the model's rate back to the output's
    (one stateful resampler per stem across chunks), cut or zero-padded to :attr:`StreamPlan.target`
    at the last chunk; each block goes to its stem's sink."""

    def __init__(self, plan: StreamPlan, sinks: Mapping[str, Callable[[np.ndarray], object]]) -> None:
        self.plan = plan
        self.sinks = sinks
        channels = 1 if plan.mono else 2
        self._resamplers = {
            name: soxr.ResampleStream(plan.model_rate, plan.output_rate, channels, dtype="float32", quality=STREAM_RESAMPLER_QUALITY)
            for name in sinks
        } if plan.output_rate != plan.model_rate else {}
        self.written = dict.fromkeys(sinks, 0)
        self.chunks_done = 0

    def emit(self, stems: Mapping[str, np.ndarray]) -> None:
        """The next chunk's core stems ``{stem: (2, core)}`` (at least the sinks' stems)."""
        last = self.chunks_done == len(self.plan.chunks) - 1
        target = self.plan.target
        for name, sink in self.sinks.items():
            block = stems[name]
            if self.plan.mono:
                block = block.mean(axis=0, keepdims=True)
            if name in self._resamplers:
                block = self._resamplers[name].resample_chunk(np.ascontiguousarray(block.T), last=last).T
            block = block[:, : target - self.written[name]]
            if last and self.written[name] + block.shape[1] < target:
                block = np.pad(block, ((0, 0), (0, target - self.written[name] - block.shape[1])))
            if block.shape[1]:
                sink(np.ascontiguousarray(block, dtype=np.float32))
                self.written[name] += block.shape[1]
        self.chunks_done += 1


def reversed_front_padding(samples: int, hop: int, grid: int) -> int:
    """Zeros to put before ``samples`` samples of a wave that params with ``reverse`` analyse, so
    that one more frame than the reference's covers the input's first ``samples mod hop``: at
    least ``hop − samples mod hop`` (0 when the length is a whole number of hops), rounded up
    to a multiple of ``grid`` (the lower bands' sample grid, :attr:`ModelParams.sample_grid`)."""
    remainder = samples % hop
    if not remainder:
        return 0
    front = hop - remainder
    return front + (-front) % grid


def as_stereo(wave: np.ndarray) -> np.ndarray:
    """``(1, N)`` → the channel duplicated ``(2, N)`` (the reference's mono handling); stereo as is."""
    return np.concatenate([wave, wave]) if wave.shape[0] == 1 else wave
