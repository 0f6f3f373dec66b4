"""Training (data discovery and reading: test_dataset.py): the sampler, the loss going down, checkpoints, resume, export, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from uvrsep.cli import main
from uvrsep.errors import SettingsError
from uvrsep.dataset import find_tracks, track_spectrograms
from uvrsep.nets import build_net, config_from_name, net_from_state_dict
from uvrsep.params import load_params
from uvrsep.train import (
    CHECKPOINT_FILE,
    METADATA_FILE,
    MODEL_FILE,
    CropSampler,
    TrainConfig,
    export_model,
    TrainState,
    learning_rate,
    split_tracks,
    train,
    training_loss,
)

from .conftest import TINY_PARAMS, load_keys
from .test_dataset import write_tone_track, write_track

SR = 44100
TINY_ARCH = "aspp_w4_b5_l4"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    for k in range(4):
        write_tone_track(root / "train" / f"track_{k}", seed=k)
    (root / "recipe.json").write_text(json.dumps({"generator": "test", "seed": 0, "tracks": [1, 2]}))
    return root / "train"


def _config(**overrides) -> TrainConfig:
    base = dict(arch=TINY_ARCH, params=TINY_PARAMS, steps=4, batch_size=2, crop_frames=32, val_every=2,
                checkpoint_every=2, val_crops=4, warmup_steps=1, export_dtype="fp32")
    base.update(overrides)
    return TrainConfig(**base)


# -- data ---------------------------------------------------------------------------------------


def test_split_tracks_holds_out_whole_tracks():
    train_idx, val_idx = split_tracks(list(range(10)), 0.2, seed=3)
    assert len(val_idx) == 2 and not set(train_idx) & set(val_idx)
    assert sorted(train_idx + val_idx) == list(range(10))
    assert split_tracks(list(range(1)), 0.2, seed=3) == ([0], [])
    assert split_tracks(list(range(2)), 0.1, seed=3)[1] != []


def test_sampler_batches(dataset):
    params = load_params(TINY_PARAMS)
    specs = [track_spectrograms(t, params) for t in find_tracks([dataset])]
    config = _config(batch_size=3, no_vocals_probability=0.0)
    sampler = CropSampler(specs, config, torch.device("cpu"))
    x, y = sampler.sample(np.random.default_rng(0))
    assert x.shape == y.shape == (3, 2, params.bins + 1, config.crop_frames)
    assert float(x.amax()) <= 1.0 + 1e-6
    # the target (instrumental) is below the mixture where the vocals are absent, and the crop's
    # own pairing reproduces |mixture| exactly
    x0, y0 = sampler.pair(0, 0, 0, 0, 1.0, 1.0, False)
    mix = np.abs(specs[0][0] + specs[0][1])[:, :, : config.crop_frames]
    np.testing.assert_allclose(x0.numpy(), mix / mix.max(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y0.numpy(), np.abs(specs[0][1])[:, :, :32] / mix.max(), rtol=1e-5, atol=1e-7)
    # no vocals: input == target
    x1, y1 = sampler.pair(1, 0, 1, 0, 0.0, 0.5, True)
    torch.testing.assert_close(x1, y1)


def test_a_mono_crop_is_the_crop_of_the_mono_recording(tmp_path):
    """``mono_probability``: a mono crop (the mean of each stem's channels in the spectral
    domain) equals the crop of the same track made mono before the analysis; 1 makes every crop
    mono, 0 none (and draws nothing: the batches are those of a config without the setting)."""
    params = load_params(TINY_PARAMS)
    stems = write_track(tmp_path / "stereo", seconds=1.0, seed=3)
    write_track(tmp_path / "mono", {name: np.repeat(wave.mean(0, keepdims=True), 2, axis=0)
                                    for name, wave in stems.items() if name != "mixture"})
    specs = [track_spectrograms(t, params) for t in find_tracks([tmp_path / "stereo", tmp_path / "mono"])]
    sampler = CropSampler(specs, _config(), torch.device("cpu"))
    for gain in (1.0, 0.5):
        mono = sampler.pair(0, 3, 0, 5, gain, 0.7, False, mono=True)
        recorded = sampler.pair(1, 3, 1, 5, gain, 0.7, False)
        for made, expected in zip(mono, recorded):
            torch.testing.assert_close(made, expected, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(made[0], made[1])
    stereo_x, _ = sampler.pair(0, 3, 0, 5, 1.0, 0.7, False)
    assert not torch.allclose(stereo_x[0], stereo_x[1], rtol=1e-3)

    def batch(**overrides):
        return CropSampler(specs[:1], _config(batch_size=4, **overrides), torch.device("cpu")).sample(np.random.default_rng(9))

    always = batch(mono_probability=1.0)
    assert all(torch.equal(x[0], x[1]) and torch.equal(y[0], y[1]) for x, y in zip(*always))
    never = batch(mono_probability=0.0)
    assert not any(torch.allclose(x[0], x[1], rtol=1e-3) for x in never[0])
    # 0 draws nothing: a probability that draws (and is never hit) shifts every later draw
    drawn = batch(mono_probability=1e-12)
    assert not any(torch.allclose(x[0], x[1], rtol=1e-3) for x in drawn[0])
    assert not torch.equal(never[0], drawn[0])


def test_mono_crops_need_left_right_params(dataset, tmp_path):
    with pytest.raises(SettingsError, match="mono crops need left/right params"):
        train([dataset], tmp_path, _config(params="4band_44100_mid", mono_probability=0.2), device="cpu")
    with pytest.raises(SettingsError, match="mono probability"):
        _config(mono_probability=1.5).validate()


def test_learning_rate_schedule():
    config = _config(steps=100, warmup_steps=10, learning_rate=1e-3, min_lr_fraction=0.1)
    assert learning_rate(config, 0, 0) == pytest.approx(1e-4)
    assert learning_rate(config, 10, 0) == pytest.approx(1e-3, rel=0.01)
    assert learning_rate(config, 100, 0) == pytest.approx(1e-4)
    timed = _config(steps=10**6, warmup_steps=0, max_minutes=1.0, min_lr_fraction=0.1)
    assert learning_rate(timed, 5, 30.0) == pytest.approx(0.55e-3)


# -- training -----------------------------------------------------------------------------------


def test_a_few_steps_reduce_the_loss(dataset):
    torch.manual_seed(0)
    params = load_params(TINY_PARAMS)
    specs = [track_spectrograms(t, params) for t in find_tracks([dataset])]
    config = _config(batch_size=4, remix_probability=0.0)
    sampler = CropSampler(specs, config, torch.device("cpu"))
    fixed = sampler.sample(np.random.default_rng(123), augment=False)
    net = build_net(config_from_name(TINY_ARCH)).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(training_loss(net, *fixed))

    before = fixed_loss()
    rng = np.random.default_rng(0)
    for _ in range(25):
        loss = training_loss(net, *sampler.sample(rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_loss()
    assert after < 0.7 * before, (before, after)


def test_lstm_net_trains(dataset, tmp_path):
    summary = train([dataset], tmp_path, _config(arch="lstm_8_16", steps=2, crop_frames=32), device="cpu")
    assert summary["steps"] == 2 and np.isfinite(summary["train_loss"])
    assert net_from_state_dict(torch.load(tmp_path / MODEL_FILE, weights_only=True)).config.nout == 8


def test_checkpoint_resume_equals_an_uninterrupted_run(dataset, tmp_path):
    straight = train([dataset], tmp_path / "a", _config(steps=4), device="cpu")
    first = train([dataset], tmp_path / "b", _config(steps=2), device="cpu")
    assert first["steps"] == 2
    resumed = train([dataset], tmp_path / "b", _config(steps=4), device="cpu")
    assert straight["steps"] == resumed["steps"] == 4
    a = torch.load(tmp_path / "a" / MODEL_FILE, weights_only=True)
    b = torch.load(tmp_path / "b" / MODEL_FILE, weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # the checkpoint round-trips: its model is the exported one; the history lists both halves
    checkpoint = torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)
    for key in a:
        torch.testing.assert_close(checkpoint["model"][key], b[key], rtol=0, atol=0)
    assert [h["step"] for h in checkpoint["state"]["history"]] == [2, 4]
    # rerunning a finished run does nothing more
    again = train([dataset], tmp_path / "b", _config(steps=4), device="cpu")
    assert again["steps"] == 4


def test_export_has_the_official_keys_and_metadata(tmp_path):
    """A trained 33966 net saves exactly the keys/shapes of UVR's 33966KB files (fp16 allowed)."""
    params = load_params("4band_v2")
    net = build_net(config_from_name("33966"))
    config = TrainConfig(arch="33966")
    export_model(net, config, params, TrainState(step=7), {"tracks": 1}, tmp_path)
    state = torch.load(tmp_path / MODEL_FILE, weights_only=True)
    official = {entry[0]: tuple(entry[1]) for entry in load_keys("keys_33966.json")}
    assert {k: tuple(v.shape) for k, v in state.items()} == official
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    meta = json.loads((tmp_path / METADATA_FILE).read_text())
    assert meta["params"] == "4band_v2" and meta["primary_stem"] == "Instrumental" and meta["arch"] == "33966"
    assert meta["metrics"]["steps"] == 7


def test_cli_train_then_split(dataset, tmp_path):
    out = tmp_path / "run"
    code = main(["train", str(dataset), "-o", str(out), "--arch", TINY_ARCH, "-p", TINY_PARAMS, "--steps", "2",
                 "-b", "2", "--crop-frames", "32", "-j", "1", "--json", "-q"])
    assert code == 0
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["data"]["tracks"] == 4 and meta["data"]["generator"]["generator"] == "test"
    # the exported model works at once: params and primary stem come from model.json
    song = next(dataset.iterdir()) / "mixture.wav"
    code = main(["split", str(song), "-m", str(out / MODEL_FILE), "-o", str(tmp_path / "stems"), "-q"])
    assert code == 0
    outputs = sorted(p.name for p in (tmp_path / "stems").iterdir())
    assert outputs == ["mixture_instrumental.wav", "mixture_vocals.wav"]
    info = sf.info(tmp_path / "stems" / "mixture_vocals.wav")
    assert info.samplerate == SR and info.frames == sf.info(song).frames


def test_fine_tune_starts_from_init(dataset, tmp_path, tiny_model):
    summary = train([dataset], tmp_path, _config(steps=1, init=str(tiny_model), arch="33966"), device="cpu")
    assert summary["steps"] == 1
    meta = json.loads((tmp_path / METADATA_FILE).read_text())
    assert meta["arch"] == TINY_ARCH  # the init file's architecture wins
    assert meta["training"]["arch"] == TINY_ARCH
    # a fine-tuning run resumes like any other (from its checkpoint, not from the init file)
    resumed = train([dataset], tmp_path, _config(steps=2, init=str(tiny_model), arch="33966"), device="cpu")
    assert resumed["steps"] == 2


def test_cli_train_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "no tracks found" in capsys.readouterr().err
    write_tone_track(tmp_path / "d" / "t", 0)
    assert main(["train", str(tmp_path / "d"), "-o", str(tmp_path / "o"), "--arch", TINY_ARCH, "-p", TINY_PARAMS,
                 "--crop-frames", "40", "-q"]) == 2
    assert "multiple of 16" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "d"), "-o", str(tmp_path / "o"), "--arch", TINY_ARCH, "-p", TINY_PARAMS,
                 "--mono-probability", "1.5", "-q"]) == 2
    assert "mono probability must be in [0, 1]" in capsys.readouterr().err
