"""The server's job worker without a server (:mod:`uvrsep.serve.jobs` needs no FastAPI)."""

from __future__ import annotations

import sqlite3
import time
import uuid

import soundfile as sf

from uvrsep.serve import jobs
from uvrsep.serve.jobs import DONE, QUEUED, EngineSettings, Job, JobSettings, JobStore, ModelCache, Worker

from .conftest import TINY_PARAMS, wait_for
from .test_robustness import signal_wave

BOUND_S = 60.0


def queued_job(tmp_path, tiny_model) -> Job:
    """A queued job of a 1 s clip written in ``tmp_path``, on the tiny net (not yet in a store)."""
    clip = tmp_path / "a.wav"
    sf.write(clip, signal_wave(44100, 2), 44100)
    return Job(
        id=uuid.uuid4().hex, name="a.wav", status=QUEUED, settings=JobSettings(model=str(tiny_model), params=TINY_PARAMS),
        input=str(clip), owned=False, created=time.time(),
    )


def is_done(store: JobStore, job: Job) -> bool:
    found = store.get(job.id)
    return found is not None and found.status == DONE


def test_the_worker_survives_an_error_of_the_store(tmp_path, tiny_model, monkeypatch, capsys):
    store = JobStore(tmp_path / "data")
    job = store.add(queued_job(tmp_path, tiny_model))
    real = store.claim_next
    calls = []

    def locked_once():
        calls.append(None)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real()

    monkeypatch.setattr(store, "claim_next", locked_once)
    monkeypatch.setattr(jobs, "WORKER_RETRY_S", 0.01)
    worker = Worker(store, ModelCache(EngineSettings(device="cpu")), keep_hours=1)
    worker.start()
    try:
        wait_for(lambda: is_done(store, job), BOUND_S, "the job to be done")
        assert worker.is_alive() and worker.failures == 1
    finally:
        worker.stop()
        worker.join(10)
    assert not worker.is_alive()
    assert "database is locked" in capsys.readouterr().err
    store.close()


#: Longer than any test waits: a worker that missed a wake-up would sleep this long.
NEVER_S = 3600.0


def idle_worker(store: JobStore, monkeypatch, between) -> Worker:
    """A worker whose first look at the (empty) queue runs ``between(worker)`` before it waits: the
    moment a wake-up was lost to (a queued job or stop() between the look and the wait)."""
    monkeypatch.setattr(jobs, "EXPIRY_CHECK_S", NEVER_S)
    worker = Worker(store, ModelCache(EngineSettings(device="cpu")), keep_hours=1)
    real = worker.step
    looks = []

    def step() -> bool:
        found = real()
        looks.append(found)
        if len(looks) == 1:
            assert not found
            between(worker)
        return found

    monkeypatch.setattr(worker, "step", step)
    return worker


def test_a_stop_between_the_look_at_the_queue_and_the_wait_is_not_lost(tmp_path, monkeypatch):
    store = JobStore(tmp_path / "data")
    worker = idle_worker(store, monkeypatch, lambda w: w.stop())
    worker.start()
    worker.join(BOUND_S)
    assert not worker.is_alive()
    store.close()


def test_a_job_queued_between_the_look_at_the_queue_and_the_wait_runs_at_once(tmp_path, tiny_model, monkeypatch):
    store = JobStore(tmp_path / "data")
    job = queued_job(tmp_path, tiny_model)

    def queue(worker: Worker) -> None:
        store.add(job)
        worker.wake()

    worker = idle_worker(store, monkeypatch, queue)
    worker.start()
    try:
        wait_for(lambda: is_done(store, job), BOUND_S, "the job to be done")
    finally:
        worker.stop()
        worker.join(BOUND_S)
    assert not worker.is_alive()
    store.close()
