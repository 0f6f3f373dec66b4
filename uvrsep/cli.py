"""The ``uvrsep`` command line (Typer).

``uvrsep split INPUTS...`` loads one model and separates every input; ``uvrsep models ...``
manages model files; ``uvrsep demo`` separates a clip the package generates itself.

Exit codes: 0 every input succeeded (or was skipped because its outputs exist), 1 some inputs
failed (the others were still processed), 2 usage errors (bad option value, unusable model,
nothing matched the inputs), 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP (outputs being
written are discarded). Human messages go to stderr; ``--json`` puts one
JSON document on stdout.
"""

from __future__ import annotations

import contextlib
import enum
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer

from . import __version__
from .audio import INTEGER_PEAK, MAX_INPUT_RATE, MIN_INPUT_RATE, MP3_RATES, output_format_from_path, storable_rate
from .cli_combine import combine_command
from .cli_eval import eval_command
from .cli_models import models_app
from .cli_serve import serve_command
from .cli_train import train_command
from .pretrained import BUNDLED_NAME, better_model_hint
from .errors import UvrsepError

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_OUTPUT_DIR = Path("separated")
#: With ``--ray`` the driver builds the separator only to check the settings: on the CPU, in
#: float32 (``--precision fp16`` is for the workers' GPUs).
RAY_DRIVER_CHECK = {"device": "cpu", "precision": "fp32"}


class OutputFormat(str, enum.Enum):
    wav = "wav"
    flac = "flac"
    mp3 = "mp3"
    ogg = "ogg"


class Subtype(str, enum.Enum):
    PCM_16 = "PCM_16"
    PCM_24 = "PCM_24"
    FLOAT = "FLOAT"


class HighEndMode(str, enum.Enum):
    mirroring = "mirroring"
    none = "none"


class PrecisionMode(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class CompileChoice(str, enum.Enum):
    auto = "auto"
    on = "on"
    off = "off"


class SpectralChoice(str, enum.Enum):
    auto = "auto"
    host = "host"
    device = "device"


class ChannelsMode(str, enum.Enum):
    input = "input"
    stereo = "stereo"


class ClipMode(str, enum.Enum):
    clip = "clip"
    rescale = "rescale"
    none = "none"


class UsageProblem(UvrsepError):
    """A bad option value or an unusable INPUTS list (exit code 2)."""


class InputProblem(UvrsepError):
    """One input that is not a readable regular file (that input fails, exit code 1)."""


app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Separate vocals and instruments with Ultimate Vocal Remover v5 VR-architecture models.",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"uvrsep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """uvrsep: fast, faithful UVR v5 VR-architecture separation."""


# -- reporting ---------------------------------------------------------------------------------


@dataclass
class Reporter:
    """Human messages on stderr; progress bars only on a TTY and not when quiet."""

    quiet: bool = False
    verbose: bool = False
    bars: bool = field(default=False)

    def __post_init__(self) -> None:
        self.bars = not self.quiet and sys.stderr.isatty()

    def info(self, message: str) -> None:
        if not self.quiet:
            self._write(message)

    def debug(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self._write(message)

    def error(self, message: str) -> None:
        self._write(f"error: {message}")

    def warn(self, message: str) -> None:
        if not self.quiet:
            self._write(f"warning: {message}")

    @staticmethod
    def _write(message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)


# -- option parsing ---------------------------------------------------------------------------


def parse_sample_rate(value: str) -> str | int:
    """``input``, ``model`` or a positive integer rate."""
    if value in ("input", "model"):
        return value
    try:
        rate = int(value)
    except ValueError:
        rate = 0
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise UsageProblem(
            f"--sample-rate must be 'input', 'model' or a rate of {MIN_INPUT_RATE}–{MAX_INPUT_RATE} Hz, got '{value}'"
        )
    return rate


def parse_stems(value: str | None, names: tuple[str, str]) -> list[str]:
    """``--stems`` → stem names to write (subset of ``names``, in the model's order)."""
    if value is None or not value.strip():
        return list(names)
    wanted = []
    for item in (part.strip().lower() for part in value.split(",") if part.strip()):
        name = {"primary": names[0], "secondary": names[1]}.get(item, item)
        if name not in names:
            raise UsageProblem(
                f"--stems: unknown stem '{item}'; this model writes {names[0]} (primary) and {names[1]} (secondary)"
            )
        if name not in wanted:
            wanted.append(name)
    if not wanted:
        raise UsageProblem(f"--stems '{value}' names no stem; use e.g. --stems {names[0]} or --stems primary")
    return [name for name in names if name in wanted]


def _check_format(fmt: OutputFormat, subtype: Subtype) -> str | None:
    """Soundfile subtype to write (None: the format's own codec)."""
    if fmt in (OutputFormat.mp3, OutputFormat.ogg):
        return None
    if fmt is OutputFormat.flac and subtype is Subtype.FLOAT:
        raise UsageProblem("FLAC cannot store FLOAT samples; use --subtype PCM_16 or PCM_24, or -f wav")
    return subtype.value


# -- the split command ---------------------------------------------------------------------------


@dataclass
class FileResult:
    """One input's line of the ``--json`` manifest."""

    input: str
    status: str = "pending"  # ok | skipped | failed
    outputs: dict[str, str] = field(default_factory=dict)
    skipped_outputs: list[str] = field(default_factory=list)
    duration: float | None = None
    seconds: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    frames: int | None = None
    clipped: dict[str, int] = field(default_factory=dict)
    nonfinite: int = 0
    rescaled_by: float | None = None
    error: str | None = None


def _rescale_to_full_scale(stems: dict[str, np.ndarray], integer: bool) -> tuple[dict[str, np.ndarray], float | None]:
    """``--clip rescale``: scale every stem of a file by one factor so the loudest peak is full
    scale (the stems keep summing to the mixture); ``(stems, None)`` when nothing exceeds it."""
    peak = max((float(np.max(np.abs(s))) if s.size else 0.0) for s in stems.values())
    limit = INTEGER_PEAK["PCM_16"] if integer else 1.0
    if peak <= limit:
        return stems, None
    factor = limit / peak
    # float32 rounding can put the loudest sample one ulp above the limit: keep it at the limit
    return {name: np.clip(stem * factor, -limit, limit) for name, stem in stems.items()}, factor


def _resolve_model(model: Optional[str], params: Optional[str], primary_stem: Optional[str], offline: bool, progress: bool):
    from .pretrained import resolve_model

    return resolve_model(model, params, primary_stem, offline=offline, progress=progress)


@app.command(no_args_is_help=True)
def split(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="INPUTS", help="Audio/video files, folders, or glob patterns (quoted globs are expanded too).", show_default=False),
    inputs_from: Optional[Path] = typer.Option(None, "--inputs-from", help="A text file naming one input file per line (taken as they are: no globbing, no folders), for corpora too large for a command line; '-' reads stdin."),
    model: Optional[list[str]] = typer.Option(None, "-m", "--model", help="Registry model name (see `uvrsep models list`) or path to a .pth; repeat it for an ensemble (see --ensemble). Default: the recommended model if cached, else the bundled one."),
    ensemble: Optional[str] = typer.Option(None, "--ensemble", help="With several -m: how each stem combines the models' same stems: max_spec, min_spec, avg_spec, avg_wave, median_wave, max_min (primary max, secondary min; UVR's default, used when omitted)."),
    params: Optional[str] = typer.Option(None, "-p", "--params", help="Model-params name (e.g. 4band_v2) or JSON path. Default: known from the model."),
    primary_stem: Optional[str] = typer.Option(None, "--primary-stem", help="Primary stem of a model of unknown origin (e.g. Vocals, 'No Echo'). Default: from the model, else Instrumental."),
    aggressiveness: int = typer.Option(10, "-a", "--aggressiveness", min=0, max=100, help="0-100: how hard the primary stem is pushed (mask exponent 1+a/100 above --split-bin, 1+a/300 below)."),
    split_bin: Optional[int] = typer.Option(None, "--split-bin", min=0, help="Bin where the strong aggressiveness exponent starts. Default: from params (band 1's crop_stop)."),
    window_size: int = typer.Option(512, "-w", "--window-size", help="Frames per network window: 320, 512, 1024 or any multiple of 16 above 2x the net's offset."),
    batch_size: Optional[int] = typer.Option(None, "-b", "--batch-size", min=1, help="Windows per network call. Default: chosen for the device."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Test-time augmentation: a second pass shifted by half a window, averaged (2x slower)."),
    postprocess: bool = typer.Option(False, "--postprocess/--no-postprocess", help="Reference postprocess that silences short residual artifacts in the primary stem."),
    postprocess_threshold: float = typer.Option(0.2, "--postprocess-threshold", min=0.0, max=1.0, help="Threshold of --postprocess."),
    high_end: HighEndMode = typer.Option(HighEndMode.mirroring, "--high-end", help="Top-band high end: mirroring (reference default) or none."),
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: PrecisionMode = typer.Option(PrecisionMode.auto, "--precision", help="fp32 = exact reference arithmetic; auto = fastest mode that stays within 40 dB of fp32 (fp16 on CUDA, bf16 on CPUs with native bfloat16, else fp32)."),
    compile_mode: CompileChoice = typer.Option(CompileChoice.auto, "--compile", help="torch.compile the network on the CPU (cached under $UVRSEP_HOME/compile): auto = once the eager network time is enough to pay for compiling (the windows run so far plus the current input's, times the seconds an eager window took), except with --precision fp32 (exact); on; off."),
    spectral: SpectralChoice = typer.Option(SpectralChoice.auto, "--spectral", help="Where STFT, resampling and synthesis run: host (numpy, the reference's arithmetic), device (torch beside the network), auto (device on CUDA when the params allow)."),
    output_dir: Path = typer.Option(DEFAULT_OUTPUT_DIR, "-o", "--output-dir", help="Folder for the stems."),
    filename: str = typer.Option("{track}_{stem}.{ext}", "--filename", help="Output name template; fields {track} {stem} {ext} {model} {parent}."),
    stems: Optional[str] = typer.Option(None, "--stems", help="Stems to write: comma list of stem names, or primary/secondary. Default: both."),
    fmt: OutputFormat = typer.Option(OutputFormat.wav, "-f", "--format", help="Output format."),
    subtype: Subtype = typer.Option(Subtype.PCM_16, "--subtype", help="Sample format for wav/flac (flac: PCM only)."),
    sample_rate: str = typer.Option("input", "--sample-rate", help="Output rate: input (keep the input's), model (the params' rate, as the reference) or an integer."),
    channels: ChannelsMode = typer.Option(ChannelsMode.input, "--channels", help="input: mono in, mono out; stereo: always stereo (as the reference)."),
    clip: ClipMode = typer.Option(ClipMode.clip, "--clip", help="Samples beyond full scale: clip, rescale (whole file, all stems by one factor) or none (float outputs keep them)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: skip them, so a rerun resumes a batch)."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Descend into subfolders of folder inputs."),
    offline: bool = typer.Option(False, "--offline", help="Never download (also UVRSEP_OFFLINE=1)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON manifest on stdout (per input: status, outputs, duration, seconds, error)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress or info messages (errors still go to stderr)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="More detail, tracebacks of internal errors."),
    ray: bool = typer.Option(False, "--ray", help="Run the batch on a Ray cluster (pip install 'uvrsep[ray]'): the one in --ray-address or $RAY_ADDRESS, else a local one on this machine's CPUs and GPUs. --ray=ADDRESS names the cluster too."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. auto, HOST:6379, ray://HOST:10001). Default: $RAY_ADDRESS, else a local cluster."),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", min=1, help="Separator workers (each loads the model once). Default: one per GPU share, else one per --ray-cpus-per-worker CPUs."),
    ray_gpus_per_worker: Optional[float] = typer.Option(None, "--ray-gpus-per-worker", min=0.0, max=1.0, help="GPU share of a worker (0.5: two workers per GPU). Default: 1 on a cluster with GPUs, else 0 (CPU workers)."),
    ray_cpus_per_worker: float = typer.Option(2.0, "--ray-cpus-per-worker", min=0.5, help="CPUs reserved by a worker (its torch threads)."),
    ray_io_tasks: Optional[bool] = typer.Option(None, "--ray-io-tasks/--no-ray-io-tasks", help="With --ray, decode the inputs and encode and write the stems in CPU tasks apart from the separator workers, on the cluster's other cores. Default: on when the workers have GPUs."),
    ray_split_minutes: Optional[float] = typer.Option(None, "--ray-split-minutes", min=0.1, help="With --ray, a file longer than this is cut into parts of about this many minutes of audio, separated by several workers at once and joined in order (the same stems). Default: 5."),
) -> None:
    """Separate each input into stems (default: the model's primary stem and its complement)."""
    from .audio import AUDIO_EXTENSIONS
    from .inputs import (
        InputError, check_template, expand_inputs, find_collisions, output_path, own_outputs, read_inputs_file,
    )

    report = Reporter(quiet=quiet, verbose=verbose)
    sf_subtype = _check_format(fmt, subtype)
    rate_choice = parse_sample_rate(sample_rate)
    if fmt.value == "mp3" and isinstance(rate_choice, int) and rate_choice not in MP3_RATES:
        raise UsageProblem(
            f"--sample-rate {rate_choice}: mp3 cannot store it; use one of {', '.join(map(str, MP3_RATES))}, or -f flac"
        )
    check_template(filename, fmt.value)
    ray_only = (ray_address, ray_workers, ray_gpus_per_worker, ray_split_minutes, ray_io_tasks)
    if any(value is not None for value in ray_only) and not ray:
        raise UsageProblem("--ray-address, --ray-workers, --ray-gpus-per-worker, --ray-split-minutes and --ray-io-tasks go with --ray")
    if ray:
        from .ray_batch import import_ray

        import_ray()  # before any work: a missing extra is a usage error
    if not inputs and inputs_from is None:
        raise UsageProblem("no INPUTS: name files, folders or patterns, or --inputs-from FILE")
    expanded = expand_inputs(inputs or [], recursive, AUDIO_EXTENSIONS)
    if inputs_from is not None:
        listed = read_inputs_file(inputs_from)
        expanded.files.extend(listed.files)
        expanded.problems.extend(listed.problems)
    if not expanded.files:
        raise UsageProblem("nothing to do: " + "; ".join(message for _, message in expanded.problems))

    from .api import Separator
    from .ensemble import ENSEMBLE_ALGORITHMS, Ensemble

    models = model or [None]
    if len(models) > 1 and ray:
        raise UsageProblem("--ray runs one model; several -m (an ensemble) run without --ray for now")
    if ensemble is not None and len(models) < 2:
        raise UsageProblem("--ensemble combines several models: give two or more -m")
    if ensemble is not None and ensemble not in ENSEMBLE_ALGORITHMS:
        raise UsageProblem(f"--ensemble must be one of {', '.join(ENSEMBLE_ALGORITHMS)}, got '{ensemble}'")
    members = [_resolve_model(name, params, primary_stem, offline, progress=not quiet) for name in models]
    resolved = members[0]
    if any(member.source == BUNDLED_NAME for member in members):
        report.info(better_model_hint())
    separator_options: dict[str, Any] = dict(
        device=device,
        precision=precision.value,
        window_size=window_size,
        batch_size=batch_size,
        aggressiveness=aggressiveness,
        split_bin=split_bin,
        tta=tta,
        postprocess=postprocess,
        postprocess_threshold=postprocess_threshold,
        high_end=high_end.value,
        spectral=spectral.value,
        compile=compile_mode.value,
    )
    # with --ray the workers run the network; here it only checks the settings, on the CPU
    separators = [
        Separator(
            member.state_dict, member.params, primary_stem=member.primary_stem,
            **{**separator_options, **(RAY_DRIVER_CHECK if ray else {})},
        )
        for member in members
    ]
    separator: Any = separators[0] if len(separators) == 1 else Ensemble(separators, ensemble or "max_min")
    wanted = parse_stems(stems, separator.stem_names)
    if len(separators) > 1:
        _check_shared_stems(separator, members, wanted)
    model_name = "+".join(member.name for member in members)
    plan: dict[Path, dict[str, Path]] = {}
    for path in expanded.files:  # a name that cannot be planned fails alone
        try:
            plan[path] = {stem: output_path(filename, output_dir, path, stem, fmt.value, model_name) for stem in wanted}
        except InputError:
            raise
        except (OSError, ValueError) as exc:
            expanded.problems.append((str(path), f"{path}: cannot name its outputs ({exc})"))
    for _ in range(len(plan)):  # earlier stems found among the inputs (-o = input folder): skip them
        own = own_outputs(plan)
        if not own:
            break
        for path in own:
            report.info(f"{path}: an output of this --filename template, not an input; skipped")
            del plan[path]
    collisions = find_collisions(plan)
    if collisions:
        raise UsageProblem(collisions[0] + (f" (and {len(collisions) - 1} more)" if len(collisions) > 1 else ""))
    lead = separators[0]  # the settings every member shares
    for member in members:
        report.debug(
            f"model {member.name} ({member.arch}, params {member.params.name}, primary {member.primary_stem}) "
            f"on {lead.device}, precision {precision.value}, spectral work on the {lead.spectral.mode}"
        )

    results = [FileResult(input=arg, status="failed", error=message) for arg, message in expanded.problems]
    if not plan and not results:
        raise UsageProblem("nothing to do: every input is an output of this --filename template")
    for message in (r.error for r in results):
        report.error(message or "")
    run = _BatchRun(separator, report, rate_choice, channels, sf_subtype, clip, overwrite)
    manifest_out = sys.stdout
    if ray:
        from .ray_batch import RaySettings, run_on_ray

        cluster = RaySettings(ray_address, ray_workers, ray_gpus_per_worker, ray_cpus_per_worker, ray_split_minutes, ray_io_tasks)
        with contextlib.redirect_stdout(sys.stderr):  # Ray prints its notices on stdout: keep --json's clean
            options = {**separator_options, "primary_stem": resolved.primary_stem}
            results.extend(run_on_ray(run, resolved.state_dict, options, plan, cluster))
    else:
        results.extend(run.process_all(plan))
    failed = sum(r.status == "failed" for r in results)
    if json_out:
        described = [
            {
                "name": member.name,
                "path": str(member.path) if member.path else None,
                "arch": member.arch,
                "params": member.params.name,
                "primary_stem": member.primary_stem,
            }
            for member in members
        ]
        manifest = {
            "version": __version__,
            "model": described[0],
            "models": described,
            "ensemble": (ensemble or "max_min") if len(members) > 1 else None,
            "settings": {
                "aggressiveness": aggressiveness, "split_bin": lead.aggressiveness.split_bin,
                "window_size": window_size, "tta": tta, "postprocess": postprocess,
                "high_end": high_end.value, "precision": precision.value,
                "device": f"ray ({device})" if ray else str(lead.device),
                "spectral": spectral.value if ray else lead.spectral.mode,
                "compile": compile_mode.value if ray else lead.runner.compile,
                "format": fmt.value, "subtype": sf_subtype, "sample_rate": sample_rate,
                "channels": channels.value, "clip": clip.value,
            },
            "files": [vars(r) for r in results],
            "ok": sum(r.status == "ok" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "failed": failed,
        }
        manifest_out.write(json.dumps(manifest, indent=1) + "\n")
    if len(results) > 1:
        report.info(
            f"done: {sum(r.status == 'ok' for r in results)} ok, "
            f"{sum(r.status == 'skipped' for r in results)} skipped, {failed} failed"
        )
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _check_shared_stems(ensemble: Any, members: list[Any], wanted: list[str]) -> None:
    """Every model of an ensemble must give the stems written (``--stems`` may pick shared ones)."""
    missing = [stem for stem in wanted if stem not in ensemble.shared]
    if not missing:
        return
    first = ensemble.members[0]
    separator, member = next((s, m) for s, m in zip(ensemble.members, members) if missing[0] not in s.stem_names)
    shared = ensemble.shared
    hint = f"pick one they share with --stems {shared[0]}" if shared else "they share none: ensemble models of one kind"
    raise UsageProblem(
        f"model {member.name} writes {'/'.join(separator.stem_names)}, not {missing[0]} "
        f"(model {members[0].name} writes {'/'.join(first.stem_names)}); {hint}"
    )


@dataclass
class _BatchRun:
    """The per-file loop of ``split``: read, separate, write, record."""

    separator: Any
    report: Reporter
    rate_choice: str | int
    channels: ChannelsMode
    subtype: str | None
    clip: ClipMode
    overwrite: bool
    #: Called with (windows done, windows planned) as an input's network windows finish (the
    #: server's job progress); it may raise to stop the input (its outputs are discarded).
    on_progress: Callable[[int, int], None] | None = None

    def process_all(self, plan: dict[Path, dict[str, Path]]) -> list[FileResult]:
        from tqdm import tqdm

        results = []
        with tqdm(total=len(plan), desc="files", unit="file", file=sys.stderr, disable=not self.report.bars or len(plan) < 2) as bar:
            for path, outputs in plan.items():
                results.append(self.process(path, outputs))
                bar.update(1)
        return results

    def process(self, path: Path, outputs: dict[str, Path]) -> FileResult:
        """One input: skipped when its outputs exist, else separated and written."""
        result, todo = self.precheck(path, outputs)
        return result if not todo else self.separate(path, todo, result)

    def precheck(self, path: Path, outputs: dict[str, Path]) -> tuple[FileResult, dict[str, Path]]:
        """The input's result so far and the outputs still to write (none: the result is final,
        skipped because they exist or failed because one cannot be written)."""
        result = FileResult(input=str(path))
        blocked = [p for p in outputs.values() if p.exists() and not p.is_file()]
        if blocked:  # a folder (or device) where a stem goes is not a finished output
            result.status = "failed"
            result.error = f"{blocked[0]}: exists and is not a file; move it or choose another -o or --filename"
            self.report.error(result.error)
            return result, {}
        todo = outputs if self.overwrite else {s: p for s, p in outputs.items() if not p.exists()}
        result.skipped_outputs = [str(p) for s, p in outputs.items() if s not in todo]
        if not todo:
            result.status = "skipped"
            result.outputs = {s: str(p) for s, p in outputs.items()}
            self.report.info(f"{path}: skipped, outputs exist (use --overwrite to replace)")
        return result, todo

    def separate(
        self, path: Path, todo: dict[str, Path], result: FileResult, opened: "OpenedInput | None" = None
    ) -> FileResult:
        """Separate an input into the outputs ``todo``, recording the outcome in ``result``
        (``opened``: the input already opened by :meth:`open_input`, closed here)."""
        result = self.attempt(path, result, lambda: self._separate_and_write(path, todo, result, opened))
        if result.status == "failed":
            self.report.error(result.error or "")
        else:
            self.report.info(f"{path}: {', '.join(result.outputs.values())} ({result.seconds:.1f} s)")
        return result

    def attempt(self, path: Path, result: FileResult, action: Callable[[], None]) -> FileResult:
        """Run one step of an input's work; ``result`` becomes ok, or failed with the one-line
        message of what went wrong (nothing but an interrupt escapes), and gets its time."""
        from .inputs import input_problem

        start = time.perf_counter()
        try:
            problem = input_problem(path)  # listed inputs (--inputs-from) were not looked at yet
            if problem:
                raise InputProblem(problem)
            action()
            result.status = "ok"
        except KeyboardInterrupt:
            raise
        except UvrsepError as exc:
            result.status, result.error = "failed", str(exc)
        except MemoryError:
            result.status, result.error = "failed", f"{path}: out of memory; try a smaller --batch-size or --window-size"
        except OSError as exc:
            result.status, result.error = "failed", f"{path}: {exc.strerror or exc}"
        except Exception as exc:  # an internal error must not sink the batch
            result.status, result.error = "failed", f"{path}: internal error ({type(exc).__name__}: {exc}); please report it"
            if self.report.verbose:
                traceback.print_exc(file=sys.stderr)
        result.seconds = round(time.perf_counter() - start, 3)
        return result

    def open_input(
        self, path: Path, todo: dict[str, Path], result: FileResult, model_rate: int | None = None
    ) -> "OpenedInput":
        """Open an input for streaming and decide its stems' rate and channels (recorded in
        ``result``: its duration). ``model_rate``: the model's rate where this run has no
        separator. The caller closes :attr:`OpenedInput.source`."""
        from .stream import open_source

        source, info = open_source(path)
        result.duration = round(info.frames / info.sample_rate, 6) if info.sample_rate else None
        model_rate = model_rate or self.separator.params.sr
        out_rate = int({"input": info.sample_rate, "model": model_rate}.get(self.rate_choice, self.rate_choice))  # type: ignore[arg-type]
        stored = storable_rate(output_format_from_path(next(iter(todo.values()))), out_rate)
        if stored != out_rate:
            self.report.info(f"{path}: mp3 cannot store {out_rate} Hz; writing {stored} Hz (-f flac keeps the rate)")
            out_rate = stored
        mono_output = False if self.channels is ChannelsMode.stereo else None
        out_channels = 1 if (source.channels == 1 and mono_output is None) else 2
        return OpenedInput(source, info, out_rate, mono_output, out_channels)

    def writers(self, stack: contextlib.ExitStack, todo: dict[str, Path], rate: int, channels: int) -> dict[str, Any]:
        """One atomic :class:`~uvrsep.stream.StreamWriter` per output, closed (discarded unless
        committed) with ``stack``."""
        from .stream import StreamWriter

        return {s: stack.enter_context(StreamWriter(p, rate, channels, self.subtype, self.overwrite)) for s, p in todo.items()}

    def record_written(self, result: FileResult, writers: dict[str, Any], rate: int, channels: int, nonfinite: int) -> None:
        """The manifest's facts of committed outputs (and the warnings about them)."""
        result.nonfinite = nonfinite
        if result.nonfinite:
            self.report.warn(f"{result.input}: {result.nonfinite} NaN/Inf samples treated as silence")
        for stem, writer in writers.items():
            result.outputs[stem] = str(writer.path)
            if writer.clipped:
                result.clipped[stem] = int(writer.clipped)
                self.report.warn(f"{writer.path}: {writer.clipped} samples beyond full scale were clipped (try --clip rescale)")
        first = next(iter(writers.values()))
        result.sample_rate, result.channels, result.frames = rate, channels, first.frames

    def _separate_and_write(
        self, path: Path, todo: dict[str, Path], result: FileResult, opened: "OpenedInput | None" = None
    ) -> None:
        """Stream the input through the separator into the outputs (memory stays flat); with
        ``--clip rescale`` the stems are kept in memory, since the factor needs the whole file."""
        from tqdm import tqdm

        opened = opened or self.open_input(path, todo, result)
        info = opened.info
        planned = self.separator.planned_windows(info.frames, info.sample_rate)
        bar = tqdm(
            total=planned, desc=path.name[:30], unit="win", file=sys.stderr, disable=not self.report.bars, leave=False,
        )
        progress = bar.update if self.on_progress is None else _counting(bar.update, planned, self.on_progress)
        with contextlib.ExitStack() as stack:
            stack.enter_context(bar)
            stack.callback(opened.close)
            writers = self.writers(stack, todo, opened.out_rate, opened.out_channels)
            self.separate_into(path, opened, {s: w.write for s, w in writers.items()}, result, progress)
            for writer in writers.values():  # all stems complete: put them in place
                writer.commit()
        self.record_written(result, writers, opened.out_rate, opened.out_channels, opened.nonfinite)

    def separate_into(
        self, path: Path, opened: "OpenedInput", sinks: dict[str, Callable[[np.ndarray], object]], result: FileResult,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """The opened input's stems, block by block, into ``sinks`` (``{stem: callable}``):
        streamed, or whole and rescaled with ``--clip rescale`` (the factor goes in ``result``)."""
        sep, source = self.separator, opened.source
        if self.clip is ClipMode.rescale:
            separation = sep.separate(
                source.read(0, source.frames), source.sample_rate, output_sample_rate=opened.out_rate,
                mono_output=opened.mono_output, progress=progress,
            )
            stems, result.rescaled_by = _rescale_to_full_scale(
                {s: separation.stems[s] for s in sinks}, self.subtype != "FLOAT"
            )
            if result.rescaled_by is not None:
                self.report.warn(f"{path}: stems rescaled by {result.rescaled_by:.3f} to avoid clipping")
            for stem, sink in sinks.items():
                sink(stems[stem])
        else:
            sep.separate_stream(
                source, sinks, output_sample_rate=opened.out_rate, mono_output=opened.mono_output, progress=progress,
            )


def _counting(update: Callable[[int], object], planned: int, report: Callable[[int, int], None]) -> Callable[[int], None]:
    """``update(n)`` that also reports the running total: ``report(done, planned)``."""
    done = 0

    def advance(windows: int) -> None:
        nonlocal done
        update(windows)
        done += windows
        report(done, planned)

    return advance


@dataclass
class OpenedInput:
    """An input opened for streaming (:meth:`_BatchRun.open_input`) and its stems' format."""

    source: Any
    info: Any
    out_rate: int
    mono_output: bool | None
    out_channels: int

    @property
    def nonfinite(self) -> int:
        """NaN/Inf samples seen so far (all of them once the input was read through)."""
        return getattr(self.source, "nonfinite", 0) or self.info.nonfinite

    def close(self) -> None:
        if hasattr(self.source, "close"):
            self.source.close()


# -- demo ----------------------------------------------------------------------------------------


@app.command()
def demo(
    output_dir: Path = typer.Option(Path("separated/demo"), "-o", "--output-dir", help="Folder for the clip and its stems."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress messages."),
) -> None:
    """Generate a short demo song and separate it (no network, no model file needed)."""
    from .demo import run_demo

    for path in run_demo(output_dir, quiet=quiet):
        typer.echo(str(path))


app.command("train", no_args_is_help=True)(train_command)
app.command("eval", no_args_is_help=True)(eval_command)
app.command("combine", no_args_is_help=True)(combine_command)
app.command("serve")(serve_command)
app.add_typer(models_app, name="models", help="List, download and inspect models.")


class Interrupted(KeyboardInterrupt):
    """Raised by :func:`main`'s handlers of SIGINT, SIGTERM and SIGHUP, so that a ``timeout``,
    a closed terminal or a job scheduler runs the cleanup of Ctrl-C (no ``.part`` files left)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Signals turned into :class:`Interrupted` while :func:`main` runs (exit code 128 + number).
INTERRUPT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

#: Seconds after which a signal whose :class:`Interrupted` Python had to swallow (raised inside a
#: weakref callback or ``__del__``) is delivered to the main thread again.
REDELIVER_S = 0.05


@contextlib.contextmanager
def _signals_as_interrupts(caught: list[int]):
    """While inside, the :data:`INTERRUPT_SIGNALS` raise :class:`Interrupted` (and are appended
    to ``caught``); the previous handlers are restored on leaving. One that Python swallowed
    (it arrived inside a weakref callback or ``__del__``) is delivered again after
    :data:`REDELIVER_S`, silently. Only in the main thread. A
    signal the process was started with ignored stays ignored (``nohup`` ignores SIGHUP, a
    shell without job control starts background jobs with SIGINT ignored)."""
    import _thread
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)
        raise Interrupted(signum)

    active = threading.Event()
    active.set()
    lock = threading.Lock()
    retries: list[threading.Timer] = []

    def redeliver(signum: int) -> None:
        with lock:
            if active.is_set():
                _thread.interrupt_main(signum)

    def unraisable(info: Any) -> None:
        # A signal that arrives while Python runs a weakref callback, a __del__ or a module
        # lock's cleanup raises Interrupted where it cannot propagate: Python would print it
        # as "Exception ignored" and carry on with the run. Deliver it again a moment later.
        if isinstance(info.exc_value, Interrupted) and active.is_set():
            retry = threading.Timer(REDELIVER_S, redeliver, (info.exc_value.signum,))
            retry.daemon = True
            retries.append(retry)
            retry.start()
            return
        previous_hook(info)

    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    previous = {}
    for name in INTERRUPT_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) is signal.SIG_IGN:
            continue
        try:
            previous[signum] = signal.signal(signum, handler)
        except (ValueError, OSError):  # pragma: no cover - platform limits
            pass
    try:
        yield
    finally:
        with lock:
            active.clear()
        for retry in retries:
            retry.cancel()
        for signum, old in previous.items():
            signal.signal(signum, old)
        sys.unraisablehook = previous_hook


def _interrupted(signum: int) -> int:
    import signal

    from .audio import remove_temp_files

    remove_temp_files()  # any a signal caught between creating it and guarding it
    try:
        name = signal.Signals(signum).name
    except ValueError:  # pragma: no cover
        name = f"signal {signum}"
    sys.stderr.write(f"interrupted ({name}); no partial outputs were left\n")
    return 128 + signum


def _split_ray_address(argv: list[str]) -> list[str]:
    """``--ray=ADDRESS`` → ``--ray --ray-address ADDRESS`` (options before a ``--`` only)."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + argv[index:]
        if arg.startswith("--ray="):
            out += ["--ray", "--ray-address", arg.split("=", 1)[1]]
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``uvrsep`` console script and tests).

    SIGINT, SIGTERM and SIGHUP stop the run like Ctrl-C: outputs being written are discarded
    and the exit code is 128 + the signal's number (130, 143, 129).
    """
    import signal

    command = typer.main.get_command(app)
    argv = _split_ray_address(sys.argv[1:] if argv is None else list(argv))
    caught: list[int] = []
    try:
        with _signals_as_interrupts(caught):
            command.main(args=argv, prog_name="uvrsep", standalone_mode=True)
    except SystemExit as exc:  # click's own handling: usage errors → 2, --help/--version → 0
        if caught:  # typer turns KeyboardInterrupt into exit 130
            return _interrupted(caught[0])
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        return _interrupted(caught[0] if caught else int(signal.SIGINT))
    except UvrsepError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
