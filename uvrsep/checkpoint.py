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
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import torch

from .errors import ModelError

StateDict = dict[str, torch.Tensor]

#: Largest total of tensor data a model file may unpack to. The largest VR architecture
#: (537238KB) is about 0.55 GB in fp32; a crafted file must not make the loader allocate
#: gigabytes before it is refused.
MAX_MODEL_BYTES = 1 << 30
#: Largest ratio of unpacked to stored size for one archive member (torch stores tensors
#: uncompressed; a member that inflates a thousand-fold is a decompression bomb).
MAX_INFLATE_RATIO = 100


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


def check_finite_weights(state: Mapping[str, torch.Tensor], where: object) -> None:
    """Refuse a state dict with a NaN/Inf in any floating tensor (such a net gives silent or
    garbage stems with no other sign of trouble).

    Raises:
        ModelError: naming ``where`` (the file, or "model").
    """
    for tensor in state.values():
        if isinstance(tensor, torch.Tensor) and (torch.is_floating_point(tensor) or tensor.is_complex()):
            if not bool(torch.isfinite(tensor).all()):
                raise ModelError(
                    f"{where}: model weights contain NaN/Inf; the file is damaged, re-download it"
                )


def check_archive_sizes(path: Path, limit: int | None = None) -> None:
    """Refuse a zip-format model file whose members would unpack to more than
    :data:`MAX_MODEL_BYTES`, or inflate more than :data:`MAX_INFLATE_RATIO`-fold, before any
    of it is loaded (the sizes come from the archive's directory, which the loader trusts too).
    ``limit`` replaces :data:`MAX_MODEL_BYTES` (a training checkpoint also holds optimizer state).

    Raises:
        ModelError: naming the file and what is wrong.
    """
    try:
        if not zipfile.is_zipfile(path):
            return  # the legacy pickle format: its storages are read from the file as stored
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load reports what is wrong with it
    limit = MAX_MODEL_BYTES if limit is None else limit
    total = sum(member.file_size for member in members)
    if total > limit:
        raise ModelError(
            f"{path}: would unpack to {total / 2**30:.1f} GiB, more than any VR model "
            f"(limit {limit / 2**30:.0f} GiB); refused, use the official file"
        )
    for member in members:
        if member.file_size > MAX_INFLATE_RATIO * max(member.compress_size, 1) and member.file_size > 1 << 20:
            raise ModelError(
                f"{path}: member {member.filename[:80]!r} inflates {member.file_size} bytes from "
                f"{member.compress_size}; refused (a model file stores its tensors uncompressed)"
            )


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
    check_archive_sizes(path)
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
    state = _unwrap(obj, path)
    check_finite_weights(state, path)
    return state


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
