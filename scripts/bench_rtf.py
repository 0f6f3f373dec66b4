#!/usr/bin/env python3
"""End-to-end real-time factor of file separation, and where the time goes.

    python scripts/bench_rtf.py [--device cuda] [--seconds 180] [--arch 123812]
        [--params 4band_v2] [--precision auto fp16 bf16 fp32] [--batch-sizes 8 32]
        [--spectral host device] [--repeats 2] [--budget 80] [--cudnn-benchmark] [--json OUT.json]

The input is a deterministic stereo 44.1 kHz WAV of ``--seconds`` (the demo song tiled, as
``scripts/bench.py`` makes it), the net has deterministic random weights (seed 1). Each candidate
(precision × batch size × where the spectral work runs) gets a warm-up on a short clip (plus, on CUDA, one network pass over the
full input's window layout, so that every batch shape has been seen), then ``--repeats`` timed
end-to-end runs: ``read_audio`` → :meth:`Separator.separate` → ``write_audio`` of both stems.

The timed runs are instrumented: the functions of each phase are wrapped with timers where
``uvrsep.api`` / ``uvrsep.inference`` look them up, and restored afterwards. Phases (exclusive
time, so they add up to the total):

* ``read``: ``read_audio`` (decode);
* ``resample``: ``uvrsep.api.resample`` (input to the model's rate, stems back);
* ``analysis``: the spectral backend's ``analyze`` and ``magnitude`` (band resampling, STFTs,
  combine, |X|), on the host or on the device (``--spectral``);
* ``network``: ``NetRunner.masks`` (batching, host↔device copies, forward, aggressiveness);
* ``synthesis``: the backend's ``render`` (phase, stem subtraction, mirroring, multi-band
  synthesis, the stems' copy to the host);
* ``write``: ``write_audio`` of the two stems (PCM_16 WAV, fsynced);
* ``other``: the rest (normalisation, padding, mask × magnitude, trimming).

Before the timed runs, the warm-up clip is separated once plain and once instrumented and the
stems compared (the wrappers must not change the output). Per candidate it reports the median
end-to-end seconds, the real-time factor (audio seconds / wall seconds), seconds and % per phase
(mean over the repeats), network windows per second, peak GPU memory on CUDA, and each stem's
SNR against the first fp32 candidate (which runs first, so the time budget cannot drop it).

A candidate that fails (out of memory, precision unsupported on the device, ...) prints one line
and the others still run. ``--budget`` bounds the script's wall time: a candidate (or a repeat)
that would not fit, judging by the previous one, is skipped with a line saying so.
``--precision auto`` is skipped when it resolves to a precision already in the list.
"""

from __future__ import annotations

import time

SCRIPT_START = time.perf_counter()  # the budget counts the imports too

import argparse  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Iterator  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvrsep.api  # noqa: E402
import uvrsep.inference  # noqa: E402
from uvrsep.spectral import DeviceSpectral, HostSpectral  # noqa: E402
from uvrsep.api import Separator, resolve_device, resolve_precision  # noqa: E402
from uvrsep.audio import read_audio, write_audio  # noqa: E402
from uvrsep.inference import plan_windows  # noqa: E402
from uvrsep.nets import config_from_name  # noqa: E402
from uvrsep.params import load_params  # noqa: E402
from uvrsep.testing import random_state_dict, snr_db  # noqa: E402

#: Phases of the breakdown, in pipeline order ("other" is the remainder).
PHASES = ("read", "resample", "analysis", "network", "synthesis", "write", "other")
#: (owner, attribute, phase) of every function wrapped with a timer. The owners are where the
#: pipeline looks the names up: uvrsep.api imported them by name; NetRunner is one class.
WRAPPED = (
    (uvrsep.api, "resample", "resample"),
    (HostSpectral, "analyze", "analysis"),
    (HostSpectral, "magnitude", "analysis"),
    (HostSpectral, "render", "synthesis"),
    (DeviceSpectral, "analyze", "analysis"),
    (DeviceSpectral, "magnitude", "analysis"),
    (DeviceSpectral, "render", "synthesis"),
    (uvrsep.inference.NetRunner, "masks", "network"),
)
NETWORK_PHASE = "network"
#: Seed of the random weights (the fixtures' and scripts/bench.py's).
WEIGHT_SEED = 1
#: Length of the warm-up / wrapper-check clip (capped at --seconds).
WARMUP_SECONDS = 6.0
#: Default wall-time budget of the whole script (the GPU run must end within 90 s).
DEFAULT_BUDGET_SECONDS = 80.0
#: |Δ| above which the instrumented stems count as different from the plain ones.
WRAP_TOLERANCE = 0.0
#: Stem file format written by the timed runs.
STEM_SUFFIX = ".wav"
INPUT_NAME = "input.wav"
WARMUP_NAME = "warmup.wav"
REFERENCE_PRECISION = "fp32"
MIB = 2**20
#: Table widths.
NAME_WIDTH = 22


def log(message: str = "") -> None:
    """Print and flush (the GPU machine buffers stdout)."""
    print(message, flush=True)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def load_bench_signal() -> Callable[[float], tuple[np.ndarray, int]]:
    """``test_signal(seconds) -> (wave, rate)`` of ``scripts/bench.py`` (the demo song tiled)."""
    path = Path(__file__).with_name("bench.py")
    spec = importlib.util.spec_from_file_location("uvrsep_scripts_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.test_signal


# -- timing ----------------------------------------------------------------------------------------


class PhaseClock:
    """Exclusive wall time per phase: an inner phase pauses the one it runs inside.

    On CUDA the device is synchronised at every phase boundary, so GPU work queued in a phase is
    counted in it.
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(PHASES, 0)
        self.windows = 0
        self._stack: list[list[Any]] = []  # [phase, start of its current stretch]

    def now(self) -> float:
        """The clock, after the device has finished what was queued."""
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the time inside the block (less inner phases) as ``name``."""
        start = self.now()
        if self._stack:
            outer = self._stack[-1]
            self.seconds[outer[0]] += start - outer[1]
        self._stack.append([name, start])
        self.calls[name] += 1
        try:
            yield
        finally:
            stop = self.now()
            inner = self._stack.pop()
            self.seconds[inner[0]] += stop - inner[1]
            if self._stack:
                self._stack[-1][1] = stop


def _timed(function: Callable[..., Any], phase: str, clock: PhaseClock) -> Callable[..., Any]:
    """``function`` with its calls timed as ``phase`` (and, for the network, windows counted)."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if phase == NETWORK_PHASE:
            plan = signature.bind(*args, **kwargs).arguments.get("plan")
            clock.windows += int(getattr(plan, "windows", 0))
        with clock.phase(phase):
            return function(*args, **kwargs)

    return wrapper


@contextmanager
def instrumented(clock: PhaseClock) -> Iterator[list[str]]:
    """Wrap the phase functions of :data:`WRAPPED` with timers; restore them on exit.

    Yields:
        The ``owner.attribute`` names that could not be wrapped (their time lands in "other").
    """
    saved: list[tuple[Any, str, Any]] = []
    missing: list[str] = []
    try:
        for owner, name, phase in WRAPPED:
            original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
            if original is None or not callable(original):
                missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
                continue
            saved.append((owner, name, original))
            setattr(owner, name, _timed(original, phase, clock))
        yield missing
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


# -- one candidate ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One timed end-to-end run."""

    total: float
    phases: dict[str, float]
    calls: dict[str, int]
    windows: int


@dataclass(eq=False)
class Candidate:
    """A (precision, batch size, spectral backend) to measure, and what was measured."""

    precision: str
    resolved: str
    batch_size: int
    spectral: str = "auto"
    runs: list[RunResult] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    warmup_seconds: float | None = None
    build_seconds: float | None = None
    wrap_check: dict[str, Any] = field(default_factory=dict)
    peak_gpu_mib: float | None = None
    peak_gpu_reserved_mib: float | None = None
    snr_db: dict[str, float] | None = None
    wall_seconds: float = 0.0
    unwrapped: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        precision = self.precision if self.precision == self.resolved else f"{self.precision}={self.resolved}"
        return f"{precision}/b{self.batch_size}/{self.spectral}"


def sync(device: torch.device) -> None:
    """Wait for the device (CUDA) to finish queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def end_to_end(
    sep: Separator, source: Path, out_dir: Path, clock: PhaseClock | None = None
) -> tuple[float, dict[str, np.ndarray]]:
    """Read ``source``, separate it, write both stems into ``out_dir``; wall seconds and stems."""
    clock = clock or PhaseClock(cuda=False)  # a throwaway when not instrumented
    sync(sep.device)
    start = time.perf_counter()
    with clock.phase("read"):
        wave, info = read_audio(source)
    result = sep.separate(wave, info.sample_rate)
    with clock.phase("write"):
        for name, stem in result.stems.items():
            write_audio(out_dir / f"{name}{STEM_SUFFIX}", stem, result.sample_rate, overwrite=True)
    sync(sep.device)
    return time.perf_counter() - start, result.stems


def warm_network(sep: Separator, input_samples: int, input_rate: int) -> None:
    """One network pass over the window layout of the full input (zeros): on CUDA, every batch
    shape the timed runs use (full batches and the last partial one) is then warm."""
    params = sep.params
    samples = int(math.ceil(input_samples * params.top.sr / input_rate))
    hop = params.top.hl
    frames = 1 + samples // hop + (1 if samples % hop else 0)
    window = sep.settings.window_size
    plan = plan_windows(frames, window, sep.net.offset)
    padded = np.zeros((2, params.bins + 1, plan.left + frames + plan.right), np.float32)
    sep.runner.masks(padded, plan, window, None)
    sync(sep.device)


def compare_stems(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, Any]:
    """Max |Δ| over the stems, whether they are identical, and the worst stem SNR."""
    max_abs = max(
        float(np.max(np.abs(reference[k].astype(np.float64) - other[k]))) if reference[k].size else 0.0
        for k in reference
    )
    worst = min(snr_db(reference[k], other[k]) for k in reference)
    return {"identical": max_abs <= WRAP_TOLERANCE, "max_abs_diff": max_abs, "min_snr_db": worst}


def measure(
    cand: Candidate,
    model: dict[str, torch.Tensor],
    args: argparse.Namespace,
    device: torch.device,
    files: dict[str, Path],
    out_dir: Path,
    input_samples: int,
    input_rate: int,
    reference: dict[str, np.ndarray] | None,
    deadline: float,
) -> dict[str, np.ndarray] | None:
    """Warm up and time one candidate (filling ``cand``); returns the last run's stems."""
    cuda = device.type == "cuda"
    started = time.perf_counter()
    sep: Separator | None = None
    try:
        if cuda:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        sep = Separator(
            model, args.params, device=device, precision=cand.precision, batch_size=cand.batch_size,
            spectral=cand.spectral,
        )
        sync(device)
        cand.build_seconds = time.perf_counter() - started

        # warm-up (cold caches, CUDA kernels, cudnn) and the check that the timers are transparent
        warm_start = time.perf_counter()
        _, plain = end_to_end(sep, files["warmup"], out_dir)
        if cuda:
            warm_network(sep, input_samples, input_rate)
        check_clock = PhaseClock(cuda)
        with instrumented(check_clock) as missing:
            _, wrapped = end_to_end(sep, files["warmup"], out_dir, check_clock)
        cand.warmup_seconds = time.perf_counter() - warm_start
        cand.unwrapped = missing
        cand.wrap_check = compare_stems(plain, wrapped)
        cand.wrap_check["network_calls"] = check_clock.calls[NETWORK_PHASE]
        del plain, wrapped

        stems: dict[str, np.ndarray] | None = None
        for repeat in range(args.repeats):
            if cand.runs:
                estimate = statistics.median(r.total for r in cand.runs)
                if time.perf_counter() + estimate > deadline:
                    log(f"  {cand.label}: budget reached, {len(cand.runs)} of {args.repeats} repeats run")
                    break
            clock = PhaseClock(cuda)
            with instrumented(clock):
                total, stems = end_to_end(sep, files["input"], out_dir, clock)
            phases = dict(clock.seconds)
            phases["other"] = total - sum(v for k, v in phases.items() if k != "other")
            cand.runs.append(RunResult(total, phases, dict(clock.calls), clock.windows))
            log(f"  {cand.label}: run {repeat + 1}: {total:.2f} s")
        if cuda:
            cand.peak_gpu_mib = torch.cuda.max_memory_allocated(device) / MIB
            cand.peak_gpu_reserved_mib = torch.cuda.max_memory_reserved(device) / MIB
        if stems is not None and reference is not None:
            cand.snr_db = {name: snr_db(reference[name], stems[name]) for name in reference}
        return stems
    except Exception as exc:  # noqa: BLE001 -- one failing candidate must not stop the others
        cand.error = one_line(exc)
        if args.verbose:
            traceback.print_exc()
        return None
    finally:
        del sep
        if cuda:
            gc.collect()
            try:
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001 -- a broken context must not hide the first error
                pass
        cand.wall_seconds = time.perf_counter() - started


# -- reporting -------------------------------------------------------------------------------------


def summary(cand: Candidate, audio_seconds: float) -> dict[str, Any]:
    """The candidate's numbers (medians / means over its runs) for the table and the JSON."""
    row: dict[str, Any] = {
        "candidate": cand.label,
        "precision": cand.precision,
        "resolved_precision": cand.resolved,
        "batch_size": cand.batch_size,
        "status": "failed" if cand.error else "skipped" if cand.skipped else "ok" if cand.runs else "no runs",
        "error": cand.error,
        "skipped": cand.skipped,
        "build_seconds": cand.build_seconds,
        "warmup_seconds": cand.warmup_seconds,
        "wall_seconds": cand.wall_seconds,
        "wrap_check": cand.wrap_check,
        "unwrapped_functions": cand.unwrapped,
        "peak_gpu_mib": cand.peak_gpu_mib,
        "peak_gpu_reserved_mib": cand.peak_gpu_reserved_mib,
        "snr_db_vs_fp32": cand.snr_db,
        "runs": [
            {"seconds": r.total, "phases": r.phases, "calls": r.calls, "windows": r.windows} for r in cand.runs
        ],
    }
    if not cand.runs:
        return row
    median = statistics.median(r.total for r in cand.runs)
    mean_total = statistics.fmean(r.total for r in cand.runs)
    phases = {p: statistics.fmean(r.phases[p] for r in cand.runs) for p in PHASES}
    network = phases[NETWORK_PHASE]
    windows = cand.runs[-1].windows
    row.update({
        "seconds_median": median,
        "seconds_all": [r.total for r in cand.runs],
        "rtf": audio_seconds / median if median > 0 else None,
        "phase_seconds_mean": phases,
        "phase_percent": {p: 100 * v / mean_total for p, v in phases.items()} if mean_total > 0 else None,
        "windows": windows,
        "windows_per_second": windows / network if network > 0 else None,
    })
    return row


def fmt(value: float | None, spec: str, width: int) -> str:
    """``value`` formatted, or ``-`` when missing/non-finite, right-aligned in ``width``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        text = "inf" if value is not None and value > 0 else "-"
        return text.rjust(width)
    return format(value, spec).rjust(width)


def breakdown_cells(row: dict[str, Any]) -> list[str]:
    """``seconds (percent%)`` of each phase of a measured row."""
    seconds, percent = row["phase_seconds_mean"], row["phase_percent"] or {}
    return [f"{seconds[p]:7.3f} ({percent.get(p, math.nan):4.1f}%)" for p in PHASES]


def print_tables(rows: list[dict[str, Any]], audio_seconds: float) -> None:
    """Summary table and per-phase breakdown table."""
    stems = next((list(r["snr_db_vs_fp32"]) for r in rows if r.get("snr_db_vs_fp32")), [])
    snr_header = f"SNR dB {'/'.join(stems)}" if stems else "SNR dB"
    log()
    log(f"end to end ({audio_seconds:.1f} s of audio; median of the repeats; SNR against the fp32 reference)")
    log(
        f"{'candidate':<{NAME_WIDTH}} {'seconds':>8} {'RTF':>7} {'windows/s':>10} {'peak GPU MiB':>13} "
        f"{snr_header:>27}  note"
    )
    for row in rows:
        if row["status"] != "ok":
            log(f"{row['candidate']:<{NAME_WIDTH}} {row['status']}: {row['error'] or row['skipped'] or ''}")
            continue
        snr = row["snr_db_vs_fp32"]
        snr_text = "/".join(fmt(v, ".1f", 0) for v in snr.values()) if snr else "-"
        check = row["wrap_check"]
        note = "" if check.get("identical") else f"timed≠plain (max |Δ| {check.get('max_abs_diff', math.nan):.2g})"
        if row["unwrapped_functions"]:
            note += f" not timed: {', '.join(row['unwrapped_functions'])}"
        log(
            f"{row['candidate']:<{NAME_WIDTH}} {fmt(row['seconds_median'], '.2f', 8)} {fmt(row['rtf'], '.1f', 6)}x "
            f"{fmt(row['windows_per_second'], '.2f', 10)} {fmt(row['peak_gpu_mib'], '.0f', 13)} {snr_text:>27}  {note}"
        )
    log()
    log("breakdown (mean of the repeats): seconds (% of end to end)")
    log(f"{'candidate':<{NAME_WIDTH}} " + " ".join(f"{p:>15}" for p in PHASES) + f" {'sum %':>6}")
    for row in rows:
        if row["status"] != "ok":
            continue
        total = sum((row["phase_percent"] or {}).values())
        cells = " ".join(f"{c:>15}" for c in breakdown_cells(row))
        log(f"{row['candidate']:<{NAME_WIDTH}} {cells} {total:6.1f}")


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as strings (``inf``), so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return json_safe(value.item())
    return value


def ordered(asked_order: list[Candidate], audio_seconds: float) -> list[dict[str, Any]]:
    """Summaries of the candidates measured, failed or skipped so far, in the order asked."""
    return [summary(c, audio_seconds) for c in asked_order if c.runs or c.error or c.skipped]


def write_report(
    path: Path,
    env: dict[str, Any],
    args: argparse.Namespace,
    audio_seconds: float,
    rate: int,
    rows: list[dict[str, Any]],
) -> bool:
    """Write everything to ``path`` as JSON (atomically); False (and a line) when it cannot."""
    report = {
        "environment": env,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "audio_seconds": audio_seconds,
        "sample_rate": rate,
        "phases": list(PHASES),
        "reference": next(
            (r["candidate"] for r in rows if r["resolved_precision"] == REFERENCE_PRECISION and r["status"] == "ok"),
            None,
        ),
        "script_seconds": time.perf_counter() - SCRIPT_START,
        "candidates": rows,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(json.dumps(json_safe(report), indent=1))
        partial.replace(path)
    except OSError as exc:
        log(f"could not write {path}: {one_line(exc)}")
        return False
    return True


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, cpu, mps or auto (default cuda)")
    parser.add_argument("--seconds", type=float, default=180.0, help="input length (default 180)")
    parser.add_argument("--arch", default="123812", help="net capacity name (default 123812)")
    parser.add_argument("--params", default="4band_v2", help="model params (default 4band_v2)")
    parser.add_argument("--precision", nargs="+", default=["auto", "fp16", "bf16", "fp32"], help="precisions")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32], help="windows per forward call")
    parser.add_argument("--spectral", nargs="+", default=["auto"], choices=["auto", "host", "device"],
                        help="where analysis/synthesis run (default auto: the device on CUDA)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per candidate (default 2)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_SECONDS,
                        help=f"wall seconds for the whole script (default {DEFAULT_BUDGET_SECONDS:g})")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="set torch.backends.cudnn.benchmark (uvrsep itself leaves it off)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every number to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failed candidates")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if any(b < 1 for b in args.batch_sizes):
        parser.error("--batch-sizes must be >= 1")
    return args


def plan_candidates(args: argparse.Namespace, device: torch.device) -> list[Candidate]:
    """Candidates in the order asked; precisions that resolve to one already listed are dropped."""
    seen: dict[str, str] = {}
    cands: list[Candidate] = []
    for precision in dict.fromkeys(args.precision):
        try:
            resolved = resolve_precision(precision, device)
        except Exception as exc:  # noqa: BLE001
            log(f"precision {precision}: skipped ({one_line(exc)})")
            continue
        if resolved in seen:
            log(f"precision {precision}: resolves to {resolved}, already measured as '{seen[resolved]}'; skipped")
            continue
        seen[resolved] = precision
        cands.extend(
            Candidate(precision, resolved, b, spectral)
            for spectral in dict.fromkeys(args.spectral)
            for b in dict.fromkeys(args.batch_sizes)
        )
    return cands


def run_order(cands: list[Candidate]) -> list[Candidate]:
    """``cands`` with the first fp32 one (the SNR reference) moved to the front."""
    ref = next((c for c in cands if c.resolved == REFERENCE_PRECISION), None)
    return ([ref] + [c for c in cands if c is not ref]) if ref is not None else list(cands)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and device facts for the report."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        env.update({
            "device_name": torch.cuda.get_device_name(device),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "gpu_memory_mib": torch.cuda.get_device_properties(device).total_memory / MIB,
        })
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = SCRIPT_START + args.budget
    try:
        device = resolve_device(args.device)
    except Exception as exc:  # noqa: BLE001 -- SettingsError: no CUDA, unknown device
        print(f"bench_rtf: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        params = load_params(args.params)
        config = config_from_name(args.arch, bins=params.bins)
    except Exception as exc:  # noqa: BLE001 -- unknown params / arch
        print(f"bench_rtf: {one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    if device.type == "cuda" and args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True

    env = environment(device)
    log(f"device {device} ({env['device_name']}), torch {env['torch']}"
        + (f", CUDA {env['cuda']}, cudnn {env['cudnn']} (benchmark {env['cudnn_benchmark']}, "
           f"tf32 convs {env['cudnn_allow_tf32']})" if device.type == "cuda" else "")
        + f", {env['cpu_count']} CPUs, {env['torch_threads']} torch threads")

    model = random_state_dict(config, seed=WEIGHT_SEED)
    test_signal = load_bench_signal()
    wave, rate = test_signal(args.seconds)
    warm_wave, _ = test_signal(min(WARMUP_SECONDS, args.seconds))
    audio_seconds = wave.shape[1] / rate
    asked_order = plan_candidates(args, device)
    cands = run_order(asked_order)
    log(f"input {audio_seconds:.1f} s stereo {rate} Hz, net {args.arch}, params {args.params}, "
        f"{len(cands)} candidates × {args.repeats} repeats, budget {args.budget:g} s")

    with tempfile.TemporaryDirectory(prefix="bench_rtf_") as tmp:
        folder = Path(tmp)
        files = {"input": folder / INPUT_NAME, "warmup": folder / WARMUP_NAME}
        write_audio(files["input"], wave, rate)
        write_audio(files["warmup"], warm_wave, rate)
        input_samples = wave.shape[1]
        del wave, warm_wave
        out_dir = folder / "stems"
        out_dir.mkdir()

        reference: dict[str, np.ndarray] | None = None
        previous_cost: float | None = None
        for cand in cands:
            if previous_cost is not None and time.perf_counter() + previous_cost > deadline:
                cand.skipped = f"time budget ({args.budget:g} s) would be exceeded"
                log(f"{cand.label}: skipped ({cand.skipped})")
                continue
            log(f"{cand.label}: ...")
            is_reference = reference is None and cand.resolved == REFERENCE_PRECISION
            stems = measure(cand, model, args, device, files, out_dir, input_samples, rate, reference, deadline)
            if is_reference and stems is not None:
                reference = stems
                cand.snr_db = {name: float("inf") for name in stems}
            previous_cost = cand.wall_seconds
            row = summary(cand, audio_seconds)
            if cand.error:
                log(f"{cand.label}: FAILED ({cand.error})")
            elif cand.runs:
                check = "identical" if cand.wrap_check.get("identical") else (
                    f"DIFFERENT (max |Δ| {cand.wrap_check.get('max_abs_diff', math.nan):.3g})")
                log(f"{cand.label}: {row['seconds_median']:.2f} s, RTF {row['rtf']:.1f}x, "
                    f"warm-up {cand.warmup_seconds:.1f} s, timed vs plain stems {check}")
                parts = ", ".join(f"{p} {c.strip()}" for p, c in zip(PHASES, breakdown_cells(row)))
                log(f"  {cand.label}: {parts}")
            if args.json:  # after each candidate, so a run killed at its time limit leaves its numbers
                write_report(args.json, env, args, audio_seconds, rate, ordered(asked_order, audio_seconds))

    rows = ordered(asked_order, audio_seconds)
    print_tables(rows, audio_seconds)
    elapsed = time.perf_counter() - SCRIPT_START
    log(f"\ntotal script time {elapsed:.1f} s")

    if args.json and not write_report(args.json, env, args, audio_seconds, rate, rows):
        return 1
    if args.json:
        log(f"wrote {args.json}")
    ok = any(r["status"] == "ok" for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
