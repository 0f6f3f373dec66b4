"""Reading model files safely, and writing training files whole or not at all.

Model files come from the internet: they are opened with ``torch.load(weights_only=True)``, which
refuses any pickle that would run code. Missing, truncated and non-torch files become one-line
:class:`~uvrsep.errors.ModelError` messages. :func:`write_atomically` writes checkpoints, exported
models and cached spectrograms through a hidden temporary file renamed onto the target, so an
interrupted run never leaves a truncated file under the real name.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import torch

from .errors import ModelError

StateDict = dict[str, torch.Tensor]


def _unwrap(obj: object, path: Path) -> StateDict:
    """Accept a plain state dict, or one nested under a ``state_dict``/``model`` key."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj)
    raise ModelError(f"{path}: not a model state dict (expected a mapping of names to tensors)")


def load_state_dict_file(path: str | os.PathLike[str]) -> StateDict:
    """Load a ``.pth`` state dict without executing any code from it.

    Raises:
        ModelError: missing, unreadable, truncated, non-torch, or unsafe (code-running) file.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model file not found; check the path or pass a registry name")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected a .pth model file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty; download it again")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise ModelError(
                f"{path}: refused: the file needs to run code to load, which a model file never "
                "should (it may be malicious); use the official file"
            ) from None
        raise ModelError(f"{path}: not a readable PyTorch model file ({first[:200]})") from None
    except Exception as exc:  # truncated/corrupt archives raise many kinds (KeyError, struct.error, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path}: not a readable PyTorch model file, or truncated ({first[:200]}); "
            "download it again"
        ) from None
    return _unwrap(obj, path)


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(handle)`` on a hidden temporary file beside ``path``, then rename it onto
    ``path`` (atomic on one file system); the temporary file is removed if ``write`` fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
