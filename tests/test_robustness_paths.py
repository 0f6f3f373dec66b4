"""Hostile names, templates, sidecars and non-regular inputs (issue 14, classes 1, 3, 4, 5, 7):
nothing is written outside ``-o``, nothing blocks, one bad name fails alone."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import soundfile as sf

from uvrsep.inputs import check_template, expand_inputs, InputError, output_path, safe_component

from .test_robustness import args_for, good, run

EXTS = frozenset({".wav", ".flac"})


def files_outside(root: Path, out: Path) -> list[Path]:
    """Audio files written anywhere under ``root`` but outside ``out`` (inputs excluded)."""
    return [p for p in root.rglob("*.wav") if out not in p.parents and "in" not in p.relative_to(root).parts[:1]]


# -- class 1: nothing escapes the output folder -------------------------------------------------


@pytest.mark.parametrize("template", ["../x_{stem}.{ext}", "/tmp/uvrsep_abs_{stem}.{ext}", "a/../../{stem}.{ext}"])
def test_templates_that_leave_the_output_folder_are_usage_errors(tiny_model, tmp_path, capsys, template) -> None:
    song = good(tmp_path / "in" / "song.wav")
    out = tmp_path / "deep" / "out"
    code, _, err = run(capsys, str(song), *args_for(tiny_model, out, "--filename", template))
    assert code == 2
    assert "inside the output folder" in err and "Traceback" not in err
    assert not files_outside(tmp_path, out) and not Path("/tmp/uvrsep_abs_vocals.wav").exists()


@pytest.mark.parametrize(
    ("fmt", "template", "says"),
    [("wav", "{track}_{stem}.mp3", "end in '.mp3'"), ("flac", "{track}_{stem}.wav", "end in '.wav'"), ("wav", "{track}_{stem}", "no extension")],
)
def test_a_template_whose_extension_is_not_the_format_is_a_usage_error(tiny_model, tmp_path, capsys, fmt, template, says) -> None:
    song = good(tmp_path / "in" / "song.wav")
    out = tmp_path / "out"
    code, _, err = run(capsys, str(song), *args_for(tiny_model, out, "-f", fmt, "--filename", template))
    assert code == 2, err
    assert says in err and f"the format is {fmt}" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("template", ["{track}_{stem}.WAV", "{stem}/{track}.{ext}"])
def test_a_template_ending_in_the_format_runs(tiny_model, tmp_path, capsys, template) -> None:
    song = good(tmp_path / "in" / "song.wav")
    code, manifest, err = run(capsys, str(song), *args_for(tiny_model, tmp_path / "out", "--filename", template))
    assert code == 0, err
    assert all(sf.info(p).format == "WAV" for p in manifest["files"][0]["outputs"].values())


def test_a_track_named_dot_dot_stays_inside(tiny_model, tmp_path, capsys) -> None:
    song = good(tmp_path / "in" / "...wav", format="WAV")  # track ".."
    out = tmp_path / "deep" / "out"
    code, manifest, _ = run(capsys, str(song), *args_for(tiny_model, out, "--filename", "{track}/{stem}.{ext}"))
    assert code == 0
    written = [Path(p) for p in manifest["files"][0]["outputs"].values()]
    assert written and all(out.resolve() in p.resolve().parents for p in written)
    assert not files_outside(tmp_path, out)


def test_a_sidecar_primary_stem_cannot_climb_out(tiny_model, tmp_path, capsys) -> None:
    model = tmp_path / "forum" / "model.pth"
    model.parent.mkdir()
    shutil.copy(tiny_model, model)
    model.with_suffix(".json").write_text(json.dumps({"primary_stem": "../../../x"}))
    song = good(tmp_path / "in" / "song.wav")
    out = tmp_path / "deep" / "out"
    code, manifest, _ = run(capsys, str(song), *args_for(model, out))
    assert code == 0
    for path in manifest["files"][0]["outputs"].values():
        assert out.resolve() in Path(path).resolve().parents
    assert not files_outside(tmp_path, out)


@pytest.mark.parametrize("value", [42, ["Vocals"], ""])
def test_a_sidecar_with_bad_types_is_refused_in_one_line(tiny_model, tmp_path, capsys, value) -> None:
    model = tmp_path / "model.pth"
    shutil.copy(tiny_model, model)
    model.with_suffix(".json").write_text(json.dumps({"primary_stem": value}))
    song = good(tmp_path / "in" / "song.wav")
    code, _, err = run(capsys, str(song), *args_for(model, tmp_path / "out"))
    assert code == 2
    assert "model.json" in err and "primary_stem" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["../../a", "a/b", "..", ".", "", "x\x00y", "new\nline", "\\win\\path"])
def test_safe_component_never_names_a_folder_step(value) -> None:
    text = safe_component(value)
    assert text and "/" not in text and "\\" not in text and text not in (".", "..")
    assert all(ord(c) >= 32 for c in text)
    assert output_path("{track}_{stem}.{ext}", Path("o"), Path("a.wav"), value, "wav", "m").parent == Path("o")


def test_huge_format_widths_are_refused_before_allocating() -> None:
    with pytest.raises(InputError, match="wider than"):
        check_template("{track:>99999999}_{stem}.{ext}")
    check_template("{track:>20}_{stem}.{ext}")  # a sane width is fine


# -- class 3: silent wrong output ---------------------------------------------------------------


def test_stems_naming_nothing_is_a_usage_error(tiny_model, tmp_path, capsys) -> None:
    song = good(tmp_path / "in" / "song.wav")
    code, _, err = run(capsys, str(song), *args_for(tiny_model, tmp_path / "out", "--stems", ","))
    assert code == 2 and "--stems" in err


def test_a_folder_at_an_outputs_name_is_not_an_existing_output(tiny_model, tmp_path, capsys) -> None:
    song = good(tmp_path / "in" / "song.wav")
    out = tmp_path / "out"
    (out / "song_vocals.wav").mkdir(parents=True)
    code, manifest, err = run(capsys, str(song), *args_for(tiny_model, out))
    assert code == 1
    assert manifest["files"][0]["status"] == "failed" and "not a file" in manifest["files"][0]["error"]


# -- class 4: nothing hangs ---------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_input_is_refused_without_blocking(tiny_model, tmp_path, capsys) -> None:
    fifo = tmp_path / "in" / "pipe.wav"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    song = good(tmp_path / "in" / "song.wav")
    outcome: dict = {}

    def target() -> None:
        outcome["result"] = run(capsys, str(fifo), str(song), *args_for(tiny_model, tmp_path / "out"))

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(120)
    if worker.is_alive():  # unblock the reader so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail("a FIFO input blocked the run")
    code, manifest, _ = outcome["result"]
    assert code == 1
    statuses = {Path(f["input"]).name: f["status"] for f in manifest["files"]}
    assert statuses == {"pipe.wav": "failed", "song.wav": "ok"}


def test_recursive_globs_and_folders_end_on_symlink_loops(tmp_path) -> None:
    root = tmp_path / "albums"
    good(root / "a" / "one.wav", seconds=0.05)
    good(root / "b" / "two.flac", seconds=0.05)
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "b" / "up").symlink_to(root / "a", target_is_directory=True)
    expanded = expand_inputs([str(root / "**" / "*.wav"), str(root)], recursive=True, extensions=EXTS)
    assert sorted(p.name for p in expanded.files) == ["one.wav", "two.flac"]
    # zero folders for "**", as glob does
    assert [p.name for p in expand_inputs([str(root / "a" / "**" / "*.wav")], False, EXTS).files] == ["one.wav"]


# -- class 5: one bad name fails alone ----------------------------------------------------------


def test_undecodable_and_long_names_do_not_sink_the_batch(tiny_model, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    bad = good(folder / "placeholder.wav")
    bad_name = os.fsdecode(b"caf\xe9_latin1.wav")  # not UTF-8
    bad = bad.rename(folder / bad_name)
    long_parent = good(tmp_path / ("p" * 240) / "deep.wav")
    fine = good(folder / "fine.wav")
    out = tmp_path / "out"
    code, manifest, err = run(
        capsys, str(bad), str(long_parent), str(fine), *args_for(tiny_model, out, "--filename", "{parent}/{track}_{stem}.{ext}")
    )
    assert "Traceback" not in err
    assert code == 0, err
    assert [f["status"] for f in manifest["files"]] == ["ok", "ok", "ok"]
    for f in manifest["files"]:
        for path in f["outputs"].values():
            assert Path(path).is_file() and all(len(part.encode()) <= 255 for part in Path(path).parts)


# -- class 7: a rerun with -o equal to the input folder resumes ---------------------------------


def test_a_rerun_into_the_input_folder_resumes(tiny_model, tmp_path, capsys) -> None:
    folder = tmp_path / "music"
    good(folder / "song.wav")
    code, first, _ = run(capsys, str(folder), *args_for(tiny_model, folder))
    assert code == 0 and first["ok"] == 1
    code, second, err = run(capsys, str(folder), *args_for(tiny_model, folder))
    assert code == 0, err
    assert second["skipped"] == 1 and second["failed"] == 0 and len(second["files"]) == 1
