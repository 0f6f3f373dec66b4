"""The network under ``torch.compile`` (inductor) on the CPU, where it pays, with a cache on disk.

Compiling fuses what is not a convolution (casts, ``cat``, upsampling, activations) into C++
kernels. Measured on a 2-core AMD EPYC with AVX512-BF16, no AMX (2026-12-06), 123812 net in
bfloat16, 4band_v2, window 512:

* inside a 30 s separation (windows of the real input): 1.51 s per window eager, 1.31 s
  compiled; the first window of a process that finds the compiled code in the cache 5.2 s
  (3.9 s of loading), the first compile of a net and shape 47–56 s;
* one window of random input (``python scripts/bench_net.py``): eager 2.50 s, compiled 1.91 s.

A float32 net gains more per window: with oneDNN held to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, as on
a CPU without native bfloat16, where ``auto`` is float32), one window of the 123812 net took 5.32 s
eager and 4.42 s compiled (first call 48.2 s; masks 120.6 dB from eager).

So compiling pays on this CPU only over many windows, and more on AMX (issue 17: 1.4–1.56 s
eager, 0.93 s compiled):

* the compiled code is cached under ``$UVRSEP_HOME/compile`` (inductor's cache folder), and a
  marker per net, shape and dtype records that it is there;
* ``compile="auto"`` compiles the net on the CPU when the windows are enough to pay for it:
  those the separator ran before (earlier inputs of a batch, earlier requests of a server) plus
  those the current input still takes (:data:`MIN_WINDOWS`: fewer when the marker exists than
  when it does not, fewer for float32, which gains more per window), except when the user asked for exact float32: ``--precision
  fp32`` remains the reference's exact arithmetic (compiled float32 differs from it by
  rounding, 120–136 dB), while ``--precision auto`` that resolves to float32 (a CPU without
  native bfloat16) may compile, as ``auto`` promises only 40 dB;
* ``"on"`` compiles whenever it can, ``"off"`` never;
* without a C++ compiler, or when compiling fails, the net runs eagerly and one line says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Literal

import torch

CompileMode = Literal["auto", "on", "off"]
COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")

#: Windows a run needs before ``auto`` compiles a bfloat16 net whose compiled code is not cached
#: yet (about 50 s of compiling against 0.2 s saved per window: 250 windows, with margin; a
#: 4band_v2 window keeps 5.9 s of audio, so about half an hour of audio).
MIN_WINDOWS_FIRST = 300
#: Windows a run needs before ``auto`` uses cached compiled code of a bfloat16 net (3.9 s of
#: loading against 0.2 s saved per window: 20 windows, with margin; about three minutes of audio).
MIN_WINDOWS_CACHED = 30
#: The same two for a float32 net (about 45 s of compiling, 4 s of loading, against 0.9 s saved
#: per window: 50 and 5 windows; with margin 100 (ten minutes of audio) and 10 (one minute)).
MIN_WINDOWS_FIRST_FP32 = 100
MIN_WINDOWS_CACHED_FP32 = 10
#: ``(first, cached)`` windows per dtype; a dtype not named here is never compiled by ``auto``.
MIN_WINDOWS: dict[torch.dtype, tuple[int, int]] = {
    torch.bfloat16: (MIN_WINDOWS_FIRST, MIN_WINDOWS_CACHED),
    torch.float32: (MIN_WINDOWS_FIRST_FP32, MIN_WINDOWS_CACHED_FP32),
}
#: Environment variable of inductor's cache folder (left alone when the user set it).
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
#: C++ compilers inductor can use on the CPU (``$CXX`` first).
CXX_NAMES = ("g++", "c++", "clang++")

Forward = Callable[[torch.Tensor], torch.Tensor]

#: inductor's cache folder as the user set it (then kept), else uvrsep's.
_USER_INDUCTOR_CACHE = os.environ.get(INDUCTOR_CACHE_ENV)


def cache_dir() -> Path:
    """``$UVRSEP_HOME/compile``: inductor's cache and uvrsep's markers."""
    from .pretrained import home_dir

    return home_dir() / "compile"


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would use, or None when there is none."""
    named = os.environ.get("CXX")
    if named:
        return shutil.which(named)
    return next((found for found in map(shutil.which, CXX_NAMES) if found), None)


def cache_key(net: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> str:
    """Identifies compiled code: torch version, the net's configuration, input shape, dtype."""
    config = getattr(net, "config", type(net).__name__)
    text = f"{torch.__version__}|{config!r}|{tuple(shape)}|{dtype}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _marker(key: str) -> Path:
    return cache_dir() / f"{key}.ok"


def is_cached(key: str) -> bool:
    return _marker(key).is_file()


def wants_compile(
    mode: str, device: torch.device, dtype: torch.dtype, windows: int, cached: bool, exact: bool = False
) -> bool:
    """Whether a run of ``windows`` network windows compiles the net (before compiler checks);
    ``exact``: the user asked for the reference's float32 arithmetic, which ``auto`` keeps eager."""
    if mode == "off" or device.type != "cpu":
        return False
    if mode == "on":
        return True
    if exact or dtype not in MIN_WINDOWS:
        return False
    first, cached_min = MIN_WINDOWS[dtype]
    return windows >= (cached_min if cached else first)


def notice(message: str) -> None:
    """One line on stderr (a library has no reporter of its own here)."""
    sys.stderr.write(f"uvrsep: {message}\n")


class CompiledForward:
    """``forward`` under ``torch.compile``, falling back to eager for good on the first failure.

    The first call compiles (or loads from the cache); a failure then (no working compiler,
    an operator inductor cannot lower) is reported in one line and the call is made eagerly.
    """

    def __init__(self, forward: Forward, key: str, report: Callable[[str], None] = notice) -> None:
        self.eager = forward
        self.key = key
        self.report = report
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if not _USER_INDUCTOR_CACHE:  # inductor reads it when it compiles
            os.environ[INDUCTOR_CACHE_ENV] = str(folder / "inductor")
        self._compiled: Forward | None = torch.compile(forward, dynamic=False)
        self.failed: str | None = None

    @property
    def active(self) -> bool:
        return self._compiled is not None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self._compiled is None:
            return self.eager(batch)
        try:
            out = self._compiled(batch)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
            self._compiled = None
            self.failed = _first_line(exc)
            self.report(f"torch.compile failed ({self.failed}); the network runs without it (--compile off skips trying)")
            return self.eager(batch)
        marker = _marker(self.key)
        if not marker.exists():
            try:
                marker.touch()
            except OSError:
                pass
        return out


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:200]
    return type(exc).__name__
