"""The VR-architecture networks, their configurations, and architecture detection.

Each network maps a normalised magnitude spectrogram window ``(N, 2, bins + 1, T)`` to a mask of
the same shape (:meth:`VRNet.forward`). Applying aggressiveness, multiplying by the mixture and
cropping the window's margins are the inference code's job (:mod:`uvrsep.inference`), not the
network's — the original ``forward`` did all of that at once.

Two families:

* :class:`CascadedASPPNet` (UVR v5 ``nets_*KB.py``), at every capacity of the family, described by
  :class:`ASPPNetConfig` (base width, ASPP branches, encoder depth);
* :class:`CascadedNet` (UVR v5.1 ``nets_new``, with LSTM), described by :class:`LSTMNetConfig`.

:func:`detect_architecture` reads the configuration from a state dict's keys and shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ModelError
from .layers import (
    CONV_CONTEXT,
    cat_channels,
    conv_parts,
    upsample_columns,
    upsample_source_columns,
    ASPPModule,
    ASPPModuleV2,
    Conv2DBNActiv,
    Decoder,
    DecoderV2,
    Encoder,
    EncoderV2,
    LSTMModule,
)

#: Frames cropped from each side of a window by the ASPP nets (their receptive-field margin).
ASPP_OFFSET = 128
#: Frames cropped from each side of a window by the LSTM CascadedNet.
LSTM_OFFSET = 64
#: Dilations of the ASPP nets' separable branches.
ASPP_DILATIONS = (4, 8, 16)
#: Input channels of every net (left/right magnitude).
AUDIO_CHANNELS = 2
#: Stride of each encoder level.
ENCODER_STRIDE = 2


@dataclass(frozen=True)
class ASPPNetConfig:
    """Capacity of a :class:`CascadedASPPNet`.

    Attributes:
        width: base width ``c``: stage 1 nets are ``BaseASPPNet(2, c)``, stage 2 ``(c/2, c)``,
            stage 3 ``(c, 2c)``; 16 for the "SP" models, 32 for "HP", 64 for "HP2".
        aspp_branches: branches of every ASPP module (5, 6 or 7).
        levels: encoder levels of every BaseASPPNet (4, or 5 for the 129605 arch).
    """

    width: int
    aspp_branches: int = 5
    levels: int = 4

    @property
    def offset(self) -> int:
        return ASPP_OFFSET

    @property
    def arch_name(self) -> str:
        """UVR's name for this capacity (its ≈ file size in KB), or a descriptive one."""
        for name, config in KNOWN_ASPP_ARCHS.items():
            if config == self:
                return name
        return f"aspp_w{self.width}_b{self.aspp_branches}_l{self.levels}"

    @property
    def size_multiple(self) -> int:
        """Frequency and time sizes of the net's input must be multiples of this."""
        return ENCODER_STRIDE**self.levels


@dataclass(frozen=True)
class LSTMNetConfig:
    """Capacity of a :class:`CascadedNet` (UVR v5.1, used by the DeEcho/DeReverb/DeNoise models).

    Attributes:
        nout: main width (48 for DeEcho Normal/Aggressive and DeNoise, 64 for DeEcho-DeReverb,
            16 for DeNoise-Lite).
        nout_lstm: LSTM output width (128 for every official model).
        bins: number of frequency bins the net was built for (``n_fft // 2``); the LSTM's
            dense layers fix it, so it must equal the params' ``bins``.
    """

    nout: int
    nout_lstm: int
    bins: int

    @property
    def offset(self) -> int:
        return LSTM_OFFSET

    @property
    def arch_name(self) -> str:
        return f"lstm_{self.nout}_{self.nout_lstm}_{self.bins}"

    @property
    def size_multiple(self) -> int:
        return ENCODER_STRIDE**4


NetConfig = Union[ASPPNetConfig, LSTMNetConfig]

#: UVR's capacity names (≈ file size in KB of the fp32 checkpoint) → configuration.
KNOWN_ASPP_ARCHS: dict[str, ASPPNetConfig] = {
    "31191": ASPPNetConfig(width=16, aspp_branches=5),
    "33966": ASPPNetConfig(width=16, aspp_branches=7),
    "129605": ASPPNetConfig(width=16, aspp_branches=6, levels=5),
    "123812": ASPPNetConfig(width=32, aspp_branches=5),
    "537238": ASPPNetConfig(width=64, aspp_branches=7),
}
#: Other names the same capacities go by (UVR and RVC file-name aliases).
ARCH_ALIASES: dict[str, str] = {"123821": "123812", "61968": "123812", "537227": "537238"}


class BaseASPPNet(nn.Module):
    """U-Net with an ASPP bottleneck: ``(N, nin, F, T)`` → ``(N, ch, F, T)``.

    F and T must be multiples of ``2**levels``.
    """

    def __init__(self, nin: int, ch: int, branches: int = 5, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        widths = [ch * 2**level for level in range(levels)]  # ch, 2ch, 4ch, 8ch(, 16ch)
        inputs = [nin] + widths[:-1]
        for level, (w_in, w_out) in enumerate(zip(inputs, widths), start=1):
            self.add_module(f"enc{level}", Encoder(w_in, w_out, 3, ENCODER_STRIDE, 1))
        self.aspp = ASPPModule(widths[-1], widths[-1] * 2, ASPP_DILATIONS, branches)
        for level in range(levels, 0, -1):
            w_out = widths[level - 1]
            self.add_module(f"dec{level}", Decoder(w_out * 3, w_out, 3, 1, 1))

    def forward(self, x: Tensor, columns: tuple[int, int] | None = None) -> Tensor:
        """Run the net; with ``columns = (a, b)`` the decoders compute only what output time
        columns ``[a, b)`` depend on, and ``(N, ch, F, b − a)`` is returned (same values)."""
        skips = []
        h = x
        for level in range(1, self.levels + 1):
            h, skip = getattr(self, f"enc{level}")(h)
            skips.append(skip)
        h = self.aspp(h)
        if columns is None:
            for level in range(self.levels, 0, -1):
                h = getattr(self, f"dec{level}")(h, skips[level - 1])
            return h
        return self._decode_columns(h, skips, columns)

    def _decode_columns(self, h: Tensor, skips: list[Tensor], columns: tuple[int, int]) -> Tensor:
        """Decoders restricted to the columns the output range needs (see :meth:`forward`)."""
        widths = [skip.shape[3] for skip in skips]  # level L (1-based) has width widths[L-1]
        needed: dict[int, tuple[int, int]] = {1: columns}
        conv_in: dict[int, tuple[int, int]] = {}
        for level in range(1, self.levels + 1):
            a, b = needed[level]
            width = widths[level - 1]
            conv_in[level] = (max(0, a - CONV_CONTEXT), min(width, b + CONV_CONTEXT))
            if level < self.levels:
                needed[level + 1] = upsample_source_columns(*conv_in[level], widths[level], width)
        h_start = 0
        for level in range(self.levels, 0, -1):
            c0, c1 = conv_in[level]
            up = upsample_columns(h, h_start, widths[level - 1], c0, c1)
            out = conv_parts(getattr(self, f"dec{level}").conv, [up, skips[level - 1][:, :, :, c0:c1]])
            a, b = needed[level]
            h, h_start = out[:, :, :, a - c0 : b - c0], a
        return h


class VRNet(nn.Module):
    """Common interface: ``forward(x) -> mask`` plus the inference facts the pipeline needs."""

    config: NetConfig

    @property
    def offset(self) -> int:
        """Frames of context dropped at each side of a window."""
        return self.config.offset

    @property
    def supports_aggressiveness(self) -> bool:
        """Whether the reference applies aggressiveness to this net's mask."""
        return isinstance(self.config, ASPPNetConfig)

    out: nn.Conv2d

    def head(self, features: Tensor) -> Tensor:
        """The mask from the last stage's features: ``sigmoid(out(features))``, in ``out``'s
        dtype (a net run in bfloat16 keeps this 1×1 conv and the sigmoid in float32, so the
        mask is not rounded to bfloat16's 8 bits: :func:`uvrsep.fast.prepare_net`)."""
        return torch.sigmoid(self.out(features.to(self.out.weight.dtype)))

    def predict_mask(self, x: Tensor) -> Tensor:
        """The mask of the window's central ``T − 2·offset`` frames (subclasses may compute less)."""
        return self(x)[:, :, :, self.offset : x.shape[3] - self.offset]

    def check_bins(self, bins: int) -> None:
        """Raise :class:`ModelError` if a params file with ``bins`` rows cannot drive this net."""
        half = bins // 2
        multiple = self.config.size_multiple
        if bins % 2 or half % multiple:
            raise ModelError(
                f"params with {bins} bins do not fit a {self.config.arch_name} net: "
                f"bins/2 must be a multiple of {multiple}"
            )


def pad_mask(mask: Tensor, output_bins: int) -> Tensor:
    """Replicate the top frequency row of ``mask`` (N, C, bins, T) up to ``output_bins`` rows."""
    return F.pad(mask, (0, 0, 0, output_bins - mask.shape[2]), mode="replicate")


class CascadedASPPNet(VRNet):
    """Three-stage cascaded ASPP net of UVR v5 (``nets_123812KB.py`` and its capacities).

    Stage 1 runs two BaseASPPNets on the low and high halves of the spectrum; stage 2 a full-band
    net on [input, stage 1]; stage 3 a full-band net on [input, stage 1, stage 2]; ``out`` is a 1×1
    conv to 2 channels. ``aux1_out``/``aux2_out`` exist for training (and for strict loading).
    """

    def __init__(self, config: ASPPNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.width
        branches, levels = config.aspp_branches, config.levels
        self.stg1_low_band_net = BaseASPPNet(AUDIO_CHANNELS, c, branches, levels)
        self.stg1_high_band_net = BaseASPPNet(AUDIO_CHANNELS, c, branches, levels)
        self.stg2_bridge = Conv2DBNActiv(c + AUDIO_CHANNELS, c // 2, 1, 1, 0)
        self.stg2_full_band_net = BaseASPPNet(c // 2, c, branches, levels)
        self.stg3_bridge = Conv2DBNActiv(2 * c + AUDIO_CHANNELS, c, 1, 1, 0)
        self.stg3_full_band_net = BaseASPPNet(c, 2 * c, branches, levels)
        self.out = nn.Conv2d(2 * c, AUDIO_CHANNELS, 1, bias=False)
        self.aux1_out = nn.Conv2d(c, AUDIO_CHANNELS, 1, bias=False)
        self.aux2_out = nn.Conv2d(c, AUDIO_CHANNELS, 1, bias=False)

    def features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Run the three stages on ``x`` (N, 2, bins, T) (the top row already dropped).

        Returns:
            ``(stage3, aux1, aux2)`` feature maps: ``(N, 2c, bins, T)``, ``(N, c, bins, T)`` ×2.
        """
        half = x.shape[2] // 2
        aux1 = torch.cat(
            [self.stg1_low_band_net(x[:, :, :half]), self.stg1_high_band_net(x[:, :, half:])],
            dim=2,
        )
        aux2 = self.stg2_full_band_net(self.stg2_bridge(cat_channels([x, aux1])))
        stage3 = self.stg3_full_band_net(self.stg3_bridge(cat_channels([x, aux1, aux2])))
        return stage3, aux1, aux2

    def forward(self, x: Tensor) -> Tensor:
        """Mask for a window: ``(N, 2, bins + 1, T)`` → ``(N, 2, bins + 1, T)`` in [0, 1]."""
        stage3, _, _ = self.features(x[:, :, :-1])
        return pad_mask(self.head(stage3), x.shape[2])

    def predict_mask(self, x: Tensor) -> Tensor:
        """The mask of a window's central ``T − 2·offset`` frames, ``(N, 2, bins + 1, T − 2·offset)``.

        Equal to ``forward(x)[..., offset:-offset]``, but the last stage's decoders compute only
        the columns those frames depend on (about a quarter less work).
        """
        body = x[:, :, :-1]
        half = body.shape[2] // 2
        aux1 = torch.cat(
            [self.stg1_low_band_net(body[:, :, :half]), self.stg1_high_band_net(body[:, :, half:])], dim=2
        )
        aux2 = self.stg2_full_band_net(self.stg2_bridge(cat_channels([body, aux1])))
        stage3_in = self.stg3_bridge(cat_channels([body, aux1, aux2]))
        columns = (self.offset, x.shape[3] - self.offset)
        stage3 = self.stg3_full_band_net(stage3_in, columns)
        return pad_mask(self.head(stage3), x.shape[2])

    def forward_train(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training outputs of the original: ``(mask·x, aux1_mask·x, aux2_mask·x)``."""
        stage3, aux1, aux2 = self.features(x[:, :, :-1])
        rows = x.shape[2]
        masks = [
            pad_mask(torch.sigmoid(head(feat)), rows)
            for head, feat in ((self.out, stage3), (self.aux1_out, aux1), (self.aux2_out, aux2))
        ]
        return masks[0] * x, masks[1] * x, masks[2] * x


class BaseNet(nn.Module):
    """U-Net of the LSTM CascadedNet: 5 levels, ASPP, and an LSTM branch before the last decoder.

    ``(N, nin, F, T)`` → ``(N, nout, F, T)``; the LSTM runs on ``F/2 == nin_lstm`` rows.
    """

    def __init__(self, nin: int, nout: int, nin_lstm: int, nout_lstm: int) -> None:
        super().__init__()
        self.enc1 = Conv2DBNActiv(nin, nout, 3, 1, 1)
        self.enc2 = EncoderV2(nout, nout * 2, 3, ENCODER_STRIDE, 1)
        self.enc3 = EncoderV2(nout * 2, nout * 4, 3, ENCODER_STRIDE, 1)
        self.enc4 = EncoderV2(nout * 4, nout * 6, 3, ENCODER_STRIDE, 1)
        self.enc5 = EncoderV2(nout * 6, nout * 8, 3, ENCODER_STRIDE, 1)
        self.aspp = ASPPModuleV2(nout * 8, nout * 8, dropout=True)
        self.dec4 = DecoderV2(nout * (6 + 8), nout * 6)
        self.dec3 = DecoderV2(nout * (4 + 6), nout * 4)
        self.dec2 = DecoderV2(nout * (2 + 4), nout * 2)
        self.lstm_dec2 = LSTMModule(nout * 2, nin_lstm, nout_lstm)
        self.dec1 = DecoderV2(nout * (1 + 2) + 1, nout)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        h = self.aspp(self.enc5(e4))
        h = self.dec4(h, e4)
        h = self.dec3(h, e3)
        h = self.dec2(h, e2)
        h = cat_channels([h, self.lstm_dec2(h)])
        return self.dec1(h, e1)


class CascadedNet(VRNet):
    """UVR v5.1 cascaded net with LSTM branches (``nets_new.CascadedNet``)."""

    def __init__(self, config: LSTMNetConfig) -> None:
        super().__init__()
        self.config = config
        nout, nout_lstm = config.nout, config.nout_lstm
        nin_lstm = config.bins // 2
        self.stg1_low_band_net = nn.Sequential(
            BaseNet(AUDIO_CHANNELS, nout // 2, nin_lstm // 2, nout_lstm),
            Conv2DBNActiv(nout // 2, nout // 4, 1, 1, 0),
        )
        self.stg1_high_band_net = BaseNet(AUDIO_CHANNELS, nout // 4, nin_lstm // 2, nout_lstm // 2)
        self.stg2_low_band_net = nn.Sequential(
            BaseNet(nout // 4 + AUDIO_CHANNELS, nout, nin_lstm // 2, nout_lstm),
            Conv2DBNActiv(nout, nout // 2, 1, 1, 0),
        )
        self.stg2_high_band_net = BaseNet(
            nout // 4 + AUDIO_CHANNELS, nout // 2, nin_lstm // 2, nout_lstm // 2
        )
        self.stg3_full_band_net = BaseNet(3 * nout // 4 + AUDIO_CHANNELS, nout, nin_lstm, nout_lstm)
        self.out = nn.Conv2d(nout, AUDIO_CHANNELS, 1, bias=False)
        self.aux_out = nn.Conv2d(3 * nout // 4, AUDIO_CHANNELS, 1, bias=False)

    def check_bins(self, bins: int) -> None:
        if bins != self.config.bins:
            raise ModelError(
                f"this LSTM net was built for {self.config.bins} bins but the params have {bins}; "
                "use the params the model was trained with (e.g. 4band_v3 for 672 bins)"
            )

    def features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Stages on ``x`` (N, 2, bins, T): returns ``(stage3, aux1, aux2)``."""
        half = x.shape[2] // 2
        low_in, high_in = x[:, :, :half], x[:, :, half:]
        low1 = self.stg1_low_band_net(low_in)
        high1 = self.stg1_high_band_net(high_in)
        aux1 = torch.cat([low1, high1], dim=2)
        low2 = self.stg2_low_band_net(cat_channels([low_in, low1]))
        high2 = self.stg2_high_band_net(cat_channels([high_in, high1]))
        aux2 = torch.cat([low2, high2], dim=2)
        stage3 = self.stg3_full_band_net(cat_channels([x, aux1, aux2]))
        return stage3, aux1, aux2

    def forward(self, x: Tensor) -> Tensor:
        """Mask for a window: ``(N, 2, bins + 1, T)`` → ``(N, 2, bins + 1, T)``."""
        stage3, _, _ = self.features(x[:, :, : self.config.bins])
        return pad_mask(self.head(stage3), x.shape[2])

    def forward_train(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Training outputs: ``(mask·x, aux_mask·x)`` with aux from [aux1, aux2]."""
        stage3, aux1, aux2 = self.features(x[:, :, : self.config.bins])
        rows = x.shape[2]
        mask = pad_mask(self.head(stage3), rows)
        aux = pad_mask(torch.sigmoid(self.aux_out(cat_channels([aux1, aux2]))), rows)
        return mask * x, aux * x


# --- architecture detection ------------------------------------------------------------------

_ASPP_PROBE = "stg1_low_band_net.enc1.conv1.conv.0.weight"
_LSTM_OUT = "out.weight"
_LSTM_PROBE = "stg3_full_band_net.lstm_dec2.lstm.weight_ih_l0"
_LSTM_HIDDEN = "stg3_full_band_net.lstm_dec2.lstm.weight_hh_l0"


def detect_architecture(state_dict: Mapping[str, Tensor]) -> NetConfig:
    """Read the network configuration from a state dict's keys and tensor shapes.

    Args:
        state_dict: a plain ``{key: tensor}`` mapping as saved by ``torch.save(model.state_dict())``.

    Returns:
        An :class:`ASPPNetConfig` or :class:`LSTMNetConfig`.

    Raises:
        ModelError: when the keys match neither family.
    """
    if _LSTM_PROBE in state_dict and _LSTM_OUT in state_dict and _LSTM_HIDDEN in state_dict:
        nout = int(state_dict[_LSTM_OUT].shape[1])
        hidden = int(state_dict[_LSTM_HIDDEN].shape[1])
        nin_lstm = int(state_dict[_LSTM_PROBE].shape[1])
        return LSTMNetConfig(nout=nout, nout_lstm=2 * hidden, bins=2 * nin_lstm)
    if _ASPP_PROBE in state_dict:
        width = int(state_dict[_ASPP_PROBE].shape[0])
        prefix = "stg1_low_band_net.aspp.conv"
        branches = 2
        while f"{prefix}{branches + 1}.conv.0.weight" in state_dict:
            branches += 1
        levels = 4
        while f"stg1_low_band_net.enc{levels + 1}.conv1.conv.0.weight" in state_dict:
            levels += 1
        return ASPPNetConfig(width=width, aspp_branches=branches, levels=levels)
    sample = ", ".join(list(state_dict)[:3]) or "no keys"
    raise ModelError(
        f"state dict matches no VR architecture: looked for '{_ASPP_PROBE}' (CascadedASPPNet) "
        f"or '{_LSTM_PROBE}' (LSTM CascadedNet); found {sample}"
    )


def build_net(config: NetConfig) -> VRNet:
    """Instantiate the network for ``config`` (random weights, eval mode)."""
    net: VRNet = CascadedASPPNet(config) if isinstance(config, ASPPNetConfig) else CascadedNet(config)
    return net.eval()


def config_from_name(arch: str, *, bins: int | None = None) -> NetConfig:
    """A configuration from UVR's capacity name (``"123812"``, ``"61968"``, ``"lstm_48_128_672"``)."""
    arch = ARCH_ALIASES.get(arch, arch)
    if arch in KNOWN_ASPP_ARCHS:
        return KNOWN_ASPP_ARCHS[arch]
    custom = re.fullmatch(r"aspp_w(\d+)_b(\d+)_l(\d+)", arch)
    if custom:
        width, branches, levels = (int(g) for g in custom.groups())
        limits = (("width", width, 2, 1024), ("branches", branches, 5, 16), ("levels", levels, 1, 8))
        for what, value, low, high in limits:
            if not low <= value <= high:
                raise ModelError(f"architecture '{arch}': {what} must be between {low} and {high}, got {value}")
        return ASPPNetConfig(width=width, aspp_branches=branches, levels=levels)
    if arch.startswith("lstm_"):
        parts = arch.split("_")[1:]
        if len(parts) == 2 and bins is not None:
            parts.append(str(bins))
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            return LSTMNetConfig(*(int(p) for p in parts))
    known = ", ".join(list(KNOWN_ASPP_ARCHS) + ["aspp_wWIDTH_bBRANCHES_lLEVELS", "lstm_NOUT_NOUTLSTM_BINS"])
    raise ModelError(f"unknown architecture '{arch}'; known: {known}")


def net_from_state_dict(state_dict: Mapping[str, Tensor]) -> VRNet:
    """Detect the architecture, build the net and load ``state_dict`` strictly (fp16 is cast).

    Raises:
        ModelError: unknown architecture, or keys/shapes that do not match it exactly.
    """
    config = detect_architecture(state_dict)
    net = build_net(config)
    float_dict = {
        key: value.float() if torch.is_floating_point(value) else value
        for key, value in state_dict.items()
    }
    try:
        net.load_state_dict(float_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise ModelError(
            f"state dict looks like a {config.arch_name} net but does not load strictly: {detail[:400]}"
        ) from None
    return net
