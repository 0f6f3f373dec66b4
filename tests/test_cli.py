"""`uvrsep split` end to end with a small random-weights model (built here, never downloaded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from uvrsep import __version__
from uvrsep.cli import INTEGER_PEAK, _rescale_to_full_scale, main
from uvrsep.testing import snr_db

from .conftest import PARITY, TINY_PARAMS

HAS_FFMPEG = shutil.which("ffmpeg") is not None


def tone(seconds: float, sr: int, channels: int, seed: int = 0) -> np.ndarray:
    """(frames, channels) float32: a chord plus noise, peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    base = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)
    wave = np.stack([base + 0.2 * rng.standard_normal(len(t)) for _ in range(channels)], axis=1)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def write(path: Path, seconds: float = 0.6, sr: int = 44100, channels: int = 2, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, sr, channels), sr, **kw)
    return path


def split(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["split", *args])
    out, err = capsys.readouterr()
    return code, out, err


def base_args(model: Path, out: Path) -> list[str]:
    return ["-m", str(model), "-p", TINY_PARAMS, "-o", str(out), "--device", "cpu", "-q"]


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"uvrsep {__version__}"
    assert main(["split", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--aggressiveness", "--window-size", "--tta", "--high-end", "--sample-rate", "--stems", "--filename", "--overwrite", "--json", "--clip"):
        assert option in text


def test_folder_recursive_json_manifest(tmp_path, capsys, tiny_model):
    src = tmp_path / "in"
    write(src / "a.wav", sr=44100, channels=2)
    write(src / "sub" / "b.flac", sr=48000, channels=1)
    write(src / "sub" / "deeper" / "c.wav", sr=22050, channels=2, subtype="PCM_24")
    (src / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    code, stdout, _ = split(capsys, str(src), "-r", "--json", *base_args(tiny_model, out))
    assert code == 0
    manifest = json.loads(stdout)
    assert manifest["ok"] == 3 and manifest["failed"] == 0
    assert {Path(f["input"]).name for f in manifest["files"]} == {"a.wav", "b.flac", "c.wav"}
    for entry in manifest["files"]:
        info_in = sf.info(entry["input"])
        assert set(entry["outputs"]) == {"instrumental", "vocals"}
        for path in entry["outputs"].values():
            info_out = sf.info(path)
            assert info_out.samplerate == info_in.samplerate  # kept, really resampled
            assert info_out.channels == info_in.channels  # mono in, mono out
            assert info_out.frames == info_in.frames
        assert entry["duration"] == pytest.approx(info_in.frames / info_in.samplerate)
        assert entry["seconds"] > 0


def test_folder_without_recursion_ignores_subfolders(tmp_path, capsys, tiny_model):
    write(tmp_path / "in" / "a.wav")
    write(tmp_path / "in" / "sub" / "b.wav")
    code, stdout, _ = split(capsys, str(tmp_path / "in"), "--json", *base_args(tiny_model, tmp_path / "out"))
    assert code == 0
    assert [Path(f["input"]).name for f in json.loads(stdout)["files"]] == ["a.wav"]


def test_quoted_glob_is_expanded(tmp_path, capsys, tiny_model):
    write(tmp_path / "albums" / "x" / "one.flac")
    write(tmp_path / "albums" / "y" / "two.flac")
    write(tmp_path / "albums" / "y" / "three.wav")
    pattern = str(tmp_path / "albums" / "**" / "*.flac")
    code, stdout, _ = split(capsys, pattern, "--json", *base_args(tiny_model, tmp_path / "out"))
    assert code == 0
    assert sorted(Path(f["input"]).name for f in json.loads(stdout)["files"]) == ["one.flac", "two.flac"]


def test_stems_primary_and_filename_template(tmp_path, capsys, tiny_model):
    write(tmp_path / "songs" / "track 1.wav")
    out = tmp_path / "out"
    code, _, _ = split(
        capsys, str(tmp_path / "songs" / "track 1.wav"), "--stems", "primary",
        "--filename", "{parent}-{model}-{track}.{stem}.{ext}", "-f", "flac", *base_args(tiny_model, out),
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["songs-tiny-track 1.instrumental.flac"]


def test_unknown_stem_and_bad_options_are_usage_errors(tmp_path, capsys, tiny_model):
    song = write(tmp_path / "a.wav")
    args = base_args(tiny_model, tmp_path / "out")
    assert split(capsys, str(song), "--stems", "drums", *args)[0] == 2
    assert split(capsys, str(song), "-a", "101", *args)[0] == 2
    assert split(capsys, str(song), "-w", "500", *args)[0] == 2
    assert split(capsys, str(song), "--sample-rate", "fast", *args)[0] == 2
    assert split(capsys, str(song), "-f", "flac", "--subtype", "FLOAT", *args)[0] == 2
    assert split(capsys, str(song), "--filename", "{nope}.{ext}", *args)[0] == 2
    code, _, err = split(capsys, str(tmp_path / "missing.wav"), *args)
    assert code == 2 and "missing.wav" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_collision_detected_before_any_work(tmp_path, capsys, tiny_model):
    a = write(tmp_path / "a" / "song.wav")
    b = write(tmp_path / "b" / "song.wav")
    out = tmp_path / "out"
    code, _, err = split(capsys, str(a), str(b), *base_args(tiny_model, out))
    assert code == 2 and "song_instrumental.wav" in err
    assert not out.exists()
    code, _, _ = split(capsys, str(a), str(b), "--filename", "{parent}_{track}_{stem}.{ext}", *base_args(tiny_model, out))
    assert code == 0 and len(list(out.iterdir())) == 4


def test_output_may_not_replace_input(tmp_path, capsys, tiny_model):
    song = write(tmp_path / "x_vocals.wav")
    code, _, err = split(capsys, str(song), "--filename", "x_{stem}.{ext}", *base_args(tiny_model, tmp_path))
    assert code == 2 and "overwrite an input" in err


def test_skip_existing_then_overwrite(tmp_path, capsys, tiny_model):
    song = write(tmp_path / "a.wav")
    out = tmp_path / "out"
    args = [str(song), "--json", *base_args(tiny_model, out)]
    assert split(capsys, *args)[0] == 0
    target = out / "a_vocals.wav"
    target.write_bytes(b"marker")  # a rerun must not touch an existing output
    code, stdout, _ = split(capsys, *args)
    assert code == 0 and json.loads(stdout)["files"][0]["status"] == "skipped"
    assert target.read_bytes() == b"marker"
    target.unlink()  # resume: only the missing stem is written
    code, stdout, _ = split(capsys, *args)
    assert code == 0 and target.exists()
    (out / "a_instrumental.wav").write_bytes(b"marker")
    code, stdout, _ = split(capsys, *args, "--overwrite")
    assert code == 0 and json.loads(stdout)["files"][0]["status"] == "ok"
    assert sf.info(out / "a_instrumental.wav").frames == sf.info(song).frames


def test_one_bad_file_fails_alone(tmp_path, capsys, tiny_model):
    write(tmp_path / "in" / "good.wav")
    bad = tmp_path / "in" / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    out = tmp_path / "out"
    code, stdout, err = split(capsys, str(tmp_path / "in"), "--json", *base_args(tiny_model, out))
    assert code == 1
    files = {Path(f["input"]).name: f for f in json.loads(stdout)["files"]}
    assert files["good.wav"]["status"] == "ok" and files["bad.wav"]["status"] == "failed"
    assert "bad.wav" in files["bad.wav"]["error"] and "\n" not in files["bad.wav"]["error"]
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["good_instrumental.wav", "good_vocals.wav"]


def test_sample_rate_and_channels_options(tmp_path, capsys, tiny_model):
    song = write(tmp_path / "m.wav", seconds=0.5, sr=48000, channels=1)
    out = tmp_path / "out"
    args = [str(song), *base_args(tiny_model, out), "--overwrite"]
    assert split(capsys, *args, "--sample-rate", "model", "--channels", "stereo")[0] == 0
    info = sf.info(out / "m_vocals.wav")
    assert (info.samplerate, info.channels) == (44100, 2)
    assert info.frames == int(np.ceil(24000 * 44100 / 48000))
    assert split(capsys, *args, "--sample-rate", "16000")[0] == 0
    info = sf.info(out / "m_vocals.wav")
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 8000)


def test_float_output_and_stems_sum_to_mixture(tmp_path, capsys, tiny_model):
    song = write(tmp_path / "s.wav", seconds=0.7, subtype="FLOAT")
    out = tmp_path / "out"
    assert split(capsys, str(song), "--subtype", "FLOAT", *base_args(tiny_model, out))[0] == 0
    mix, _ = sf.read(song, dtype="float32")
    inst, _ = sf.read(out / "s_instrumental.wav", dtype="float32")
    voc, _ = sf.read(out / "s_vocals.wav", dtype="float32")
    # primary + secondary = the multi-band round trip of the mixture, which this 1-band
    # params file reconstructs to ~45 dB (its pre-filter and high-end mirroring are lossy)
    assert snr_db(mix, inst + voc) > 40


def test_clip_policies(tmp_path, capsys, tiny_model):
    loud = tmp_path / "loud.wav"
    sf.write(loud, 10.0 * tone(0.5, 44100, 2), 44100, subtype="FLOAT")  # peaks at 5
    out = tmp_path / "out"
    code, stdout, _ = split(capsys, str(loud), "--json", *base_args(tiny_model, out))
    entry = json.loads(stdout)["files"][0]
    assert code == 0 and sum(entry["clipped"].values()) > 0
    code, stdout, _ = split(capsys, str(loud), "--json", "--clip", "rescale", "--overwrite", *base_args(tiny_model, out))
    entry = json.loads(stdout)["files"][0]
    assert code == 0 and entry["clipped"] == {} and 0 < entry["rescaled_by"] < 1
    data, _ = sf.read(out / "loud_instrumental.wav", dtype="int16")
    assert np.abs(data.astype(np.int32)).max() <= 32767


@pytest.mark.parametrize("integer", [True, False])
def test_rescaled_stems_never_exceed_the_limit_after_float_rounding(integer):
    """``stem · (limit / peak)`` in float32 lands one ulp above the limit for about one peak in
    eight; such a sample would then be clipped and reported after all."""
    limit = INTEGER_PEAK["PCM_16"] if integer else 1.0
    peaks = (1 + 4 * np.random.default_rng(0).random(64)).astype(np.float32)
    for peak in peaks:
        stems = {"a": np.array([[peak, -peak / 2]], np.float32), "b": np.array([[0.5, -peak]], np.float32)}
        scaled, factor = _rescale_to_full_scale(stems, integer)
        assert factor == pytest.approx(limit / float(peak))
        assert max(float(np.abs(s).max()) for s in scaled.values()) <= limit
        assert float(np.abs(scaled["b"]).max()) == pytest.approx(limit)


@pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg not installed")
def test_mp3_and_video_inputs(tmp_path, capsys, tiny_model):
    wav = write(tmp_path / "src.wav", seconds=1.0)
    mp3, mp4 = tmp_path / "in" / "song.mp3", tmp_path / "in" / "clip.mp4"
    mp3.parent.mkdir()
    for target, codec in ((mp3, ["-c:a", "libmp3lame"]), (mp4, ["-c:a", "aac"])):
        extra = ["-f", "lavfi", "-i", "color=c=black:s=32x32:d=1", "-shortest", "-c:v", "mpeg4"] if target == mp4 else []
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *extra, *codec, str(target)], check=True)
    code, stdout, err = split(capsys, str(tmp_path / "in"), "--json", *base_args(tiny_model, tmp_path / "out"))
    assert code == 0, err
    for entry in json.loads(stdout)["files"]:
        for path in entry["outputs"].values():
            assert sf.info(path).samplerate == 44100 and sf.info(path).frames == entry["frames"]


def test_console_script_entry_point(tmp_path, tiny_model):
    song = write(tmp_path / "a.wav", seconds=0.3)
    proc = subprocess.run(
        [sys.executable, "-m", "uvrsep", "split", str(song), *base_args(tiny_model, tmp_path / "out")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "a_vocals.wav").exists()


@pytest.mark.slow
def test_parity_through_cli(tmp_path, capsys):
    """The CLI's stems against the reference's (``v5_short``). That its TTA, postprocess, high-end,
    aggressiveness and window options reach the engine as the API's settings do is checked on
    the tiny net below; the API's parity with them on (``v2_4band_44100_tta_pp``) is in
    test_parity.py."""
    from uvrsep.testing import make_state_dict

    case = "v5_short"
    spec = json.loads((PARITY / case / "case.json").read_text())
    keys = json.loads((PARITY.parent / spec["keys"]).read_text())
    weights = tmp_path / "W.pth"
    torch.save(make_state_dict(keys, spec["weights_seed"], spec.get("out_gain", 1.0)), weights)
    out = tmp_path / "OUT"
    args = [
        str(PARITY / case / spec["input"]), "-m", str(weights), "-p", spec["params"],
        "-a", str(spec["aggressiveness"]), "-w", str(spec["window_size"]),
        "--tta" if spec["tta"] else "--no-tta", "--postprocess" if spec["postprocess"] else "--no-postprocess",
        "--high-end", spec["high_end_process"], "--device", "cpu", "--precision", "fp32",
        "--sample-rate", "model", "--channels", "stereo", "-f", "wav", "--subtype", "FLOAT",
        "-o", str(out), "--filename", "{stem}.{ext}", "-q",
    ]
    assert main(["split", *args]) == 0
    frames = spec["expected_frames"]
    for stem, file in (("instrumental", "expected_instrument.npy"), ("vocals", "expected_vocals.npy")):
        got, sr = sf.read(out / f"{stem}.wav", dtype="float32", always_2d=True)
        assert sr == spec["output_sr"]
        assert snr_db(np.load(PARITY / case / file)[:frames], got[:frames]) >= 80


#: Settings that change every stem of the loud-quiet-loud clip below, as the CLI spells them
#: and as the API names them.
CHANGING_OPTIONS = {
    "tta": (["--tta"], True),
    "postprocess": (["--postprocess"], True),
    "high_end": (["--high-end", "none"], "none"),
    "aggressiveness": (["-a", "25"], 25),
    "window_size": (["-w", "320"], 320),
}


def test_the_cli_options_reach_the_engine_as_the_api_settings(tmp_path, capsys, tiny_model):
    """``split`` with TTA, postprocess, high end, aggressiveness and window size all set gives
    the stems of the API with the same settings (same arithmetic, to float rounding); and each
    of those settings alone changes the stems, so none of them could be dropped unseen."""
    from uvrsep.api import Separator

    sr = 44100
    wave = tone(5.0, sr, 2)
    wave[int(1.0 * sr): int(3.5 * sr)] *= 2e-3  # a quiet run of 2.5 s (> 64 frames): what postprocess acts on
    song = tmp_path / "song.wav"
    sf.write(song, wave, sr, subtype="FLOAT")
    args = [arg for option, _ in CHANGING_OPTIONS.values() for arg in option]
    out = tmp_path / "out"
    assert split(capsys, str(song), *base_args(tiny_model, out), *args, "--precision", "fp32", "--subtype", "FLOAT",
                 "--filename", "{stem}.{ext}")[0] == 0

    def api(**settings: object) -> dict[str, np.ndarray]:
        sep = Separator(str(tiny_model), TINY_PARAMS, device="cpu", precision="fp32", **settings)
        return sep.separate(wave.T, sr).stems

    every = {name: value for name, (_, value) in CHANGING_OPTIONS.items()}
    expected = api(**every)
    for stem, reference in expected.items():
        got = sf.read(out / f"{stem}.wav", dtype="float32", always_2d=True)[0].T
        assert snr_db(reference, got) > 100, stem
    for name in CHANGING_OPTIONS:  # each one matters on this clip
        without = api(**{key: value for key, value in every.items() if key != name})
        assert max(snr_db(expected[stem], without[stem]) for stem in expected) < 60, name


@pytest.mark.slow
def test_demo_command_writes_clip_and_stems(tmp_path, capsys, monkeypatch):
    """The README's first command: `uvrsep demo` works offline with no cache, on the bundled model."""
    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("UVRSEP_OFFLINE", "1")
    assert main(["demo", "-o", str(tmp_path / "demo"), "-q"]) == 0
    written = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert written == ["demo.wav", "demo_instrumental.wav", "demo_vocals.wav"]
    clip = sf.info(tmp_path / "demo" / "demo.wav")
    for name in written[1:]:
        info = sf.info(tmp_path / "demo" / name)
        assert (info.samplerate, info.channels, info.frames) == (clip.samplerate, clip.channels, clip.frames)
    # the bundled model really separates: each stem is far closer to its true part than the mixture
    from uvrsep.demo import make_demo_clip

    truth = make_demo_clip()
    for stem, gain_db in (("vocals", 10.0), ("instrumental", 4.0)):
        got, _ = sf.read(tmp_path / "demo" / f"demo_{stem}.wav", dtype="float32", always_2d=True)
        assert snr_db(truth[stem], got.T) > snr_db(truth[stem], truth["mixture"]) + gain_db, stem


@pytest.mark.slow
def test_split_without_model_uses_the_bundled_one_offline(tmp_path, capsys, monkeypatch):
    """`uvrsep split song.wav` on a fresh machine: no -m, no cache, no network → two stems and a
    one-line hint on how to get the recommended model."""
    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("UVRSEP_OFFLINE", "1")
    song = tmp_path / "song.wav"
    wave = np.random.default_rng(0).standard_normal((44100 * 2, 2)).astype(np.float32) * 0.1
    sf.write(song, wave, 44100)
    assert main(["split", str(song), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song_instrumental.wav", "song_vocals.wav"]
    err = capsys.readouterr().err
    hints = [line for line in err.splitlines() if "bundled model" in line]
    assert len(hints) == 1 and "uvrsep models download" in hints[0]
    assert not (tmp_path / "empty-cache" / "models").exists() or not any((tmp_path / "empty-cache" / "models").iterdir())
