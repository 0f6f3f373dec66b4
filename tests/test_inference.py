"""Windowed inference (SPEC §3.6–3.8): window plans against the reference's make_padding,
window-size validation, aggressiveness, TTA, the mask_silence postprocess, and the Separator
end to end on random weights (lengths, silence, mono, stems summing to the mixture, rates)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from uvrsep.api import Separator
from uvrsep.errors import SettingsError
from uvrsep.inference import (
    Aggressiveness,
    NetRunner,
    mask_silence,
    plan_windows,
    predict_magnitude,
    validate_window,
    windows_needed,
)
from uvrsep.nets import KNOWN_ASPP_ARCHS, ASPPNetConfig, LSTMNetConfig, net_from_state_dict
from uvrsep.params import load_params
from uvrsep.testing import random_state_dict, snr_db
from uvrsep.transforms import analyze, synthesize

CPU = torch.device("cpu")

pytestmark = pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    """Width-4 CascadedASPPNet weights (offset 128, fast)."""
    return random_state_dict(ASPPNetConfig(width=4), seed=11)


@pytest.fixture(scope="module")
def tiny_net(tiny_state):
    return net_from_state_dict(tiny_state)


def separator(state, params: str, **settings) -> Separator:
    return Separator(state, params, device="cpu", precision="fp32", **settings)


def musical_signal(samples: int, sr: int, cutoff: float = 0.9, seed: int = 0, fade: int = 0) -> np.ndarray:
    """Stereo float32: noise low-passed at ``cutoff``·Nyquist plus two sines; optional Hann fades."""
    rng = np.random.default_rng(seed)
    taps = scipy.signal.firwin(511, cutoff, window=("kaiser", 14.0))
    wave = scipy.signal.lfilter(taps, [1.0], rng.standard_normal((2, samples + 511)), axis=1)[:, 511:]
    wave *= 0.2 / max(np.abs(wave).max(), 1e-12)
    t = np.arange(samples) / sr
    wave[0] += 0.3 * np.sin(2 * np.pi * 440.0 * t)
    wave[1] += 0.2 * np.sin(2 * np.pi * 1234.5 * t + 1.0)
    if fade:
        ramp = np.hanning(2 * fade)
        wave[:, :fade] *= ramp[:fade]
        wave[:, -fade:] *= ramp[fade:]
    return wave.astype(np.float32)


# --- window plans ---------------------------------------------------------------------------------


def reference_make_padding(n_frame: int, window: int, offset: int) -> tuple[int, int, int]:
    """SPEC §3.6 step 2: left = offset; roi = window − 2·offset (0 → window); right = roi −
    (n_frame mod roi) + offset."""
    left = offset
    roi = window - 2 * offset
    if roi == 0:
        roi = window
    right = roi - (n_frame % roi) + left
    return left, right, roi


@pytest.mark.parametrize(
    "frames,window,offset,left,right,roi,windows",
    [
        (1, 512, 128, 128, 383, 256, 1),
        (255, 512, 128, 128, 129, 256, 1),
        (256, 512, 128, 128, 384, 256, 1),  # exactly roi: a whole extra roi of padding
        (257, 512, 128, 128, 383, 256, 2),
        (919, 512, 128, 128, 233, 256, 4),  # 919 mod 256 = 151
        (1, 320, 128, 128, 191, 64, 1),
        (64, 320, 128, 128, 192, 64, 1),
        (65, 320, 128, 128, 191, 64, 2),
        (100, 1024, 128, 128, 796, 768, 1),
        (384, 512, 64, 64, 448, 384, 1),  # LSTM nets: offset 64
        (385, 512, 64, 64, 447, 384, 2),
    ],
)
def test_plan_windows_examples(frames, window, offset, left, right, roi, windows) -> None:
    plan = plan_windows(frames, window, offset)
    assert (plan.left, plan.right, plan.roi, plan.windows, plan.shift) == (left, right, roi, windows, 0)
    assert (left, right, roi) == reference_make_padding(frames, window, offset)
    assert windows == math.ceil(frames / roi)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.integers(1, 50_000),
    window_16=st.integers(9, 160),
    offset=st.sampled_from([64, 128]),
)
def test_plan_windows_matches_make_padding_and_covers_every_frame(frames: int, window_16: int, offset: int) -> None:
    window = 16 * window_16
    if window <= 2 * offset:
        with pytest.raises(SettingsError):
            plan_windows(frames, window, offset)
        return
    left, right, roi = reference_make_padding(frames, window, offset)
    plan = plan_windows(frames, window, offset)
    assert (plan.left, plan.right, plan.roi, plan.windows) == (left, right, roi, math.ceil(frames / roi))
    padded = plan.left + frames + plan.right
    # every window lies inside the padded input, and the windows' ROIs cover every frame
    assert (plan.windows - 1) * roi + window <= padded
    assert plan.windows * roi >= frames > (plan.windows - 1) * roi
    # TTA pass (SPEC §3.6 step 5): left/right + roi/2, one more window, first roi/2 frames dropped
    shifted = plan_windows(frames, window, offset, shifted=True)
    assert shifted.shift == roi // 2
    assert (shifted.left, shifted.right, shifted.windows) == (left + roi // 2, right + roi // 2, plan.windows + 1)
    assert (shifted.windows - 1) * roi + window <= shifted.left + frames + shifted.right
    assert shifted.windows * roi >= shifted.shift + frames
    assert windows_needed(frames, window, offset, tta=False) == plan.windows
    assert windows_needed(frames, window, offset, tta=True) == 2 * plan.windows + 1


def test_zero_roi_is_a_settings_error() -> None:
    # the reference resets roi 0 to the window and then fails an assertion (SPEC §5.8)
    with pytest.raises(SettingsError):
        plan_windows(100, 256, 128)


@pytest.mark.parametrize("window", [320, 512, 1024, 272, 2048])
def test_valid_windows(window: int) -> None:
    validate_window(window, 128, 16)


@pytest.mark.parametrize("window", [500, 256, 0, 128, 264, 240])
def test_invalid_windows(window: int) -> None:
    with pytest.raises(SettingsError, match=str(window)):
        validate_window(window, 128, 16)


def test_window_validation_depends_on_offset_and_depth() -> None:
    validate_window(144, 64, 16)  # LSTM nets: offset 64
    with pytest.raises(SettingsError):
        validate_window(128, 64, 16)
    validate_window(320, 128, 32)  # 5-level ASPP net (129605): multiples of 32
    with pytest.raises(SettingsError):
        validate_window(336, 128, 32)


@pytest.mark.parametrize("window,ok", [(320, True), (512, True), (1024, True), (500, False), (256, False)])
def test_separator_validates_the_window(tiny_state, window: int, ok: bool) -> None:
    if ok:
        assert separator(tiny_state, "4band_v2", window_size=window).settings.window_size == window
    else:
        with pytest.raises(SettingsError):
            separator(tiny_state, "4band_v2", window_size=window)


# --- aggressiveness -------------------------------------------------------------------------------


def test_aggressiveness_from_percent() -> None:
    agg = Aggressiveness.from_percent(10, 85)
    assert agg.value == pytest.approx(0.1)
    assert agg.split_bin == 85
    assert agg.low_exponent == pytest.approx(1 + 0.1 / 3)
    assert agg.high_exponent == pytest.approx(1.1)
    for bad in (-1, 101):
        with pytest.raises(SettingsError):
            Aggressiveness.from_percent(bad, 85)
    with pytest.raises(SettingsError):
        Aggressiveness.from_percent(10, -1)


def test_aggressiveness_apply_raises_each_row_to_its_exponent() -> None:
    torch.manual_seed(0)
    mask = torch.rand(2, 2, 12, 9)
    original = mask.double().numpy().copy()
    agg = Aggressiveness.from_percent(30, 5)
    out = agg.apply(mask)
    assert out is mask
    expected = original.copy()
    expected[:, :, :5] = original[:, :, :5] ** (1 + 0.3 / 3)
    expected[:, :, 5:] = original[:, :, 5:] ** 1.3
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert np.all(out.numpy() <= original + 1e-7)  # exponents > 1 push a [0, 1] mask down


def test_aggressiveness_zero_is_identity() -> None:
    torch.manual_seed(1)
    mask = torch.rand(1, 2, 20, 7)
    before = mask.clone()
    Aggressiveness.from_percent(0, 10).apply(mask)
    assert torch.equal(mask, before)


def test_separator_aggressiveness_defaults(tiny_state) -> None:
    sep = separator(tiny_state, "4band_v2")
    assert sep.aggressiveness == Aggressiveness(0.1, 85)  # agg 10, split at band 1's crop_stop
    sep = separator(tiny_state, "4band_v2", aggressiveness=25, split_bin=300)
    assert sep.aggressiveness == Aggressiveness(0.25, 300)
    with pytest.raises(SettingsError):
        separator(tiny_state, "4band_v2", split_bin=673)
    with pytest.raises(SettingsError):
        separator(tiny_state, "4band_v2", aggressiveness=150)


# --- the windowed pass ----------------------------------------------------------------------------


def manual_pass(net, mag: np.ndarray, window: int, agg: Aggressiveness | None, shift: int) -> np.ndarray:
    """mask·mag computed frame by frame from scratch: the input is padded with ``offset + shift``
    zero frames; window i covers padded frames [i·roi, i·roi + window) and its centre column
    ``offset + r`` is original frame ``i·roi + r − shift``."""
    offset = net.offset
    roi = window - 2 * offset
    rows, frames = mag.shape[1], mag.shape[2]
    n_windows = (frames - 1 + shift) // roi + 1
    padded = np.zeros((2, rows, offset + shift + n_windows * roi + 2 * offset), np.float32)
    padded[:, :, offset + shift : offset + shift + frames] = mag
    masks = []
    with torch.inference_mode():
        for i in range(n_windows):
            chunk = torch.from_numpy(np.ascontiguousarray(padded[None, :, :, i * roi : i * roi + window]))
            m = net(chunk)[0].double().numpy()
            if agg is not None:
                m[:, : agg.split_bin] **= 1 + agg.value / 3
                m[:, agg.split_bin :] **= 1 + agg.value
            masks.append(m)
    out = np.empty(mag.shape, np.float64)
    for f in range(frames):
        i, r = divmod(f + shift, roi)
        out[:, :, f] = masks[i][:, :, offset + r] * mag[:, :, f]
    return out


def test_tta_is_the_mean_of_the_plain_and_the_half_roi_shifted_pass() -> None:
    """31191 ("SP") net, 65 rows (bins 64), window 320 (roi 64), 100 frames: plain windows start
    at frames 0, 64; the TTA pass is shifted by 32 frames (3 windows)."""
    net = net_from_state_dict(random_state_dict(KNOWN_ASPP_ARCHS["31191"], seed=2))
    runner = NetRunner(net, CPU)
    rng = np.random.default_rng(4)
    mag = rng.random((2, 65, 100)).astype(np.float32)
    agg = Aggressiveness.from_percent(10, 20)
    plain = predict_magnitude(runner, mag, 100, 320, agg, tta=False)
    tta = predict_magnitude(runner, mag, 100, 320, agg, tta=True)
    expected_plain = manual_pass(net, mag, 320, agg, shift=0)
    expected_shifted = manual_pass(net, mag, 320, agg, shift=32)
    assert plain.shape == tta.shape == mag.shape
    np.testing.assert_allclose(plain, expected_plain, rtol=0, atol=2e-6)
    np.testing.assert_allclose(tta, 0.5 * (expected_plain + expected_shifted), rtol=0, atol=2e-6)
    assert np.abs(tta - plain).max() > 1e-3  # the shifted pass really is different


def test_batching_does_not_change_the_result(tiny_net) -> None:
    rng = np.random.default_rng(5)
    mag = rng.random((2, 129, 200)).astype(np.float32)
    one = predict_magnitude(NetRunner(tiny_net, CPU, batch_size=1), mag, 200, 320, None, tta=True)
    three = predict_magnitude(NetRunner(tiny_net, CPU, batch_size=3), mag, 200, 320, None, tta=True)
    np.testing.assert_allclose(one, three, rtol=0, atol=1e-5)


def test_predict_applies_aggressiveness_to_the_mask(tiny_net) -> None:
    runner = NetRunner(tiny_net, CPU)
    rng = np.random.default_rng(6)
    mag = (rng.random((2, 129, 80)) + 0.1).astype(np.float32)
    raw = predict_magnitude(runner, mag, 80, 320, None)
    assert np.array_equal(predict_magnitude(runner, mag, 80, 320, Aggressiveness.from_percent(0, 40)), raw)
    pushed = predict_magnitude(runner, mag, 80, 320, Aggressiveness.from_percent(20, 40))
    mask = raw.astype(np.float64) / mag
    assert np.all((mask > 0) & (mask < 1))
    np.testing.assert_allclose(pushed[:, :40], mag[:, :40] * mask[:, :40] ** (1 + 0.2 / 3), rtol=1e-4)
    np.testing.assert_allclose(pushed[:, 40:], mag[:, 40:] * mask[:, 40:] ** 1.2, rtol=1e-4)
    np.testing.assert_allclose(raw, manual_pass(tiny_net, mag, 320, None, 0), rtol=0, atol=2e-6)


@pytest.mark.parametrize("valid", [64, 70])  # a multiple of the roi, and not
def test_frames_past_valid_are_zero_for_the_net(tiny_net, valid: int) -> None:
    """The extra tail frame is fed to the net as zeros (the reference's right padding), so the
    first ``valid`` frames are exactly those of a pass over only ``valid`` frames."""
    runner = NetRunner(tiny_net, CPU)
    rng = np.random.default_rng(7)
    mag = (rng.random((2, 129, valid + 1)) + 0.1).astype(np.float32)
    full = predict_magnitude(runner, mag, valid, 320, None)
    short = predict_magnitude(runner, np.ascontiguousarray(mag[:, :, :valid]), valid, 320, None)
    np.testing.assert_allclose(full[:, :, :valid], short, rtol=0, atol=1e-6)
    tail_mask = full[:, :, valid] / mag[:, :, valid]
    assert np.all((tail_mask > 0) & (tail_mask < 1))


def test_progress_counts_every_window(tiny_net) -> None:
    runner = NetRunner(tiny_net, CPU, batch_size=2)
    mag = np.random.default_rng(8).random((2, 129, 150)).astype(np.float32)
    calls: list[int] = []
    predict_magnitude(runner, mag, 150, 320, None, tta=True, progress=calls.append)
    assert sum(calls) == windows_needed(150, 320, 128, tta=True) == 3 + 4
    assert max(calls) <= 2


# --- postprocess (mask_silence) -------------------------------------------------------------------


def _ref_with_quiet(frames: int, quiet: list[tuple[int, int]], rows: int = 4) -> np.ndarray:
    ref = np.ones((2, rows, frames), np.float32)
    for start, stop in quiet:
        ref[:, :, start:stop] = 0.1  # mean over (channels, bins) 0.1 < 0.2
    return ref


def _expected_gain(frames: int, runs: list[tuple[int, int]], fade: int = 32) -> np.ndarray:
    """Per-frame weight of ref added back, for non-overlapping runs given as (first, last) quiet
    frame. SPEC §3.7 / the reference: fade in over [first, first+32) (none if first == 0),
    full weight on [first+32, last−32), fade out over [last−32, last) — the last quiet frame is
    the exclusive end, as in the reference."""
    gain = np.zeros(frames)
    for first, last in runs:
        if first != 0:
            gain[first : first + fade] += np.linspace(0, 1, fade)
            body_start = first + fade
        else:
            body_start = 0
        gain[last - fade : last] += np.linspace(1, 0, fade)
        gain[body_start : last - fade] += 1
    return gain


def test_mask_silence_adds_ref_back_with_fades() -> None:
    mag = np.full((2, 4, 300), 0.5, np.float32)
    ref = _ref_with_quiet(300, [(100, 200)])  # quiet frames 100..199: a run of 100 > 64
    out = mask_silence(mag, ref)
    gain = _expected_gain(300, [(100, 199)])
    np.testing.assert_allclose(out, mag + gain * ref, rtol=0, atol=1e-6)
    assert out[0, 0, 150] == pytest.approx(0.6) and out[0, 0, 50] == 0.5 and out[0, 0, 199] == 0.5
    assert not np.shares_memory(out, mag) and np.all(mag == 0.5)


def test_mask_silence_run_at_the_start_has_no_fade_in() -> None:
    mag = np.zeros((2, 3, 200), np.float32)
    ref = _ref_with_quiet(200, [(0, 90)], rows=3)
    out = mask_silence(mag, ref)
    np.testing.assert_allclose(out, _expected_gain(200, [(0, 89)]) * ref, rtol=0, atol=1e-6)
    assert out[0, 0, 0] == pytest.approx(0.1)


def test_mask_silence_ignores_runs_of_64_frames_or_fewer() -> None:
    mag = np.full((2, 4, 300), 0.5, np.float32)
    # quiet frames 100..164: end − start = 64, not > 64
    assert np.array_equal(mask_silence(mag, _ref_with_quiet(300, [(100, 165)])), mag)
    # one more frame and it counts
    assert not np.array_equal(mask_silence(mag, _ref_with_quiet(300, [(100, 166)])), mag)


def test_mask_silence_averages_over_channels_and_bins() -> None:
    mag = np.zeros((2, 4, 200), np.float32)
    ref = np.ones((2, 4, 200), np.float32)
    ref[0, :, 20:150] = 0.0  # one channel silent: the mean is 0.5, not quiet
    assert np.array_equal(mask_silence(mag, ref), mag)
    ref[1, :3, 20:150] = 0.0  # mean (0 + 0.25)/2 = 0.125 < 0.2: quiet
    assert not np.array_equal(mask_silence(mag, ref), mag)
    # a higher threshold makes the original ref quiet everywhere
    assert not np.array_equal(mask_silence(mag, np.full((2, 4, 200), 0.3, np.float32), threshold=0.5), mag)


def test_mask_silence_moves_the_start_of_a_close_second_run() -> None:
    """A run starting < 32 frames after the previous run's end starts at that end − 64 instead."""
    mag = np.zeros((2, 2, 400), np.float32)
    ref = _ref_with_quiet(400, [(10, 110), (120, 230)], rows=2)  # runs 10..109 and 120..229
    out = mask_silence(mag, ref)
    gain = _expected_gain(400, [(10, 109)]) + _expected_gain(400, [(109 - 64, 229)])
    np.testing.assert_allclose(out, gain * ref, rtol=0, atol=1e-6)


def test_mask_silence_without_quiet_frames_returns_mag_unchanged() -> None:
    """The reference raises IndexError here (SPEC §5.5); uvrsep returns a copy of mag."""
    mag = np.random.default_rng(9).random((2, 5, 120)).astype(np.float32)
    out = mask_silence(mag, np.ones_like(mag))
    assert np.array_equal(out, mag) and out is not mag


def test_mask_silence_rejects_short_min_range() -> None:
    with pytest.raises(SettingsError):
        mask_silence(np.zeros((2, 2, 10)), np.zeros((2, 2, 10)), min_range=63)


# --- Separator end to end -------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [44100 + 123, 480 - 100, 1, 0])
def test_output_length_equals_input_length(tiny_state, samples: int) -> None:
    sep = separator(tiny_state, "4band_v2")
    wave = musical_signal(max(samples, 1), 44100)[:, :samples]
    result = sep.separate(wave, 44100)
    assert result.sample_rate == 44100
    assert list(result.stems) == ["instrumental", "vocals"]
    for stem in result.stems.values():
        assert stem.shape == (2, samples)
        assert stem.dtype == np.float32
        assert np.all(np.isfinite(stem))
    if samples > 1000:
        assert all(np.abs(stem).max() > 1e-3 for stem in result.stems.values())


def test_silent_input_gives_silent_stems(tiny_state) -> None:
    """The reference divides by coef = 0 here and crashes (SPEC §5.4)."""
    sep = separator(tiny_state, "4band_v2")
    result = sep.separate(np.zeros((2, 30000), np.float32), 44100)
    for stem in result.stems.values():
        assert stem.shape == (2, 30000)
        assert not np.any(stem)


def test_non_finite_samples_count_as_silence(tiny_state) -> None:
    sep = separator(tiny_state, "1band_sr44100_hl512", high_end="none")
    wave = np.full((2, 5000), np.nan, np.float32)
    assert all(not np.any(s) for s in sep.separate(wave, 44100).stems.values())
    wave = musical_signal(20000, 44100)
    wave[0, 1000] = np.inf
    assert all(np.all(np.isfinite(s)) for s in sep.separate(wave, 44100).stems.values())


def test_mono_input(tiny_state) -> None:
    sep = separator(tiny_state, "4band_v2")
    mono = musical_signal(20000 + 7, 44100)[0]
    as_mono = sep.separate(mono, 44100)
    as_stereo = sep.separate(mono, 44100, mono_output=False)
    for name in sep.stem_names:
        assert as_mono.stems[name].shape == (1, mono.shape[0])
        assert as_stereo.stems[name].shape == (2, mono.shape[0])
        np.testing.assert_allclose(as_mono.stems[name][0], as_stereo.stems[name].mean(axis=0), rtol=0, atol=1e-6)
    assert sep.separate(mono[None, :], 44100).stems["vocals"].shape == (1, mono.shape[0])
    # stereo input can be asked for mono output too
    assert sep.separate(np.stack([mono, mono]), 44100, mono_output=True).stems["vocals"].shape == (1, mono.shape[0])


@pytest.mark.parametrize("samples", [44100 + 123, 512 * 90])
def test_stems_sum_to_the_mixture(tiny_state, samples: int) -> None:
    """primary = pred·e^{jφ}, secondary = X − primary, so with a single-band file (exact
    round trip for a band-limited signal), no mirroring and output rate = model rate the two stems
    add up to the input — including the last N mod hop samples the reference drops."""
    sep = separator(tiny_state, "1band_sr44100_hl512", high_end="none")
    wave = musical_signal(samples, 44100, cutoff=0.9, fade=1024)
    result = sep.separate(wave, 44100)
    total = result.stems["instrumental"] + result.stems["vocals"]
    assert np.abs(total - wave).max() < 1e-4
    # and the separation is not trivial
    assert snr_db(wave, result.stems["instrumental"]) < 20


def test_multi_band_stems_sum_to_the_round_trip(tiny_state) -> None:
    """With 4band_v2 the stems add up to analysis → synthesis of the mixture (not to the mixture
    itself: the crossovers are not unity gain, SPEC §5.19)."""
    params = load_params("4band_v2")
    samples = 480 * 92
    wave = musical_signal(samples, 44100, cutoff=0.9)
    result = separator(tiny_state, params, high_end="none").separate(wave, 44100)
    round_trip = synthesize(analyze(wave, params, keep_high_end=False).spec, params)
    assert round_trip.shape == (2, samples)
    total = result.stems["instrumental"] + result.stems["vocals"]
    assert np.abs(total - round_trip).max() < 1e-4


def test_output_rate_follows_the_input_rate(tiny_state) -> None:
    sep = separator(tiny_state, "4band_v2")
    samples = 48000 + 31
    wave = musical_signal(samples, 48000)
    result = sep.separate(wave, 48000)
    assert result.sample_rate == 48000
    assert all(stem.shape == (2, samples) for stem in result.stems.values())
    at_model_rate = sep.separate(wave, 48000, output_sample_rate=44100)
    assert at_model_rate.sample_rate == 44100
    assert all(stem.shape == (2, math.ceil(samples * 44100 / 48000)) for stem in at_model_rate.stems.values())
    half = sep.separate(wave, 48000, output_sample_rate=22050)
    assert all(stem.shape == (2, math.ceil(samples * 22050 / 48000)) for stem in half.stems.values())


def test_resampled_stems_still_sum_to_the_mixture(tiny_state) -> None:
    """48 kHz in, 44.1 kHz model, 48 kHz out: both resamplers are high quality, so for a signal
    well inside both passbands the stems still add up to the input (> 60 dB away from the edges)."""
    sep = separator(tiny_state, "1band_sr44100_hl512", high_end="none")
    wave = musical_signal(48000, 48000, cutoff=0.6, fade=2048)
    result = sep.separate(wave, 48000)
    total = result.stems["instrumental"] + result.stems["vocals"]
    assert snr_db(wave[:, 2000:-2000], total[:, 2000:-2000]) > 60


def test_postprocess_gives_quiet_stretches_to_the_primary_stem(tiny_state) -> None:
    """Loud – quiet (> 64 frames) – loud. With postprocess the quiet run's residue is added back
    to the primary magnitude, which then equals |X|: inside the run (past the 32-frame fades) the
    secondary stem is ~0. Before the run nothing changes."""
    hop = 512
    samples = hop * 300
    wave = musical_signal(samples, 44100, cutoff=0.9, seed=3)
    wave[:, 45000:110000] *= 0.002
    plain = separator(tiny_state, "1band_sr44100_hl512", high_end="none").separate(wave, 44100)
    post = separator(tiny_state, "1band_sr44100_hl512", high_end="none", postprocess=True).separate(wave, 44100)
    inside = slice(130 * hop, 170 * hop)
    mix_rms = np.sqrt(np.mean(wave[:, inside] ** 2))
    assert np.sqrt(np.mean(post.stems["vocals"][:, inside] ** 2)) < 1e-3 * mix_rms
    assert np.sqrt(np.mean(plain.stems["vocals"][:, inside] ** 2)) > 0.1 * mix_rms
    np.testing.assert_allclose(post.stems["vocals"][:, :40000], plain.stems["vocals"][:, :40000], rtol=0, atol=1e-7)
    total = post.stems["instrumental"] + post.stems["vocals"]
    np.testing.assert_allclose(total, plain.stems["instrumental"] + plain.stems["vocals"], rtol=0, atol=1e-5)


def test_postprocess_without_quiet_frames_changes_nothing(tiny_state) -> None:
    """Loud throughout: no frame qualifies, where RVC's mask_silence raises IndexError."""
    wave = musical_signal(512 * 120, 44100, cutoff=0.9, seed=4) * 2
    plain = separator(tiny_state, "1band_sr44100_hl512", high_end="none").separate(wave, 44100)
    post = separator(tiny_state, "1band_sr44100_hl512", high_end="none", postprocess=True).separate(wave, 44100)
    for name in plain.stems:
        assert np.array_equal(plain.stems[name], post.stems[name])


def test_tta_changes_the_stems_but_not_their_shape(tiny_state) -> None:
    wave = musical_signal(30000 + 5, 44100)
    plain = separator(tiny_state, "4band_v2", window_size=320).separate(wave, 44100)
    tta = separator(tiny_state, "4band_v2", window_size=320, tta=True).separate(wave, 44100)
    for name in plain.stems:
        assert tta.stems[name].shape == plain.stems[name].shape
        assert np.abs(tta.stems[name] - plain.stems[name]).max() > 1e-4


def test_lstm_nets_ignore_aggressiveness() -> None:
    """SPEC §1.5/§5.12: the nets_new CascadedNet's predict ignores aggressiveness."""
    state = random_state_dict(LSTMNetConfig(nout=8, nout_lstm=16, bins=672), seed=0)
    wave = musical_signal(20000, 44100)
    a = separator(state, "4band_v3", aggressiveness=0).separate(wave, 44100)
    b = separator(state, "4band_v3", aggressiveness=60).separate(wave, 44100)
    for name in a.stems:
        assert np.array_equal(a.stems[name], b.stems[name])


def _stem_sum_snr(state, params: str, samples: int) -> float:
    wave = musical_signal(samples, 44100, cutoff=0.45, seed=1)
    result = separator(state, params, high_end="none", window_size=320).separate(wave, 44100)
    total = result.stems["instrumental"] + result.stems["vocals"]
    return snr_db(wave[:, 4096:-4096], total[:, 4096:-4096])


@pytest.mark.parametrize("samples", [512 * 170])
def test_reverse_params_stems_align_for_whole_hops(tiny_state, samples: int) -> None:
    """4band_44100_reverse time-reverses every band before the STFT and back after the ISTFT;
    for a whole number of hops the stems line up with the input like 4band_44100's."""
    assert _stem_sum_snr(tiny_state, "4band_44100_reverse", samples) > 25


def _band_noise(samples: int, low_hz: float, high_hz: float, seed: int = 2) -> np.ndarray:
    """Stereo noise band-passed to ``[low_hz, high_hz]`` (low-passed when ``low_hz`` is 0), 44.1 kHz."""
    cutoff = [low_hz, high_hz] if low_hz else high_hz
    taps = scipy.signal.firwin(1023, cutoff, pass_zero=not low_hz, fs=44100)
    noise = np.random.default_rng(seed).standard_normal((2, samples + taps.size))
    wave = scipy.signal.lfilter(taps, [1.0], noise, axis=1)[:, taps.size :]
    return (0.2 * wave / np.abs(wave).max()).astype(np.float32)


def _stems_sum(state, params: str, wave: np.ndarray) -> np.ndarray:
    result = separator(state, params, high_end="none", window_size=320).separate(wave, 44100)
    return result.stems["instrumental"] + result.stems["vocals"]


def _snr_advanced(wave: np.ndarray, total: np.ndarray, lead: int, margin: int = 4096) -> float:
    """SNR of ``total`` against ``wave`` advanced by ``lead`` samples, away from the ends."""
    samples = wave.shape[1]
    return snr_db(wave[:, margin + lead : samples - margin + lead], total[:, margin : samples - margin])


@pytest.mark.parametrize("samples", [44100 * 2, 512 * 170 + 121, 512 * 170 + 122, 512 * 170 + 123])
def test_reverse_params_stems_align_for_any_length(tiny_state, samples: int) -> None:
    """Any length: the top band's content sums back where it was in the input, and the two
    11025 Hz bands' content (under ~2 kHz) exactly where the reference puts it — ``(−N) mod 4``
    samples early (the reference flips each band at its own last sample, and the lower bands
    have ``ceil(N/4)`` samples; the v7/v8 parity fixtures check the stems themselves)."""
    assert _stem_sum_snr(tiny_state, "4band_44100", samples) > 25  # the same file without reverse
    lead = -samples % load_params("4band_44100_reverse").sample_grid
    top = _band_noise(samples, 12000, 15000)
    assert _snr_advanced(top, _stems_sum(tiny_state, "4band_44100_reverse", top), 0) > 60
    low = _band_noise(samples, 0, 1200)
    total = _stems_sum(tiny_state, "4band_44100_reverse", low)
    placed = _snr_advanced(low, total, lead)
    assert placed > 30
    if lead:  # and not where it would be without that placement
        assert _snr_advanced(low, total, 0) < placed - 10


def test_windows_for_matches_the_windows_run(tiny_state) -> None:
    sep = separator(tiny_state, "1band_sr44100_hl256", window_size=320)  # hop 256, roi 64
    samples = 256 * 70 + 5
    calls: list[int] = []
    sep.separate(musical_signal(samples, 44100), 44100, progress=calls.append)
    assert sum(calls) == sep.windows_for(samples) == 2


def test_windows_for_matches_the_windows_run_for_whole_hops(tiny_state) -> None:
    sep = separator(tiny_state, "1band_sr44100_hl256", window_size=320)  # hop 256, roi 64
    samples = 256 * 63  # 64 frames: exactly one roi
    calls: list[int] = []
    sep.separate(musical_signal(samples, 44100), 44100, progress=calls.append)
    assert sum(calls) == sep.windows_for(samples)


@pytest.mark.parametrize("params", ["4band_v2", "1band_sr44100_hl1024"])
def test_stems_synthesised_side_by_side_equal_one_by_one(params):
    """``synthesis_threads`` changes the schedule only: the stems are bit-identical."""
    weights = random_state_dict(ASPPNetConfig(width=4), seed=3)
    wave = np.random.default_rng(5).standard_normal((2, 44100 * 3)).astype(np.float32) * 0.1
    serial = Separator(weights, params, device="cpu", synthesis_threads=1).separate(wave, 44100).stems
    threaded = Separator(weights, params, device="cpu", synthesis_threads=2).separate(wave, 44100).stems
    assert serial.keys() == threaded.keys()
    for name in serial:
        np.testing.assert_array_equal(serial[name], threaded[name])
