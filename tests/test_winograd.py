"""What ``--precision auto`` changes in a float32 net on a CPU without native bfloat16: the wide
3×3 convs through NNPACK's Winograd algorithm (``WinogradConv``: close to the direct conv, the
same bits on any number of threads, a clean fallback to the conv) and the other decoder convs
summed over their inputs instead of reading a concatenation (``SplitInputConv``) — never in
exact float32."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import uvrsep.fast as fast
from uvrsep.api import Separator
from uvrsep.fast import (
    WINOGRAD_MIN_CHANNELS,
    SplitInputConv,
    WinogradConv,
    nnpack_available,
    prepare_net,
    winograd_convs,
)
from uvrsep.layers import Decoder, DecoderV2, cat_channels
from uvrsep.nets import ASPPNetConfig, net_from_state_dict
from uvrsep.testing import random_state_dict, snr_db

CPU = torch.device("cpu")
#: width 16: the 123812 layout at half its channels, so its deepest 3×3 convs are 128 channels
#: and wider (Winograd) and the shallow ones narrower (direct)
WIDE = ASPPNetConfig(width=16)
#: a float32 conv's own rounding is ~125 dB from float64; NNPACK's Winograd measured 113–114 dB
WINOGRAD_LAYER_MIN_SNR_DB = 100.0
#: the parity tests' bound, which the whole net with Winograd convs keeps against exact float32
NET_MIN_SNR_DB = 80.0

needs_nnpack = pytest.mark.skipif(not nnpack_available(), reason="this PyTorch build has no NNPACK (or it does not run on this CPU)")


def wide_conv(channels: int = WINOGRAD_MIN_CHANNELS, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(channels, channels, 3, padding=1).eval()


def channels_last_input(channels: int, rows: int = 16, cols: int = 12, batch: int = 2) -> torch.Tensor:
    x = torch.randn(batch, channels, rows, cols, generator=torch.Generator().manual_seed(1))
    return x.contiguous(memory_format=torch.channels_last)


@needs_nnpack
def test_a_winograd_conv_is_the_conv_to_float32_rounding_but_not_the_same_arithmetic():
    conv = wide_conv()
    x = channels_last_input(conv.in_channels)
    with torch.inference_mode():
        out, direct = WinogradConv(conv)(x), conv(x)
        exact = nn.functional.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    assert out.shape == direct.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert snr_db(exact.numpy(), out.double().numpy()) >= WINOGRAD_LAYER_MIN_SNR_DB
    assert not torch.equal(out, direct)  # NNPACK ran: Winograd rounds otherwise than a direct conv


@needs_nnpack
def test_a_winograd_conv_hands_too_large_inputs_and_autograd_to_the_conv(monkeypatch):
    conv = wide_conv()
    winograd = WinogradConv(conv)
    x = channels_last_input(conv.in_channels)
    with torch.inference_mode():
        assert winograd.takes_nchw(tuple(x.shape))
        monkeypatch.setattr(fast, "WINOGRAD_MAX_INPUT_ELEMENTS", x[0].numel() - 1)
        assert not winograd.takes_nchw(tuple(x.shape))
        assert torch.equal(winograd(x), conv(x))
    monkeypatch.undo()
    with torch.no_grad():
        assert not torch.equal(winograd(x), conv(x))  # decided per call: NNPACK again
    grad_input = x.clone().requires_grad_(True)
    out = winograd(grad_input)
    out.sum().backward()  # training through a prepared net still differentiates (the conv runs)
    assert grad_input.grad is not None


@needs_nnpack
def test_a_failing_nnpack_falls_back_to_the_conv_for_good_with_one_line(monkeypatch, capsys):
    conv = wide_conv()
    winograd = WinogradConv(conv)
    x = channels_last_input(conv.in_channels)
    calls = []

    def broken(*args):
        calls.append(args)
        raise RuntimeError("NNPACK SpatialConvolution_updateOutput failed")

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", broken)
    with torch.inference_mode():
        assert torch.equal(winograd(x), conv(x)) and torch.equal(winograd(x), conv(x))
    assert len(calls) == 1 and winograd.failed
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "NNPACK failed" in lines[0] and "runs without it" in lines[0]


def test_only_dense_3x3_stride_1_float32_convs_qualify():
    with pytest.raises(ValueError, match="3x3"):
        WinogradConv(nn.Conv2d(128, 128, 3, stride=2, padding=1))
    with pytest.raises(ValueError, match="3x3"):
        WinogradConv(nn.Conv2d(128, 128, 3, padding=2, dilation=2))
    with pytest.raises(ValueError, match="3x3"):
        WinogradConv(nn.Conv2d(128, 128, 1))
    with pytest.raises(ValueError, match="3x3"):
        WinogradConv(nn.Conv2d(128, 128, 3, padding=1).bfloat16())


@needs_nnpack
def test_prepare_net_hands_exactly_the_wide_3x3_convs_to_winograd_and_only_when_asked():
    def fresh() -> nn.Module:
        return net_from_state_dict(random_state_dict(WIDE, seed=4))

    net = prepare_net(fresh(), CPU, torch.float32, winograd=True)
    replaced = [m for m in net.modules() if isinstance(m, WinogradConv)]
    plain = prepare_net(fresh(), CPU, torch.float32)
    expected = [
        m for m in plain.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1) and m.dilation == (1, 1)
        and m.groups == 1 and min(m.in_channels, m.out_channels) >= WINOGRAD_MIN_CHANNELS
    ]
    assert replaced and len(replaced) == len(expected)
    assert sorted((m.in_channels, m.out_channels) for m in replaced) == sorted((m.in_channels, m.out_channels) for m in expected)
    narrow = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1)]
    assert any(min(m.in_channels, m.out_channels) < WINOGRAD_MIN_CHANNELS for m in narrow)  # left direct
    assert not any(isinstance(m, WinogradConv) for m in plain.modules())
    bf16 = prepare_net(fresh(), CPU, torch.bfloat16, winograd=True)
    assert not any(isinstance(m, WinogradConv) for m in bf16.modules())
    assert winograd_convs(fresh(), min_channels=10**6) == 0


def test_without_nnpack_nothing_is_replaced(monkeypatch):
    monkeypatch.setattr(fast, "nnpack_available", lambda: False)
    net = prepare_net(net_from_state_dict(random_state_dict(WIDE, seed=4)), CPU, torch.float32, winograd=True)
    assert not any(isinstance(m, WinogradConv) for m in net.modules())


@needs_nnpack
def test_a_decoder_before_a_winograd_conv_concatenates_in_nchw_with_the_same_values():
    decoder = Decoder(256 + 128, 128).eval()
    prepare_net(decoder, CPU, torch.float32, winograd=True)
    assert isinstance(decoder.conv.conv[0], WinogradConv)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 256, 8, 6, generator=g).contiguous(memory_format=torch.channels_last)
    skip = torch.randn(1, 128, 16, 12, generator=g).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        joined = cat_channels([x, skip[:, :, :8, :6]], reader=decoder.conv)
        assert joined.is_contiguous() and not joined.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(joined, torch.cat([x, skip[:, :, :8, :6]], dim=1))
        out = decoder(x, skip)
    assert out.shape == (1, 128, 16, 12) and out.is_contiguous(memory_format=torch.channels_last)


@needs_nnpack
def test_auto_runs_winograd_where_it_is_float32_and_fp32_stays_exact(tiny_model, monkeypatch):
    monkeypatch.setattr("uvrsep.api.cpu_has_native_bf16", lambda: False)  # auto resolves to fp32
    state = random_state_dict(WIDE, seed=5)
    auto = Separator(state, "1band_sr44100_hl1024", device="cpu", precision="auto")
    exact = Separator(state, "1band_sr44100_hl1024", device="cpu", precision="fp32")
    assert auto.precision == exact.precision == "fp32"
    assert any(isinstance(m, WinogradConv) for m in auto.net.modules())
    assert not any(isinstance(m, WinogradConv) for m in exact.net.modules())
    wave = np.random.default_rng(3).uniform(-0.5, 0.5, (2, 44100)).astype(np.float32)
    a, e = auto.separate(wave, 44100).stems, exact.separate(wave, 44100).stems
    for name in e:
        assert not np.array_equal(a[name], e[name])
        assert snr_db(e[name], a[name]) >= NET_MIN_SNR_DB, name


MASK_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys, torch
    torch.set_num_threads(int(sys.argv[1]))  # before NNPACK's first call, which sizes its thread pool
    from uvrsep.fast import WinogradConv, prepare_net
    from uvrsep.nets import ASPPNetConfig, net_from_state_dict
    from uvrsep.testing import random_state_dict
    net = prepare_net(net_from_state_dict(random_state_dict(ASPPNetConfig(width=16), seed=6)),
                      torch.device("cpu"), torch.float32, winograd=True)
    assert any(isinstance(m, WinogradConv) for m in net.modules())
    x = torch.rand(1, 2, 257, 2 * net.offset + 64, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        mask = net.predict_mask(x.contiguous(memory_format=torch.channels_last))
    print(hashlib.sha256(mask.numpy().tobytes()).hexdigest())
    """
)


@needs_nnpack
def test_winograd_gives_the_same_bits_in_a_one_thread_and_a_two_thread_process():
    """NNPACK sizes its thread pool once per process, so one process per thread count (a
    one-thread Ray worker against the two-thread CLI)."""
    digests = []
    for threads in (1, 2):
        done = subprocess.run(
            [sys.executable, "-c", MASK_SCRIPT, str(threads)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(done.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_a_split_input_conv_is_the_conv_of_the_concatenation_to_float32_rounding():
    torch.manual_seed(1)
    conv = nn.Conv2d(24, 8, 3, padding=1).eval()
    split = SplitInputConv(conv)
    g = torch.Generator().manual_seed(4)
    parts = [torch.randn(2, c, 10, 7, generator=g).contiguous(memory_format=torch.channels_last) for c in (16, 8)]
    with torch.inference_mode():
        joined = torch.cat(parts, dim=1)
        assert torch.equal(split(joined), conv(joined))  # a concatenated input: the conv itself
        out = split.forward_parts(parts)
        torch.testing.assert_close(out, conv(joined), rtol=1e-5, atol=1e-5)
        assert torch.equal(split.forward_parts(parts), out)  # the cut weights are cached, same bits
        with pytest.raises(ValueError, match="do not make"):
            split.forward_parts([parts[0], parts[0]])
    assert list(split.part_weights((16, 8))[0].shape) == [8, 16, 3, 3]


@pytest.mark.parametrize("decoder", [Decoder(24, 8), DecoderV2(24, 8)], ids=["aspp", "lstm"])
def test_a_prepared_decoder_sums_its_inputs_convs_instead_of_concatenating(decoder, monkeypatch):
    monkeypatch.setattr(fast, "nnpack_available", lambda: False)  # direct convs only: all split
    reference = prepare_net(copy.deepcopy(decoder.eval()), CPU, torch.float32)
    split = prepare_net(decoder.eval(), CPU, torch.float32, winograd=True)
    block = split.conv if isinstance(split, Decoder) else split.conv1
    assert isinstance(block.conv[0], SplitInputConv)
    assert not any(isinstance(m, SplitInputConv) for m in reference.modules())
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 16, 6, 5, generator=g).contiguous(memory_format=torch.channels_last)
    skip = torch.randn(1, 8, 12, 12, generator=g).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(split(x, skip), reference(x, skip), rtol=1e-5, atol=1e-5)


def test_an_unprepared_decoder_keeps_the_reference_nchw_layout():
    """The reference arithmetic (``optimize=False``: NCHW throughout) is not moved to
    channels-last by a reader that does not take NCHW: ``cat_channels`` of NCHW maps stays NCHW."""
    decoder = Decoder(24, 8).eval()
    g = torch.Generator().manual_seed(6)
    x, skip = torch.randn(1, 16, 6, 5, generator=g), torch.randn(1, 8, 6, 5, generator=g)
    joined = cat_channels([x, skip], reader=decoder.conv)
    assert joined.is_contiguous() and not joined.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(joined, torch.cat([x, skip], dim=1))


@needs_nnpack
def test_a_winograd_conv_converts_its_channels_last_weight_once_and_again_after_a_change():
    conv = wide_conv().to(memory_format=torch.channels_last)
    winograd = WinogradConv(conv)
    x = channels_last_input(conv.in_channels)
    with torch.inference_mode():
        first = winograd(x)
        weight = winograd.nchw_weight()
        assert weight.is_contiguous() and torch.equal(weight, conv.weight)
        assert winograd.nchw_weight() is weight and torch.equal(winograd(x), first)
    with torch.no_grad():
        conv.weight.mul_(2)  # an in-place change (a load) is seen
    with torch.inference_mode():
        assert winograd.nchw_weight() is not weight and torch.equal(winograd.nchw_weight(), conv.weight)
        torch.testing.assert_close(winograd(x) - conv.bias.reshape(1, -1, 1, 1), 2 * (first - conv.bias.reshape(1, -1, 1, 1)), rtol=1e-4, atol=1e-4)
