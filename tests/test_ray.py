"""``uvrsep split --ray`` on a local Ray cluster, and ``--inputs-from`` (which needs no Ray).

The cluster tests need the ``[ray]`` extra (CI installs it) and are skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from uvrsep.cli import _split_ray_address
from uvrsep.inputs import MAX_LISTED_PATH
from uvrsep.ray_batch import SECONDS_PER_MINUTE

from .conftest import SHORT_CHUNK_PARAMS, neutralise, streamed_chunk_seconds
from .test_cli import base_args as cli_base_args
from .test_cli import split, write
from .test_robustness import with_default_signals

#: The cluster tests' params (a streamed chunk of 17.8 s: the long inputs that go through the
#: chunked path and the parts cost a quarter of the audio they would with the CLI tests' params;
#: the Ray tests were a third of the suite's time).
RAY_PARAMS = SHORT_CHUNK_PARAMS
#: Seconds of audio of one streamed chunk of :data:`RAY_PARAMS`.
CHUNK_SECONDS = streamed_chunk_seconds(RAY_PARAMS)
#: Seconds of audio of the "long" input: more than one streamed chunk, so it goes through the
#: chunked path and keeps a worker busy long enough to be killed mid-file.
LONG_SECONDS = 1.25 * CHUNK_SECONDS
#: ``--ray-split-minutes`` that cuts a long input into parts of one chunk each.
ONE_CHUNK_MINUTES = f"{0.9 * CHUNK_SECONDS / SECONDS_PER_MINUTE:.4f}"
#: ``--ray-split-minutes`` a little over the long input (1.4 chunks): it stays whole, an input
#: 1.3 times as long is cut (into parts of one chunk).
LONG_INPUT_MINUTES = f"{1.4 * CHUNK_SECONDS / SECONDS_PER_MINUTE:.4f}"
#: How long a test waits for something a run does (a worker's temporary file, an exit).
WAIT_S = 120.0
POLL_S = 0.01


def base_args(model: Path, out: Path) -> list[str]:
    """The cluster tests' params, with ``--compile off``: ``auto`` may compile a batch shape whose
    code the machine's cache holds (once the windows are worth enough eager seconds, on a slow
    or busy machine), and the driver and a worker batch the windows differently, so compiled and eager batches (equal up to rounding, 120-136 dB) would
    not be the same in both; with the net run one way the stems are the same bit for bit."""
    args = cli_base_args(model, out)
    args[args.index("-p") + 1] = RAY_PARAMS
    return [*args, "--compile", "off"]


def make_inputs(folder: Path, long: bool = False) -> list[Path]:
    """Five short inputs of different rates, channels and lengths (and a long one)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [
        write(folder / "a.wav", 0.6),
        write(folder / "b.wav", 1.3, sr=48000),
        write(folder / "c.wav", 0.9, channels=1),
        write(folder / "d.flac", 2.1, sr=22050),
        write(folder / "e.wav", 0.2),
    ]
    if long:
        files.append(write(folder / "long.wav", LONG_SECONDS, sr=44100))
    return files


def stems_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def leftovers(folder: Path) -> list[str]:
    """Everything in ``folder`` that is not a finished stem (hidden temporary files)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- without Ray -------------------------------------------------------------------------------


def test_ray_address_form_is_split_into_two_options():
    assert _split_ray_address(["split", "--ray=auto", "x.wav"]) == ["split", "--ray", "--ray-address", "auto", "x.wav"]
    assert _split_ray_address(["split", "--ray", "--", "--ray=x.wav"]) == ["split", "--ray", "--", "--ray=x.wav"]


def test_missing_ray_is_a_one_line_usage_error(tmp_path, capsys, tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    source = write(tmp_path / "a.wav")
    code, out, err = split(capsys, str(source), *base_args(tiny_model, tmp_path / "out"), "--ray")
    assert code == 2
    assert err.strip().count("\n") == 0 and 'pip install "uvrsep[ray]"' in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [("--ray-workers", "2"), ("--ray-split-minutes", "3"), ("--ray-io-tasks",)])
def test_ray_options_without_ray_are_usage_errors(tmp_path, capsys, tiny_model, option):
    source = write(tmp_path / "a.wav")
    code, _, err = split(capsys, str(source), *base_args(tiny_model, tmp_path / "out"), *option)
    assert code == 2 and "go with --ray" in err and option[0] in err


def test_inputs_from_a_list_file(tmp_path, capsys, tiny_model):
    files = make_inputs(tmp_path / "in")
    listing = tmp_path / "list.txt"
    lines = [str(files[0]), "", str(files[1]), str(files[0]), str(tmp_path / "missing.wav"), "x" * (MAX_LISTED_PATH + 5)]
    listing.write_text("\n".join(lines) + "\n")
    code, out, err = split(capsys, "--inputs-from", str(listing), *base_args(tiny_model, tmp_path / "out"), "--json")
    manifest = json.loads(out)
    by_input = {row["input"]: row for row in manifest["files"]}
    assert code == 1
    assert by_input[str(files[0])]["status"] == by_input[str(files[1])]["status"] == "ok"
    assert "no such file" in by_input[str(tmp_path / "missing.wav")]["error"]
    assert sum("longer than a path" in (row["error"] or "") for row in manifest["files"]) == 1
    assert len(manifest["files"]) == 4  # the repeated line counted once
    assert len(list((tmp_path / "out").iterdir())) == 4


def test_inputs_from_an_unreadable_list_is_a_usage_error(tmp_path, capsys, tiny_model):
    code, _, err = split(capsys, "--inputs-from", str(tmp_path / "none.txt"), *base_args(tiny_model, tmp_path / "out"))
    assert code == 2 and "none.txt" in err


def test_inputs_from_an_endless_device_ends(tmp_path, capsys, tiny_model, monkeypatch):
    import uvrsep.inputs

    monkeypatch.setattr(uvrsep.inputs, "MAX_LISTING_CHARS", 1 << 20)  # the same bound, reached sooner
    code, _, err = split(capsys, "--inputs-from", "/dev/zero", *base_args(tiny_model, tmp_path / "out"))
    assert code == 2 and "split the list" in err


def test_no_inputs_at_all_is_a_usage_error(tmp_path, capsys, tiny_model):
    code, _, err = split(capsys, *base_args(tiny_model, tmp_path / "out"))
    assert code == 2 and "--inputs-from" in err


class FakeCluster:
    """What :func:`plan_workers` asks of Ray: the cluster's resources and its nodes'."""

    def __init__(self, nodes: list[dict[str, float]]) -> None:
        self._nodes = nodes

    def cluster_resources(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for node in self._nodes:
            for key, value in node.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": node} for node in self._nodes]


def test_workers_follow_the_clusters_gpus_and_cpus():
    from uvrsep.ray_batch import RaySettings, RayUnavailable, plan_workers

    gpu_box = FakeCluster([{"CPU": 16.0, "GPU": 1.0}])
    # GPU workers: a CPU of the node left to the decode and write tasks (plenty here)
    assert plan_workers(gpu_box, RaySettings()) == (1, 1.0, 2.0, 2, True)
    assert plan_workers(gpu_box, RaySettings(gpus_per_worker=0.25)) == (4, 0.25, 2.0, 2, True)
    assert plan_workers(gpu_box, RaySettings(gpus_per_worker=0.0)) == (8, 0.0, 2.0, 2, False)  # CPU workers
    two_nodes = FakeCluster([{"CPU": 2.0}, {"CPU": 8.0}])
    assert plan_workers(two_nodes, RaySettings()) == (5, 0.0, 2.0, 2, False)
    assert plan_workers(two_nodes, RaySettings(cpus_per_worker=16.0)) == (1, 0.0, 8.0, 8, False)  # fits the largest node
    assert plan_workers(two_nodes, RaySettings(workers=3, cpus_per_worker=0.5)) == (3, 0.0, 0.5, 1, False)
    with pytest.raises(RayUnavailable, match="no GPU"):
        plan_workers(two_nodes, RaySettings(gpus_per_worker=0.5))
    # a CPU left on the largest node for the decode and write tasks
    assert plan_workers(two_nodes, RaySettings(io_tasks=True)) == (4, 0.0, 2.0, 2, True)
    assert plan_workers(FakeCluster([{"CPU": 2.0}]), RaySettings(io_tasks=True)) == (1, 0.0, 1.0, 2, True)  # threads as asked
    assert plan_workers(FakeCluster([{"CPU": 1.0}]), RaySettings(io_tasks=True)) == (1, 0.0, 1.0, 1, True)  # no room: all of it
    assert plan_workers(gpu_box, RaySettings(io_tasks=False)) == (1, 1.0, 2.0, 2, False)


def test_decode_and_write_tasks_by_default_only_beside_gpu_workers():
    from uvrsep.ray_batch import RaySettings, io_tasks_wanted

    assert io_tasks_wanted(RaySettings(), 1.0) and io_tasks_wanted(RaySettings(), 0.25)
    assert not io_tasks_wanted(RaySettings(), 0.0)
    assert io_tasks_wanted(RaySettings(io_tasks=True), 0.0) and not io_tasks_wanted(RaySettings(io_tasks=False), 1.0)


def test_the_driver_shows_audio_seconds_files_and_throughput(capsys):
    """One bar over the audio seconds done (a long file's parts count as they come back), with
    files done of all and failed beside it, then a closing line with the hours, the wall time
    and × real time (no Ray needed)."""
    from uvrsep.cli import FileResult, Reporter
    from uvrsep.ray_batch import _Progress

    report = Reporter(quiet=False)
    report.bars = True  # as on a terminal
    with _Progress(3, report) as progress:
        progress.audio(90.0)
        progress.file(FileResult(input="a.wav", status="ok", duration=90.0, outputs={"vocals": "a_v.wav"}))
        progress.file(FileResult(input="b.wav", status="failed", error="b.wav: not audio"))
        progress.audio(20.0)  # two parts of a long file, then the file
        progress.audio(10.0)
        progress.file(FileResult(input="c.wav", status="ok", duration=30.0, outputs={"vocals": "c_v.wav"}))
    err = capsys.readouterr().err
    assert "120 s of audio" in err and "3/3 files, 1 failed" in err and "x real time" in err
    assert "b.wav: not audio" in err
    closing = err.strip().splitlines()[-1]
    assert closing.startswith("ray: 0.033 h of audio in ") and closing.endswith("2 done, 1 failed")


# -- on a local cluster ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    """A local two-CPU Ray cluster for the module; ``split --ray`` joins it."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs_and_stems(tmp_path_factory, tiny_model, _neutral_places) -> tuple[list[Path], dict[str, bytes]]:
    """:func:`make_inputs` with the long one, and the single-process CLI's stems of them (the
    stems every cluster run of them must give; computed once for the module's tests)."""
    from uvrsep.cli import main

    folder = tmp_path_factory.mktemp("ray-inputs")
    files = make_inputs(folder / "in", long=True)
    with pytest.MonkeyPatch.context() as patch:
        neutralise(patch, *_neutral_places)
        assert main(["split", *map(str, files), *base_args(tiny_model, folder / "one")]) == 0
    return files, stems_of(folder / "one")


def ray_split(capsys, inputs: list[Path], model: Path, out: Path, *extra: str) -> tuple[int, dict]:
    code, stdout, _ = split(capsys, *map(str, inputs), *base_args(model, out), "--ray", "--json", *extra)
    return code, json.loads(stdout)


@pytest.mark.ray
def test_ray_stems_equal_the_single_process_ones_and_a_rerun_resumes(tmp_path, capsys, tiny_model, cluster, inputs_and_stems):
    files, expected = inputs_and_stems
    code, manifest = ray_split(capsys, files, tiny_model, tmp_path / "ray")
    assert code == 0 and manifest["ok"] == len(files)
    assert [row["input"] for row in manifest["files"]] == list(map(str, files))
    assert len(expected) == 2 * len(files) and stems_of(tmp_path / "ray") == expected
    assert leftovers(tmp_path / "ray") == []

    # rerun after losing one stem: only that one is written again
    lost = tmp_path / "ray" / "b_vocals.wav"
    lost.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()}
    code, manifest = ray_split(capsys, files, tiny_model, tmp_path / "ray")
    assert code == 0 and manifest["ok"] == 1 and manifest["skipped"] == len(files) - 1
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()}
    assert {name: t for name, t in after.items() if name != lost.name} == before
    assert stems_of(tmp_path / "ray") == expected


@pytest.mark.ray
def test_decode_and_write_tasks_give_the_single_process_stems(tmp_path, capsys, tiny_model, cluster):
    """``--ray-io-tasks`` on a CPU cluster: inputs decoded and stems written in CPU tasks apart
    from the worker (short and streamed-length inputs, mono, 48 kHz, FLAC, an MP3 output); one
    of four channels and one longer than a part go to the worker undecoded (their stems too
    are the single-process ones); a corrupt input is one error row; nothing else is left."""
    files = [*make_inputs(tmp_path / "in", long=True), write(tmp_path / "in" / "quad.wav", 1.1, channels=4)]
    files.append(write(tmp_path / "in" / "longer.wav", 1.3 * LONG_SECONDS))
    bad = tmp_path / "in" / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    single, staged = tmp_path / "one", tmp_path / "ray"
    # MP3 stems: the encoder keeps state across writes, so the worker's blocks must be written as made
    assert split(capsys, *map(str, files), *base_args(tiny_model, single), "-f", "mp3")[0] == 0
    loud = [arg for arg in base_args(tiny_model, staged) if arg != "-q"]
    code, stdout, err = split(
        capsys, *map(str, [*files, bad]), *loud, "-f", "mp3", "--ray", "--json", "-v", "--ray-io-tasks",
        "--ray-split-minutes", LONG_INPUT_MINUTES,
    )
    manifest = json.loads(stdout)
    assert code == 1 and manifest["ok"] == len(files) and manifest["failed"] == 1, err
    assert "decoded and written in CPU tasks" in err and "ray: 1 long inputs cut into 2 parts" in err
    assert stems_of(staged) == stems_of(single) and len(stems_of(single)) == 2 * len(files)
    assert leftovers(staged) == []
    rows = {Path(r["input"]).name: r for r in manifest["files"]}
    assert "bad.wav" in rows["bad.wav"]["error"] and "\n" not in rows["bad.wav"]["error"]
    assert rows["c.wav"]["channels"] == 1 and rows["d.flac"]["sample_rate"] == 22050
    assert rows["long.wav"]["duration"] == pytest.approx(LONG_SECONDS)
    assert all(r["seconds"] > 0 for r in manifest["files"])


@pytest.mark.ray
def test_a_corrupt_input_is_one_error_row(tmp_path, capsys, tiny_model, cluster):
    files = make_inputs(tmp_path / "in")[:3]
    bad = tmp_path / "in" / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    code, manifest = ray_split(capsys, [*files, bad], tiny_model, tmp_path / "out")
    assert code == 1 and manifest["failed"] == 1 and manifest["ok"] == 3
    row = next(r for r in manifest["files"] if r["status"] == "failed")
    assert row["input"] == str(bad) and "bad.wav" in row["error"] and "\n" not in row["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{f.stem}_{stem}.wav" for f in files for stem in ("instrumental", "vocals")
    )


@pytest.mark.ray
def test_a_long_file_cut_into_parts_gives_the_single_process_stems(tmp_path, capsys, tiny_model, cluster):
    """``--ray-split-minutes`` of one chunk: the long inputs (one resampled back to 48 kHz and mono) are
    cut into parts of one chunk, separated by any worker and joined in order by one writer per
    file, into an output folder no whole file made first; the stems equal the single-process
    CLI's bit for bit and no segment is left."""
    files = [
        write(tmp_path / "in" / "long.wav", 2.2 * LONG_SECONDS),
        write(tmp_path / "in" / "long48.wav", 1.2 * LONG_SECONDS, sr=48000, channels=1),
    ]
    assert split(capsys, *map(str, files), *base_args(tiny_model, tmp_path / "one"))[0] == 0
    loud = [arg for arg in base_args(tiny_model, tmp_path / "ray" / "new") if arg != "-q"]
    code, stdout, err = split(capsys, *map(str, files), *loud, "--ray", "--json", "-v", "--ray-split-minutes", ONE_CHUNK_MINUTES)
    manifest = json.loads(stdout)
    assert code == 0 and manifest["ok"] == len(files), err
    assert "ray: 2 long inputs cut into 5 parts" in err
    assert stems_of(tmp_path / "ray" / "new") == stems_of(tmp_path / "one")
    assert leftovers(tmp_path / "ray" / "new") == []
    long_row = next(r for r in manifest["files"] if r["input"] == str(files[0]))
    assert long_row["frames"] == sf.info(str(files[0])).frames and long_row["duration"] == pytest.approx(2.2 * LONG_SECONDS)


def test_a_stale_segment_is_swept_with_the_temporary_files(tmp_path):
    """A part's segment left by a worker that died is removed at the end of the run, as a
    stem's temporary file is; other hidden files stay."""
    from uvrsep.audio import SEGMENT_SUFFIX, remove_stale_temp_files, temp_file_beside

    target = tmp_path / "song_vocals.wav"
    segment = temp_file_beside(target, SEGMENT_SUFFIX)
    part = temp_file_beside(target)
    other = tmp_path / ".song_vocals.wav.notes"
    other.write_text("mine")
    assert segment.name.endswith(".seg.part") and segment.name.startswith(".song_vocals.wav.")
    assert remove_stale_temp_files([target]) == 2
    assert not segment.exists() and not part.exists() and other.exists()


def _pids_writing(folder: Path) -> set[int]:
    """Processes holding a hidden temporary file of ``folder`` open (Linux ``/proc``)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(str(folder) + "/.") and ".part" in target:
                    pids.add(int(proc.name))
        except OSError:
            continue
    return pids


def _kill_first_writer(folder: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not killed:
        for pid in _pids_writing(folder):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(POLL_S)


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the writing worker through /proc")
@pytest.mark.parametrize("extra", [(), ("--ray-split-minutes", ONE_CHUNK_MINUTES)], ids=["whole", "parts"])
def test_a_worker_killed_mid_file_still_yields_every_output_whole(tmp_path, capsys, tiny_model, cluster, extra, inputs_and_stems):
    """Killed while it writes a stem (whole files) or a part's segment (the long file in parts).
    (A write task of ``--ray-io-tasks`` holds its files for milliseconds only: in the whole
    suite the killer did not always see one, so that case is not here.)"""
    files, expected = inputs_and_stems
    out = tmp_path / "ray"
    out.mkdir()
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_writer, args=(out, killed), daemon=True)
    killer.start()
    code, manifest = ray_split(capsys, files, tiny_model, out, *extra)
    killer.join(WAIT_S)
    assert killed, "no worker was seen writing"
    assert code == 0 and manifest["ok"] == len(files)
    assert stems_of(out) == expected
    assert leftovers(out) == []


@pytest.mark.ray
def test_an_interrupted_run_leaves_no_partial_stem_and_a_rerun_finishes_it(tmp_path, capsys, tiny_model, cluster):
    files = make_inputs(tmp_path / "in", long=True)
    out = tmp_path / "ray"
    cmd = [sys.executable, "-c", "import sys; from uvrsep.cli import main; sys.exit(main(sys.argv[1:]))",
           "split", *map(str, files), *base_args(tiny_model, out), "--ray"]
    env = {**os.environ, "RAY_ADDRESS": cluster.get_runtime_context().gcs_address}
    child = subprocess.Popen(with_default_signals(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not (out.is_dir() and _pids_writing(out)):
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(POLL_S)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=WAIT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    # every stem there is whole (a worker the cluster stops after the driver's sweep may leave a
    # hidden temporary file; the rerun removes it)
    lengths = {f.stem: sf.info(str(f)).frames for f in files}
    for stem in (p for p in out.iterdir() if not p.name.startswith(".")):
        assert sf.info(str(stem)).frames == lengths[stem.stem.rsplit("_", 1)[0]]
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.startswith(".")}
    assert len(done) < 2 * len(files)
    code, manifest = ray_split(capsys, files, tiny_model, out)
    assert code == 0 and manifest["ok"] + manifest["skipped"] == len(files)
    assert {name: p for name, p in ((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) if name in done} == done
    assert len(list(out.iterdir())) == 2 * len(files) and leftovers(out) == []


#: Retries of a row whose worker dies, in the poisoned-worker tests (the default: ``TASK_RETRIES``).
POISONED_RETRIES = 1


def _poisoned_cluster(ray, step: str):
    """Restart the module's cluster with workers whose per-file ``step`` (a method of
    ``_BatchRun``) kills the worker process on any input named ``poison*`` (installed by Ray's
    worker setup hook: nothing in uvrsep knows)."""

    def poison_workers() -> None:  # runs in every worker process at start; pickled by value
        import os as worker_os

        from uvrsep import cli as worker_cli

        real = getattr(worker_cli._BatchRun, step)

        def poisoned(self, path, *args):
            if path.name.startswith("poison"):
                worker_os._exit(1)
            return real(self, path, *args)

        setattr(worker_cli._BatchRun, step, poisoned)

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             runtime_env={"worker_process_setup_hook": poison_workers})


@pytest.mark.ray
@pytest.mark.parametrize(
    "step, extra", [("separate", ()), ("open_input", ("--ray-io-tasks",))], ids=["worker", "decode-task"]
)
def test_an_input_that_kills_its_worker_every_time_is_one_error_row(tmp_path, capsys, tiny_model, cluster, step, extra, monkeypatch):
    """After TASK_RETRIES retries the row is given up: one error row naming the input, exit 1,
    every other input done, nothing left but their stems (the process that dies: a separator
    worker, or a decode task apart from the workers). With one retry here instead of the
    default's two: each death costs a new worker process that imports torch (~10 s here)."""
    from uvrsep import ray_batch

    monkeypatch.setattr(ray_batch, "TASK_RETRIES", POISONED_RETRIES)  # read by the driver, in this process
    files = make_inputs(tmp_path / "in")[:3]
    poison = write(tmp_path / "in" / "poison.wav", 0.5)
    _poisoned_cluster(cluster, step)
    try:
        code, stdout, _ = split(
            capsys, *map(str, [*files, poison]), *base_args(tiny_model, tmp_path / "out"), "--ray", "--json", *extra
        )
        # the driver joined this test's cluster, whose error listener may print the workers'
        # deaths on stdout after the run (a `uvrsep` process starts its own connection and
        # shuts it down, listener included, before it writes the manifest)
        manifest = json.loads(stdout[stdout.index("{\n"):])
    finally:  # the other tests get a plain cluster again
        cluster.shutdown()
        cluster.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    assert code == 1 and manifest["ok"] == 3 and manifest["failed"] == 1
    row = next(r for r in manifest["files"] if r["status"] == "failed")
    assert row["input"] == str(poison) and f"died {POISONED_RETRIES + 1} times" in row["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{f.stem}_{stem}.wav" for f in files for stem in ("instrumental", "vocals")
    )
