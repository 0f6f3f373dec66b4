"""``uvrsep split --ray``: a batch on a Ray cluster (Ray Data), resumable and fault-tolerant.

Each input still to do is one row of a Ray Dataset. An actor pool of :class:`SplitWorker`\\ s,
each of which loads the model once in ``__init__`` (Ray Data's batch-inference pattern), runs
the single-process CLI's per-file step on its rows (:meth:`uvrsep.cli._BatchRun.separate`:
streamed decode, separation, atomic write). The stems therefore equal the single-process
CLI's bit for bit, and a long file is streamed in chunks inside its worker, so a worker's
memory stays flat. The driver only plans paths, skips inputs whose outputs exist (a rerun
resumes), and collects one manifest row per input as they finish.

Faults:

* a worker that dies (killed, out of memory) is restarted and its rows retried, up to
  :data:`TASK_RETRIES` times per row; a row that still fails is one error row, the run goes on;
* every stem goes to a hidden temporary file and is renamed only when whole, so no partial
  stem is ever visible; the temporary files of writers that died are removed when the run
  ends (:func:`uvrsep.audio.remove_stale_temp_files`);
* a driver killed or interrupted: rerunning the same command redoes nothing that was written.

Not yet here (issue 16): decoding and synthesis as CPU stages apart from the network's actors,
and one long file spread over several workers; today a file is one worker's job.

``ray`` is imported only in this module (the ``uvrsep[ray]`` extra).
"""

from __future__ import annotations

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
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .errors import UvrsepError

if TYPE_CHECKING:  # pragma: no cover
    from .cli import FileResult, _BatchRun

#: What to install for ``--ray``.
RAY_EXTRA = 'pip install "uvrsep[ray]"'
#: Times a row is retried after its worker died (then it is one error row).
TASK_RETRIES = 2
#: Most blocks (Ray Data's unit of work) a batch is cut into: one input per block up to this,
#: so a long file never holds up others queued behind it in the same block.
MAX_BLOCKS = 10_000
#: Seconds of audio per hour (the closing line's figures).
SECONDS_PER_HOUR = 3600.0


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


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to rebuild the driver's per-file step (picklable): the driver's
    :class:`~uvrsep.cli._BatchRun` without its separator and reporter, and how to build them."""

    params: Any
    options: dict[str, Any]
    run: "_BatchRun"
    verbose: bool

    @classmethod
    def of(cls, run: "_BatchRun", options: dict[str, Any]) -> "WorkerJob":
        return cls(run.separator.params, options, dataclasses.replace(run, separator=None, report=None), run.report.verbose)

    def batch_run(self, state_dict: dict) -> "_BatchRun":
        from .api import Separator
        from .cli import Reporter

        separator = Separator(state_dict, self.params, **self.options)
        report = Reporter(quiet=True, verbose=self.verbose)  # the driver reports each row
        return dataclasses.replace(self.run, separator=separator, report=report)


class SplitWorker:
    """One actor of the pool: the model loaded once, then one input per row."""

    def __init__(self, job: WorkerJob, model: list[Any], threads: int) -> None:
        """``model``: ``[ObjectRef]`` of the state dict; ``threads``: the worker's CPUs."""
        import torch

        ray = import_ray()
        state = ray.get(model[0])
        torch.set_num_threads(max(1, threads))
        self.run = job.batch_run(state)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for source, outputs in zip(batch["input"], batch["outputs"]):
            todo = {stem: Path(path) for stem, path in json.loads(outputs).items()}
            result, todo = self.run.precheck(Path(source), todo)  # another run may have written them since
            if todo:
                result = self.run.separate(Path(source), todo, result)
            results.append(json.dumps(vars(result)))
        return {"index": np.asarray(batch["index"]), "result": np.asarray(results, dtype=object)}


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


def plan_workers(ray: Any, settings: RaySettings) -> tuple[int, float, float]:
    """(workers, GPUs per worker, CPUs per worker) for the cluster Ray is connected to."""
    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0.0))
    node_cpus = max((float(n["Resources"].get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")), default=1.0)
    share = settings.gpus_per_worker if settings.gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    if share > 0 and gpus == 0:
        raise RayUnavailable("--ray-gpus-per-worker: the Ray cluster has no GPU; leave it out for CPU workers")
    cpus = min(settings.cpus_per_worker, node_cpus)  # a worker must fit on a node
    if settings.workers:
        workers = settings.workers
    elif share > 0:
        workers = max(1, math.floor(gpus / share))
    else:
        workers = max(1, math.floor(float(total.get("CPU", 1.0)) / max(cpus, 1.0)))
    return workers, share, cpus


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
        workers, gpus, cpus = plan_workers(ray, settings)
        job = WorkerJob.of(run, options)
        report.debug(f"ray: {len(todo)} inputs on up to {workers} workers ({gpus} GPU, {cpus} CPU each)")
        # the weights go to the object store once; a worker (re)started fetches them from there.
        # The reference is nested so that it is not a constructor argument held in the object
        # store (which Ray warns about for restartable actors); this frame keeps it alive.
        model = [ray.put(state_dict)]
        with warnings.catch_warnings():
            # Ray 2.60 deprecates remote args given this way, with no other way to bound an
            # actor task's retries yet; the extra pins ray < 2.64, where they are removed
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = ray.data.from_items(todo, override_num_blocks=min(len(todo), MAX_BLOCKS)).map_batches(
                SplitWorker,
                fn_constructor_args=(job, model, max(1, math.floor(cpus))),  # its torch threads
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
                num_gpus=gpus,
                num_cpus=cpus,
                max_task_retries=TASK_RETRIES,  # an input that kills its worker every time must not stall the batch
            )
        for index, result in _collect(dataset.iter_rows(), todo, report):
            results[index] = _as_planned(result, *planned[index])
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


def _collect(rows: Iterator[dict[str, Any]], todo: list[dict[str, Any]], report: Any) -> Iterator[tuple[int, "FileResult"]]:
    """Each finished row as ``(index, FileResult)``, with a bar over files and the audio done."""
    from tqdm import tqdm

    from .cli import FileResult

    audio = failed = 0.0
    start = time.perf_counter()
    with tqdm(total=len(todo), desc="files", unit="file", file=sys.stderr, disable=not report.bars) as bar:
        for row in rows:
            result = FileResult(**json.loads(row["result"]))
            audio += result.duration or 0.0
            if result.status == "failed":
                failed += 1
                report.error(result.error or "")
            else:
                report.debug(f"{result.input}: {', '.join(result.outputs.values())} ({result.seconds or 0:.1f} s)")
            bar.set_postfix_str(f"{audio / SECONDS_PER_HOUR:.2f} h of audio, {int(failed)} failed", refresh=False)
            bar.update(1)
            yield int(row["index"]), result
    wall = time.perf_counter() - start
    report.info(
        f"ray: {audio / SECONDS_PER_HOUR:.3f} h of audio in {wall:.1f} s "
        f"({audio / wall if wall > 0 else 0.0:.1f}x real time), {int(failed)} failed"
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
