"""Models by name: the registry of official VR models, the cache, checked downloads, and the
identification of any ``.pth`` (UVR's hash → params and primary stem; state dict → architecture).

The registry is a data file (``registry.json``); UVR's hash table is ``model_data.json``. Files
are cached in ``$UVRSEP_HOME/models`` (default: the platform's user cache folder). A download
goes to a hidden temporary file, is verified (size and sha256 where known, else UVR's hash and a
strict load), and only then renamed into place.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_state_dict_file
from .errors import ModelError
from .nets import build_net, detect_architecture
from .params import ModelParams, list_params, load_params

#: UVR identifies a model by the md5 of its last 10,000 KiB (or of the whole file if smaller).
UVR_HASH_TAIL_BYTES = 10_000 * 1024
#: The primary stem of a model whose origin is unknown (the reference's behaviour).
DEFAULT_PRIMARY_STEM = "Instrumental"
DOWNLOAD_BLOCK = 1 << 20
DOWNLOAD_TIMEOUT = 60
OFFLINE_VALUES = ("1", "true", "yes", "on")
PART_SUFFIX = ".part"


@dataclass(frozen=True)
class ModelEntry:
    """One registry model. ``params``/``primary_stem`` may be None for UVR files: they are then
    read from the file's UVR hash once it is downloaded."""

    name: str
    file: str
    url: str
    bytes: int | None
    sha256: str | None
    arch: str
    params: str | None
    primary_stem: str | None
    description: str
    source: str
    nout: int | None = None
    nout_lstm: int | None = None
    recommended: bool = False
    unverified: bool = False


@dataclass
class ResolvedModel:
    """A model ready for :class:`uvrsep.api.Separator`."""

    name: str
    path: Path | None
    state_dict: dict[str, torch.Tensor]
    params: ModelParams
    primary_stem: str
    arch: str
    uvr_hash: str | None
    source: str


# -- registry ------------------------------------------------------------------------------------


def _package_json(name: str) -> Any:
    return json.loads(resources.files("uvrsep").joinpath(name).read_text(encoding="utf-8"))


def list_models() -> list[ModelEntry]:
    """Every registry entry (``$UVRSEP_REGISTRY`` may name another registry file)."""
    custom = os.environ.get("UVRSEP_REGISTRY")
    data = json.loads(Path(custom).read_text(encoding="utf-8")) if custom else _package_json("registry.json")
    names = {f.name for f in fields(ModelEntry)}
    return [ModelEntry(**{k: v for k, v in item.items() if k in names}) for item in data["models"]]


def get_entry(name: str) -> ModelEntry | None:
    """The entry named ``name`` (case-insensitive, with or without ``.pth``), or None."""
    key = name.lower().removesuffix(".pth")
    for entry in list_models():
        if entry.name.lower() == key:
            return entry
    return None


@lru_cache(maxsize=1)
def _model_data() -> dict[str, dict[str, Any]]:
    return _package_json("model_data.json")


def lookup_hash(uvr_hash: str) -> dict[str, Any] | None:
    """UVR's record for a model hash (params, primary stem, nout), or None."""
    return _model_data().get(uvr_hash)


def uvr_hash(path: str | os.PathLike[str]) -> str:
    """md5 of the last 10,000 KiB of the file (of the whole file when it is smaller)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - UVR_HASH_TAIL_BYTES))
        for block in iter(lambda: handle.read(DOWNLOAD_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(DOWNLOAD_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


# -- cache ---------------------------------------------------------------------------------------


def home_dir() -> Path:
    """``$UVRSEP_HOME``, else the platform's user cache folder + ``uvrsep``."""
    if os.environ.get("UVRSEP_HOME"):
        return Path(os.environ["UVRSEP_HOME"]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "uvrsep"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "uvrsep"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uvrsep"


def models_dir() -> Path:
    return home_dir() / "models"


def cached_path(entry: ModelEntry) -> Path:
    return models_dir() / entry.file


def is_cached(entry: ModelEntry) -> bool:
    path = cached_path(entry)
    return path.is_file() and (entry.bytes is None or path.stat().st_size == entry.bytes)


def is_offline(offline: bool | None = None) -> bool:
    """An explicit flag, else ``UVRSEP_OFFLINE``."""
    if offline:
        return True
    return os.environ.get("UVRSEP_OFFLINE", "").strip().lower() in OFFLINE_VALUES


# -- download ------------------------------------------------------------------------------------


def _verify(entry: ModelEntry, path: Path) -> None:
    """Raise ModelError unless the downloaded file is the expected one."""
    size = path.stat().st_size
    if entry.bytes is not None and size != entry.bytes:
        raise ModelError(f"download {entry.name}: got {size} bytes, expected {entry.bytes} (interrupted?); try again")
    if entry.sha256 is not None:
        if sha256_file(path) != entry.sha256:
            raise ModelError(f"download {entry.name}: checksum mismatch (corrupted or altered file); try again")
        return
    if lookup_hash(uvr_hash(path)) is None:
        raise ModelError(f"download {entry.name}: the file is not a known UVR model (hash mismatch); try again")
    net_check = load_state_dict_file(path)
    detect_architecture(net_check)


def download(
    entry: ModelEntry, *, force: bool = False, progress: bool = True, offline: bool | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """The cached file of ``entry``, downloading and verifying it first when needed.

    Raises:
        ModelError: offline and not cached, HTTP/network error, short or corrupted transfer.
    """
    target = cached_path(entry)
    if not force and is_cached(entry):
        return target
    if is_offline(offline):
        raise ModelError(
            f"model {entry.name} is not cached at {target} and --offline/UVRSEP_OFFLINE forbids downloading; "
            f"run `uvrsep models download {entry.name}` with network, or pass -m PATH"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}{PART_SUFFIX}")
    where = f"download {entry.name} from {entry.url}"
    try:
        request = urllib.request.Request(entry.url, headers={"User-Agent": "uvrsep"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or entry.bytes
            from tqdm import tqdm

            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.file, file=sys.stderr, disable=not progress) as bar:
                for block in iter(lambda: response.read(DOWNLOAD_BLOCK), b""):
                    out.write(block)
                    bar.update(len(block))
            if total and out.tell() != total:
                raise ModelError(f"{where}: connection closed after {out.tell()} of {total} bytes; try again")
        _verify(entry, tmp)
        os.replace(tmp, target)
    except urllib.error.HTTPError as exc:
        raise ModelError(f"{where}: HTTP {exc.code}; check your network or fetch the file yourself and pass -m PATH") from None
    except http.client.IncompleteRead as exc:
        raise ModelError(f"{where}: connection closed after {len(exc.partial)} bytes (incomplete); try again") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(f"{where}: {reason}; check your network or fetch the file yourself and pass -m PATH") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


# -- resolution ----------------------------------------------------------------------------------


def _unknown_model_error(spec: str) -> ModelError:
    names = [entry.name for entry in list_models()]
    close = difflib.get_close_matches(spec, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ModelError(f"model '{spec}': no such file and not a registry name{hint} (see `uvrsep models list`)")


def default_model(offline: bool | None = None) -> Path | None:
    """The default model file available now: the recommended registry model if cached, else
    the model bundled with the package (None while none is bundled)."""
    for entry in list_models():
        if entry.recommended and is_cached(entry):
            return cached_path(entry)
    bundled = resources.files("uvrsep").joinpath("bundled")
    for name in ("default.pth",):
        candidate = Path(str(bundled)) / name
        if candidate.is_file():
            return candidate
    return None


def resolve_model(
    model: str | os.PathLike[str] | None,
    params: str | os.PathLike[str] | None = None,
    primary_stem: str | None = None,
    *,
    offline: bool | None = None,
    progress: bool = True,
) -> ResolvedModel:
    """Find, load and identify a model: a path, a registry name, or None (the default model).

    Params and primary stem: the explicit arguments, else the registry entry, else UVR's hash
    table. The architecture always comes from the state dict.

    Raises:
        ModelError: unknown name, missing/unsafe/corrupt file, unknown params, bins mismatch.
    """
    entry: ModelEntry | None = None
    if model is None:
        path = default_model(offline)
        if path is None:
            recommended = next((e.name for e in list_models() if e.recommended), "2_HP-UVR")
            raise ModelError(
                "no model given and no default model is available offline; pass -m NAME "
                f"(e.g. -m {recommended}, see `uvrsep models list`) or -m PATH"
            )
    else:
        path = Path(model)
        if not path.exists():
            entry = get_entry(str(model))
            if entry is None:
                if path.suffix == ".pth" or os.sep in str(model):
                    raise ModelError(f"{path}: model file not found; check the path or pass a registry name")
                raise _unknown_model_error(str(model))
            path = download(entry, progress=progress, offline=offline)
        elif entry is None:
            entry = get_entry(path.name) if path.suffix == ".pth" else None
    state = load_state_dict_file(path)
    config = detect_architecture(state)
    digest = uvr_hash(path)
    record = lookup_hash(digest) or {}
    metadata = _sidecar_metadata(path)
    params_name = params or (entry.params if entry else None) or record.get("vr_model_param") or metadata.get("params")
    if params_name is None:
        raise ModelError(
            f"{path}: unknown model (UVR hash {digest}); pass --params NAME (one of: {', '.join(list_params())}) "
            "and --primary-stem if its primary stem is not Instrumental"
        )
    model_params = load_params(params_name)
    build_net(config).check_bins(model_params.bins)
    stem = (
        primary_stem or (entry.primary_stem if entry else None) or record.get("primary_stem")
        or metadata.get("primary_stem") or DEFAULT_PRIMARY_STEM
    )
    return ResolvedModel(
        name=entry.name if entry else path.stem, path=path, state_dict=state, params=model_params,
        primary_stem=stem, arch=config.arch_name, uvr_hash=digest,
        source=entry.source if entry else ("uvr" if record else "file"),
    )


def _sidecar_metadata(path: Path) -> dict[str, Any]:
    """``<model>.json`` beside a model (written by ``uvrsep train``): params, primary stem."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def model_info(name_or_path: str, offline: bool | None = None) -> dict[str, Any]:
    """What ``uvrsep models info`` prints: hash, arch, params, primary stem, size, dtype."""
    path = Path(name_or_path)
    entry = None
    if not path.exists():
        entry = get_entry(name_or_path)
        if entry is None:
            raise _unknown_model_error(name_or_path)
        if not is_cached(entry):
            raise ModelError(f"model {entry.name} is not downloaded; run `uvrsep models download {entry.name}`")
        path = cached_path(entry)
    state = load_state_dict_file(path)
    config = detect_architecture(state)
    digest = uvr_hash(path)
    record = lookup_hash(digest) or {}
    if entry is None and path.suffix == ".pth":
        entry = get_entry(path.name)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values() if torch.is_floating_point(t)})
    return {
        "name": entry.name if entry else path.stem,
        "path": str(path),
        "bytes": path.stat().st_size,
        "uvr_hash": digest,
        "sha256": sha256_file(path),
        "arch": config.arch_name,
        "params": (entry.params if entry else None) or record.get("vr_model_param"),
        "primary_stem": (entry.primary_stem if entry else None) or record.get("primary_stem"),
        "parameters": int(sum(t.numel() for k, t in state.items() if torch.is_floating_point(t) and "running_" not in k)),
        "dtype": ",".join(dtypes),
        "known": bool(record) or entry is not None,
    }
