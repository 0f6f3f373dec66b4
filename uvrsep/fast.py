"""Inference-time rewrites of a loaded net that keep its function and make it faster.

* :func:`fold_batchnorm`: every ``Conv2d → BatchNorm2d`` pair becomes one ``Conv2d`` with a bias
  (eval-mode BatchNorm is an affine map per channel, so it folds into the conv's weights).
* :func:`cpu_has_native_bf16`: whether bfloat16 pays on this CPU (AVX512-BF16 or AMX).
* :func:`prepare_net`: folding, channels-last memory format, device and dtype, in one call.
* :class:`SplitWeightConv`: a bfloat16 conv with 16 bits of weight (each U-Net's first conv).
* :func:`activate_in_place`: activations that overwrite their input instead of allocating.
* :class:`PointwiseConv`: a float32 1×1 conv as a matrix product, the same bits on any number of
  threads.
* :class:`WinogradConv`: a wide float32 3×3 conv through NNPACK's Winograd algorithm (what
  ``--precision auto`` runs on a CPU without native bfloat16).
* :class:`SplitInputConv`: a decoder's conv run as one conv per input it would concatenate
  (``--precision auto`` in float32 on the CPU too).
"""

from __future__ import annotations

import functools
import platform

import torch
from torch import nn

from .compiled import notice
from .layers import Decoder, DecoderV2, cat_channels, is_compiling

#: /proc/cpuinfo flags of CPUs with native bfloat16 matrix arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

#: How ``--precision bf16`` runs the net on the CPU: ``"native"`` (weights and activations in
#: bfloat16, casts only at the net's edges, the mask head in float32) or ``"autocast"``
#: (float32 weights, bfloat16 convolutions under ``torch.autocast``). The rule, from one
#: 512-frame window of the prepared 123812 net (``python scripts/bench_net.py``):
#:
#: * AMX (2-core Xeon, issue 17): native 1.40–1.56 s, autocast 1.50–1.95 s, fp32 3.7 s;
#: * the same class with this build (2-core Xeon with AMX-BF16, 2026-12-07): native 0.96 s,
#:   autocast 1.22 s, fp32 3.14 s; masks 44.8 and 43.7 dB from fp32;
#: * AVX512-BF16 without AMX (2-core AMD EPYC, 2026-12-06): native 2.48 s, autocast 2.72 s,
#:   fp32 5.04 s; masks 44.0 dB from fp32 either way;
#: * AVX2 only: bfloat16 is emulated (~5× slower than fp32), so ``auto`` picks fp32 there.
#:
#: Native is the faster on both classes that have bfloat16, so it is the one rule.
BF16_ON_CPU = "native"

#: Whether a net moved to bfloat16 runs the first convolution of each of its U-Nets with its
#: weights in two bfloat16 parts (:class:`SplitWeightConv`). The stems' difference from fp32 in
#: bfloat16 is mostly the weights' rounding: with the weights alone rounded and the arithmetic
#: in float32, the vocals of the parity case ``v3_1band_33966_w1024`` are 39.9 dB from fp32,
#: all in bfloat16 39.4 dB. More than half of that sits in those first convolutions: they see
#: the spectrogram through 2 to 64 channels, so their few products per output do not average
#: the rounding out (those four layers' weights exact: 43.3 dB). Measured on a 2-core AMD EPYC
#: with AVX512-BF16 (2026-12-06), 123812 net, one 512-frame window: split 2.73 s, the first
#: convs in float32 2.82 s, all plain bfloat16 2.65 s; the v3 vocals 40.9 dB split, 41.3 dB
#: float32, 39.4 dB plain. With the split run as one convolution (2026-12-07, same machine):
#: split 2.31 s, plain 2.21 s, the v3 vocals 41.0 dB
#: (``python scripts/bench_net.py --modes bf16 bf16-pure``, ``python scripts/parity.py --precision bf16``).
SPLIT_FIRST_CONVS = True


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv equal to ``bn(conv(x))`` in eval mode."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean.detach()) * scale + bn.bias.detach())
    return fused


def fold_batchnorm(module: nn.Module) -> int:
    """Fold each ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an ``nn.Sequential``
    (in place; the BatchNorm becomes ``nn.Identity``). The module must be in eval mode.

    Returns:
        The number of pairs folded.
    """
    if module.training:
        raise ValueError("fold_batchnorm needs a module in eval mode")
    folded = 0
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        for index in range(len(child) - 1):
            conv, bn = child[index], child[index + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                child[index] = _fold(conv, bn)
                child[index + 1] = nn.Identity()
                folded += 1
    return folded


#: The activation modules of the VR nets, each the only reader of what it activates (the conv,
#: BatchNorm or Linear just before it in its ``nn.Sequential``).
IN_PLACE_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)


def activate_in_place(module: nn.Module) -> int:
    """Make every ReLU/LeakyReLU of ``module`` overwrite its input (inference only: autograd
    needs the input kept). Same values, bit for bit; one fresh activation-sized tensor less per
    layer: one 512-frame window of the 123812 net 4–6 % faster in bfloat16 and 7–8 % in float32
    (2-core AMD EPYC with AVX512-BF16, 2026-12-07, alternated, three runs).

    Returns:
        The number of activations changed.
    """
    changed = 0
    for child in module.modules():
        if isinstance(child, IN_PLACE_ACTIVATIONS):
            child.inplace = True
            changed += 1
    return changed


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has AVX512-BF16 or AMX-BF16 (Linux ``/proc/cpuinfo``)."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            text = handle.read()
    except OSError:
        return False
    return any(flag in text.split() for flag in BF16_CPU_FLAGS)


class SplitWeightConv(nn.Module):
    """A ``Conv2d`` in bfloat16 whose weights keep 16 bits instead of 8: ``W = hi + lo`` with
    ``hi = bf16(W)`` and ``lo = bf16(W − hi)``, run as ONE bfloat16 convolution of ``[x, x]``
    (the input twice over the channels) with the weights ``[hi, lo]``, so the two parts' sum is
    accumulated in float32 inside the convolution and rounded once (two convolutions and a
    bfloat16 sum measured 5 % slower per window of the 123812 net, and rounded twice).
    ``(N, C_in, F, T)`` → ``(N, C_out, F', T')`` bfloat16, like the conv it replaces."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.groups != 1:
            raise ValueError("SplitWeightConv takes a dense (groups=1) convolution")
        weight = conv.weight.detach().float()
        hi = weight.to(torch.bfloat16)
        lo = (weight - hi.float()).to(torch.bfloat16)
        self.conv = nn.Conv2d(
            2 * conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        ).to(conv.weight.device, torch.bfloat16)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([hi, lo], dim=1))
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias.detach())

    @property
    def parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights' ``(hi, lo)`` parts, each shaped like the original conv's weight."""
        return tuple(self.conv.weight.detach().chunk(2, dim=1))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(cat_channels([x, x]))


class PointwiseConv(nn.Module):
    """A dense 1×1 ``Conv2d`` (stride 1, no padding) as ``F.linear`` over the channels of a
    channels-last tensor: ``(N, C_in, F, T)`` → ``(N, C_out, F, T)`` channels-last, no copy either
    way for a channels-last input.

    Why: on a CPU without native bfloat16 (AVX2 only; a 2-core AMD EPYC, 2026-12-07) oneDNN's
    float32 1×1 convolutions give different bits with 1 and 2 threads (it splits the sum over
    the input channels between threads differently), so a Ray worker with one thread and the
    single-process CLI with two gave stems that differ in their last bits. The matrix product
    gives the same bits on any number of threads (:func:`prepare_net` uses it for every float32
    1×1 conv on the CPU; ``tests/test_precision.py`` checks the whole net with 1 and 2 threads).
    Same values as the conv up to float32 rounding (1e-6 relative)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not is_pointwise(conv):
            raise ValueError("PointwiseConv takes a dense 1x1 convolution with stride 1 and no padding")
        self.weight, self.bias = conv.weight, conv.bias  # the conv's own parameters, not copies

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.reshape(self.weight.shape[0], self.weight.shape[1])
        return nn.functional.linear(x.permute(0, 2, 3, 1), weight, self.bias).permute(0, 3, 1, 2)


def is_pointwise(conv: nn.Module) -> bool:
    """A dense 1×1 ``Conv2d`` with stride 1 and no padding (what :class:`PointwiseConv` replaces)."""
    return (
        isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
        and conv.padding in ((0, 0), "valid") and conv.groups == 1
    )


def pointwise_as_linear(net: nn.Module) -> int:
    """Replace every float32 :func:`is_pointwise` conv of ``net`` by a :class:`PointwiseConv`
    (in place). Returns the number replaced."""
    targets = [
        name for name, module in net.named_modules()
        if is_pointwise(module) and module.weight.dtype == torch.float32
    ]
    for name in targets:
        _replace(net, name, PointwiseConv(net.get_submodule(name)))
    return len(targets)


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` where ``net``'s submodule ``name`` (dotted) is."""
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent), child, module)


def first_convs(net: nn.Module) -> list[str]:
    """Names of the ``Conv2d`` that take each U-Net's input: in ``enc1.conv1`` of every
    :class:`~uvrsep.nets.BaseASPPNet`, in ``enc1`` of every :class:`~uvrsep.nets.BaseNet`."""
    from .nets import BaseASPPNet, BaseNet

    names = []
    for name, module in net.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, BaseASPPNet):
            names.append(f"{prefix}enc1.conv1.conv.0")
        elif isinstance(module, BaseNet):
            names.append(f"{prefix}enc1.conv.0")
    return names


#: The narrowest float32 3×3 conv (the smaller of its input and output channels) that
#: :func:`winograd_convs` hands to NNPACK's Winograd algorithm. NNPACK does 2–3× fewer
#: multiplications (F(6×6, 3×3)) but transforms every tile of its input and output: measured in
#: the 123812 net on a 2-core AMD EPYC (Zen 3, AVX2 only, 2026-12-08; layers of one 512-frame
#: window, channels-last conversions included), the convs from 128 channels up took 0.54×
#: oneDNN's time (e.g. 1536→512 on 128×38: 632 → 298 ms; 768→256 on 64×64: 116 → 70 ms),
#: those of 96 or 192 → 32 or 64 channels 1.0–2.5× (192→64 on 1024×258: 455 → 907 ms).
WINOGRAD_MIN_CHANNELS = 128
#: The largest input of one sample (channels × rows × frames, float32 elements) a
#: :class:`WinogradConv` takes to NNPACK: above it, converting the channels-last input to
#: NNPACK's NCHW layout costs more than the Winograd algorithm saves (same CPU: 384→128 channels
#: on 512×132, 26 M elements, 375 ms in oneDNN against 497 ms; on 256×128, 12.6 M, 194 → 177 ms;
#: 768→256 on 256×70, 13.8 M, 804 → 245 ms). 2**24 (64 MB).
WINOGRAD_MAX_INPUT_ELEMENTS = 1 << 24


@functools.lru_cache(maxsize=1)
def nnpack_available() -> bool:
    """Whether this PyTorch build has NNPACK and it initialises on this CPU (the call that
    initialises it: NNPACK's convolution fails until it has been made)."""
    check = getattr(torch, "_nnpack_available", None)
    try:
        return bool(check is not None and check() and hasattr(torch, "_nnpack_spatial_convolution"))
    except RuntimeError:
        return False


class WinogradConv(nn.Module):
    """A dense float32 3×3 ``Conv2d`` with stride 1 and no dilation, run by NNPACK's Winograd
    algorithm (``torch._nnpack_spatial_convolution``) when its input is small enough
    (:data:`WINOGRAD_MAX_INPUT_ELEMENTS`), else by the conv itself. ``(N, C_in, F, T)`` →
    ``(N, C_out, F, T)`` channels-last, like the conv it replaces (NNPACK works in NCHW: the
    input and output are converted).

    Not the reference's arithmetic: Winograd rounds differently from a direct convolution,
    113–114 dB from float64 per layer where oneDNN's direct float32 is 124–133 dB, and the
    stems of the parity fixtures stay ≥ 80 dB from exact float32 (``tests/test_precision.py``).
    So only ``--precision auto`` uses it, never ``--precision fp32``. NNPACK splits its work
    between threads by tiles and output channels, never inside a sum, so the bits do not depend
    on the number of threads (checked in a one-thread and a two-thread process). Should NNPACK
    fail on an input, the conv runs it, and every later one (one line says so)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not is_winograd_candidate(conv):
            raise ValueError("WinogradConv takes a dense float32 3x3 convolution with stride 1, no dilation")
        self.conv = conv
        self.padding = [int(p) for p in conv.padding]
        self.failed = False
        self._nchw_weight: tuple[tuple[int, int], torch.Tensor] | None = None

    def nchw_weight(self) -> torch.Tensor:
        """The conv's weight in NCHW, NNPACK's layout: the prepared net keeps its weights
        channels-last, so the NCHW copy is made once (again only when the weight's storage or
        version changes: a move, a load) instead of on every call."""
        weight = self.conv.weight
        key = (weight.data_ptr(), weight._version)
        if self._nchw_weight is None or self._nchw_weight[0] != key:
            self._nchw_weight = (key, weight.detach().contiguous())
        return self._nchw_weight[1]

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def takes_nchw(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device: str = "cpu") -> bool:
        """Whether NNPACK runs an input of ``shape`` (``(N, C, F, T)``; float32 on the CPU, no
        autograd, at most :data:`WINOGRAD_MAX_INPUT_ELEMENTS` per sample, NNPACK has not failed
        here; not under ``torch.compile``, which has no shape function for NNPACK's op and runs
        the conv), so that an NCHW input goes to it without a copy
        (:func:`uvrsep.layers.cat_channels` then writes the decoders' inputs in NCHW)."""
        per_sample = shape[1] * shape[2] * shape[3]
        return (
            not self.failed and device == "cpu" and dtype == torch.float32 and not torch.is_grad_enabled()
            and not is_compiling() and per_sample <= WINOGRAD_MAX_INPUT_ELEMENTS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.takes_nchw(tuple(x.shape), x.dtype, x.device.type):
            return self.conv(x)
        try:
            out = torch._nnpack_spatial_convolution(
                x.contiguous(), self.nchw_weight(), self.conv.bias, self.padding, [1, 1]
            )
        except RuntimeError as exc:
            self.failed = True
            notice(f"NNPACK failed on a {tuple(x.shape)} input ({str(exc).strip()[:120]}); this convolution runs without it")
            return self.conv(x)
        return out.contiguous(memory_format=torch.channels_last)


def is_winograd_candidate(conv: nn.Module) -> bool:
    """A dense float32 3×3 ``Conv2d``, stride 1, no dilation, zero padding of at most 1 (what
    NNPACK's Winograd convolution computes)."""
    return (
        isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
        and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple) and all(p <= 1 for p in conv.padding)
        and conv.weight.dtype == torch.float32
    )


def winograd_convs(net: nn.Module, min_channels: int = WINOGRAD_MIN_CHANNELS) -> int:
    """Replace every :func:`is_winograd_candidate` conv of ``net`` whose input and output both
    have at least ``min_channels`` channels by a :class:`WinogradConv` (in place; nothing when
    :func:`nnpack_available` is False). Returns the number replaced."""
    if not nnpack_available():
        return 0
    targets = [
        name for name, module in net.named_modules()
        if is_winograd_candidate(module) and min(module.in_channels, module.out_channels) >= min_channels
    ]
    for name in targets:
        _replace(net, name, WinogradConv(net.get_submodule(name)))
    return len(targets)


class SplitInputConv(nn.Module):
    """A float32 conv that reads the channel concatenation of several maps, run as one conv per
    map, summed: ``conv(cat[x, skip]) = conv_x(x) + conv_skip(skip)`` (the bias added once), so
    the concatenated copy is never made (:func:`uvrsep.layers.conv_parts` hands it the parts).
    The weights of each part are cut from the conv's once per channel split and kept
    channels-last. ``forward(x)`` on a concatenated input is the conv itself.

    The sum over the input channels is done in two pieces, so the rounding differs from the
    conv's (the 123812 net's mask 120 dB from the unsplit one): only ``--precision auto``'s
    float32 uses it. Measured on a 2-core AMD EPYC (Zen 3, AVX2 only, 2026-12-08), one 512-frame
    window of the 123812 net with Winograd convs: 6.93 s with the concatenations, 6.58 s split
    (the seven decoders whose conv is direct; oneDNN's fused in-place sum post-op gave 6.51 s)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            raise ValueError("SplitInputConv takes a dense (groups=1) Conv2d")
        self.conv = conv
        self._weights: dict[tuple[int, ...], list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def part_weights(self, channels: tuple[int, ...]) -> list[torch.Tensor]:
        """The conv's weights cut along the input channels into ``channels`` (cached)."""
        weights = self._weights.get(channels)
        if weights is None:
            if sum(channels) != self.conv.in_channels or min(channels) < 1:
                raise ValueError(f"parts of {channels} channels do not make the conv's {self.conv.in_channels}")
            pieces = self.conv.weight.detach().split(list(channels), dim=1)
            weights = self._weights[channels] = [w.contiguous(memory_format=torch.channels_last) for w in pieces]
        return weights

    def forward_parts(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """``conv(torch.cat(parts, dim=1))`` as a sum of one conv per part."""
        conv = self.conv
        weights = self.part_weights(tuple(p.shape[1] for p in parts))
        args = (conv.stride, conv.padding, conv.dilation)
        out = nn.functional.conv2d(parts[0], weights[0], conv.bias, *args)
        for part, weight in zip(parts[1:], weights[1:]):
            out = out.add_(nn.functional.conv2d(part, weight, None, *args))
        return out


def split_decoder_convs(net: nn.Module) -> int:
    """Replace the plain float32 conv of every decoder of ``net`` (:class:`~uvrsep.layers.Decoder`,
    :class:`~uvrsep.layers.DecoderV2`) by a :class:`SplitInputConv` (in place; a
    :class:`WinogradConv` is left as it is: NNPACK reads the concatenation in NCHW). Returns the
    number replaced."""
    replaced = 0
    for module in list(net.modules()):
        if not isinstance(module, (Decoder, DecoderV2)):
            continue
        block = module.conv if isinstance(module, Decoder) else module.conv1
        conv = block.conv[0]
        if type(conv) is nn.Conv2d and conv.weight.dtype == torch.float32 and conv.groups == 1:
            block.conv[0] = SplitInputConv(conv)
            replaced += 1
    return replaced


def prepare_net(
    net: nn.Module,
    device: torch.device,
    dtype: torch.dtype,
    fold: bool = True,
    split_first: bool | None = None,
    winograd: bool = False,
) -> nn.Module:
    """Fold BatchNorm (when ``fold``), activate in place, move to ``device``/``dtype``, use
    channels-last on CPU/CUDA. For inference only (the net is put in eval mode).

    A net moved to bfloat16 keeps its mask head (``out``, a 1×1 conv to 2 channels, and the
    sigmoid after it: :meth:`uvrsep.nets.VRNet.head`) in float32: it costs nothing and keeps
    the mask's rounding out of the stems, and runs each U-Net's first convolution with its
    weights in two bfloat16 parts (:data:`SPLIT_FIRST_CONVS`, or ``split_first`` when given).
    On the CPU its float32 1×1 convs become matrix products (:class:`PointwiseConv`: the same
    bits on any number of threads), and with ``winograd`` (``--precision auto`` on a CPU without
    native bfloat16; not the exact arithmetic) its wide float32 3×3 convs run by NNPACK's
    Winograd algorithm (:func:`winograd_convs`) and its other decoder convs take their inputs
    apart instead of concatenated (:func:`split_decoder_convs`).
    """
    net.eval()
    if fold:
        fold_batchnorm(net)
    activate_in_place(net)
    split = SPLIT_FIRST_CONVS if split_first is None else split_first
    if dtype == torch.bfloat16 and split:
        for name in first_convs(net):  # split from the float32 weights, before the net is rounded
            _replace(net, name, SplitWeightConv(net.get_submodule(name)))
    net.to(device, dtype)
    head = getattr(net, "out", None)
    if dtype == torch.bfloat16 and isinstance(head, nn.Module):
        head.to(torch.float32)
    if device.type == "cpu":
        pointwise_as_linear(net)
        if winograd and dtype == torch.float32:
            winograd_convs(net)
            split_decoder_convs(net)
    if device.type in ("cpu", "cuda"):
        net.to(memory_format=torch.channels_last)
    return net
