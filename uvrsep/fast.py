"""Inference-time rewrites of a loaded net that keep its function and make it faster.

* :func:`fold_batchnorm`: every ``Conv2d → BatchNorm2d`` pair becomes one ``Conv2d`` with a bias
  (eval-mode BatchNorm is an affine map per channel, so it folds into the conv's weights).
* :func:`cpu_has_native_bf16`: whether bfloat16 autocast pays on this CPU (AVX512-BF16 or AMX).
* :func:`prepare_net`: folding, channels-last memory format, device and dtype, in one call.
"""

from __future__ import annotations

import functools
import platform

import torch
from torch import nn

#: /proc/cpuinfo flags of CPUs with native bfloat16 matrix arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


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


def prepare_net(net: nn.Module, device: torch.device, dtype: torch.dtype, fold: bool = True) -> nn.Module:
    """Fold BatchNorm (when ``fold``), move to ``device``/``dtype``, use channels-last on CPU/CUDA."""
    net.eval()
    if fold:
        fold_batchnorm(net)
    net.to(device, dtype)
    if device.type in ("cpu", "cuda"):
        net.to(memory_format=torch.channels_last)
    return net
