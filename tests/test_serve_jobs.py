"""The server's job worker without a server (:mod:`uvrsep.serve.jobs` needs no FastAPI)."""

from __future__ import annotations

import sqlite3
import time
import uuid

import soundfile as sf

from uvrsep.serve import jobs
from uvrsep.serve.jobs import DONE, QUEUED, EngineSettings, Job, JobSettings, JobStore, ModelCache, Worker

from .conftest import TINY_PARAMS
from .test_robustness import signal_wave

BOUND_S = 60.0


def test_the_worker_survives_an_error_of_the_store(tmp_path, tiny_model, monkeypatch, capsys):
    clip = tmp_path / "a.wav"
    sf.write(clip, signal_wave(44100, 2), 44100)
    store = JobStore(tmp_path / "data")
    job = store.add(Job(
        id=uuid.uuid4().hex, name="a.wav", status=QUEUED, settings=JobSettings(model=str(tiny_model), params=TINY_PARAMS),
        input=str(clip), owned=False, created=time.time(),
    ))
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
        deadline = time.monotonic() + BOUND_S
        while store.get(job.id).status != DONE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.get(job.id).status == DONE
        assert worker.is_alive() and worker.failures == 1
    finally:
        worker.stop()
        worker.join(10)
    assert not worker.is_alive()
    assert "database is locked" in capsys.readouterr().err
    store.close()
