"""Models by name: the registry of official VR models, the cache, checked downloads, and the
identification of any ``.pth`` (UVR's hash → params and primary stem; state dict → architecture).

The registry is a data file (``registry.json``; ``$UVRSEP_REGISTRY`` names another one); UVR's
hash table is ``model_data.json``. Files are cached in ``$UVRSEP_HOME/models`` (default: the
platform's user cache folder). A download goes to a hidden ``.<file>.<random>.part`` file beside
its destination, is verified (size and sha256 where known, else UVR's hash, else a safe load whose
architecture must match the registry's), and only then renamed into place: an interrupted or
corrupted download never leaves a file that looks valid.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .checkpoint import load_state_dict_file
from .errors import ModelError
from .nets import NetConfig, build_net, config_from_name, detect_architecture
from .params import ModelParams, list_params, load_params

#: UVR identifies a model by the md5 of its last 10,000 KiB (or of the whole file if smaller).
UVR_HASH_TAIL_BYTES = 10_000 * 1024
#: The primary stem of a model whose origin is unknown (the reference's behaviour).
DEFAULT_PRIMARY_STEM = "Instrumental"
DOWNLOAD_BLOCK = 1 << 20
DOWNLOAD_TIMEOUT = 60
OFFLINE_VALUES = ("1", "true", "yes", "on")
PART_SUFFIX = ".part"
MODEL_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
#: What to tell a user whose download failed.
DOWNLOAD_ADVICE = "check your network or fetch the file yourself and pass -m PATH"


class UnknownModelError(ModelError):
    """A name that is neither an existing file nor a registry model (the CLI exits 2 on it)."""


@dataclass(frozen=True)
class ModelEntry:
    """One registry model.

    ``arch`` is the expected architecture (UVR's capacity name, or ``lstm_<nout>_<nout_lstm>``);
    the architecture actually used is always detected from the file. ``uvr_hash``, where the
    registry knows it, pins the exact file for entries without a sha256. ``unverified`` marks
    entries with an inferred fact (see the registry's ``sources``).
    """

    name: str
    file: str
    url: str
    bytes: int | None
    sha256: str | None
    arch: str
    params: str
    primary_stem: str
    description: str
    source: str
    nout: int | None = None
    nout_lstm: int | None = None
    recommended: bool = False
    unverified: bool = False
    uvr_hash: str | None = None


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

_REQUIRED_KEYS = ("name", "file", "url", "arch", "params", "primary_stem")


def _package_json(name: str) -> Any:
    return json.loads(resources.files("uvrsep").joinpath(name).read_text(encoding="utf-8"))


def _registry_data() -> tuple[str, Any]:
    custom = os.environ.get("UVRSEP_REGISTRY")
    if not custom:
        return "registry.json", _package_json("registry.json")
    try:
        return custom, json.loads(Path(custom).expanduser().read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"registry {custom} (UVRSEP_REGISTRY): cannot read it: {exc}; fix or unset UVRSEP_REGISTRY") from None


def list_models() -> list[ModelEntry]:
    """Every registry entry, in registry order (``$UVRSEP_REGISTRY`` may name another registry)."""
    where, data = _registry_data()
    names = {f.name for f in fields(ModelEntry)}
    entries = []
    for index, item in enumerate(data.get("models", []) if isinstance(data, dict) else []):
        missing = [key for key in _REQUIRED_KEYS if not isinstance(item, dict) or not item.get(key)]
        if missing:
            raise ModelError(f"registry {where}: model #{index + 1} lacks {', '.join(missing)}")
        values = {k: v for k, v in item.items() if k in names}
        values.setdefault("bytes", None)
        values.setdefault("sha256", None)
        values.setdefault("description", "")
        values.setdefault("source", "custom")
        entries.append(ModelEntry(**values))
    return entries


def _key(name: str) -> str:
    name = name.strip().lower()
    return name[: -len(".pth")] if name.endswith(".pth") else name


def get_entry(name: str) -> ModelEntry | None:
    """The entry named ``name`` (case-insensitive, with or without ``.pth``), or None."""
    key = _key(name)
    for entry in list_models():
        if _key(entry.name) == key or _key(entry.file) == key:
            return entry
    return None


@lru_cache(maxsize=1)
def _model_data() -> dict[str, dict[str, Any]]:
    return _package_json("model_data.json")


def lookup_hash(uvr_hash: str) -> dict[str, Any] | None:
    """UVR's record for a model hash (``vr_model_param``, ``primary_stem``, maybe ``nout``), or None."""
    return _model_data().get(uvr_hash)


def uvr_hash(path: str | os.PathLike[str]) -> str:
    """UVR's model hash: md5 of the last 10,000 KiB of the file (of the whole file when smaller)."""
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
    """``$UVRSEP_HOME``, else the platform's user cache folder + ``uvrsep`` (``$XDG_CACHE_HOME`` or
    ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows)."""
    if os.environ.get("UVRSEP_HOME"):
        return Path(os.environ["UVRSEP_HOME"]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "uvrsep"
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return (Path(local) if local else Path.home() / "AppData" / "Local") / "uvrsep"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "uvrsep"


def models_dir() -> Path:
    return home_dir() / "models"


def cached_path(entry: ModelEntry) -> Path:
    return models_dir() / entry.file


def is_cached(entry: ModelEntry) -> bool:
    """Whether the entry's file is in the cache (with the right size, when the size is known)."""
    path = cached_path(entry)
    return path.is_file() and (entry.bytes is None or path.stat().st_size == entry.bytes)


def is_offline(offline: bool | None = None) -> bool:
    """True when the flag is set or ``UVRSEP_OFFLINE`` is 1/true/yes/on (a False flag — the CLI's
    default — does not override the environment)."""
    if offline:
        return True
    return os.environ.get("UVRSEP_OFFLINE", "").strip().lower() in OFFLINE_VALUES


# -- download ------------------------------------------------------------------------------------


def arch_matches(expected: str, config: NetConfig) -> bool:
    """Whether a detected configuration is the architecture a registry entry names
    (``"123812"`` and its aliases, ``"lstm_48_128"`` for any bins, or an exact ``arch_name``)."""
    if expected == config.arch_name:
        return True
    if expected.startswith("lstm_"):
        return expected.count("_") == 2 and config.arch_name.startswith(expected + "_")
    try:
        return config_from_name(expected) == config
    except ModelError:
        return False


def _verify(entry: ModelEntry, path: Path) -> None:
    """Raise ModelError unless the downloaded file is the expected one."""
    where = f"download {entry.name} from {entry.url}"
    size = path.stat().st_size
    if entry.bytes is not None and size != entry.bytes:
        raise ModelError(f"{where}: got {size} bytes, expected {entry.bytes} (interrupted or altered); try again")
    if entry.sha256 is not None:
        actual = sha256_file(path)
        if actual != entry.sha256.lower():
            raise ModelError(
                f"{where}: checksum mismatch (sha256 {actual[:16]}…, expected {entry.sha256[:16]}…): "
                "the file is corrupted or not the published one; try again"
            )
        return
    digest = uvr_hash(path)
    if entry.uvr_hash is not None:
        if digest != entry.uvr_hash.lower():
            raise ModelError(
                f"{where}: checksum mismatch (UVR hash {digest}, expected {entry.uvr_hash}): "
                "the file is corrupted or not the published one; try again"
            )
        return
    if lookup_hash(digest) is not None:
        return
    # Neither checksum is known: accept only a file that loads safely as the expected architecture.
    try:
        config = detect_architecture(load_state_dict_file(path))
    except ModelError as exc:
        raise ModelError(f"{where}: the file is not a usable model ({str(exc).split(': ', 1)[-1]})") from None
    if not arch_matches(entry.arch, config):
        raise ModelError(
            f"{where}: unknown file (UVR hash {digest}) with a {config.arch_name} net, expected {entry.arch}; "
            "the server may have sent another file"
        )


def _fetch(entry: ModelEntry, out: BinaryIO, *, progress: bool, timeout: float) -> None:
    """Stream ``entry.url`` into ``out``; raise ModelError on any HTTP or network failure."""
    where = f"download {entry.name} from {entry.url}"
    request = urllib.request.Request(entry.url, headers={"User-Agent": "uvrsep"})
    written = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and entry.bytes is not None and total != entry.bytes:
                raise ModelError(f"{where}: the server offers {total} bytes, expected {entry.bytes}; {DOWNLOAD_ADVICE}")
            from tqdm import tqdm

            with tqdm(
                total=total or entry.bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.file,
                file=sys.stderr, disable=not progress, leave=False,
            ) as bar:
                for block in iter(lambda: response.read(DOWNLOAD_BLOCK), b""):
                    out.write(block)
                    written += len(block)
                    bar.update(len(block))
            if total is not None and written != total:
                raise ModelError(f"{where}: connection closed after {written} of {total} bytes; try again")
    except urllib.error.HTTPError as exc:
        raise ModelError(f"{where}: HTTP {exc.code} {exc.reason}; {DOWNLOAD_ADVICE}") from None
    except http.client.IncompleteRead as exc:
        got = written + len(exc.partial)
        raise ModelError(f"{where}: connection closed after {got} bytes (incomplete transfer); try again") from None
    except (socket.timeout, TimeoutError):
        raise ModelError(f"{where}: no data for {timeout:g} s (timed out); {DOWNLOAD_ADVICE}") from None
    except urllib.error.URLError as exc:
        raise ModelError(f"{where}: {exc.reason}; {DOWNLOAD_ADVICE}") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise ModelError(f"{where}: {type(exc).__name__}: {exc}; {DOWNLOAD_ADVICE}") from None
    except OSError as exc:  # writing the temporary file (disk full, permissions)
        raise ModelError(f"{where}: {exc.strerror or exc}; free some space in {models_dir()} or set UVRSEP_HOME") from None


def download(
    entry: ModelEntry, *, force: bool = False, progress: bool = True, offline: bool | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """The cached file of ``entry``, downloading and verifying it first when needed.

    Already cached (and not ``force``): returned with no network request. Otherwise the file is
    streamed to ``.<file>.<random>.part`` in the models folder, verified, then renamed into
    place; on any failure — KeyboardInterrupt included, which propagates — the temporary file is
    removed and a previously cached file is left as it was.

    Raises:
        ModelError: offline and not cached, HTTP/network error, short or corrupted transfer.
    """
    target = cached_path(entry)
    if not force and is_cached(entry):
        return target
    if is_offline(offline):
        raise ModelError(
            f"model {entry.name} is not cached at {target} and --offline/UVRSEP_OFFLINE forbids downloading; "
            f"download it with `uvrsep models download {entry.name}` on a machine with network, or pass -m PATH"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=PART_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise ModelError(f"download {entry.name}: cannot write in {target.parent} ({exc.strerror or exc}); set UVRSEP_HOME") from None
    tmp = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            _fetch(entry, out, progress=progress, timeout=timeout)
        _verify(entry, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# -- resolution ----------------------------------------------------------------------------------


def _unknown_model_error(spec: str) -> UnknownModelError:
    names = [entry.name for entry in list_models()]
    by_lower = {name.lower(): name for name in names}
    close = difflib.get_close_matches(_key(spec), list(by_lower), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
    return UnknownModelError(
        f"model '{spec}': no such file and not a registry name{hint} (see `uvrsep models list`)"
    )


#: The model shipped inside the package (trained by ``scripts/train_default.sh``), its sidecar
#: ``default.json`` beside it (params, primary stem, training facts).
BUNDLED_FOLDER = "bundled"
BUNDLED_FILE = "default.pth"
#: Name the bundled model goes by in messages, manifests and output names.
BUNDLED_NAME = "bundled"


def bundled_model_path() -> Path | None:
    """The model file shipped inside the package, or None when this install has none."""
    path = Path(str(resources.files("uvrsep").joinpath(BUNDLED_FOLDER))) / BUNDLED_FILE
    return path if path.is_file() else None


def recommended_entry() -> ModelEntry | None:
    """The registry's recommended official model."""
    return next((entry for entry in list_models() if entry.recommended), None)


def default_model_path(offline: bool | None = None) -> Path | None:
    """The default model file available without downloading: the recommended registry model if
    cached, else the model bundled with the package (None when neither exists)."""
    entry = recommended_entry()
    if entry is not None and is_cached(entry):
        return cached_path(entry)
    return bundled_model_path()


def better_model_hint() -> str:
    """One line telling a user of the bundled model how to get the recommended one."""
    entry = recommended_entry()
    name = entry.name if entry else "NAME"
    return (
        f"using the small bundled model; for much better separation run "
        f"`uvrsep models download {name}` once (it then becomes the default)"
    )


#: Former name of :func:`default_model_path`.
default_model = default_model_path


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or (os.altsep is not None and os.altsep in spec) or spec.lower().endswith(MODEL_SUFFIXES)


def _entry_for_file(path: Path, config: NetConfig) -> ModelEntry | None:
    """The registry entry a local file is a copy of: same file name and a matching architecture."""
    entry = get_entry(path.name) if path.suffix.lower() == ".pth" else None
    return entry if entry is not None and arch_matches(entry.arch, config) else None


def _check_bins(config: NetConfig, model_params: ModelParams, path: Path) -> None:
    with torch.device("meta"):  # the check needs the net's configuration, not its memory
        net = build_net(config)
    try:
        net.check_bins(model_params.bins)
    except ModelError as exc:
        raise ModelError(f"{path}: params {model_params.name} do not fit this model: {exc}") from None


def _locate(model: str | os.PathLike[str], hint: str = "") -> tuple[Path, ModelEntry | None]:
    """``(path, None)`` for an existing file or folder, else ``(path, entry)`` for a registry name.

    Raises:
        ModelError: a missing path (``hint`` is appended to the message).
        UnknownModelError: neither a file nor a registry name.
    """
    spec = os.fspath(model)
    path = Path(spec).expanduser()
    if path.exists():
        return path, None
    entry = get_entry(spec)
    if entry is None:
        if _looks_like_path(spec):
            raise ModelError(f"{path}: model file not found; check the path, or pass a registry name{hint}")
        raise _unknown_model_error(spec)
    return path, entry


def resolve_model(
    model: str | os.PathLike[str] | None,
    params: str | os.PathLike[str] | None = None,
    primary_stem: str | None = None,
    *,
    offline: bool | None = None,
    progress: bool = True,
) -> ResolvedModel:
    """Find, load and identify a model: a path, a registry name, or None (the default model).

    The architecture always comes from the state dict. Params and primary stem: the explicit
    arguments, else UVR's hash table (the file's own identity), else the registry entry (a
    registry download, or a local file with a registry file name and the same architecture),
    else a ``<model>.json`` sidecar; an unknown primary stem defaults to Instrumental.

    Raises:
        ModelError: unknown name (:class:`UnknownModelError`), missing/unsafe/corrupt file,
            offline and not cached, unknown params, params that do not fit the net.
    """
    entry: ModelEntry | None = None
    downloaded = False
    if model is None:
        path = default_model_path(offline)
        if path is None:
            raise ModelError(
                "no model given and no default model is available offline yet; pass -m NAME "
                "(see `uvrsep models list`) or -m PATH"
            )
        entry = next((e for e in list_models() if e.recommended and cached_path(e) == path), None)
        downloaded = entry is not None
    else:
        path, entry = _locate(model, " (see `uvrsep models list`)")
        if path.is_dir():
            raise ModelError(f"{path}: is a directory, expected a .pth model file or a registry name")
        if entry is not None:
            path = download(entry, progress=progress, offline=offline)
            downloaded = True
    shipped = bundled_model_path()
    bundled = shipped is not None and path.resolve() == shipped.resolve()
    state = load_state_dict_file(path)
    config = detect_architecture(state)
    if not downloaded:
        entry = _entry_for_file(path, config)
    digest = uvr_hash(path)
    record = lookup_hash(digest) or {}
    metadata = _sidecar_metadata(path)
    params_name = (
        params or record.get("vr_model_param") or (entry.params if entry else None) or metadata.get("params")
    )
    if not params_name:
        raise ModelError(
            f"{path}: unknown model (UVR hash {digest}); pass --params NAME (one of: {', '.join(list_params())}) "
            "and --primary-stem if its primary stem is not Instrumental"
        )
    model_params = load_params(params_name)
    _check_bins(config, model_params, path)
    stem = (
        primary_stem or record.get("primary_stem") or (entry.primary_stem if entry else None)
        or metadata.get("primary_stem") or DEFAULT_PRIMARY_STEM
    )
    if bundled:
        name, source = BUNDLED_NAME, BUNDLED_NAME
    else:
        name = entry.name if entry else path.stem
        source = entry.source if entry else ("uvr" if record else "file")
    return ResolvedModel(
        name=name, path=path, state_dict=state, params=model_params,
        primary_stem=stem, arch=config.arch_name, uvr_hash=digest, source=source,
    )


#: Bounds on a ``<model>.json`` sidecar (a file from anywhere: it is read automatically).
SIDECAR_MAX_BYTES = 1 << 20
SIDECAR_MAX_FIELD = 200


def _sidecar_metadata(path: Path) -> dict[str, Any]:
    """``<model>.json`` beside a model (written by ``uvrsep train``): params, primary stem."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        if sidecar.stat().st_size > SIDECAR_MAX_BYTES:
            raise ModelError(f"{sidecar}: model sidecar larger than {SIDECAR_MAX_BYTES} bytes; remove or fix it")
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    for key in ("params", "primary_stem"):
        if key in data and data[key] is not None and not (
            isinstance(data[key], str) and 0 < len(data[key]) <= SIDECAR_MAX_FIELD
        ):
            raise ModelError(
                f"{sidecar}: '{key}' must be a non-empty string of at most {SIDECAR_MAX_FIELD} characters; "
                "fix or remove the sidecar"
            )
    return data


def _registry_info(entry: ModelEntry) -> dict[str, Any]:
    return {
        "name": entry.name, "path": None, "bytes": entry.bytes, "uvr_hash": entry.uvr_hash, "sha256": entry.sha256,
        "arch": entry.arch, "params": entry.params, "primary_stem": entry.primary_stem, "parameters": None,
        "dtype": None, "known": True, "cached": False, "source": entry.source, "description": entry.description,
    }


def model_info(name_or_path: str | os.PathLike[str], offline: bool | None = None) -> dict[str, Any]:
    """What ``uvrsep models info`` prints.

    For a file (or a cached registry model): name, path, bytes, uvr_hash, sha256, arch (detected),
    params, primary_stem, parameters (count, BatchNorm running statistics excluded), dtype of the
    stored weights, known (the file is identified: UVR hash in UVR's table, or registry checksum),
    cached, source, description. For a registry model that is not cached, the registry's data with
    the file-derived fields None: info never downloads (``offline`` is accepted for symmetry).

    Raises:
        UnknownModelError: neither a file nor a registry name.
        ModelError: an unreadable, unsafe or non-VR file.
    """
    del offline  # info never downloads
    path, entry = _locate(name_or_path)
    if entry is not None:
        if not is_cached(entry):
            return _registry_info(entry)
        path = cached_path(entry)
    state = load_state_dict_file(path)
    config = detect_architecture(state)
    digest = uvr_hash(path)
    sha = sha256_file(path)
    record = lookup_hash(digest)
    by_checksum = next(
        (e for e in list_models() if (e.sha256 and e.sha256.lower() == sha) or (e.uvr_hash and e.uvr_hash == digest)), None
    )
    entry = entry or by_checksum or _entry_for_file(path, config)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values() if torch.is_floating_point(t)})
    return {
        "name": entry.name if entry else path.stem,
        "path": str(path),
        "bytes": path.stat().st_size,
        "uvr_hash": digest,
        "sha256": sha,
        "arch": config.arch_name,
        "params": (record or {}).get("vr_model_param") or (entry.params if entry else None),
        "primary_stem": (record or {}).get("primary_stem") or (entry.primary_stem if entry else None),
        "parameters": int(sum(t.numel() for k, t in state.items() if torch.is_floating_point(t) and "running_" not in k)),
        "dtype": ",".join(dtypes),
        "known": record is not None or by_checksum is not None,
        "cached": entry is not None and is_cached(entry) and cached_path(entry).resolve() == path.resolve(),
        "source": entry.source if entry else ("uvr" if record else "file"),
        "description": entry.description if entry else None,
    }
