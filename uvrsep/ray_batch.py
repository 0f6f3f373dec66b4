"""``uvrsep split --ray``: a batch on a Ray cluster (Ray Data), resumable and fault-tolerant.

Each input still to do is one row of a Ray Dataset. An actor pool of :class:`SplitWorker`\\ s,
each of which loads the model once in ``__init__`` (Ray Data's batch-inference pattern), runs
the single-process CLI's per-file step on its rows (:meth:`uvrsep.cli._BatchRun.separate`:
streamed decode, separation, atomic write). The stems therefore equal the single-process
CLI's bit for bit, and a file is streamed in chunks inside its worker, so a worker's memory
stays flat. The driver only plans paths, skips inputs whose outputs exist (a rerun resumes),
and collects one manifest row per input as they finish.

A file longer than ``--ray-split-minutes`` (:data:`SPLIT_MINUTES`) does not pin one worker
for its whole length. Its worker plans its chunks (:meth:`uvrsep.api.Separator.stream_plan`)
and makes the stream's analysis-only peak pass, then hands it back; a second Dataset then has
one row per part (consecutive chunks, about that many minutes of audio), which any worker
separates (:meth:`~uvrsep.api.Separator.run_chunks`) into hidden segment files at the
model's rate; one :class:`StemAssembler` actor per file takes the parts in order as they come
back, resamples, encodes and writes the stems atomically
(:class:`~uvrsep.api.StemEmitter`), and deletes each segment once written. Those are the
single-process streamed run's own pieces, so the stems are still the same bit for bit.

Faults:

* a worker that dies (killed, out of memory) is restarted and its rows (files or parts)
  retried, up to :data:`TASK_RETRIES` times per row; a row that still fails is one error row
  (for a part: its file's), the run goes on;
* every stem goes to a hidden temporary file and is renamed only when whole, so no partial
  stem is ever visible; the temporary files and segments of writers that died are removed
  when the run ends (:func:`uvrsep.audio.remove_stale_temp_files`);
* a driver killed or interrupted: rerunning the same command redoes nothing that was written
  (a long file whose stems were not all written is redone whole).

With ``--ray-io-tasks`` (the default when the workers have GPUs), the host work around the
network leaves the workers: a CPU task per input decodes it whole at its own rate
(:func:`decode_inputs`), the worker separates the decoded wave (:meth:`SplitWorker._decoded`:
the same :meth:`~uvrsep.cli._BatchRun.separate_into` as the single-process run, on an
in-memory source), and a CPU task per input encodes and writes its stems atomically
(:func:`write_stems`), in the blocks the worker made. Resampling to the model's rate and back
and the spectral work stay with the network: the engine already overlaps them with it on its
read-ahead and write-behind threads (on a GPU, the spectral work runs there). Inputs longer
than a part, and those of more than two channels (whose downmix acts on the streamed run's
own blocks), go to the worker undecoded, as without the option. The tasks are retried
:data:`TASK_RETRIES` times, like the workers' rows.

``ray`` is imported only in this module (the ``uvrsep[ray]`` extra).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

import numpy as np

from .errors import UvrsepError
from .stream import RawStemFile, raw_stem_view

if TYPE_CHECKING:  # pragma: no cover
    from .cli import FileResult, OpenedInput, _BatchRun

#: What to install for ``--ray``.
RAY_EXTRA = 'pip install "uvrsep[ray]"'
#: Times a row is retried after its worker died (then it is one error row).
TASK_RETRIES = 2
#: Most blocks (Ray Data's unit of work) a batch is cut into: one input per block up to this,
#: so a long file never holds up others queued behind it in the same block.
MAX_BLOCKS = 10_000
#: Seconds of audio per hour (the closing line's figures).
SECONDS_PER_HOUR = 3600.0
#: Minutes of audio per part of a long file (``--ray-split-minutes``): a file with more is cut
#: into parts of about this much, separated on several workers. About a minute of work on two
#: CPU cores, a few seconds on a GPU; parts much shorter spend more on their margins.
SPLIT_MINUTES = 5.0
SECONDS_PER_MINUTE = 60.0
#: CPUs a decode or write task reserves (``--ray-io-tasks``); on planning, the workers leave
#: this much of a node to them.
IO_TASK_CPUS = 1.0
#: The fewest CPUs a worker is planned with when some are left to the decode and write tasks.
MIN_WORKER_CPUS = 1.0


class RayUnavailable(UvrsepError):
    """Ray is not installed, or the cluster cannot be reached or used (exit code 2)."""


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`RayUnavailable` naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] part of the extra
    except ImportError as exc:
        raise RayUnavailable(f"--ray needs Ray Data, which is not installed: {RAY_EXTRA}") from exc
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide a ``--ray`` run goes (``None``: chosen from the cluster)."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 2.0
    split_minutes: float | None = None
    #: Decode and write in CPU tasks apart from the workers (``--ray-io-tasks``); None: when
    #: the workers have GPUs (CPU workers would share their cores with the tasks for nothing).
    io_tasks: bool | None = None

    @property
    def part_minutes(self) -> float:
        return SPLIT_MINUTES if self.split_minutes is None else self.split_minutes


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to rebuild the driver's per-file step (picklable): the driver's
    :class:`~uvrsep.cli._BatchRun` without its separator and reporter, and how to build them."""

    params: Any
    options: dict[str, Any]
    run: "_BatchRun"
    verbose: bool
    part_minutes: float = SPLIT_MINUTES

    @classmethod
    def of(cls, run: "_BatchRun", options: dict[str, Any], part_minutes: float = SPLIT_MINUTES) -> "WorkerJob":
        return cls(
            run.separator.params, options, dataclasses.replace(run, separator=None, report=None), run.report.verbose,
            part_minutes,
        )

    def batch_run(self, state_dict: dict | None) -> "_BatchRun":
        """The driver's per-file step with its own separator (none without ``state_dict``:
        enough to write outputs) and a quiet reporter (the driver reports each row)."""
        from .api import Separator
        from .cli import Reporter

        separator = Separator(state_dict, self.params, **self.options) if state_dict is not None else None
        report = Reporter(quiet=True, verbose=self.verbose)
        return dataclasses.replace(self.run, separator=separator, report=report)


class SplitWorker:
    """One actor of the pool: the model loaded once, then one input (or one part of a long
    input) per row."""

    def __init__(self, job: WorkerJob, model: list[Any], threads: int) -> None:
        """``model``: ``[ObjectRef]`` of the state dict; ``threads``: the worker's CPUs."""
        import torch

        ray = import_ray()
        state = ray.get(model[0])
        torch.set_num_threads(max(1, threads))
        self.run = job.batch_run(state)
        self.part_minutes = job.part_minutes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "part" in batch:
            return self._parts(batch)
        if "state" in batch:
            return self._decoded(batch)
        results, splits = [], []
        for source, outputs in zip(batch["input"], batch["outputs"]):
            result, split = self._whole_or_split(source, outputs)
            results.append(json.dumps(vars(result)))
            splits.append(json.dumps(split) if split else "")
        return {
            "index": np.asarray(batch["index"]),
            "result": np.asarray(results, dtype=object),
            "split": np.asarray(splits, dtype=object),
        }

    def _whole_or_split(self, source: str, outputs: str) -> tuple["FileResult", dict[str, Any] | None]:
        """An input as its own row: separated and written here, or planned for parts (a long
        one: the split returned)."""
        todo = {stem: Path(path) for stem, path in json.loads(outputs).items()}
        result, todo = self.run.precheck(Path(source), todo)  # another run may have written them since
        split: dict[str, Any] | None = None
        if todo:
            split, opened = self._split_plan(Path(source), todo, result)
            if opened is not None:  # short enough: separated here, on the input as opened
                opening = result.seconds or 0.0
                try:
                    result = self.run.separate(Path(source), todo, result, opened)
                finally:
                    opened.close()
                result.seconds = round((result.seconds or 0.0) + opening, 3)
        return result, split

    def _decoded(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows from :func:`decode_inputs`: a decoded input's stems at their rate (for
        :func:`write_stems`); an input it passed on (long, or of more than two channels) as
        its own row; a finished one as it is."""
        from .cli import OpenedInput
        from .stream import ArraySource

        rows = []
        for row in _rows(batch):
            state = json.loads(row["state"])
            if state["stage"] == STAGE_PASSED:
                result, split = self._whole_or_split(row["input"], row["outputs"])
                result.seconds = round((result.seconds or 0.0) + state["seconds"], 3)
                row.update(result=json.dumps(vars(result)), split=json.dumps(split) if split else "", state=_FINISHED)
            elif state["stage"] == STAGE_DECODED:
                path, result = Path(row["input"]), _row_result(row)
                wave, row["audio"] = row["audio"][0], None  # (1, channels, frames) as decoded
                todo = json.loads(row["outputs"])
                blocks: dict[str, list[np.ndarray]] = {stem: [] for stem in todo}
                opened = OpenedInput(
                    ArraySource(wave, state["rate"]), None, state["out_rate"], state["mono_output"], state["out_channels"]
                )
                self.run.attempt(path, result, lambda: self.run.separate_into(path, opened, {s: blocks[s].append for s in blocks}, result))
                del wave, opened
                result.seconds = round((result.seconds or 0.0) + state["seconds"], 3)
                if result.status == "failed":
                    row.update(result=json.dumps(vars(result)), state=_FINISHED)
                else:
                    result.status = "pending"
                    state.update(stage=STAGE_SEPARATED, blocks={s: [b.shape[1] for b in blocks[s]] for s in blocks})
                    empty = np.zeros((state["out_channels"], 0), np.float32)
                    row.update(
                        result=json.dumps(vars(result)), state=json.dumps(state),
                        audio=np.stack([np.concatenate(blocks[s], axis=1) if blocks[s] else empty for s in todo]),
                    )
            rows.append(row)
        return _batch(rows)

    def _split_plan(
        self, path: Path, todo: dict[str, Path], result: "FileResult"
    ) -> tuple[dict[str, Any] | None, "OpenedInput | None"]:
        """``(split, None)`` for a long input: its plan and stream peak (the analysis-only pass),
        for its parts. ``(None, opened)`` for an input short enough to separate here (or with
        ``--clip rescale``, which needs the whole file at once): the input as opened (an ffmpeg
        source counts its frames by decoding it once: not twice), for the caller to separate and
        close. ``(None, None)`` when opening or planning failed (``result`` says why)."""
        from .cli import ClipMode

        split: dict[str, Any] = {}
        kept: list["OpenedInput"] = []

        def plan() -> None:
            sep = self.run.separator
            opened = self.run.open_input(path, todo, result)
            try:
                if self.run.clip is not ClipMode.rescale:
                    stream = sep.stream_plan(opened.source, output_sample_rate=opened.out_rate, mono_output=opened.mono_output)
                    parts = part_ranges(stream, self.part_minutes)
                    if len(parts) >= 2:
                        model = sep.model_rate_source(opened.source)
                        coef = max(sep.chunk_peak(model, stream, index) for index in range(len(stream.chunks)))
                        split.update(
                            coef=coef, parts=parts, plan=plan_to_json(stream), out_rate=opened.out_rate,
                            out_channels=opened.out_channels, nonfinite=opened.nonfinite, duration=result.duration,
                        )
            finally:
                if split:
                    opened.close()
                else:
                    kept.append(opened)

        self.run.attempt(path, result, plan)
        if result.status == "failed":
            for opened in kept:
                opened.close()
            return None, None
        result.status = "pending"
        return (split, None) if split else (None, kept[0])

    def _parts(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Part rows: consecutive chunks of a long input into segment files, one per stem."""
        from .cli import FileResult

        results, segments = [], []
        for source, outputs, first, stop, coef, plan_json in zip(
            batch["input"], batch["outputs"], batch["first"], batch["stop"], batch["coef"], batch["plan"]
        ):
            path, todo = Path(source), {stem: Path(p) for stem, p in json.loads(outputs).items()}
            stream = plan_from_json(plan_json)
            result = FileResult(input=source)
            files: dict[str, str] = {}

            def separate_part() -> None:
                from .audio import SEGMENT_SUFFIX, prepare_output

                sep = self.run.separator
                opened = self.run.open_input(path, todo, result)
                try:
                    model = sep.model_rate_source(opened.source)
                    for stem, target in todo.items():  # a segment beside the stem: the stem's writer checks --overwrite
                        files[stem] = str(prepare_output(target, overwrite=True, suffix=SEGMENT_SUFFIX))
                    raws = {stem: RawStemFile(Path(name)) for stem, name in files.items()}

                    def append(stems: dict[str, np.ndarray]) -> None:
                        for stem, raw in raws.items():
                            raw.write(stems[stem])

                    try:
                        sep.run_chunks(model, stream, int(first), int(stop), float(coef), append)
                    finally:
                        for raw in raws.values():
                            raw.close()
                finally:
                    opened.close()

            self.run.attempt(path, result, separate_part)
            if result.status == "failed":
                _unlink(files.values())
                files = {}
            chunks = stream.chunks[int(first) : int(stop)]
            result.duration = sum(c.stop - c.start for c in chunks) / stream.model_rate  # the bar's audio
            results.append(json.dumps(vars(result)))
            segments.append(json.dumps(files))
        return {
            "index": np.asarray(batch["index"]),
            "part": np.asarray(batch["part"]),
            "result": np.asarray(results, dtype=object),
            "segments": np.asarray(segments, dtype=object),
        }


#: Stages of an input in the pipeline with decode and write tasks (``--ray-io-tasks``).
STAGE_DECODED, STAGE_PASSED, STAGE_SEPARATED, STAGE_FINISHED = "decoded", "passed", "separated", "finished"
_FINISHED = json.dumps({"stage": STAGE_FINISHED})
#: The audio column of a row with no audio (every row's is a 3-D float32 array: Ray Data
#: keeps a column's arrays in one Arrow type).
_NO_AUDIO_SHAPE = (0, 0, 0)


def _rows(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A batch of the staged pipeline as rows; a row's ``audio`` is a float32 array."""
    keys = ("index", "input", "outputs", "result", "split", "state")
    rows = [dict(zip(keys, values)) for values in zip(*(batch[k] for k in keys))]
    for row, audio in zip(rows, batch["audio"]):
        row["audio"] = np.asarray(audio, dtype=np.float32)
    return rows


def _batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Rows of the staged pipeline back into a batch (an input without audio: an empty array)."""
    batch = {k: np.asarray([row[k] for row in rows], dtype=object) for k in ("input", "outputs", "result", "split", "state")}
    batch["index"] = np.asarray([row["index"] for row in rows], dtype=np.int64)
    audio = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        audio[i] = row["audio"] if row.get("audio") is not None else np.zeros(_NO_AUDIO_SHAPE, np.float32)
    batch["audio"] = audio
    return batch


def decode_inputs(batch: dict[str, np.ndarray], job: WorkerJob) -> dict[str, np.ndarray]:
    """The staged pipeline's first step, a CPU task: each input (still to do) decoded whole at
    its own rate, for a worker to separate (:meth:`SplitWorker._decoded`).

    An input longer than a part (``--ray-split-minutes``) is passed on undecoded, to be cut
    into parts, and so is one of more than two channels: its downmix acts on the blocks the
    streamed run reads, so only that run gives the single-process stems. The worker then
    separates the decoded wave as the single-process run separates the file: a ``read`` of
    an input of at most two channels is the same samples whichever span it asks for."""
    from .audio import MAX_CHANNELS

    run = job.batch_run(None)
    rows = []
    for index, source, outputs in zip(batch["index"], batch["input"], batch["outputs"]):
        path = Path(source)
        result, todo = run.precheck(path, {stem: Path(p) for stem, p in json.loads(outputs).items()})
        row: dict[str, Any] = {"index": index, "input": source, "outputs": outputs, "split": "", "audio": None}
        state: dict[str, Any] = {"stage": STAGE_FINISHED}
        if todo:
            row["outputs"] = json.dumps({stem: str(p) for stem, p in todo.items()})

            def decode() -> None:
                opened = run.open_input(path, todo, result, job.params.sr)
                try:
                    audio, seconds = opened.source, result.duration or 0.0
                    if seconds > job.part_minutes * SECONDS_PER_MINUTE or getattr(audio, "file_channels", 0) > MAX_CHANNELS:
                        state["stage"] = STAGE_PASSED
                        return
                    row["audio"] = audio.read(0, audio.frames)[None]
                    state.update(
                        stage=STAGE_DECODED, rate=audio.sample_rate, out_rate=opened.out_rate,
                        mono_output=opened.mono_output, out_channels=opened.out_channels, nonfinite=opened.nonfinite,
                    )
                finally:
                    opened.close()

            run.attempt(path, result, decode)
            if result.status != "failed":
                result.status = "pending"
                state["seconds"] = result.seconds or 0.0
            else:
                state = {"stage": STAGE_FINISHED}
        row.update(result=json.dumps(vars(result)), state=json.dumps(state))
        rows.append(row)
    return _batch(rows)


def write_stems(batch: dict[str, np.ndarray], job: WorkerJob) -> dict[str, np.ndarray]:
    """The staged pipeline's last step, a CPU task: a separated input's stems encoded and
    written atomically, in the blocks the worker made them in (so they are the single-process
    run's bytes); the manifest row of every input."""
    run = job.batch_run(None)
    results, splits = [], []
    for row in _rows(batch):
        state, result = json.loads(row["state"]), _row_result(row)
        if state["stage"] == STAGE_SEPARATED:
            path, audio = Path(row["input"]), row["audio"]
            todo = {stem: Path(p) for stem, p in json.loads(row["outputs"]).items()}
            stems = dict(zip(todo, audio))
            worked = result.seconds or 0.0

            def write() -> None:
                # a stem already in place was committed whole by an earlier try of this task
                # (killed between two commits): the rest are written
                left = {s: p for s, p in todo.items() if run.overwrite or not p.exists()}
                result.outputs.update({s: str(p) for s, p in todo.items() if s not in left})
                if not left:
                    return
                with contextlib.ExitStack() as stack:
                    writers = run.writers(stack, left, state["out_rate"], state["out_channels"])
                    for stem, writer in writers.items():
                        start = 0
                        for length in state["blocks"][stem]:
                            writer.write(np.ascontiguousarray(stems[stem][:, start : start + length]))
                            start += length
                    for writer in writers.values():
                        writer.commit()
                run.record_written(result, writers, state["out_rate"], state["out_channels"], state["nonfinite"])

            run.attempt(path, result, write)
            result.seconds = round((result.seconds or 0.0) + worked, 3)
        results.append(json.dumps(vars(result)))
        splits.append(row["split"])
    return {
        "index": np.asarray(batch["index"]),
        "result": np.asarray(results, dtype=object),
        "split": np.asarray(splits, dtype=object),
    }


class StemAssembler:
    """Writes one long input's stems from its parts' segment files, taken in order whatever
    order they arrive in (a Ray actor per file, no CPU reserved: resampling and encoding are
    light). Each segment is deleted once written; :meth:`abort` discards everything."""

    def __init__(self, job: WorkerJob, source: str, outputs: dict[str, str], split: dict[str, Any]) -> None:
        from .api import StemEmitter

        self.run = job.batch_run(None)
        self.source = source
        self.split = split
        self.plan = plan_from_json(split["plan"])
        self.parts: list[tuple[int, int]] = [tuple(p) for p in split["parts"]]
        self._stack = contextlib.ExitStack()
        todo = {stem: Path(p) for stem, p in outputs.items()}
        self.writers = self.run.writers(self._stack, todo, split["out_rate"], split["out_channels"])
        self.emitter = StemEmitter(self.plan, {stem: writer.write for stem, writer in self.writers.items()})
        self.waiting: dict[int, dict[str, str]] = {}
        self.next_part = 0

    def add(self, part: int, segments: dict[str, str]) -> int:
        """Part ``part``'s segments; writes every part now in order. Returns the parts written."""
        self.waiting[part] = segments
        while self.next_part in self.waiting:
            files = self.waiting.pop(self.next_part)
            first, stop = self.parts[self.next_part]
            chunks = self.plan.chunks[first:stop]
            views = {stem: raw_stem_view(Path(name), 2, chunks[-1].stop - chunks[0].start) for stem, name in files.items()}
            for chunk in chunks:  # the part's chunk cores, one after another
                core = slice(chunk.start - chunks[0].start, chunk.stop - chunks[0].start)
                self.emitter.emit({stem: np.asarray(view[:, core]) for stem, view in views.items()})
            del views
            _unlink(files.values())
            self.next_part += 1
        return self.next_part

    def finish(self) -> str:
        """Commit the stems once every part is written; the input's manifest row (JSON)."""
        from .cli import FileResult

        if self.next_part != len(self.parts):
            raise RuntimeError(f"{self.source}: {len(self.parts) - self.next_part} parts missing")
        for writer in self.writers.values():
            writer.commit()
        self._stack.close()
        result = FileResult(input=self.source, status="ok", duration=self.split["duration"])
        self.run.record_written(result, self.writers, self.split["out_rate"], self.split["out_channels"], self.split["nonfinite"])
        return json.dumps(vars(result))

    def abort(self) -> None:
        self._stack.close()  # uncommitted writers remove their temporary files
        for files in self.waiting.values():
            _unlink(files.values())
        self.waiting.clear()


def part_ranges(plan: Any, minutes: float) -> list[list[int]]:
    """``[first, stop)`` chunk ranges of about ``minutes`` of audio each (one range: not split)."""
    longest = max((c.stop - c.start for c in plan.chunks), default=1)
    per_part = max(1, int(minutes * SECONDS_PER_MINUTE * plan.model_rate // max(longest, 1)))
    count = len(plan.chunks)
    return [[first, min(count, first + per_part)] for first in range(0, count, per_part)]


def plan_to_json(plan: Any) -> str:
    return json.dumps(dataclasses.asdict(plan))


def plan_from_json(text: str) -> Any:
    from .api import StreamPlan
    from .stream import Chunk

    fields = json.loads(text)
    fields["chunks"] = tuple(Chunk(*(c[k] for k in ("start", "stop", "read_start", "read_stop"))) for c in fields["chunks"])
    return StreamPlan(**fields)


def _unlink(paths: Any) -> None:
    for name in paths:
        with contextlib.suppress(OSError):
            os.unlink(name)


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``, else the latest one ``ray start``
    started on this machine) or start a local one; True when this call started Ray."""
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address or None, include_dashboard=False, log_to_driver=False,
            logging_level=logging.WARNING, configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise RayUnavailable(f"--ray: cannot start or join {where} ({_first_line(exc)})") from exc
    return True


class WorkerPlan(NamedTuple):
    """How many separator workers, and what each reserves and runs."""

    workers: int
    gpus: float
    #: CPUs reserved from Ray's scheduler.
    cpus: float
    #: torch threads: ``--ray-cpus-per-worker`` (within a node) even where CPUs are left to the
    #: decode and write tasks, so a CPU worker's stems stay those of a run with as many threads.
    threads: int
    #: Inputs decoded and stems written in CPU tasks (:func:`io_tasks_wanted`).
    io_tasks: bool


def plan_workers(ray: Any, settings: RaySettings) -> WorkerPlan:
    """The separator workers for the cluster Ray is connected to; with decode and write tasks,
    :data:`IO_TASK_CPUS` of the largest node are left to them."""
    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0.0))
    node_cpus = max((float(n["Resources"].get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")), default=1.0)
    share = settings.gpus_per_worker if settings.gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    if share > 0 and gpus == 0:
        raise RayUnavailable("--ray-gpus-per-worker: the Ray cluster has no GPU; leave it out for CPU workers")
    io_tasks = io_tasks_wanted(settings, share)
    reserved_cpus = IO_TASK_CPUS if io_tasks else 0.0
    # a worker must fit on a node, beside the reserved CPUs where the node has that many more
    room = node_cpus - reserved_cpus if node_cpus - reserved_cpus >= MIN_WORKER_CPUS else node_cpus
    cpus = min(settings.cpus_per_worker, room)
    if settings.workers:
        workers = settings.workers
    elif share > 0:
        workers = max(1, math.floor(gpus / share))
    else:
        workers = max(1, math.floor((float(total.get("CPU", 1.0)) - reserved_cpus) / max(cpus, 1.0)))
    return WorkerPlan(workers, share, cpus, max(1, math.floor(min(settings.cpus_per_worker, node_cpus))), io_tasks)


def io_tasks_wanted(settings: RaySettings, gpus_per_worker: float) -> bool:
    """Whether inputs are decoded and stems written in CPU tasks apart from the workers: as
    asked, else when the workers have GPUs (their host work then runs on the other cores)."""
    return settings.io_tasks if settings.io_tasks is not None else gpus_per_worker > 0


def _quiet_ray_data(ray: Any) -> None:
    """No Ray Data progress bars or banners: the driver reports progress itself, and with
    ``--json`` stdout holds only the manifest."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.max_errored_blocks = -1  # a row whose worker kept dying is one error row
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def run_on_ray(
    run: "_BatchRun",
    state_dict: dict,
    options: dict[str, Any],
    plan: dict[Path, dict[str, Path]],
    settings: RaySettings,
) -> list["FileResult"]:
    """The inputs of ``plan`` through a Ray cluster; one :class:`FileResult` per input, in
    ``plan``'s order. ``run`` is the driver's per-file step (its checks, its settings)."""
    from .audio import remove_stale_temp_files

    ray = import_ray()
    report = run.report
    results: dict[int, FileResult] = {}
    todo: list[dict[str, Any]] = []
    planned = list(plan.items())
    for index, (path, outputs) in enumerate(planned):
        result, missing = run.precheck(path, outputs)
        if missing:  # absolute paths: a worker's working folder is not the driver's
            absolute = json.dumps({stem: os.path.abspath(p) for stem, p in missing.items()})
            todo.append({"index": index, "input": os.path.abspath(path), "outputs": absolute})
        else:
            results[index] = result
    started = connect(ray, settings.address) if todo else False
    try:
        if not todo:
            return [results[i] for i in range(len(plan))]
        _quiet_ray_data(ray)
        planned_workers = plan_workers(ray, settings)
        workers, gpus, cpus, _, io_tasks = planned_workers
        job = WorkerJob.of(run, options, settings.part_minutes)
        report.debug(
            f"ray: {len(todo)} inputs on up to {workers} workers ({gpus} GPU, {cpus} CPU each)"
            + (", decoded and written in CPU tasks" if io_tasks else "")
        )
        # the weights go to the object store once; a worker (re)started fetches them from there.
        # The reference is nested so that it is not a constructor argument held in the object
        # store (which Ray warns about for restartable actors); this frame keeps it alive.
        model = [ray.put(state_dict)]
        pool = _Pool(ray, job, model, planned_workers)
        splits: dict[int, dict[str, Any]] = {}
        with _Progress(len(todo), report) as progress:
            for row in pool.run(todo, io_tasks).iter_rows():
                index = int(row["index"])
                result = _row_result(row)
                if row["split"]:
                    splits[index] = {**json.loads(row["split"]), "seconds": result.seconds or 0.0}
                    continue
                progress.audio(result.duration)
                results[index] = progress.file(_as_planned(result, *planned[index]))
            if splits:
                rows = {row["index"]: row for row in todo}
                for index, result in _run_parts(ray, pool, job, splits, rows, progress):
                    results[index] = progress.file(_as_planned(result, *planned[index]))
    finally:
        if started:
            ray.shutdown()  # a local cluster's workers stop with it
        # every output's, not only those written now: a killed run may have left one beside a stem
        remove_stale_temp_files(Path(os.path.abspath(p)) for _, outputs in planned for p in outputs.values())
    for row in todo:  # rows that never came back: their worker died every time
        if row["index"] not in results:
            results[row["index"]] = _lost(str(planned[row["index"]][0]))
            report.error(results[row["index"]].error or "")
    return [results[i] for i in range(len(plan))]


@dataclass
class _Pool:
    """The actor pool of :class:`SplitWorker`\\ s over a list of rows (one Ray Dataset per call)."""

    ray: Any
    job: WorkerJob
    model: list[Any]
    plan: WorkerPlan

    def run(self, rows: list[dict[str, Any]], io_tasks: bool = False) -> Any:
        """The rows through the pool; with ``io_tasks``, each input decoded before and its
        stems written after, in CPU tasks (:func:`decode_inputs`, :func:`write_stems`)."""
        ray = self.ray
        data = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
        # a decode or write task whose process dies is retried TASK_RETRIES times (Ray Data's
        # own default retries it for ever)
        io = {"batch_size": 1, "fn_kwargs": {"job": self.job}, "num_cpus": IO_TASK_CPUS, "max_retries": TASK_RETRIES}
        with warnings.catch_warnings():
            # Ray 2.60 deprecates remote args given this way, with no other way to bound a
            # task's retries yet; the extra pins ray < 2.64, where they are removed
            warnings.simplefilter("ignore", DeprecationWarning)
            if io_tasks:
                data = data.map_batches(decode_inputs, **io)
            data = data.map_batches(
                SplitWorker,
                fn_constructor_args=(self.job, self.model, self.plan.threads),
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.plan.workers),
                num_gpus=self.plan.gpus,
                num_cpus=self.plan.cpus,
                max_task_retries=TASK_RETRIES,  # an input that kills its worker every time must not stall the batch
            )
            return data.map_batches(write_stems, **io) if io_tasks else data


def _run_parts(
    ray: Any, pool: _Pool, job: WorkerJob, splits: dict[int, dict[str, Any]], rows: dict[int, dict[str, Any]],
    progress: "_Progress",
) -> Iterator[tuple[int, "FileResult"]]:
    """The long inputs' parts through the pool; each input's parts go, in order, to its own
    :class:`StemAssembler`. Yields ``(index, FileResult)`` per long input."""
    from .cli import FileResult

    parts = [
        {**rows[index], "part": k, "first": first, "stop": stop, "coef": split["coef"], "plan": split["plan"]}
        for index, split in splits.items()
        for k, (first, stop) in enumerate(split["parts"])
    ]
    progress.report.debug(f"ray: {len(splits)} long inputs cut into {len(parts)} parts")
    assembler_class = ray.remote(num_cpus=0, max_restarts=0)(StemAssembler)
    assemblers: dict[int, Any] = {}
    writes: dict[int, list[Any]] = {index: [] for index in splits}
    failures: dict[int, FileResult] = {}
    work = {index: split["seconds"] for index, split in splits.items()}  # worker seconds, plan included
    for row in pool.run(parts).iter_rows():
        index, result = int(row["index"]), _row_result(row)
        progress.audio(result.duration)
        work[index] += result.seconds or 0.0
        segments = json.loads(row["segments"])
        if result.status == "failed" or index in failures:
            failures.setdefault(index, result)
            _unlink(segments.values())
            continue
        if index not in assemblers:
            assemblers[index] = assembler_class.remote(job, rows[index]["input"], json.loads(rows[index]["outputs"]), splits[index])
        writes[index].append(assemblers[index].add.remote(int(row["part"]), segments))
    for index, split in splits.items():
        assembler = assemblers.get(index)
        result = failures.get(index)
        if result is None and len(writes[index]) < len(split["parts"]):
            result = _lost(rows[index]["input"])
        if result is None:
            try:
                ray.get(writes[index])
                result = FileResult(**json.loads(ray.get(assembler.finish.remote())))
            except Exception as exc:  # noqa: BLE001 - a failed write or a lost writer: one error row
                cause = getattr(exc, "cause", None) or exc
                result = FileResult(input=rows[index]["input"], status="failed", error=f"{rows[index]['input']}: {_first_line(cause)}")
        result.seconds = round(work[index], 3)
        if result.status == "failed" and assembler is not None:
            with contextlib.suppress(Exception):
                ray.get(assembler.abort.remote())
        if assembler is not None:
            ray.kill(assembler)
        yield index, result


def _row_result(row: dict[str, Any]) -> "FileResult":
    from .cli import FileResult

    return FileResult(**json.loads(row["result"]))


#: The driver's bar: audio seconds done (the total is unknown: the driver never opens the
#: inputs), files done of all and failed, and the throughput so far.
BAR_FORMAT = "{desc}: {n:.0f} s of audio [{elapsed}]{postfix}"


class _Progress:
    """One bar over the audio seconds done (files done / failed and × real time beside it),
    then a closing line; :meth:`file` also reports each finished input's row."""

    def __init__(self, files: int, report: Any) -> None:
        from tqdm import tqdm

        self.files, self.report = files, report
        self.seconds = 0.0
        self.done = self.failed = 0
        self.start = time.perf_counter()
        self.bar = tqdm(desc="ray", unit="s", bar_format=BAR_FORMAT, file=sys.stderr, disable=not report.bars)

    def __enter__(self) -> "_Progress":
        return self

    def audio(self, seconds: float | None) -> None:
        self.seconds += seconds or 0.0
        self.bar.update(seconds or 0.0)
        self._postfix()

    def file(self, result: "FileResult") -> "FileResult":
        self.done += 1
        if result.status == "failed":
            self.failed += 1
            self.report.error(result.error or "")
        else:
            self.report.debug(f"{result.input}: {', '.join(result.outputs.values())} ({result.seconds or 0:.1f} s)")
        self._postfix()
        return result

    def _postfix(self) -> None:
        speed = self.seconds / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.done}/{self.files} files, {self.failed} failed, {speed:.1f}x real time")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.bar.close()
        if exc_type is not None:  # interrupted: no closing figures
            return
        wall = time.perf_counter() - self.start
        self.report.info(
            f"ray: {self.seconds / SECONDS_PER_HOUR:.3f} h of audio in {wall:.1f} s "
            f"({self.seconds / wall if wall > 0 else 0.0:.1f}x real time), "
            f"{self.done - self.failed} done, {self.failed} failed"
        )


def _as_planned(result: "FileResult", path: Path, outputs: dict[str, Path]) -> "FileResult":
    """A worker's result with the paths as the driver planned them (relative ones stay relative)."""
    shown = {os.path.abspath(p): str(p) for p in outputs.values()}
    result.input = str(path)
    result.outputs = {stem: shown.get(p, p) for stem, p in result.outputs.items()}
    result.skipped_outputs = [shown.get(p, p) for p in result.skipped_outputs]
    return result


def _lost(path: str) -> "FileResult":
    from .cli import FileResult

    return FileResult(
        input=path, status="failed",
        error=f"{path}: its Ray worker died {TASK_RETRIES + 1} times on it (killed, or out of memory?); "
        "rerun the command to retry it",
    )


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:200]
