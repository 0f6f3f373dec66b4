"""The torch transforms equal the numpy ones (the reference's arithmetic), and the device-side
spectral backend gives the host's stems."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal
import torch

from uvrsep import torch_transforms as tt
from uvrsep import transforms
from uvrsep.api import Separator
from uvrsep.errors import SettingsError
from uvrsep.nets import ASPPNetConfig
from uvrsep.params import load_params
from uvrsep.spectral import DeviceSpectral, HostSpectral, resolve_spectral_mode
from uvrsep.stream import ArraySource
from uvrsep.testing import random_state_dict, snr_db

from .test_transforms import musical_signal

#: Params (with a channel transform flag set) that the torch transforms support.
SUPPORTED = [
    ("4band_v2", None), ("4band_44100", None), ("4band_44100_mid", None), ("4band_44100_reverse", None),
    ("4band_v2", "mid_side_b2"), ("1band_sr44100_hl512", None), ("1band_sr33075_hl384", None),
]
#: float64 torch vs the numpy reference: the same algorithm, so only rounding differs.
ALGORITHM_SNR_DB = 140
#: float32 torch (what the pipeline uses) vs the numpy reference.
FLOAT32_SNR_DB = 110


def _params(name: str, flag: str | None):
    params = load_params(name)
    return dataclasses.replace(params, **{flag: True}) if flag else params


def _complex_snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference, estimate = np.asarray(reference, np.complex128), np.asarray(estimate, np.complex128)
    error = np.sum(np.abs(reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(np.abs(reference) ** 2) / max(error, 1e-300)))


@pytest.mark.parametrize("up,down", [(1, 2), (1, 3), (2, 1), (3, 1), (2, 3), (3, 2), (147, 160), (160, 147)])
@pytest.mark.parametrize("length", [1, 7, 1000, 4411])
def test_resample_poly_equals_scipy(up, down, length):
    x = np.random.default_rng(length).standard_normal((2, length))
    expected = scipy.signal.resample_poly(x, up, down, axis=-1)
    got = tt.resample_poly(torch.from_numpy(x), up, down).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("n_in,num", [(1000, 2000), (1001, 3003), (999, 1998), (3000, 1000), (3001, 1000), (1000, 1000), (8, 3)])
def test_resample_fourier_equals_scipy(n_in, num):
    x = np.random.default_rng(n_in).standard_normal((2, n_in))
    expected = scipy.signal.resample(x, num, axis=-1)
    got = tt.resample_fourier(torch.from_numpy(x), num).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_resample_rejects_what_torch_lacks():
    with pytest.raises(ValueError, match="sinc_fastest"):
        tt.resample(torch.zeros(2, 100), 11025, 22050, "sinc_fastest")


def test_supports_only_params_whose_resamplers_exist_in_torch():
    assert tt.supports(load_params("4band_v2"))
    assert tt.supports(load_params("1band_sr44100_hl512"))  # one band: no resampling at all
    # three-band files bring band 1 up with libsamplerate's sinc_fastest
    assert not tt.supports(load_params("3band_44100"))
    assert (11025, 22050, "sinc_fastest") in tt.resampling_steps(load_params("3band_44100"))


@pytest.mark.parametrize("n_fft,hop,length", [(960, 480, 44100), (640, 80, 7350), (512, 160, 100), (2048, 512, 700)])
def test_stft_and_istft_equal_librosa(n_fft, hop, length):
    wave = np.random.default_rng(1).standard_normal((2, length))
    spec = transforms.stft(wave.astype(np.float32), n_fft, hop)
    got = tt.stft(torch.from_numpy(wave.astype(np.float32)), n_fft, hop).numpy()
    assert got.shape == spec.shape
    assert _complex_snr(spec, got) > FLOAT32_SNR_DB
    full = np.asarray(spec, np.complex128)
    np.testing.assert_allclose(tt.istft(torch.from_numpy(full), hop).numpy(), transforms.istft(full, hop), atol=1e-10)


@pytest.mark.parametrize("name,flag", SUPPORTED)
@pytest.mark.parametrize("dtype,min_snr", [(torch.float64, ALGORITHM_SNR_DB), (torch.float32, FLOAT32_SNR_DB)])
def test_analysis_and_synthesis_equal_numpy(name, flag, dtype, min_snr):
    params = _params(name, flag)
    wave = musical_signal(params.sr * 2 + 77, params.sr)
    expected = transforms.analyze(wave, params)
    # the numpy analysis is float32: compare float64 torch against a float64 numpy analysis
    reference = transforms.analyze(wave.astype(np.float64), params) if dtype == torch.float64 else expected
    got = tt.analyze(torch.from_numpy(wave).to(dtype), params)
    assert tuple(got.spec.shape) == expected.spec.shape
    assert _complex_snr(reference.spec, got.spec.numpy()) > min_snr
    # the high end lies in the test signal's stopband: measure its error against the whole scale
    high_end_error = np.sum(np.abs(np.asarray(reference.high_end, np.complex128) - got.high_end.numpy()) ** 2)
    assert 10 * np.log10(np.sum(np.abs(reference.spec) ** 2) / max(high_end_error, 1e-300)) > min_snr

    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    spec = expected.spec * np.linspace(0.2, 1.0, expected.spec.shape[1])[None, :, None].astype(np.float32)
    high_end_np = transforms.mirror_high_end(spec, expected.high_end, params)
    spec_t = torch.from_numpy(spec).to(complex_dtype)
    high_end_t = tt.mirror_high_end(spec_t, torch.from_numpy(expected.high_end).to(complex_dtype), params)
    assert _complex_snr(high_end_np, high_end_t.numpy()) > min_snr
    wave_np = transforms.synthesize(spec, params, high_end_np)
    wave_t = tt.synthesize(spec_t, params, high_end_t).numpy()
    assert wave_t.shape == wave_np.shape
    assert snr_db(wave_np, wave_t) > min_snr


def test_synthesis_without_high_end_round_trips():
    params = load_params("4band_v2")
    wave = musical_signal(44100, 44100)
    analysis = tt.analyze(torch.from_numpy(wave), params, keep_high_end=False)
    assert analysis.high_end is None
    expected = transforms.synthesize(transforms.analyze(wave, params, keep_high_end=False).spec, params)
    assert snr_db(expected, tt.synthesize(analysis.spec, params).numpy()) > FLOAT32_SNR_DB


# -- the backends inside a Separator ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_weights():
    return random_state_dict(ASPPNetConfig(width=8), seed=3)


@pytest.mark.parametrize(
    "params,samples,channels,settings",
    [
        ("4band_v2", 44100 * 3 + 55, 2, {}),
        ("4band_v2", 44100 * 2, 1, {"tta": True}),
        ("4band_44100_reverse", 44100 * 2 + 301, 2, {}),
        ("4band_44100_mid", 30000, 2, {"postprocess": True, "postprocess_threshold": 0.5}),
        ("4band_v2", 200, 2, {"high_end": "none"}),  # shorter than a hop of the lowest band
        ("1band_sr44100_hl512", 44100, 2, {"aggressiveness": 40}),
    ],
)
def test_device_spectral_gives_the_host_stems(small_weights, params, samples, channels, settings):
    wave = musical_signal(samples, 44100)[:channels]
    host = Separator(small_weights, params, device="cpu", precision="fp32", spectral="host", **settings)
    device = Separator(small_weights, params, device="cpu", precision="fp32", spectral="device", **settings)
    assert isinstance(host.spectral, HostSpectral) and isinstance(device.spectral, DeviceSpectral)
    expected = host.separate(wave, 44100).stems
    got = device.separate(wave, 44100).stems
    for name in expected:
        assert got[name].shape == expected[name].shape
        assert snr_db(expected[name], got[name]) > 90, name


def test_device_spectral_streams_like_the_host(small_weights):
    wave = musical_signal(44100 * 8, 44100)
    streamed = {}
    for mode in ("host", "device"):
        # fp32 pinned: this compares the two spectral backends' arithmetic; precision "auto" runs
        # the net in bf16 on a CPU with native bfloat16, where the masks differ by ≈ 60 dB
        sep = Separator(small_weights, "4band_v2", device="cpu", precision="fp32", spectral=mode, window_size=320)
        blocks: dict[str, list[np.ndarray]] = {name: [] for name in sep.stem_names}
        sep.separate_stream(ArraySource(wave, 44100), {n: blocks[n].append for n in blocks}, chunk_windows=2)
        streamed[mode] = {name: np.concatenate(parts, axis=1) for name, parts in blocks.items()}
    for name, stem in streamed["host"].items():
        assert stem.shape == (2, wave.shape[1])
        assert snr_db(stem, streamed["device"][name]) > 90


def test_silence_gives_silence_on_the_device_backend(small_weights):
    sep = Separator(small_weights, "4band_v2", device="cpu", spectral="device")
    stems = sep.separate(np.zeros((2, 10000), np.float32), 44100).stems
    assert all(not stem.any() for stem in stems.values())


def test_spectral_mode_resolution_and_errors(small_weights):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    v2, three = load_params("4band_v2"), load_params("3band_44100")
    assert resolve_spectral_mode("auto", cpu, v2) == "host"
    assert resolve_spectral_mode("auto", cuda, v2) == "device"
    assert resolve_spectral_mode("auto", cuda, three) == "host"
    assert resolve_spectral_mode("auto", cuda, v2, exact_phase=True) == "host"
    with pytest.raises(SettingsError, match="spectral must be one of"):
        resolve_spectral_mode("gpu", cpu, v2)
    with pytest.raises(SettingsError, match="--spectral host"):
        Separator(small_weights, "3band_44100", device="cpu", spectral="device")
    with pytest.raises(SettingsError, match="cannot run on mps"):
        DeviceSpectral(v2, torch.device("mps"), None)
    with pytest.raises(SettingsError, match="host only"):
        Separator(small_weights, "4band_v2", device="cpu", spectral="device", optimize=False)


def test_streamed_chunks_are_shorter_with_the_spectral_work_on_the_host(small_weights):
    """Host memory bounds the host's chunks; the device's may be longer."""
    from uvrsep.api import STREAM_CHUNK_WINDOWS

    assert STREAM_CHUNK_WINDOWS["host"] < STREAM_CHUNK_WINDOWS["device"]
    host = Separator(small_weights, "4band_v2", device="cpu", spectral="host")
    device = Separator(small_weights, "4band_v2", device="cpu", spectral="device")
    frames_per_window, hop = 512 - 2 * host.net.offset, host.params.top.hl
    samples = 44100 * 600
    assert host._stream_plan(samples)[0].stop == STREAM_CHUNK_WINDOWS["host"] * frames_per_window * hop
    assert device._stream_plan(samples)[0].stop == STREAM_CHUNK_WINDOWS["device"] * frames_per_window * hop
    assert host.planned_windows(samples, 44100) > device.planned_windows(samples, 44100)  # more margins
