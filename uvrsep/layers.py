"""Building blocks of the VR-architecture networks.

Two families share this file:

* the CascadedASPPNet blocks (UVR v5 ``layers_123821KB``): :class:`Conv2DBNActiv`,
  :class:`SeparableConv2DBNActiv`, :class:`Encoder`, :class:`Decoder`, :class:`ASPPModule`;
* the LSTM CascadedNet blocks (UVR v5.1 ``layers_new``): :class:`EncoderV2`, :class:`DecoderV2`,
  :class:`ASPPModuleV2`, :class:`LSTMModule`.

Attribute names follow the original modules exactly, because they are the state-dict keys of the
official ``.pth`` files (``encK.conv1.conv.0.weight`` and so on). All tensors are laid out
``(batch, channels, freq, time)``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Negative slope of the LeakyReLU used by the encoders (torch's default, as in the original).
LEAKY_SLOPE = 0.01
#: Dropout probability of the ASPP bottleneck (identity at inference; kept for training).
ASPP_DROPOUT = 0.1
#: Upsampling factor of every decoder (inverse of the encoders' stride).
UPSAMPLE_FACTOR = 2

Activation = Callable[[], nn.Module]


def crop_center(skip: Tensor, target: Tensor) -> Tensor:
    """Crop the time axis of ``skip`` to the width of ``target``, centred.

    Args:
        skip: ``(N, C, F, T_skip)``.
        target: ``(N, C', F, T)`` with ``T <= T_skip``.

    Returns:
        ``skip[..., start:start + T]`` with ``start = (T_skip - T) // 2``.
    """
    width = target.shape[3]
    if skip.shape[3] == width:
        return skip
    if skip.shape[3] < width:
        raise ValueError(f"skip is narrower ({skip.shape[3]}) than the decoder input ({width})")
    start = (skip.shape[3] - width) // 2
    return skip[:, :, :, start : start + width]


def upsample(x: Tensor) -> Tensor:
    """Bilinear ×2 upsampling on both axes with ``align_corners=True`` (as the original)."""
    return F.interpolate(x, scale_factor=UPSAMPLE_FACTOR, mode="bilinear", align_corners=True)


#: Columns of context a 3×3, padding-1 convolution reads on each side.
CONV_CONTEXT = 1


def upsample_source_columns(start: int, stop: int, source_width: int, width: int) -> tuple[int, int]:
    """Source columns that :func:`upsample` output columns ``[start, stop)`` read (align_corners)."""
    scale = (source_width - 1) / (width - 1) if width > 1 else 0.0
    first = int(math.floor(start * scale))
    last = min(source_width - 1, int(math.floor((stop - 1) * scale)) + 1)
    return first, last + 1


def upsample_columns(x: Tensor, x_start: int, width: int, start: int, stop: int) -> Tensor:
    """Columns ``[start, stop)`` of ``upsample(full)`` where ``x`` holds the columns of ``full``
    from ``x_start`` on and ``width`` is the upsampled width: bilinear ×2 with
    ``align_corners=True`` done separably (the needed time columns, then frequency).

    The time columns are gathered on a ``(N, F, T, C)`` view, where each gathered column is one
    run of channels in a channels-last tensor (a gather along the last axis of an NCHW view
    copies element by element: 2.6× slower on the CPU), and the result is channels-last.

    Args:
        x: ``(N, C, F, k)``, columns ``[x_start, x_start + k)`` of a ``(N, C, F, width/2)`` map.

    Returns:
        ``(N, C, 2F, stop − start)``, channels-last.
    """
    source_width = width // UPSAMPLE_FACTOR
    scale = (source_width - 1) / (width - 1) if width > 1 else 0.0
    positions = torch.arange(start, stop, device=x.device, dtype=torch.float64) * scale
    left = positions.floor().long()
    right = torch.clamp(left + 1, max=source_width - 1)
    weight = (positions - left).to(x.dtype).unsqueeze(1)
    # time first, on the half-height source (half the gathering), then frequency
    rows_last = x.permute(0, 2, 3, 1)  # (N, F, k, C)
    cols = torch.lerp(rows_last[:, :, left - x_start], rows_last[:, :, right - x_start], weight)
    cols = cols.permute(0, 3, 1, 2)  # (N, C, F, n), channels-last
    return F.interpolate(cols, size=(x.shape[2] * UPSAMPLE_FACTOR, cols.shape[3]), mode="bilinear", align_corners=True)


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing the caller (``torch.compiler.is_compiling``, torch ≥ 2.3)."""
    check = getattr(torch.compiler, "is_compiling", None)
    return bool(check()) if check is not None else False


def cat_channels(tensors: Sequence[Tensor], reader: nn.Module | None = None) -> Tensor:
    """``torch.cat(tensors, dim=1)`` of ``(N, C_i, F, T)`` maps, written channels-last when the
    first one is (so the convolution after it reads it as it is instead of converting a copy,
    and no input's layout decides the output's: an expanded or NCHW one makes ``torch.cat``
    return NCHW), or NCHW when ``reader`` (the block that reads the result) takes that layout
    without converting it (:func:`takes_nchw`). Under autograd or ``torch.compile`` (which plans
    layouts itself and cannot trace ``out=``), plain ``torch.cat``."""
    first = tensors[0]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    traced = is_compiling()
    if grad or traced or first.dim() != 4:
        return torch.cat(list(tensors), dim=1)
    shape = (first.shape[0], sum(t.shape[1] for t in tensors), first.shape[2], first.shape[3])
    if reader is not None and takes_nchw(reader, shape):
        out = torch.empty(shape, dtype=first.dtype, device=first.device)
    elif first.shape[1] < 2 or first.stride(1) != 1:
        return torch.cat(list(tensors), dim=1)
    else:
        out = torch.empty(shape, dtype=first.dtype, device=first.device, memory_format=torch.channels_last)
    return torch.cat(list(tensors), dim=1, out=out)


def takes_nchw(block: nn.Module, shape: tuple[int, ...]) -> bool:
    """Whether ``block`` (a :class:`Conv2DBNActiv`, or a conv) reads an NCHW input of ``shape``
    without converting it: its first layer says so through a ``takes_nchw(shape)`` method
    (:class:`uvrsep.fast.WinogradConv`, which works in NCHW); plain convs read channels-last."""
    first = block.conv[0] if isinstance(block, Conv2DBNActiv) else block
    check = getattr(first, "takes_nchw", None)
    return bool(check is not None and check(shape))


def conv_parts(block: nn.Module, parts: Sequence[Tensor]) -> Tensor:
    """``block(cat_channels(parts))``, without making the concatenation when the block's conv
    takes its inputs apart (a ``forward_parts`` method: :class:`uvrsep.fast.SplitInputConv`);
    ``block`` is a :class:`Conv2DBNActiv`."""
    first = block.conv[0] if isinstance(block, Conv2DBNActiv) else None
    split = getattr(first, "forward_parts", None)
    if split is None:
        return block(cat_channels(parts, reader=block))
    out = split(list(parts))
    for layer in list(block.conv)[1:]:
        out = layer(out)
    return out


class Conv2DBNActiv(nn.Module):
    """Conv2d (no bias) → BatchNorm2d → activation. Keys: ``conv.0`` conv, ``conv.1`` BN."""

    def __init__(
        self,
        nin: int,
        nout: int,
        ksize: int | tuple[int, int] = 3,
        stride: int = 1,
        pad: int | tuple[int, int] = 1,
        dilation: int | tuple[int, int] = 1,
        activ: Activation = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(nin, nout, ksize, stride, pad, dilation, bias=False),
            nn.BatchNorm2d(nout),
            activ(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class SeparableConv2DBNActiv(nn.Module):
    """Depthwise conv → pointwise 1×1 conv → BatchNorm2d → activation (keys ``conv.0..2``)."""

    def __init__(
        self,
        nin: int,
        nout: int,
        ksize: int = 3,
        stride: int = 1,
        pad: int = 1,
        dilation: int = 1,
        activ: Activation = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(nin, nin, ksize, stride, pad, dilation, groups=nin, bias=False),
            nn.Conv2d(nin, nout, 1, bias=False),
            nn.BatchNorm2d(nout),
            activ(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def _leaky() -> nn.Module:
    return nn.LeakyReLU(LEAKY_SLOPE)


class Encoder(nn.Module):
    """ASPP-net encoder: a full-resolution conv (the skip) then a strided conv.

    ``(N, nin, F, T)`` → ``(h, skip)`` with ``skip: (N, nout, F, T)`` and
    ``h: (N, nout, ceil(F/stride), ceil(T/stride))``.
    """

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 2, pad: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, 1, pad, activ=_leaky)
        self.conv2 = Conv2DBNActiv(nout, nout, ksize, stride, pad, activ=_leaky)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        skip = self.conv1(x)
        return self.conv2(skip), skip


class Decoder(nn.Module):
    """ASPP-net decoder: upsample ×2, concatenate the (time-cropped) skip, conv (key ``conv``)."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1) -> None:
        super().__init__()
        self.conv = Conv2DBNActiv(nin, nout, ksize, stride, pad)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = upsample(x)
        if skip is not None:
            return conv_parts(self.conv, [x, crop_center(skip, x)])
        return self.conv(x)


def _frequency_pool_branch(pool_conv: nn.Module, x: Tensor) -> Tensor:
    """Run the pooled branch (mean over frequency → 1×1 conv) and broadcast it to every row.

    The original resizes the single row with bilinear ``align_corners=True`` interpolation, which
    for a height-1 source is an exact copy; ``expand`` gives the same values without the work.
    """
    return pool_conv(x).expand(-1, -1, x.shape[2], -1)


def _frequency_pool() -> nn.Module:
    """Mean over the frequency axis, time kept: ``(N, C, F, T)`` → ``(N, C, 1, T)``."""
    return nn.AdaptiveAvgPool2d((1, None))


class ASPPModule(nn.Module):
    """Atrous spatial pyramid pooling of the CascadedASPPNet family.

    Branches: frequency-pooled 1×1 (``conv1``), 1×1 (``conv2``), separable dilated 3×3 convs
    (``conv3``, ``conv4``, ``conv5`` with dilations ``dilations[0..2]``, then ``conv6``/``conv7``
    with ``dilations[2]`` for the 6- and 7-branch capacities), concatenated, then a 1×1
    ``bottleneck``. ``(N, nin, F, T)`` → ``(N, nout, F, T)``.
    """

    def __init__(
        self, nin: int, nout: int, dilations: Sequence[int] = (4, 8, 16), branches: int = 5
    ) -> None:
        super().__init__()
        if branches < 5:
            raise ValueError(f"an ASPP module has at least 5 branches, got {branches}")
        self.branches = branches
        self.conv1 = nn.Sequential(_frequency_pool(), Conv2DBNActiv(nin, nin, 1, 1, 0))
        self.conv2 = Conv2DBNActiv(nin, nin, 1, 1, 0)
        for index in range(3, branches + 1):
            dilation = dilations[min(index - 3, len(dilations) - 1)]
            self.add_module(
                f"conv{index}", SeparableConv2DBNActiv(nin, nin, 3, 1, dilation, dilation)
            )
        self.bottleneck = nn.Sequential(
            Conv2DBNActiv(nin * branches, nout, 1, 1, 0), nn.Dropout2d(ASPP_DROPOUT)
        )

    def forward(self, x: Tensor) -> Tensor:
        feats = [_frequency_pool_branch(self.conv1, x), self.conv2(x)]
        feats += [getattr(self, f"conv{index}")(x) for index in range(3, self.branches + 1)]
        return self.bottleneck(cat_channels(feats))


# --- LSTM CascadedNet (UVR v5.1 "layers_new") blocks -------------------------------------------


class EncoderV2(nn.Module):
    """LSTM-net encoder: strided conv then a stride-1 conv, both LeakyReLU; returns only ``h``."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 2, pad: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, stride, pad, activ=_leaky)
        self.conv2 = Conv2DBNActiv(nout, nout, ksize, 1, pad, activ=_leaky)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class DecoderV2(nn.Module):
    """LSTM-net decoder: upsample ×2, concatenate the cropped skip, conv (key ``conv1``)."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, stride, pad)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = upsample(x)
        if skip is not None:
            return conv_parts(self.conv1, [x, crop_center(skip, x)])
        return self.conv1(x)


#: (frequency, time) dilations of the three dilated branches of :class:`ASPPModuleV2`.
ASPP_V2_DILATIONS: tuple[tuple[int, int], ...] = ((4, 2), (8, 4), (12, 6))


class ASPPModuleV2(nn.Module):
    """ASPP of the LSTM net: pooled 1×1, 1×1, three plain dilated 3×3 convs, 1×1 bottleneck.

    ``(N, nin, F, T)`` → ``(N, nout, F, T)``.
    """

    def __init__(
        self,
        nin: int,
        nout: int,
        dilations: Sequence[tuple[int, int]] = ASPP_V2_DILATIONS,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(_frequency_pool(), Conv2DBNActiv(nin, nout, 1, 1, 0))
        self.conv2 = Conv2DBNActiv(nin, nout, 1, 1, 0)
        self.conv3 = Conv2DBNActiv(nin, nout, 3, 1, dilations[0], dilations[0])
        self.conv4 = Conv2DBNActiv(nin, nout, 3, 1, dilations[1], dilations[1])
        self.conv5 = Conv2DBNActiv(nin, nout, 3, 1, dilations[2], dilations[2])
        self.bottleneck = Conv2DBNActiv(nout * 5, nout, 1, 1, 0)
        self.dropout = nn.Dropout2d(ASPP_DROPOUT) if dropout else None

    def forward(self, x: Tensor) -> Tensor:
        feats = [
            _frequency_pool_branch(self.conv1, x),
            self.conv2(x),
            self.conv3(x),
            self.conv4(x),
            self.conv5(x),
        ]
        out = self.bottleneck(cat_channels(feats))
        return self.dropout(out) if self.dropout is not None else out


class LSTMModule(nn.Module):
    """One-channel projection → bidirectional LSTM over time → dense back to the bins.

    ``(N, nin_conv, F, T)`` → ``(N, 1, F, T)`` with ``F == nin_lstm``.
    """

    def __init__(self, nin_conv: int, nin_lstm: int, nout_lstm: int) -> None:
        super().__init__()
        self.conv = Conv2DBNActiv(nin_conv, 1, 1, 1, 0)
        self.lstm = nn.LSTM(input_size=nin_lstm, hidden_size=nout_lstm // 2, bidirectional=True)
        self.dense = nn.Sequential(
            nn.Linear(nout_lstm, nin_lstm), nn.BatchNorm1d(nin_lstm), nn.ReLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        batch, _, bins, frames = x.shape
        h = self.conv(x)[:, 0]  # (N, F, T)
        h = h.permute(2, 0, 1)  # (T, N, F): sequence over time
        h, _ = self.lstm(h)
        h = self.dense(h.reshape(-1, h.shape[-1]))  # (T*N, F)
        h = h.reshape(frames, batch, 1, bins)
        return h.permute(1, 2, 3, 0)
