"""``precision="auto"`` on whatever CPU runs the suite: the net in bfloat16 where the CPU has native
bfloat16 (AVX512-BF16 or AMX), else float32 with its wide 3×3 convs through NNPACK's Winograd
algorithm — and the stems it gives stay within the documented 40 dB of float32 either way (the
Winograd float32 within 80 dB, the parity tests' bound)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from uvrsep.api import Separator, resolve_precision
from uvrsep.demo import DEMO_SAMPLE_RATE, make_demo_clip
from uvrsep.fast import (
    PointwiseConv,
    SplitWeightConv,
    WinogradConv,
    cpu_has_native_bf16,
    first_convs,
    is_pointwise,
    nnpack_available,
    prepare_net,
)
from uvrsep.nets import ASPPNetConfig, LSTMNetConfig, net_from_state_dict
from uvrsep.pretrained import bundled_model_path, resolve_model
from uvrsep.testing import run_parity_case, snr_db

from .conftest import PARITY

CPU = torch.device("cpu")
#: the bound ``resolve_precision`` documents for ``auto`` against float32
AUTO_MIN_SNR_DB = 40.0
#: the bound of the parity tests (tests/test_parity.py), which ``auto``'s Winograd float32 keeps
WINOGRAD_MIN_SNR_DB = 80.0
AUTO_ON_THIS_CPU = resolve_precision("auto", CPU)
#: what ``auto`` promises on this CPU: 40 dB in bfloat16, 80 dB in float32 with Winograd convs
AUTO_BOUND_DB = WINOGRAD_MIN_SNR_DB if AUTO_ON_THIS_CPU == "fp32" else AUTO_MIN_SNR_DB


def test_auto_picks_bf16_exactly_where_the_cpu_has_it():
    assert AUTO_ON_THIS_CPU == ("bf16" if cpu_has_native_bf16() else "fp32")


@pytest.mark.slow
def test_auto_stays_within_40_db_of_fp32_on_the_bundled_model():
    """The trained model users get by default, on the demo song: ``auto`` against ``fp32``
    (exact float32, which never runs Winograd convs)."""
    model = bundled_model_path()
    assert model is not None, "this install has no bundled model"
    resolved = resolve_model(str(model), offline=True, progress=False)
    clip = make_demo_clip()["mixture"]
    separators = {
        precision: Separator(
            resolved.state_dict, resolved.params, primary_stem=resolved.primary_stem, device="cpu", precision=precision
        )
        for precision in ("fp32", "auto")
    }
    assert not any(isinstance(m, WinogradConv) for m in separators["fp32"].net.modules())
    winograd = any(isinstance(m, WinogradConv) for m in separators["auto"].net.modules())
    assert winograd == (AUTO_ON_THIS_CPU == "fp32" and nnpack_available())
    stems = {precision: sep.separate(clip, DEMO_SAMPLE_RATE).stems for precision, sep in separators.items()}
    for name, exact in stems["fp32"].items():
        if AUTO_ON_THIS_CPU == "fp32" and not winograd:  # no NNPACK: auto is the very same arithmetic
            np.testing.assert_array_equal(stems["auto"][name], exact)
        else:
            snr = snr_db(exact, stems["auto"][name])
            assert snr >= AUTO_BOUND_DB, f"{name} ({AUTO_ON_THIS_CPU}): {snr:.1f} dB"


@pytest.mark.slow
@pytest.mark.skipif(
    AUTO_ON_THIS_CPU == "fp32" and not nnpack_available(),
    reason="auto is exact fp32 on this CPU (no native bfloat16, no NNPACK): the fp32 parity tests run the same arithmetic",
)
def test_auto_stays_within_40_db_of_the_reference_on_a_parity_case():
    """Random-weight 123812 net, 4band_v2: ``auto`` against the reference outputs (which fp32
    matches at ≥ 80 dB, tests/test_parity.py): ≥ 40 dB in bfloat16, ≥ 80 dB with Winograd."""
    result = run_parity_case(PARITY / "v1_4band_v2_default", device="cpu", precision="auto")
    for stem, snr in result.snr_db.items():
        assert snr >= AUTO_BOUND_DB, f"{stem} ({AUTO_ON_THIS_CPU}): {snr:.1f} dB"


def test_bf16_on_the_cpu_runs_the_net_in_bfloat16_with_a_float32_mask_head(tiny_model):
    """Weights and activations in bfloat16, casts only at the edges: the 1×1 head and its sigmoid
    stay float32, so the mask is not rounded to 8 bits."""
    sep = Separator(str(tiny_model), "1band_sr44100_hl1024", device="cpu", precision="bf16")
    dtypes = {name: p.dtype for name, p in sep.net.named_parameters()}
    assert dtypes.pop("out.weight") == torch.float32
    assert set(dtypes.values()) == {torch.bfloat16}
    assert sep.runner.dtype == torch.bfloat16 and sep.runner.autocast is None
    features = torch.rand(1, sep.net.out.in_channels, 8, 4, dtype=torch.bfloat16)
    mask = sep.net.head(features)
    assert mask.dtype == torch.float32
    assert torch.equal(mask, torch.sigmoid(sep.net.out(features.float())))


@pytest.mark.slow
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="no AVX512-BF16/AMX: bfloat16 is emulated (~5x slower than fp32)")
@pytest.mark.parametrize("case", ["v1_4band_v2_default", "v3_1band_33966_w1024", "v6_lstm_deecho_4band_v3"])
def test_bf16_stays_within_40_db_of_the_reference(case):
    """The 123812 net (4band_v2), the 33966 net (1 band, window 1024: its vocals are 11.5 dB
    quieter than its instrumental, 39.4 dB before the first convs were split) and the LSTM
    DeEcho net (4band_v3) in bfloat16."""
    result = run_parity_case(PARITY / case, device="cpu", precision="bf16")
    for stem, snr in result.snr_db.items():
        assert snr >= AUTO_MIN_SNR_DB, f"{case} {stem}: {snr:.1f} dB"


def test_a_split_weight_conv_holds_the_float32_weights_to_16_bits():
    """hi + lo carries the float32 weights to ~16 bits where hi alone (plain bfloat16) carries 8;
    both parts are bfloat16 weights of one conv, the bias is the conv's, the output stays bfloat16
    and is closer to the float32 conv than the plain bfloat16 conv's."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 8, 3, padding=1)
    split = SplitWeightConv(conv)
    hi, lo = split.parts
    assert hi.dtype == lo.dtype == split.conv.bias.dtype == torch.bfloat16
    assert torch.equal(split.conv.bias.float(), conv.bias.detach().bfloat16().float())
    weight = conv.weight.detach()
    scale = weight.abs().max()
    assert hi.shape == lo.shape == weight.shape
    assert (hi.float() + lo.float() - weight).abs().max() <= scale * 2.0**-15
    assert (hi.float() - weight).abs().max() > scale * 2.0**-12
    x = torch.rand(1, 2, 16, 16).bfloat16()
    plain = copy.deepcopy(conv).bfloat16()
    with torch.inference_mode():
        out = split(x)
        exact = conv(x.float())
        rounded = plain(x)
    assert out.dtype == torch.bfloat16 and out.shape == exact.shape
    assert (out.float() - exact).abs().max() <= exact.abs().max() * 2.0**-7  # one bfloat16 rounding
    assert (out.float() - exact).abs().sum() < (rounded.float() - exact).abs().sum()


@pytest.mark.parametrize("config", [ASPPNetConfig(width=4), LSTMNetConfig(nout=8, nout_lstm=16, bins=672)], ids=["aspp", "lstm"])
def test_a_bfloat16_net_splits_exactly_the_first_conv_of_each_u_net(config):
    from uvrsep.testing import random_state_dict

    net = prepare_net(net_from_state_dict(random_state_dict(config, seed=3)), CPU, torch.bfloat16)
    split = sorted(name for name, module in net.named_modules() if isinstance(module, SplitWeightConv))
    expected = 4 if isinstance(config, ASPPNetConfig) else 5  # stage 1 low/high, 2, 3 | 1 and 2 low/high, 3
    assert split == sorted(first_convs(net)) and len(split) == expected
    plain = prepare_net(net_from_state_dict(random_state_dict(config, seed=3)), CPU, torch.bfloat16, split_first=False)
    assert not any(isinstance(module, SplitWeightConv) for module in plain.modules())
    exact = prepare_net(net_from_state_dict(random_state_dict(config, seed=3)), CPU, torch.float32)
    assert not any(isinstance(module, SplitWeightConv) for module in exact.modules())


@pytest.mark.parametrize("config", [ASPPNetConfig(width=4), LSTMNetConfig(nout=8, nout_lstm=16, bins=672)], ids=["aspp", "lstm"])
def test_in_place_activations_change_no_value(config):
    """prepare_net makes every ReLU/LeakyReLU overwrite its input; the masks are the same bit
    for bit as with fresh tensors (no activated tensor was read again elsewhere)."""
    from torch import nn

    from uvrsep.testing import random_state_dict

    state = random_state_dict(config, seed=5)
    in_place = prepare_net(net_from_state_dict(state), CPU, torch.float32)
    fresh = prepare_net(net_from_state_dict(state), CPU, torch.float32)
    activations = [m for m in fresh.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert activations and all(m.inplace for m in activations)
    for module in activations:
        module.inplace = False
    bins = config.bins if isinstance(config, LSTMNetConfig) else 256
    window = torch.rand(1, 2, bins + 1, 2 * in_place.offset + 32, generator=torch.Generator().manual_seed(1))
    window = window.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.equal(in_place.predict_mask(window), fresh.predict_mask(window))


@pytest.mark.parametrize("config", [ASPPNetConfig(width=4), LSTMNetConfig(nout=8, nout_lstm=16, bins=672)], ids=["aspp", "lstm"])
def test_a_float32_net_gives_the_same_bits_on_one_and_two_threads(config):
    """prepare_net runs every float32 1×1 conv on the CPU as a matrix product: oneDNN's 1×1
    convolutions gave other bits with 1 thread than with 2 on an AVX2 CPU (so a one-thread Ray
    worker's stems differed from the CLI's). Each equals its conv up to float32 rounding."""
    from uvrsep.testing import random_state_dict

    state = random_state_dict(config, seed=6)
    net = prepare_net(net_from_state_dict(state), CPU, torch.float32)
    pointwise = [m for m in net.modules() if isinstance(m, PointwiseConv)]
    assert len(pointwise) >= 4 and not any(is_pointwise(m) for m in net.modules())
    bins = config.bins if isinstance(config, LSTMNetConfig) else 256
    window = torch.rand(1, 2, bins + 1, 2 * net.offset + 64, generator=torch.Generator().manual_seed(2))
    window = window.contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    masks = []
    try:
        with torch.inference_mode():
            for count in (2, 1, 2):
                torch.set_num_threads(count)
                masks.append(net.predict_mask(window))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[0], masks[2])
    conv = torch.nn.Conv2d(24, 5, 1).eval()
    x = torch.randn(2, 24, 16, 9, generator=torch.Generator().manual_seed(3)).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out, exact = PointwiseConv(conv)(x), conv(x)
    assert out.shape == exact.shape and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, exact, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="1x1"):
        PointwiseConv(torch.nn.Conv2d(4, 4, 3))
