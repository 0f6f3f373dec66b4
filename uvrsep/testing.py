"""Deterministic weights for tests and benchmarks.

The parity fixtures were produced by the original code loaded with weights made by this recipe
(``shared/fixtures/make_weights.py``), reproducible from a list of state-dict keys and shapes and
independent of key order and of torch's random generator. Per key, with
``rng = RandomState((seed * 1_000_003 + crc32(key)) % 2**32)``:

* ``*.num_batches_tracked`` → int64 zero;
* BatchNorm (a sibling ``.running_mean`` exists): weight ``1 + 0.2·U(-1, 1)``, bias ``0.1·N(0, 1)``,
  running_mean ``0.1·N(0, 1)``, running_var ``U(0.5, 1.5)``;
* 4-D conv weight → ``N(0, 1)·sqrt(2 / fan_in)`` (``out.weight`` further × ``out_gain``);
* 2-D weight (LSTM, Linear) → ``N(0, 1)·sqrt(1 / shape[1])``; other 1-D tensors → ``0.1·N(0, 1)``.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .nets import NetConfig, build_net

_SEED_MULTIPLIER = 1_000_003
_BN_WEIGHT_SPREAD = 0.2
_SMALL_STD = 0.1
_RUNNING_VAR_RANGE = (0.5, 1.5)

KeySpec = Sequence  # (name, shape[, dtype])


def _key_rng(key: str, seed: int) -> np.random.RandomState:
    return np.random.RandomState((seed * _SEED_MULTIPLIER + zlib.crc32(key.encode())) % 2**32)


def make_state_dict(keys: Iterable[KeySpec], seed: int, out_gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Build the deterministic state dict for ``keys`` (``[name, shape, ...]`` entries)."""
    keys = [(k[0], tuple(k[1])) for k in keys]
    names = {name for name, _ in keys}
    state: dict[str, torch.Tensor] = {}
    for key, shape in keys:
        prefix, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            state[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        rng = _key_rng(key, seed)
        is_bn = prefix + ".running_mean" in names
        if is_bn and leaf == "weight":
            values = 1.0 + _BN_WEIGHT_SPREAD * rng.uniform(-1.0, 1.0, shape)
        elif is_bn and leaf == "bias":
            values = _SMALL_STD * rng.standard_normal(shape)
        elif leaf == "running_mean":
            values = _SMALL_STD * rng.standard_normal(shape)
        elif leaf == "running_var":
            values = rng.uniform(*_RUNNING_VAR_RANGE, shape)
        elif len(shape) == 4:
            values = rng.standard_normal(shape) * np.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
            if key == "out.weight":
                values = values * out_gain
        elif len(shape) == 2:
            values = rng.standard_normal(shape) * np.sqrt(1.0 / shape[1])
        else:
            values = _SMALL_STD * rng.standard_normal(shape)
        state[key] = torch.from_numpy(np.asarray(values, dtype=np.float32))
    return state


def keys_of(config: NetConfig) -> list[tuple[str, tuple[int, ...]]]:
    """The ``(name, shape)`` list of the state dict of the net built for ``config``."""
    return [(name, tuple(t.shape)) for name, t in build_net(config).state_dict().items()]


def random_state_dict(config: NetConfig, seed: int = 0, out_gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Deterministic weights for the net of ``config``."""
    return make_state_dict(keys_of(config), seed, out_gain)


#: parity fixture file of each stem (the fixtures' "instrument" is the primary stem)
PARITY_STEM_FILES = {"instrumental": "expected_instrument.npy", "vocals": "expected_vocals.npy"}


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10·log10(Σref² / Σ(est − ref)²)`` in float64; ``inf`` when identical."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = np.sum((np.asarray(estimate, dtype=np.float64) - reference) ** 2)
    signal = np.sum(reference**2)
    return float("inf") if noise == 0 else float(10 * np.log10(signal / noise))


@dataclass
class ParityResult:
    """Outcome of :func:`run_parity_case`: SNR per stem (dB) and separation wall time."""

    case: str
    snr_db: dict[str, float]
    seconds: float
    input_seconds: float


def run_parity_case(
    case_dir: Path,
    device: str = "cpu",
    precision: str = "fp32",
    batch_size: int | None = None,
    spectral: str = "auto",
    chunk_windows: int | None = None,
) -> ParityResult:
    """Separate a parity case's input with its settings and weights; compare to the reference.

    The case folder holds ``case.json``, the input and the expected stems; the key list it names
    lies in the folder above (or the one above that). SNR is taken over ``expected_frames``
    samples: the reference's sample ``j`` is uvrsep's ``j + reference_output_offset`` (0 unless
    the params reverse the signal; the reference then loses the input's first samples).
    ``chunk_windows`` runs the streamed pipeline in chunks of that many network windows instead
    of the whole file at once.
    """
    import soundfile as sf

    from .api import Separator

    case = json.loads((case_dir / "case.json").read_text())
    keys_file = next(
        (d / case["keys"] for d in (case_dir.parent, case_dir.parent.parent) if (d / case["keys"]).is_file()),
        case_dir.parent / case["keys"],
    )
    keys = json.loads(keys_file.read_text())
    wave, sr = sf.read(case_dir / case["input"], dtype="float32", always_2d=True)
    separator = Separator(
        make_state_dict(keys, case["weights_seed"], case.get("out_gain", 1.0)),
        case["params"],
        device=device,
        precision=precision,
        aggressiveness=case["aggressiveness"],
        window_size=case["window_size"],
        tta=case["tta"],
        postprocess=case["postprocess"],
        high_end=case["high_end_process"],
        batch_size=batch_size,
        spectral=spectral,
    )
    start = time.perf_counter()
    if chunk_windows is None:
        stems = separator.separate(wave.T, sr, output_sample_rate=case["output_sr"], mono_output=False).stems
    else:
        from .stream import ArraySource

        blocks: dict[str, list[np.ndarray]] = {name: [] for name in separator.stem_names}
        separator.separate_stream(
            ArraySource(wave.T, sr), {name: blocks[name].append for name in blocks},
            output_sample_rate=case["output_sr"], mono_output=False, chunk_windows=chunk_windows,
        )
        stems = {name: np.concatenate(parts, axis=1) for name, parts in blocks.items()}
    seconds = time.perf_counter() - start
    frames = case["expected_frames"]
    offset = case.get("reference_output_offset", 0)
    snrs = {
        name: snr_db(np.load(case_dir / file)[:frames], stems[name].T[offset : offset + frames])
        for name, file in PARITY_STEM_FILES.items()
    }
    return ParityResult(case["case"], snrs, seconds, case["input_frames"] / sr)
