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

On a 2-core Xeon with AMX-BF16 (2026-12-07, same net and window; ``bench_net.py``) compiling saves
less: 0.96 s per window eager and compiled in one run, 0.84 s and 0.75 s in another (the first
compile 41–51 s); through ``bench.py`` 5.54 s eager and 5.34 s with cached compiled code for 30 s
of audio (issue 17 had measured 1.4–1.56 s eager and 0.93 s compiled there, before the eager net's
layout was fixed).

So compiling pays only over many windows:

* the compiled code is cached under ``$UVRSEP_HOME/compile`` (inductor's cache folder), and a
  marker per net, shape and dtype records that it is there;
* ``compile="auto"`` compiles the net on the CPU when the eager network time it would save
  is enough to pay for it: the windows the separator ran before (earlier inputs of a batch,
  earlier requests of a server) plus those the current input still takes, times the seconds
  an eager window of this net took in this process (the fastest so far; the first window always
  runs eagerly, to be timed), against :data:`MIN_EAGER_SECONDS` (less when the marker exists
  than when it does not). So the 123812 net compiles after a few minutes of audio, and a small
  net, whose windows take a tenth of a second, stays eager: it never earns back the loading.
  Except when the user asked for exact float32: ``--precision fp32`` remains the reference's
  exact arithmetic (compiled float32 differs from it by rounding, 120–136 dB), while
  ``--precision auto`` that resolves to float32 (a CPU without native bfloat16) may compile,
  as ``auto`` promises only 40 dB;
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

#: Seconds of eager network time a run must be expected to take before ``auto`` compiles a
#: bfloat16 net whose compiled code is not cached yet: compiling takes about 50 s and saves 13 %
#: of the network's time (1.51 -> 1.31 s per window of the 123812 net on AVX512-BF16), so it pays
#: from about 380 s; with margin 450 s (300 windows of that net, half an hour of audio).
MIN_EAGER_SECONDS_FIRST = 450.0
#: The same once the compiled code is cached (3.9 s of loading: 30 s; with margin 45 s, 30
#: windows of the 123812 net, three minutes of audio).
MIN_EAGER_SECONDS_CACHED = 45.0
#: The same two for a float32 net, which gains more (17 %: 45.9 -> 38.0 s for 30 s of audio
#: through the 123812 net on an AVX2-only CPU) but compiles longer there (84 s: 500 s, with
#: margin 600 s, about 90 windows of that net) and loads its cached code in up to 13 s (the
#: width-4 test net's one-minute run took 17 s eager, 30 s with cached code: 76 s, with margin
#: 80 s, a dozen windows of the 123812 net; a small net, whose windows take a tenth of a second,
#: never gets there, as compiling never pays it back).
#: Measured against the direct-conv eager net; since 2026-12-08 ``auto``'s eager float32 runs its
#: wide convs through NNPACK's Winograd algorithm (:class:`uvrsep.fast.WinogradConv`, 1.10x per
#: window on that CPU) while the compiled net runs them direct, so compiling saves less there
#: (about 8 % by those figures; not yet measured side by side, so the bounds are unchanged).
MIN_EAGER_SECONDS_FIRST_FP32 = 600.0
MIN_EAGER_SECONDS_CACHED_FP32 = 80.0
#: ``(first, cached)`` eager seconds per dtype; a dtype not named here is never compiled by ``auto``.
MIN_EAGER_SECONDS: dict[torch.dtype, tuple[float, float]] = {
    torch.bfloat16: (MIN_EAGER_SECONDS_FIRST, MIN_EAGER_SECONDS_CACHED),
    torch.float32: (MIN_EAGER_SECONDS_FIRST_FP32, MIN_EAGER_SECONDS_CACHED_FP32),
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
    mode: str, device: torch.device, dtype: torch.dtype, eager_seconds: float, cached: bool, exact: bool = False
) -> bool:
    """Whether a run expected to take ``eager_seconds`` of eager network time (measured windows
    times the windows of the run) compiles the net (before compiler checks); ``exact``: the user
    asked for the reference's float32 arithmetic, which ``auto`` keeps eager."""
    if mode == "off" or device.type != "cpu":
        return False
    if mode == "on":
        return True
    if exact or dtype not in MIN_EAGER_SECONDS:
        return False
    first, cached_min = MIN_EAGER_SECONDS[dtype]
    return eager_seconds >= (cached_min if cached else first)


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
