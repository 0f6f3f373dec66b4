"""``uvrsep serve`` (issue 19): the HTTP API against real servers (uvicorn on a free loopback
port, started and stopped here), with the tiny test net."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from uvrsep.cli import main  # noqa: E402
from uvrsep.serve.jobs import STOPPED_REASON  # noqa: E402
from uvrsep.serve.pictures import MIN_COLUMN_FRAMES, PICTURE_HEIGHT  # noqa: E402

from .conftest import TINY_PARAMS  # noqa: E402
from .test_robustness import signal_wave, with_default_signals  # noqa: E402
from .test_serve_pictures import png_pixels  # noqa: E402

#: Seconds a server may take to answer its first health check (it imports torch).
STARTUP_BOUND_S = 90.0
#: Seconds a job of a few seconds of audio may take on a loaded 2-core machine.
JOB_BOUND_S = 120.0
UPLOAD_LIMIT_MB = 2.0
RATE = 44100
SETTINGS = {"model": "tiny.pth", "params": TINY_PARAMS, "aggressiveness": "30"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``uvrsep serve`` in a child process, its data in ``root/data``; models under
    ``root/allow`` (``--allow-path``)."""

    def __init__(self, root: Path, *extra: str, host: str = "127.0.0.1", env: dict[str, str] | None = None) -> None:
        self.root, self.extra, self.host = root, extra, host
        self.env = {"UVRSEP_HOME": str(root / "home"), "UVRSEP_OFFLINE": "1", **(env or {})}
        self.data, self.allow = root / "data", root / "allow"
        self.token: str | None = None
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.port = free_port()
        self.log = (self.root / "server.log").open("a")
        env = {k: v for k, v in {**os.environ, **self.env}.items() if v is not None}
        command = [
            sys.executable, "-m", "uvrsep", "serve", "--host", self.host, "--port", str(self.port), "--data-dir", str(self.data),
            "--allow-path", str(self.allow), "--device", "cpu", "--max-upload-mb", str(UPLOAD_LIMIT_MB), *self.extra,
        ]  # SIGINT at its default however pytest was launched: stop() checks the interrupted exit code
        self.proc = subprocess.Popen(with_default_signals(command), stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + STARTUP_BOUND_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_text()
            try:
                if self.call("GET", "/api/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not start: " + self.log_text())

    def log_text(self) -> str:
        return (self.root / "server.log").read_text()

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = dict(headers or {})
            if token or self.token:
                headers["Authorization"] = f"Bearer {token or self.token}"
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kind = response.getheader("content-type", "")
            return response.status, (json.loads(data) if kind.startswith("application/json") and data else data)
        finally:
            conn.close()

    def submit(self, wave_path: Path, name: str | None = None, **settings: str) -> tuple[int, Any]:
        query = "&".join(f"{k}={v}" for k, v in {"name": name or wave_path.name, **SETTINGS, **settings}.items())
        return self.call("POST", f"/api/jobs?{query}", body=wave_path.read_bytes())

    def wait(self, job_id: str, bound_s: float = JOB_BOUND_S, until: tuple[str, ...] = ("done", "failed", "cancelled")) -> dict:
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            code, job = self.call("GET", f"/api/jobs/{job_id}")
            assert code == 200, job
            if job["status"] in until:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} still {job['status']} after {bound_s} s")


def make_root(root: Path, tiny_model: Path) -> Path:
    (root / "allow").mkdir(parents=True)
    shutil.copy(tiny_model, root / "allow" / "tiny.pth")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model):
    running = Server(make_root(tmp_path_factory.mktemp("serve"), tiny_model)).start()
    yield running
    assert running.stop() == 128 + signal.SIGINT, running.log_text()


def song(folder: Path, seconds: float, name: str = "song.wav") -> Path:
    path = folder / name
    sf.write(path, signal_wave(int(RATE * seconds), 2), RATE)
    return path


def job_folders(server: Server) -> list[str]:
    return sorted(p.name for p in (server.data / "jobs").iterdir())


# -- a job end to end ----------------------------------------------------------------------------


def test_a_job_gives_the_stems_of_split(server, tmp_path, capsys):
    clip = song(tmp_path, 6.0)
    code, job = server.submit(clip, tta="true")
    assert code == 201, job
    assert job["status"] in ("queued", "running") and job["duration"] == pytest.approx(6.0)
    seen = []
    deadline = time.monotonic() + JOB_BOUND_S
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        job = server.call("GET", f"/api/jobs/{job['id']}")[1]
        seen.append(job["progress"])
        time.sleep(0.05)
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and seen == sorted(seen)
    assert job["stems"] == ["instrumental", "vocals"]

    out = tmp_path / "split"
    assert main(["split", str(clip), "-m", str(server.allow / "tiny.pth"), "-p", TINY_PARAMS, "-a", "30", "--tta",
                 "--device", "cpu", "-o", str(out), "-q"]) == 0
    for stem in job["stems"]:
        code, data = server.call("GET", f"/api/jobs/{job['id']}/stems/{stem}")
        assert code == 200
        (tmp_path / f"served_{stem}.wav").write_bytes(data)
        served, rate = sf.read(tmp_path / f"served_{stem}.wav", dtype="int16")
        expected, expected_rate = sf.read(out / f"song_{stem}.wav", dtype="int16")
        assert rate == expected_rate == RATE
        np.testing.assert_array_equal(served, expected)

    listed = server.call("GET", "/api/jobs")[1]
    assert job["id"] in [j["id"] for j in listed]


def test_pictures_of_the_input_and_stems(server, tmp_path):
    code, job = server.submit(song(tmp_path, 3.0))
    job = server.wait(job["id"])
    pictures = {}
    for which in ["input", *job["stems"]]:
        code, data = server.call("GET", f"/api/jobs/{job['id']}/pictures/{which}.png")
        assert code == 200, data
        pictures[which] = data
        assert png_pixels(data).shape == (PICTURE_HEIGHT, 3 * RATE // MIN_COLUMN_FRAMES, 3)
    assert pictures["vocals"] != pictures["input"]
    assert server.call("GET", f"/api/jobs/{job['id']}/pictures/drums.png")[0] == 404


def test_concurrent_submissions_queue_and_all_finish(server, tmp_path):
    clips = [song(tmp_path, 2.0 + i, f"c{i}.wav") for i in range(4)]
    answers: list[tuple[int, Any]] = []
    threads = [threading.Thread(target=lambda c=c: answers.append(server.submit(c))) for c in clips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [code for code, _ in answers] == [201] * 4, answers
    jobs = sorted((server.wait(job["id"]) for _, job in answers), key=lambda j: j["started"])
    assert all(job["status"] == "done" for job in jobs), jobs
    for earlier, later in zip(jobs, jobs[1:]):  # one at a time
        assert earlier["finished"] <= later["started"]


def submit_path(server: Server, name: str) -> dict:
    """A job on a file in the server's --allow-path folder (no upload: long inputs)."""
    code, job = server.call("POST", f"/api/jobs?path={name}&" + "&".join(f"{k}={v}" for k, v in SETTINGS.items()))
    assert code == 201, job
    return job


def test_cancel_and_delete(server, tmp_path):
    song(server.allow, 240.0, "long.wav")
    long_job = submit_path(server, "long.wav")
    queued = server.submit(song(tmp_path, 2.0, "short.wav"))[1]
    server.wait(long_job["id"], until=("running",))
    code, job = server.call("POST", f"/api/jobs/{queued['id']}/cancel")
    assert code == 200 and job["status"] == "cancelled"
    assert server.call("DELETE", f"/api/jobs/{long_job['id']}")[0] == 409  # running
    code, job = server.call("POST", f"/api/jobs/{long_job['id']}/cancel")
    assert code == 200
    job = server.wait(long_job["id"], bound_s=30)
    assert job["status"] == "cancelled" and job["stems"] == []
    assert list((server.data / "jobs" / long_job["id"]).iterdir()) == []  # no stem, no .part
    assert server.call("POST", f"/api/jobs/{long_job['id']}/cancel")[0] == 409
    assert server.call("DELETE", f"/api/jobs/{long_job['id']}")[0] == 204
    assert long_job["id"] not in job_folders(server)
    assert server.call("GET", f"/api/jobs/{long_job['id']}")[0] == 404


def test_health_and_models(server):
    code, health = server.call("GET", "/api/health")
    assert code == 200 and health["status"] == "ok" and health["device"] == "cpu"
    code, models = server.call("GET", "/api/models")
    assert code == 200 and models and all({"name", "cached", "stems"} <= set(m) for m in models)
    assert not any(m["cached"] for m in models)  # an empty UVRSEP_HOME
    code, answer = server.call("POST", f"/api/models/{models[0]['name']}/download")
    assert code == 422 and "offline" in answer["error"].lower()  # UVRSEP_OFFLINE=1: nothing downloads
    assert server.call("POST", "/api/models/no-such-model/download")[0] == 404


def test_a_registry_model_downloads_and_runs(tmp_path, tiny_model):
    from .test_pretrained import _entry, _Server

    files = _Server()
    try:
        files.files = {"tinyreg.pth": tiny_model.read_bytes()}
        registry = tmp_path / "registry.json"
        registry.write_text(json.dumps({"models": [_entry(files, "tinyreg", files.files["tinyreg.pth"])]}))
        server = Server(make_root(tmp_path, tiny_model), env={"UVRSEP_REGISTRY": str(registry), "UVRSEP_OFFLINE": ""}).start()
        try:
            models = server.call("GET", "/api/models")[1]
            assert [(m["name"], m["cached"]) for m in models] == [("tinyreg", False)]
            code, model = server.call("POST", "/api/models/tinyreg/download")
            assert code == 200 and model["cached"] is True, model
            assert (server.root / "home" / "models" / "tinyreg.pth").read_bytes() == files.files["tinyreg.pth"]
            assert files.requests == ["tinyreg.pth"]
            job = server.submit(song(tmp_path, 1.0), model="tinyreg", params="")[1]
            assert server.wait(job["id"])["status"] == "done"
            assert files.requests == ["tinyreg.pth"]  # the job used the cached file
        finally:
            server.stop()
    finally:
        files.close()


def test_the_page_is_served(server):
    code, page = server.call("GET", "/")
    assert code == 200 and b"<html" in page


# -- hostile requests ------------------------------------------------------------------------------


def test_a_declared_oversized_upload_is_refused_before_its_body(server):
    before = job_folders(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("POST", "/api/jobs?name=big.wav")
    conn.putheader("Content-Length", str(int(UPLOAD_LIMIT_MB * 1e6) + 1))
    conn.endheaders()  # no body sent: the answer comes from the header alone
    response = conn.getresponse()
    assert response.status == 413 and "--max-upload-mb" in json.loads(response.read())["error"]
    conn.close()
    assert job_folders(server) == before


def test_an_undeclared_oversized_upload_is_cut_off(server):
    before = job_folders(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("POST", "/api/jobs?name=big.wav")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    block = b"\0" * 65536
    try:
        for _ in range(int(UPLOAD_LIMIT_MB * 1e6) // len(block) + 4):
            conn.send(b"%x\r\n%s\r\n" % (len(block), block))
        conn.send(b"0\r\n\r\n")
        status = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server may answer and close before the client has sent it all
    conn.close()
    assert status == 413
    assert job_folders(server) == before


@pytest.mark.parametrize(
    "name,body,status,words",
    [
        ("noise.wav", os.urandom(5000), 422, "noise.wav: "),
        ("empty.wav", b"", 422, "empty"),
        ("notes.txt", b"hello", 415, "notes.txt: not an audio"),
        ("../../../../etc/cron.d/evil.wav", b"RIFF", 422, "evil.wav: "),
    ],
)
def test_bad_uploads_are_answered_with_one_line(server, name, body, status, words):
    before = job_folders(server)
    code, answer = server.call("POST", f"/api/jobs?name={name}", body=body)
    assert code == status, answer
    assert words in answer["error"] and "\n" not in answer["error"]
    assert str(server.data) not in answer["error"]  # the server's own paths stay inside
    assert job_folders(server) == before


def test_a_hostile_name_stays_a_name(server, tmp_path):
    clip = song(tmp_path, 2.0)
    code, job = server.submit(clip, name="..%2F..%2F..%2Fescape%0Aline.wav")
    assert code == 201, job
    assert job["name"] == "escapeline.wav"
    job = server.wait(job["id"])
    assert sorted(p.name for p in (server.data / "jobs" / job["id"]).iterdir()) == [
        "input.wav", "instrumental.wav", "vocals.wav",
    ]
    assert not (server.root / "escape").exists() and not (server.data / "escape").exists()


@pytest.mark.parametrize(
    "query,status,words",
    [
        ("aggressiveness=500", 422, "aggressiveness must be 0-100"),
        ("aggressiveness=lots", 422, "whole number"),
        ("tta=maybe", 422, "true or false"),
        ("colour=red", 422, "unknown setting 'colour'"),
        ("format=ogg", 422, "format must be one of"),
        ("window_size=100", 422, "window"),
        ("stems=drums", 422, "drums"),
        ("model=../../etc/model.pth", 403, "outside the folder"),
        ("model=no-such-model", 422, "no-such-model"),
        ("path=../elsewhere.wav", 403, "outside the folder"),
    ],
)
def test_bad_settings_are_refused(server, tmp_path, query, status, words):
    clip = song(tmp_path, 1.0)
    base = {k: v for k, v in SETTINGS.items() if k + "=" not in query}
    url = "/api/jobs?name=x.wav&" + "&".join(f"{k}={v}" for k, v in base.items()) + "&" + query
    code, answer = server.call("POST", url, body=b"" if "path=" in query else clip.read_bytes())
    assert code == status, answer
    assert words in answer["error"], answer
    assert server.call("GET", "/api/health")[0] == 200


def test_a_server_side_path_job(server):
    clip = song(server.allow, 2.0, "there.wav")
    job = server.wait(submit_path(server, "there.wav")["id"])
    assert job["status"] == "done" and job["name"] == "there.wav"
    assert server.call("DELETE", f"/api/jobs/{job['id']}")[0] == 204
    assert clip.exists()  # a server-side input is never deleted


def test_unknown_jobs_and_stems_are_404(server):
    for path in ["/api/jobs/0123", "/api/jobs/..%2F..%2Fjobs.sqlite3", "/api/jobs/" + "0" * 32 + "/stems/vocals", "/api/nothing"]:
        code, answer = server.call("GET", path)
        assert code == 404 and set(answer) == {"error"}, answer


def test_a_malformed_parameter_is_one_line(server):
    code, answer = server.call("GET", "/api/jobs?limit=many")
    assert code == 422 and answer["error"].startswith("limit: ") and "\n" not in answer["error"]
    assert server.call("GET", "/api/jobs?limit=100000")[0] == 200  # bounded, not refused


# -- restart, token, extra -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_restart_keeps_finished_jobs_and_fails_the_running_one(tmp_path, tiny_model):
    first = Server(make_root(tmp_path, tiny_model)).start()
    done = first.wait(first.submit(song(tmp_path, 2.0, "done.wav"))[1]["id"])
    assert done["status"] == "done"
    song(first.allow, 240.0, "long.wav")
    running = submit_path(first, "long.wav")
    queued = first.submit(song(tmp_path, 2.0, "after.wav"))[1]
    first.wait(running["id"], until=("running",))
    first.stop(signal.SIGKILL)  # died: no chance to tidy up
    second = Server(tmp_path).start()
    try:
        code, job = second.call("GET", f"/api/jobs/{running['id']}")
        assert code == 200 and job["status"] == "failed" and job["error"] == STOPPED_REASON
        assert second.call("GET", f"/api/jobs/{done['id']}")[1]["status"] == "done"
        assert second.call("GET", f"/api/jobs/{done['id']}/stems/vocals")[0] == 200
        assert second.wait(queued["id"])["status"] == "done"  # the queue goes on
    finally:
        assert second.stop() == 128 + signal.SIGINT


def test_a_stopping_server_discards_its_running_job(tmp_path, tiny_model):
    server = Server(make_root(tmp_path, tiny_model)).start()
    song(server.allow, 240.0, "long.wav")
    job = submit_path(server, "long.wav")
    server.wait(job["id"], until=("running",))
    assert server.stop(signal.SIGTERM) == 128 + signal.SIGTERM, server.log_text()
    assert list((server.data / "jobs" / job["id"]).iterdir()) == []  # its stems' .part files went with it
    again = Server(tmp_path).start()
    try:
        stopped = again.call("GET", f"/api/jobs/{job['id']}")[1]
        assert stopped["status"] == "failed" and stopped["error"] == STOPPED_REASON
    finally:
        again.stop()


def test_expired_jobs_are_deleted_at_start(tmp_path, tiny_model):
    first = Server(make_root(tmp_path, tiny_model), "--keep-hours", "0").start()
    job = first.wait(first.submit(song(tmp_path, 1.0))[1]["id"])
    assert job["status"] == "done"
    first.stop()
    second = Server(tmp_path, "--keep-hours", "0").start()
    try:
        assert second.call("GET", f"/api/jobs/{job['id']}")[0] == 404
        assert job_folders(second) == []
    finally:
        second.stop()


def test_off_loopback_needs_a_token(tmp_path, tiny_model, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--token" in err
    server = Server(make_root(tmp_path, tiny_model), "--token", "s3cret", host="0.0.0.0").start()
    try:
        assert server.call("GET", "/api/jobs")[0] == 401
        assert server.call("GET", "/api/jobs", token="wrong")[0] == 401
        assert server.call("GET", "/api/jobs", token="s3cret")[0] == 200
        assert server.call("GET", "/api/jobs?token=s3cret")[0] == 200
        server.token = "s3cret"
        job = server.wait(server.submit(song(tmp_path, 1.0))[1]["id"])
        assert job["status"] == "done"
    finally:
        server.stop()


def test_a_missing_extra_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uvrsep[serve]" in err
