"""Networks: strict loading of state dicts with the original key lists, architecture detection,
fp16 checkpoints, and shape behaviour on random weights."""

from __future__ import annotations

import pytest
import torch

from .conftest import load_keys
from uvrsep.errors import ModelError
from uvrsep.nets import (
    KNOWN_ASPP_ARCHS,
    ASPPNetConfig,
    CascadedNet,
    LSTMNetConfig,
    build_net,
    config_from_name,
    detect_architecture,
    net_from_state_dict,
)
from uvrsep.testing import keys_of, make_state_dict, random_state_dict

KEY_FILES = {
    "123812": "keys_123812.json",
    "31191": "keys_31191.json",
    "33966": "keys_33966.json",
    "537238": "keys_537238.json",
}


@pytest.mark.parametrize("arch,key_file", sorted(KEY_FILES.items()))
def test_original_key_lists_load_strictly(arch: str, key_file: str) -> None:
    """A state dict built from the ORIGINAL modules' key list loads strictly, detects its arch,
    and our own state dict has exactly the original keys, order and shapes."""
    keys = load_keys(key_file)
    state = make_state_dict(keys, seed=1)
    config = detect_architecture(state)
    assert config.arch_name == arch
    net = net_from_state_dict(state)
    ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert ours == [(k, s) for k, s, _ in keys]
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_lstm_key_list_loads_strictly() -> None:
    keys = load_keys("keys_new_48_128_672.json")
    state = make_state_dict(keys, seed=6)
    config = detect_architecture(state)
    assert config == LSTMNetConfig(nout=48, nout_lstm=128, bins=672)
    net = net_from_state_dict(state)
    assert isinstance(net, CascadedNet)
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == [(k, s) for k, s, _ in keys]


@pytest.mark.parametrize(
    "config,params",
    [
        (KNOWN_ASPP_ARCHS["129605"], 33_090_000),
        (KNOWN_ASPP_ARCHS["123812"], 31_618_944),
        (LSTMNetConfig(16, 128, 1024), None),
        (LSTMNetConfig(64, 128, 672), None),
        (ASPPNetConfig(width=8, aspp_branches=5), None),
    ],
)
def test_every_capacity_round_trips_detection(config, params) -> None:
    """Random weights for each capacity (keys derived from our nets) are detected as that capacity."""
    state = random_state_dict(config, seed=3)
    assert detect_architecture(state) == config
    net = net_from_state_dict(state)
    count = sum(p.numel() for p in net.parameters())
    if params is not None:
        assert abs(count - params) / params < 0.001, count


def test_fp16_checkpoint_loads_strictly_and_matches() -> None:
    """The RVC copies are fp16 state dicts: they load strictly, cast to float32."""
    state = make_state_dict(load_keys("keys_123812.json"), seed=1)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    net = net_from_state_dict(half)
    for key, value in net.state_dict().items():
        expected = half[key].float() if half[key].is_floating_point() else half[key]
        assert value.dtype == (torch.float32 if value.is_floating_point() else torch.int64)
        assert torch.equal(value, expected), key


def test_unknown_state_dict_lists_what_it_looked_for() -> None:
    with pytest.raises(ModelError) as err:
        detect_architecture({"encoder.weight": torch.zeros(2)})
    message = str(err.value)
    assert "stg1_low_band_net.enc1.conv1.conv.0.weight" in message and "lstm" in message
    assert "\n" not in message


def test_missing_key_is_a_clear_error() -> None:
    state = make_state_dict(load_keys("keys_31191.json"), seed=1)
    del state["stg3_full_band_net.dec1.conv.conv.0.weight"]
    with pytest.raises(ModelError, match="31191"):
        net_from_state_dict(state)


def test_config_from_name_aliases() -> None:
    assert config_from_name("61968") == KNOWN_ASPP_ARCHS["123812"]
    assert config_from_name("537227") == KNOWN_ASPP_ARCHS["537238"]
    assert config_from_name("lstm_48_128", bins=672) == LSTMNetConfig(48, 128, 672)
    with pytest.raises(ModelError):
        config_from_name("999")


@pytest.mark.parametrize("config", [ASPPNetConfig(width=8), ASPPNetConfig(width=8, aspp_branches=6, levels=5)])
def test_mask_shape_and_range(config: ASPPNetConfig) -> None:
    net = build_net(config)
    torch.manual_seed(0)
    x = torch.rand(2, 2, 65, 320)
    with torch.inference_mode():
        mask = net(x)
    assert mask.shape == x.shape
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    # replicate padding: the extra top row copies the row below it
    assert torch.equal(mask[:, :, -1], mask[:, :, -2])


def test_lstm_mask_shape() -> None:
    net = build_net(LSTMNetConfig(nout=16, nout_lstm=32, bins=64))
    x = torch.rand(1, 2, 65, 64)
    with torch.inference_mode():
        mask = net(x)
    assert mask.shape == x.shape
    net.check_bins(64)
    with pytest.raises(ModelError, match="64 bins"):
        net.check_bins(672)


def test_aspp_net_is_translation_equivariant_in_time_away_from_edges() -> None:
    """Fully convolutional: shifting the input by 16 frames shifts the mask's interior by 16."""
    net = build_net(ASPPNetConfig(width=4))
    torch.manual_seed(1)
    x = torch.rand(1, 2, 33, 512)
    with torch.inference_mode():
        a = net(x)[..., 200:300]
        b = net(torch.roll(x, 16, dims=3))[..., 216:316]
    assert torch.allclose(a, b, atol=1e-5)


def test_forward_train_returns_three_products() -> None:
    net = build_net(ASPPNetConfig(width=4)).train()
    x = torch.rand(2, 2, 33, 64)
    main, aux1, aux2 = net.forward_train(x)
    assert main.shape == aux1.shape == aux2.shape == x.shape
    assert torch.all(main <= x + 1e-6)


def test_keys_of_matches_state_dict() -> None:
    config = KNOWN_ASPP_ARCHS["33966"]
    assert [k for k, _ in keys_of(config)] == [k for k, _, _ in load_keys("keys_33966.json")]


@pytest.mark.parametrize(
    "config,rows,window",
    [
        (ASPPNetConfig(width=4), 673, 512),
        (ASPPNetConfig(width=4, aspp_branches=7), 673, 320),
        (ASPPNetConfig(width=4), 1025, 1024),
        (ASPPNetConfig(width=4, aspp_branches=6, levels=5), 1025, 512),
    ],
)
def test_predict_mask_equals_cropped_forward(config, rows, window):
    """The ROI-only decoding of the last stage computes the same mask as the full net, cropped."""
    net = build_net(config)
    net.load_state_dict(random_state_dict(config, seed=3))
    x = torch.rand(2, 2, rows, window)
    with torch.inference_mode():
        full = net(x)[:, :, :, net.offset : window - net.offset]
        roi = net.predict_mask(x)
    assert roi.shape == full.shape
    torch.testing.assert_close(roi, full, rtol=0, atol=1e-5)
