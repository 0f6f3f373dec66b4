"""The server's jobs: their settings, the SQLite store in the data folder, the cache of loaded
models, and the worker thread that runs them one at a time through ``uvrsep split``'s per-file
loop (:class:`uvrsep.cli._BatchRun`), so a job's stems are the CLI's.

A job's files live in ``DATA/jobs/ID/``: the upload (``input.EXT``, a name the server chose),
the stems (``STEM.FORMAT``) and their pictures. A job named by a server-side path
(``--allow-path``) reads that file in place and never deletes it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import UvrsepError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
#: States a job does not leave (it may only be deleted or expire).
FINISHED = (DONE, FAILED, CANCELLED)
#: What a job that was running when the server stopped says after a restart.
STOPPED_REASON = "the server stopped while this job ran; submit it again"
CANCELLED_REASON = "cancelled"
#: Stem formats a job may ask for (``uvrsep split -f``).
JOB_FORMATS = ("wav", "flac", "mp3")
#: A running job's progress is written to the store at most this often (seconds).
PROGRESS_EVERY_S = 0.2
#: The idle worker looks for expired jobs this often (seconds).
EXPIRY_CHECK_S = 60.0
#: Seconds the worker waits after an error of the store (a full disk, a locked database).
WORKER_RETRY_S = 1.0
DATABASE_NAME = "jobs.sqlite3"
JOBS_FOLDER = "jobs"
#: The stored input of an upload: this name plus the upload's (checked) extension.
INPUT_STEM = "input"
#: Longest display name kept from an upload's name.
MAX_NAME_CHARS = 200
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class JobRequestError(UvrsepError):
    """A request the server refuses, with the HTTP status to answer (``status``)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class JobCancelled(BaseException):
    """Raised in a running job's progress callback once it is cancelled. A BaseException (as
    asyncio's CancelledError) so the per-file loop's error handling lets it through and its
    writers discard the unfinished stems."""


@dataclass(frozen=True)
class JobSettings:
    """What ``uvrsep split`` options a job sets (their defaults are the CLI's)."""

    model: str | None = None
    params: str | None = None
    aggressiveness: int = 10
    split_bin: int | None = None
    window_size: int = 512
    tta: bool = False
    postprocess: bool = False
    stems: str | None = None
    format: str = "wav"

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> "JobSettings":
        """Settings from query parameters (strings); :class:`JobRequestError` on an unknown
        name or a value the CLI would refuse."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise JobRequestError(f"unknown setting '{unknown[0]}'; settings are: {', '.join(known)}")
        parsed: dict[str, Any] = {}
        for name, text in values.items():
            kind = str(known[name].type)
            if "bool" in kind:
                parsed[name] = _parse_bool(name, text)
            elif "int" in kind:
                parsed[name] = _parse_int(name, text)
            else:
                parsed[name] = text or None
        settings = cls(**parsed)
        if not 0 <= settings.aggressiveness <= 100:
            raise JobRequestError(f"aggressiveness must be 0-100, got {settings.aggressiveness}")
        if settings.split_bin is not None and settings.split_bin < 0:
            raise JobRequestError(f"split_bin must be >= 0, got {settings.split_bin}")
        if settings.format not in JOB_FORMATS:
            raise JobRequestError(f"format must be one of {', '.join(JOB_FORMATS)}, got '{settings.format}'")
        return settings

    def separator_options(self) -> dict[str, Any]:
        """The :class:`~uvrsep.api.Separator` keywords these settings fix."""
        return dict(
            aggressiveness=self.aggressiveness, split_bin=self.split_bin, window_size=self.window_size,
            tta=self.tta, postprocess=self.postprocess,
        )


def _parse_bool(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise JobRequestError(f"{name} must be true or false, got '{text[:40]}'")


def _parse_int(name: str, text: str) -> int | None:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise JobRequestError(f"{name} must be a whole number, got '{text[:40]}'") from None


def display_name(name: str) -> str:
    """An upload's name as shown and offered for download: the last path part, printable,
    bounded (never used as a path: the server names the stored file)."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch for ch in last if ch.isprintable() and ch not in "\"'<>|*?:").strip(" .")
    return clean[:MAX_NAME_CHARS] or "upload"


@dataclass
class Job:
    """One row of the store."""

    id: str
    name: str
    status: str
    settings: JobSettings
    input: str
    owned: bool
    created: float
    progress: float = 0.0
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    duration: float | None = None
    started: float | None = None
    finished: float | None = None

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (no server paths)."""
        return {
            "id": self.id, "name": self.name, "status": self.status, "progress": round(self.progress, 4),
            "error": self.error, "settings": asdict(self.settings), "stems": list(self.outputs),
            "duration": self.duration, "created": self.created, "started": self.started, "finished": self.finished,
        }


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    settings TEXT NOT NULL,
    input TEXT NOT NULL,
    owned INTEGER NOT NULL,
    created REAL NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    duration REAL,
    started REAL,
    finished REAL
)
"""


class JobStore:
    """The job list in ``DATA/jobs.sqlite3`` and the job folders in ``DATA/jobs/``. Opening it
    marks any job left running (the server died under it) failed with :data:`STOPPED_REASON`.
    Thread-safe."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.jobs_dir = self.data_dir / JOBS_FOLDER
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.data_dir / DATABASE_NAME), check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute(SCHEMA)
            self._db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished = ? WHERE status = ?",
                (FAILED, STOPPED_REASON, time.time(), RUNNING),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (created) folder."""
        job_id = uuid.uuid4().hex
        folder = self.folder(job_id)
        folder.mkdir()
        return job_id, folder

    def delete_folder(self, job_id: str) -> None:
        """Remove the folder of a job that was never added (a refused submission)."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def add(self, job: Job) -> Job:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO jobs (id, name, status, settings, input, owned, created, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.name, job.status, json.dumps(asdict(job.settings)), job.input, int(job.owned), job.created, job.duration),
            )
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._job(row)

    def list(self, limit: int) -> list[Job]:
        """The newest ``limit`` jobs, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [self._job(row) for row in rows]

    def count(self, status: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0])

    def claim_next(self) -> Job | None:
        """The oldest queued job, now marked running (None: the queue is empty)."""
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE status = ? ORDER BY created, rowid LIMIT 1", (QUEUED,)
            ).fetchone()
            if row is None:
                return None
            job = self._job(row)
            job.status, job.started = RUNNING, time.time()
            self._db.execute("UPDATE jobs SET status = ?, started = ? WHERE id = ?", (RUNNING, job.started, job.id))
        return job

    def set_progress(self, job_id: str, fraction: float) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = ?", (fraction, job_id, RUNNING))

    def finish(self, job_id: str, status: str, error: str | None = None, outputs: Mapping[str, str] | None = None) -> None:
        """Mark a job done, failed or cancelled (``done`` also sets its progress to 1)."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE jobs SET status = ?, error = ?, outputs = ?, finished = ?, progress = CASE WHEN ? THEN 1 ELSE progress END WHERE id = ?",
                (status, error, json.dumps(dict(outputs or {})), time.time(), status == DONE, job_id),
            )

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it is not queued."""
        with self._lock, self._db:
            changed = self._db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished = ? WHERE id = ? AND status = ?",
                (CANCELLED, CANCELLED_REASON, time.time(), job_id, QUEUED),
            ).rowcount
        return bool(changed)

    def delete(self, job_id: str) -> bool:
        """Remove a job that is not running, with its folder; False when it is running."""
        with self._lock, self._db:
            changed = self._db.execute("DELETE FROM jobs WHERE id = ? AND status != ?", (job_id, RUNNING)).rowcount
        if changed:
            self.delete_folder(job_id)
        return bool(changed)

    def expire(self, older_than: float) -> list[str]:
        """Delete the jobs that finished before ``older_than`` (a time.time()); their ids."""
        with self._lock:
            ids = [
                row[0] for row in self._db.execute(
                    f"SELECT id FROM jobs WHERE status IN ({', '.join('?' * len(FINISHED))}) AND finished < ?",
                    (*FINISHED, older_than),
                )
            ]
        return [job_id for job_id in ids if self.delete(job_id)]

    @staticmethod
    def _job(row: tuple[Any, ...]) -> Job:
        (job_id, name, status, settings, input_path, owned, created, progress, error, outputs, duration, started, finished) = row
        return Job(
            id=job_id, name=name, status=status, settings=JobSettings(**json.loads(settings)), input=input_path,
            owned=bool(owned), created=created, progress=progress, error=error, outputs=json.loads(outputs),
            duration=duration, started=started, finished=finished,
        )


@dataclass(frozen=True)
class EngineSettings:
    """How the server runs every job (``uvrsep serve`` options)."""

    device: str = "auto"
    precision: str = "auto"
    offline: bool = False
    max_models: int = 2


class ModelCache:
    """The last :attr:`EngineSettings.max_models` loaded separators, one per (model, settings),
    least recently used dropped first. Thread-safe: a submission checks its settings by
    building (or finding) the separator the worker will use."""

    def __init__(self, engine: EngineSettings) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._separators: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def separator(self, settings: JobSettings) -> Any:
        """The :class:`~uvrsep.api.Separator` of ``settings`` (``UvrsepError`` when the model or
        a setting is refused, as ``uvrsep split`` would)."""
        from ..api import Separator
        from ..pretrained import resolve_model

        key = (settings.model, settings.params, *sorted(settings.separator_options().items()))
        with self._lock:
            if key in self._separators:
                self._separators.move_to_end(key)
                return self._separators[key]
            resolved = resolve_model(settings.model, settings.params, None, offline=self.engine.offline, progress=False)
            separator = Separator(
                resolved.state_dict, resolved.params, primary_stem=resolved.primary_stem,
                device=self.engine.device, precision=self.engine.precision, **settings.separator_options(),
            )
            self._separators[key] = separator
            while len(self._separators) > max(1, self.engine.max_models):
                self._separators.popitem(last=False)
            return separator

    def __len__(self) -> int:
        return len(self._separators)


def output_stems(settings: JobSettings, separator: Any) -> list[str]:
    """The stems a job writes (``--stems``), or :class:`JobRequestError`."""
    from ..cli import parse_stems

    try:
        return parse_stems(settings.stems, separator.stem_names)
    except UvrsepError as exc:
        raise JobRequestError(str(exc)) from None


class Worker(threading.Thread):
    """Runs queued jobs one at a time (one worker per device), and expires old ones when idle."""

    def __init__(self, store: JobStore, models: ModelCache, keep_hours: float) -> None:
        super().__init__(name="uvrsep-jobs", daemon=True)
        self.store = store
        self.models = models
        self.keep_s = keep_hours * 3600.0
        self._wake = threading.Condition()
        self._stopping = False
        #: A wake() came since the worker last waited (checked under ``_wake``, so none is lost).
        self._woken = False
        self._cancel: set[str] = set()
        self.current: str | None = None
        #: Errors of the store the worker survived (health reports them).
        self.failures = 0

    def wake(self) -> None:
        """A job was queued (or the worker should stop): look now."""
        with self._wake:
            self._woken = True
            self._wake.notify_all()

    def _idle(self, seconds: float) -> None:
        """Wait up to ``seconds`` for :meth:`wake`; at once when one came since the last wait (a job
        queued, or :meth:`stop` called, between the worker's look at the queue and this wait)."""
        with self._wake:
            if not self._woken and not self._stopping:
                self._wake.wait(seconds)
            self._woken = False

    def stop(self) -> None:
        """Stop after the current job, which is cancelled: its unfinished stems are discarded and
        it is marked failed with :data:`STOPPED_REASON` (join the thread to wait for that)."""
        self._stopping = True
        if self.current is not None:
            self._cancel.add(self.current)
        self.wake()

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it has finished (or does not exist)."""
        if self.store.cancel_queued(job_id):
            return True
        job = self.store.get(job_id)
        if job is None or job.status != RUNNING:
            return False
        self._cancel.add(job_id)
        return True

    def run(self) -> None:
        last_expiry = 0.0
        while not self._stopping:
            try:
                if time.time() - last_expiry >= EXPIRY_CHECK_S:
                    last_expiry = time.time()
                    self.store.expire(last_expiry - self.keep_s)
                if not self.step():
                    self._idle(EXPIRY_CHECK_S)
            except Exception as exc:  # noqa: BLE001 - a full disk or a locked database must not end the worker
                self.failures += 1
                sys.stderr.write(f"uvrsep serve: job worker: {type(exc).__name__}: {exc}; retrying in {WORKER_RETRY_S:g} s\n")
                self._idle(WORKER_RETRY_S)

    def step(self) -> bool:
        """Run the oldest queued job, if any (False: the queue was empty)."""
        job = self.store.claim_next()
        if job is None:
            return False
        self.current = job.id
        try:
            self.run_job(job)
        finally:
            self.current = None
            self._cancel.discard(job.id)
        return True

    def run_job(self, job: Job) -> None:
        """Separate one job's input into its folder; the store records the outcome."""
        from ..cli import ChannelsMode, ClipMode, FileResult, OutputFormat, Reporter, Subtype, _BatchRun, _check_format

        if job.id in self._cancel:
            self.store.finish(job.id, CANCELLED, CANCELLED_REASON)
            return
        try:
            separator = self.models.separator(job.settings)
            stems = output_stems(job.settings, separator)
        except UvrsepError as exc:
            self.store.finish(job.id, FAILED, str(exc))
            return
        folder = self.store.folder(job.id)
        outputs = {stem: folder / f"{stem}.{job.settings.format}" for stem in stems}
        subtype = _check_format(OutputFormat(job.settings.format), Subtype.PCM_16)
        run = _BatchRun(
            separator, Reporter(quiet=True), "input", ChannelsMode.input, subtype, ClipMode.clip,
            overwrite=True, on_progress=self._progress(job.id),
        )
        try:
            result = run.separate(Path(job.input), outputs, FileResult(input=job.name))
        except JobCancelled:
            if self._stopping:
                self.store.finish(job.id, FAILED, STOPPED_REASON)
            else:
                self.store.finish(job.id, CANCELLED, CANCELLED_REASON)
            return
        except Exception as exc:  # noqa: BLE001 - one job must never stop the worker
            self.store.finish(job.id, FAILED, f"{job.name}: internal error ({type(exc).__name__}: {exc}); please report it")
            return
        if result.status == "ok":
            self.store.finish(job.id, DONE, outputs={stem: Path(path).name for stem, path in result.outputs.items()})
        else:
            self.store.finish(job.id, FAILED, (result.error or "failed").replace(job.input, job.name))

    def _progress(self, job_id: str) -> Callable[[int, int], None]:
        last = [0.0]

        def report(done: int, planned: int) -> None:
            if job_id in self._cancel:
                raise JobCancelled()
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S and planned:
                last[0] = now
                self.store.set_progress(job_id, min(done / planned, 1.0))

        return report
