"""Training VR-family nets from separated tracks (``uvrsep train``).

The recipe is the original vocal-remover's, on uvrsep's own multi-band analysis (the one
inference uses, so a trained model needs no other params):

* every track's vocals and accompaniment are analysed once into complex multi-band spectrograms
  (cached, see :mod:`uvrsep.dataset`) and kept on the training device;
* a batch is ``batch_size`` random crops of ``crop_frames`` frames. With probability
  ``remix_probability`` the vocals come from another random track and position (mixing
  augmentation); the vocals get a random gain (``vocal_gain_db``), or none at all with
  probability ``no_vocals_probability``; left/right are swapped at random, and with probability
  ``mono_probability`` both become their mean (a mono recording). The analysis is linear (per
  channel), so the mixture's spectrogram is the sum of the stems' and a mono crop's the mean of
  its channels';
* input = |mixture| and target = |primary stem|, both divided by the crop's peak |mixture| and
  scaled by a random level within ``level_range_db`` below full scale (inference normalises by
  the whole input's peak, so its windows sit at or below 1);
* the net's training forward returns ``mask·x`` for its main and auxiliary heads; the loss is
  ``0.8·L1(main, y) + 0.1·L1(aux1, y) + 0.1·L1(aux2, y)`` (CascadedASPPNet) or
  ``0.8·L1(main, y) + 0.2·L1(aux, y)`` (LSTM CascadedNet), as in the original training code;
* Adam with linear warm-up and cosine decay over the run (its progress is the larger of
  ``step / steps`` and ``elapsed / max_minutes``, so a time-boxed run still anneals);
* a held-out validation split (whole tracks), evaluated on fixed crops with the original pairing;
* checkpoints (model, optimizer, step, elapsed time, random states) written atomically every
  ``checkpoint_every`` steps; a rerun with the same output folder resumes from the last one and
  continues exactly where it stopped. Every checkpoint also exports the model: a plain state
  dict (``model.pth``, keys as the official UVR files, loadable by uvrsep and the original code)
  and ``model.json`` (params, primary stem, architecture, training config, data recipe, metrics).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import checkpoint as checkpoint_module
from .checkpoint import check_archive_sizes, write_atomically
from .dataset import Track, find_tracks, track_spectrograms
from .errors import SettingsError, UvrsepError
from .nets import ASPPNetConfig, VRNet, build_net, config_from_name, net_from_state_dict
from .params import ModelParams, load_params

#: Loss weights of the original training code.
MAIN_LOSS_WEIGHT = 0.8
ASPP_AUX_LOSS_WEIGHT = 0.1  # each of aux1 and aux2
LSTM_AUX_LOSS_WEIGHT = 0.2
#: Names of the files written in the output folder.
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pth"
METADATA_FILE = "model.json"
LOG_FILE = "train_log.jsonl"
CACHE_FOLDER = "cache"
#: Recipe file of a generated dataset (``scripts/make_dataset.py``), looked for beside the data.
RECIPE_FILE = "recipe.json"
#: Recipe fields longer than this (as JSON) — per-track lists — are left out of the metadata.
RECIPE_FIELD_LIMIT = 4096
#: Version of the metadata written beside a trained model.
METADATA_VERSION = 1
#: Smallest crop peak treated as non-silent (avoids dividing by zero on silent crops).
SILENCE_PEAK = 1e-8
#: Primary stems a model can be trained for.
PRIMARY_STEMS = ("Instrumental", "Vocals")


class TrainError(UvrsepError):
    """Training cannot start or resume (bad settings, no data, incompatible checkpoint)."""


@dataclass
class TrainConfig:
    """Settings of a training run (all saved with the checkpoint and the exported model).

    Attributes:
        arch: net capacity: a UVR name (``33966``, ``123812``, ...), ``aspp_wW_bB_lL`` for a custom
            CascadedASPPNet, or ``lstm_NOUT_NOUTLSTM`` for the LSTM CascadedNet.
        params: model-params name or JSON path (the analysis the model is trained and run with).
        primary_stem: ``Instrumental`` (the mask keeps the accompaniment) or ``Vocals``.
        steps: optimisation steps.
        batch_size: crops per step.
        crop_frames: frames per crop (a multiple of the net's size multiple).
        learning_rate: peak learning rate (Adam).
        min_lr_fraction: the cosine decay ends at this fraction of the peak.
        warmup_steps: steps of linear warm-up.
        max_minutes: stop after this much training time (None: only ``steps`` stops the run).
        val_fraction: share of the tracks held out for validation (at least one when there are two
            or more tracks).
        val_crops: fixed validation crops.
        val_every: steps between validations.
        checkpoint_every: steps between checkpoints (and model exports).
        seed: seed of every random choice (crops, pairing, gains, initialisation, dropout).
        remix_probability: chance that a crop's vocals come from another track/position.
        vocal_gain_db: range of the random vocal gain.
        no_vocals_probability: chance that a crop has no vocals at all.
        level_range_db: inputs are scaled to a random level this far below full scale at most.
        swap_channels_probability: chance of swapping left and right.
        mono_probability: chance that a crop is mono (both channels of every stem their mean): old
            records, films and much dialogue are, and there "the voice is in the centre" says
            nothing. Only for left/right params (no mid/side flag). 0 draws nothing, so older
            runs' random streams are unchanged.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``fp32`` or ``bf16``.
        export_dtype: dtype of the exported ``model.pth``: ``fp16`` (half the size) or ``fp32``.
        init: a ``.pth`` (or registry name) to start from (fine-tuning); None: random init.
    """

    arch: str = "33966"
    params: str = "4band_v2"
    primary_stem: str = "Instrumental"
    steps: int = 20000
    batch_size: int = 8
    crop_frames: int = 256
    learning_rate: float = 1e-3
    min_lr_fraction: float = 0.05
    warmup_steps: int = 100
    max_minutes: float | None = None
    val_fraction: float = 0.1
    val_crops: int = 32
    val_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    remix_probability: float = 0.5
    vocal_gain_db: tuple[float, float] = (-9.0, 6.0)
    no_vocals_probability: float = 0.1
    level_range_db: float = 18.0
    swap_channels_probability: float = 0.5
    mono_probability: float = 0.0
    precision: str = "auto"
    export_dtype: str = "fp16"
    init: str | None = None

    def validate(self) -> None:
        """Raise :class:`SettingsError` for out-of-range settings."""
        checks = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.batch_size >= 1, "batch size must be >= 1"),
            (self.crop_frames >= 16, "crop frames must be >= 16"),
            (self.learning_rate > 0, "learning rate must be > 0"),
            (0 <= self.val_fraction < 1, "validation fraction must be in [0, 1)"),
            (self.val_every >= 1 and self.checkpoint_every >= 1, "val/checkpoint intervals must be >= 1"),
            (self.primary_stem in PRIMARY_STEMS, f"primary stem must be one of {', '.join(PRIMARY_STEMS)}"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
            (self.export_dtype in ("fp16", "fp32"), "export dtype must be fp16 or fp32"),
            (self.max_minutes is None or self.max_minutes > 0, "max minutes must be > 0"),
            (0 <= self.mono_probability <= 1, "mono probability must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)


@dataclass
class TrainState:
    """Progress of a run (saved in the checkpoint)."""

    step: int = 0
    elapsed: float = 0.0
    best_val: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)


# -- data ---------------------------------------------------------------------------------------


def split_tracks(tracks: Sequence[Track], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the training and validation tracks (a seeded shuffle; whole tracks)."""
    order = np.random.default_rng(seed).permutation(len(tracks))
    n_val = int(round(len(tracks) * val_fraction))
    if val_fraction > 0 and len(tracks) >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, len(tracks) - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def _analyse(args: tuple[Track, ModelParams, Path | None]) -> np.ndarray:
    return track_spectrograms(*args)


def analyse_tracks(
    tracks: Sequence[Track], params: ModelParams, cache_dir: Path | None, workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Spectrograms of every track (:func:`uvrsep.dataset.track_spectrograms`), in parallel."""
    jobs = [(track, params, cache_dir) for track in tracks]
    if workers <= 1:
        out = []
        for job in jobs:
            out.append(_analyse(job))
            if progress:
                progress(1)
        return out
    with ProcessPoolExecutor(workers) as pool:
        out = []
        for spec in pool.map(_analyse, jobs):
            out.append(spec)
            if progress:
                progress(1)
        return out


class CropSampler:
    """Draws training batches from stem spectrograms held on the training device.

    Args:
        specs: per track ``(2 [vocals, accompaniment], 2, rows, frames)`` complex64.
        config: the run's settings.
        device: where the spectrograms live and batches are made.
    """

    def __init__(self, specs: Sequence[np.ndarray], config: TrainConfig, device: torch.device) -> None:
        crop = config.crop_frames
        self.config = config
        self.device = device
        self.specs = []
        for spec in specs:
            if spec.shape[-1] < crop:
                spec = np.pad(spec, ((0, 0), (0, 0), (0, 0), (0, crop - spec.shape[-1])))
            self.specs.append(torch.from_numpy(np.ascontiguousarray(spec)).to(device))

    def __len__(self) -> int:
        return len(self.specs)

    def crop(self, rng: np.random.Generator, track: int) -> tuple[int, int]:
        """``(track, first frame)`` of a random crop of ``track``."""
        return track, int(rng.integers(self.specs[track].shape[-1] - self.config.crop_frames + 1))

    def sample(self, rng: np.random.Generator, augment: bool = True) -> tuple[Tensor, Tensor]:
        """One batch ``(x, y)``: normalised |mixture| and |primary stem|, ``(B, 2, rows, crop)`` float32."""
        cfg = self.config
        xs, ys = [], []
        for _ in range(cfg.batch_size):
            acc_track, acc_start = self.crop(rng, int(rng.integers(len(self))))
            voc_track, voc_start = acc_track, acc_start
            gain, level, swap, mono = 1.0, 1.0, False, False
            if augment:
                if rng.random() < cfg.remix_probability:
                    voc_track, voc_start = self.crop(rng, int(rng.integers(len(self))))
                gain = 10 ** (rng.uniform(*cfg.vocal_gain_db) / 20)
                if rng.random() < cfg.no_vocals_probability:
                    gain = 0.0
                level = 10 ** (-rng.uniform(0, cfg.level_range_db) / 20)
                swap = bool(rng.random() < cfg.swap_channels_probability)
                mono = bool(cfg.mono_probability and rng.random() < cfg.mono_probability)
            x, y = self.pair(acc_track, acc_start, voc_track, voc_start, gain, level, swap, mono)
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), torch.stack(ys)

    def pair(
        self, acc_track: int, acc_start: int, voc_track: int, voc_start: int, gain: float, level: float, swap: bool,
        mono: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of one crop: ``(2, rows, crop)`` float32 each (``mono``: both channels of
        each stem their mean, before the magnitudes)."""
        crop = self.config.crop_frames
        accompaniment = self.specs[acc_track][1, :, :, acc_start : acc_start + crop]
        vocals = self.specs[voc_track][0, :, :, voc_start : voc_start + crop] * gain
        if mono:
            accompaniment = accompaniment.mean(0, keepdim=True).expand_as(accompaniment)
            vocals = vocals.mean(0, keepdim=True).expand_as(vocals)
        mixture = (accompaniment + vocals).abs()
        target = (accompaniment if self.config.primary_stem == "Instrumental" else vocals).abs()
        scale = level / mixture.amax().clamp_min(SILENCE_PEAK)  # a tensor: no device sync
        x, y = mixture * scale, target * scale
        if swap:
            x, y = x.flip(0), y.flip(0)
        return x, y


# -- model, loss, schedule ----------------------------------------------------------------------


def training_loss(net: VRNet, x: Tensor, y: Tensor) -> Tensor:
    """The original training loss of ``net`` on a batch (see the module docstring)."""
    outputs = net.forward_train(x)
    if isinstance(net.config, ASPPNetConfig):
        main, aux1, aux2 = outputs
        return (
            MAIN_LOSS_WEIGHT * F.l1_loss(main, y)
            + ASPP_AUX_LOSS_WEIGHT * F.l1_loss(aux1, y)
            + ASPP_AUX_LOSS_WEIGHT * F.l1_loss(aux2, y)
        )
    main, aux = outputs
    return MAIN_LOSS_WEIGHT * F.l1_loss(main, y) + LSTM_AUX_LOSS_WEIGHT * F.l1_loss(aux, y)


def learning_rate(config: TrainConfig, step: int, elapsed: float) -> float:
    """Warm-up, then cosine decay from the peak to ``min_lr_fraction`` of it over the run."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.max_minutes:
        progress = max(progress, elapsed / (config.max_minutes * 60))
    progress = min(1.0, progress)
    floor = config.min_lr_fraction
    return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _autocast(config: TrainConfig, device: torch.device):
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


@torch.no_grad()
def validate(net: VRNet, sampler: CropSampler, crops: list[tuple[int, int]], config: TrainConfig, device: torch.device) -> float:
    """Mean L1 between the main output and the target on fixed validation crops."""
    net.eval()
    losses = []
    for first in range(0, len(crops), config.batch_size):
        pairs = [sampler.pair(t, s, t, s, 1.0, 1.0, False) for t, s in crops[first : first + config.batch_size]]
        x = torch.stack([p[0] for p in pairs])
        y = torch.stack([p[1] for p in pairs])
        with _autocast(config, device):
            main = net.forward_train(x)[0]
        losses.append(float(F.l1_loss(main.float(), y)) * len(pairs))
    net.train()
    return sum(losses) / max(1, len(crops))


# -- files --------------------------------------------------------------------------------------


def _atomic_save(obj: Any, path: Path) -> None:
    write_atomically(path, lambda handle: torch.save(obj, handle))


def data_recipe(dataset_paths: Sequence[Path], tracks: Sequence[Track]) -> dict[str, Any]:
    """What the model was trained on: the dataset folders, track count, and the generator's
    recipe (``recipe.json`` beside the data, without its per-track list) when there is one."""
    recipe: dict[str, Any] = {"datasets": [str(p) for p in dataset_paths], "tracks": len(tracks)}
    for path in dataset_paths:
        for folder in (Path(path), Path(path).parent):
            candidate = folder / RECIPE_FILE
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue
                if isinstance(data, dict):  # the generator's settings, not its per-track facts
                    recipe["generator"] = {
                        k: v for k, v in data.items() if len(json.dumps(v)) <= RECIPE_FIELD_LIMIT
                    }
                return recipe
    return recipe


def export_model(
    net: VRNet, config: TrainConfig, params: ModelParams, state: TrainState, recipe: dict[str, Any], out_dir: Path
) -> Path:
    """Write ``model.pth`` (plain state dict, official key names) and ``model.json`` beside it."""
    dtype = torch.float16 if config.export_dtype == "fp16" else torch.float32
    weights = {
        key: value.detach().to("cpu", dtype) if torch.is_floating_point(value) else value.detach().cpu()
        for key, value in net.state_dict().items()
    }
    path = out_dir / MODEL_FILE
    _atomic_save(weights, path)
    metadata = {
        "format": "uvrsep-model",
        "version": METADATA_VERSION,
        "params": params.name,
        "primary_stem": config.primary_stem,
        "arch": net.config.arch_name,
        "training": asdict(config),
        "data": recipe,
        "metrics": {
            "steps": state.step,
            "train_seconds": round(state.elapsed, 1),
            "best_val_l1": state.best_val,
            "last": state.history[-1] if state.history else None,
        },
    }
    text = json.dumps(metadata, indent=2) + "\n"
    write_atomically(out_dir / METADATA_FILE, lambda handle: handle.write(text.encode("utf-8")))
    return path


def _config_from_dict(data: dict[str, Any]) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in data.items() if k in names}
    if "vocal_gain_db" in values:
        values["vocal_gain_db"] = tuple(values["vocal_gain_db"])
    return TrainConfig(**values)


# -- the run ------------------------------------------------------------------------------------


def _bad_checkpoint(path: Path, exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"{path}: not a usable uvrsep training checkpoint ({type(exc).__name__}: {first[:200]}); "
        "delete it or rerun with --restart"
    )


#: A training checkpoint holds the weights and Adam's two moment buffers.
CHECKPOINT_SIZE_FACTOR = 3


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint written by :func:`train` (no code runs from it).

    Raises:
        TrainError: the file is truncated, not a torch file, or another program's.
    """
    try:
        check_archive_sizes(path, CHECKPOINT_SIZE_FACTOR * checkpoint_module.MAX_MODEL_BYTES)
    except UvrsepError as exc:
        raise TrainError(str(exc)) from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated/foreign archives raise many kinds
        if isinstance(exc, pickle.UnpicklingError):
            exc = ValueError("not a PyTorch file, or one that would run code to load")
        raise TrainError(_bad_checkpoint(path, exc)) from None
    keys = ("config", "model", "optimizer", "state", "numpy_rng", "torch_rng")
    missing = [key for key in keys if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise TrainError(_bad_checkpoint(path, KeyError(f"no {', '.join(missing)}")))
    try:
        _config_from_dict(checkpoint["config"])
        int(checkpoint["state"]["step"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrainError(_bad_checkpoint(path, exc)) from None
    return checkpoint


def build_training_net(config: TrainConfig, params: ModelParams, resuming: bool = False) -> VRNet:
    """The net to train: the ``config.init`` model (a path or registry name) when given, else a
    fresh one of ``config.arch``. When ``resuming`` the checkpoint provides the weights: only the
    architecture is needed (``config.arch`` records the init's)."""
    torch.manual_seed(config.seed)
    if config.init is not None and not resuming:
        from .pretrained import resolve_model

        net = net_from_state_dict(resolve_model(config.init, config.params, progress=False).state_dict)
    else:
        arch = config_from_name(config.arch, bins=params.bins)
        try:
            net = build_net(arch)
        except (ValueError, IndexError, RuntimeError) as exc:  # sizes the layers refuse, or memory
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SettingsError(f"--arch {config.arch}: cannot build this net ({first[:200]}); pick another size") from None
    net.check_bins(params.bins)
    if config.crop_frames % net.config.size_multiple:
        raise SettingsError(f"crop frames must be a multiple of {net.config.size_multiple}, got {config.crop_frames}")
    return net


def train(
    dataset_paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    *,
    device: str | torch.device = "auto",
    workers: int = 1,
    resume: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a model; returns a summary (steps, times, losses, exported paths).

    Args:
        dataset_paths: dataset folders (see :mod:`uvrsep.dataset`).
        out_dir: where the checkpoint, the exported model and the log go (and the analysis cache).
        config: the settings (ignored in favour of the checkpoint's when resuming, except
            ``steps``, ``max_minutes``, ``val_every`` and ``checkpoint_every``, which may change).
        device: ``auto``, ``cpu``, ``cuda``...
        workers: processes analysing the audio.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        progress: show a progress bar (tqdm).
        log: called with human-readable progress lines.
    """
    from .api import resolve_device

    say = log or (lambda message: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SettingsError(f"{out}: exists and is not a folder; choose another --output-dir")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"{out}: cannot create the output folder ({exc.strerror or exc}); choose another --output-dir") from None
    dev = resolve_device(device)
    checkpoint_path = out / CHECKPOINT_FILE
    checkpoint = None
    if resume and checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path)
        saved = _config_from_dict(checkpoint["config"])
        for name in ("steps", "max_minutes", "val_every", "checkpoint_every"):
            setattr(saved, name, getattr(config, name))
        config = saved
        say(f"resuming from {checkpoint_path} at step {checkpoint['state']['step']}")
    config.validate()
    params = load_params(config.params)
    if config.mono_probability and (params.mid_side or params.mid_side_b2):
        raise SettingsError(f"mono crops need left/right params; {params.name} analyses mid/side: use --mono-probability 0")
    net = build_training_net(config, params, resuming=checkpoint is not None)
    config.arch = net.config.arch_name  # an --init file's architecture wins over --arch
    tracks = find_tracks(list(dataset_paths))  # raises when there is none
    train_idx, val_idx = split_tracks(tracks, config.val_fraction, config.seed)
    say(f"{len(tracks)} tracks ({len(train_idx)} train, {len(val_idx)} validation); analysing with {params.name}")
    bar = _progress_bar(len(tracks), "analysing", progress)
    specs = analyse_tracks(tracks, params, out / CACHE_FOLDER, workers, bar.update if bar else None)
    if bar:
        bar.close()
    train_sampler = CropSampler([specs[i] for i in train_idx], config, dev)
    val_sampler = CropSampler([specs[i] for i in val_idx], config, dev) if val_idx else None
    del specs
    val_rng = np.random.default_rng([config.seed, 1])
    val_crops = (
        [val_sampler.crop(val_rng, int(val_rng.integers(len(val_sampler)))) for _ in range(config.val_crops)]
        if val_sampler else []
    )

    net.to(dev).train()
    memory_format = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        net.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    state = TrainState()
    rng = np.random.default_rng([config.seed, 0])
    if checkpoint is not None:
        try:
            net.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            state = TrainState(**checkpoint["state"])
            rng.bit_generator.state = checkpoint["numpy_rng"]
            torch.set_rng_state(checkpoint["torch_rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise TrainError(_bad_checkpoint(checkpoint_path, exc)) from None
        if dev.type == "cuda" and checkpoint.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(checkpoint["cuda_rng"])
    recipe = data_recipe([Path(p) for p in dataset_paths], tracks)

    def save() -> None:
        _atomic_save(
            {
                "config": asdict(config),
                "state": asdict(state),
                "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if dev.type == "cuda" else None,
            },
            checkpoint_path,
        )
        export_model(net, config, params, state, recipe, out)

    def out_of_time() -> bool:
        return config.max_minutes is not None and state.elapsed >= config.max_minutes * 60

    bar = _progress_bar(config.steps, "training", progress, initial=state.step)
    running = None
    with open(out / LOG_FILE, "a", encoding="utf-8") as log_file:
        while state.step < config.steps and not out_of_time():
            started = time.perf_counter()
            lr = learning_rate(config, state.step, state.elapsed)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = train_sampler.sample(rng)
            x = x.contiguous(memory_format=memory_format)
            try:
                with _autocast(config, dev):
                    loss = training_loss(net, x, y)
            except ValueError as exc:
                if "more than 1 value per channel" not in str(exc):
                    raise
                raise SettingsError(
                    f"batch size {config.batch_size} with {config.crop_frames} frames per crop is too small for "
                    "the net's batch norm (one value per channel at its deepest level); use --batch-size 2 or "
                    "more, or a larger --crop-frames"
                ) from None
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainError(f"the loss became {value} at step {state.step}; lower --lr and resume")
            running = value if running is None else 0.98 * running + 0.02 * value
            state.step += 1
            state.elapsed += time.perf_counter() - started
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.1e}")
            record: dict[str, float] = {}
            finishing = state.step >= config.steps or out_of_time()
            if val_sampler and (state.step % config.val_every == 0 or finishing):
                val = validate(net, val_sampler, val_crops, config, dev)
                state.best_val = val if state.best_val is None else min(state.best_val, val)
                record = {"step": state.step, "elapsed": round(state.elapsed, 2), "train_loss": running, "val_l1": val, "lr": lr}
                say(f"step {state.step}: train loss {running:.4f}, validation L1 {val:.4f}")
            elif state.step % config.val_every == 0 or finishing:
                record = {"step": state.step, "elapsed": round(state.elapsed, 2), "train_loss": running, "lr": lr}
            if record:
                state.history.append(record)
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            if state.step % config.checkpoint_every == 0 or finishing:
                save()
    if bar:
        bar.close()
    if not (out / MODEL_FILE).is_file():
        save()
    return {
        "steps": state.step,
        "train_seconds": state.elapsed,
        "train_loss": running,
        "best_val_l1": state.best_val,
        "history": state.history,
        "model": str(out / MODEL_FILE),
        "metadata": str(out / METADATA_FILE),
        "checkpoint": str(checkpoint_path),
        "tracks": {"train": len(train_idx), "validation": len(val_idx)},
    }


def _progress_bar(total: int, desc: str, enabled: bool, initial: int = 0):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, unit="step" if desc == "training" else "track", dynamic_ncols=True)
