"""Turning command-line INPUTS into files, and planning where each stem is written.

INPUTS are files, directories (their audio files; recursive on request) and glob patterns
(expanded here too, so quoted patterns such as ``"albums/**/*.flac"`` work on every shell).
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import os
import re
import string
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UvrsepError

#: Characters that make an argument a glob pattern.
GLOB_CHARS = frozenset("*?[")
#: Fields of the ``--filename`` template.
TEMPLATE_FIELDS = ("track", "stem", "ext", "model", "parent")
DEFAULT_TEMPLATE = "{track}_{stem}.{ext}"
#: Longest output file name (bytes): most file systems accept 255, and the hidden temporary
#: name it is written under first (``.{name}.{token}.part``) needs 32 more.
NAME_MAX_BYTES = 255 - 32
#: Hex digits of the hash that keeps shortened names unique.
SHORT_HASH_CHARS = 8


class InputError(UvrsepError):
    """An INPUT argument is unusable (usage error: nothing processed)."""


@dataclass
class ExpandedInputs:
    """Result of :func:`expand_inputs`.

    Attributes:
        files: audio files to process, in argument order, each once.
        problems: ``(argument, message)`` for arguments that gave nothing (missing path, empty
            folder, pattern with no match); they are reported per input and make the run fail.
    """

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def _is_audio(path: Path, extensions: frozenset[str]) -> bool:
    return path.is_file() and path.suffix.lower() in extensions and not path.name.startswith(".")


def _walk_files(folder: Path, recursive: bool) -> list[Path]:
    """Files under ``folder`` (sorted), skipping hidden folders; links to folders are followed
    but no folder is entered twice, so symlink loops end."""
    if not recursive:
        return sorted(p for p in folder.iterdir()) if folder.is_dir() else []
    found: list[Path] = []
    visited: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        try:
            info = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            dirs[:] = []
            continue
        visited.add(key)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / name for name in files)
    return sorted(found)


def _folder_files(folder: Path, recursive: bool, extensions: frozenset[str]) -> list[Path]:
    try:
        return [p for p in _walk_files(folder, recursive) if _is_audio(p, extensions)]
    except OSError:
        return []


def _match_parts(pattern: list[str], parts: list[str]) -> bool:
    """Glob matching of path components, ``**`` standing for zero or more folders."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match_parts(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match_parts(pattern[1:], parts[1:])


def _recursive_glob(pattern: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)`` for files, without following a folder link twice
    (Python's own ``**`` loops through symlink cycles until the path is too long)."""
    parts = Path(pattern).parts
    first_magic = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    base = Path(*parts[:first_magic]) if first_magic else Path(".")
    rest = list(parts[first_magic:])
    if not base.is_dir():
        return []
    matches = []
    for path in _walk_files(base, recursive=True):
        relative = list(path.relative_to(base).parts)
        if _match_parts(rest, relative):
            matches.append(str(base / Path(*relative)) if first_magic else str(Path(*relative)))
    return matches


def input_problem(path: Path) -> str | None:
    """Why a named input cannot be read as a file (FIFOs, devices and sockets would block or
    never end), or None."""
    try:
        if path.is_file():
            return None
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if not os.path.lexists(path):
        return f"{path}: no such file"
    if not path.exists():
        return f"{path}: broken symbolic link"
    return f"{path}: not a regular file (pipe, device or socket); save it to a file first"


def expand_inputs(args: list[str], recursive: bool, extensions: frozenset[str]) -> ExpandedInputs:
    """Expand files, folders and glob patterns into a de-duplicated list of audio files.

    A file named explicitly is taken whatever its extension (the decoder decides); files found
    in folders or by patterns must have an audio extension. Named inputs that are not regular
    files (FIFOs, devices) are problems, not inputs: reading them could block forever.
    """
    result = ExpandedInputs()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            result.files.append(path)

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = _folder_files(path, recursive, extensions)
            if not found:
                hint = "" if recursive else " (use -r to search subfolders)"
                result.problems.append((arg, f"{arg}: folder has no audio files{hint}"))
            for item in found:
                add(item)
        elif path.exists() or os.path.lexists(path):
            problem = input_problem(path)
            if problem:
                result.problems.append((arg, problem))
            else:
                add(path)
        elif GLOB_CHARS & set(arg):
            if "**" in arg:
                matches = sorted(_recursive_glob(arg))
            else:
                matches = sorted(glob.glob(arg))
            found = [Path(m) for m in matches if _is_audio(Path(m), extensions)]
            for folder in (Path(m) for m in matches if Path(m).is_dir()):
                found.extend(_folder_files(folder, recursive, extensions))
            if not found:
                result.problems.append((arg, f"{arg}: pattern matched no audio files"))
            for item in found:
                add(item)
        else:
            result.problems.append((arg, f"{arg}: no such file or folder"))
    return result


#: Longest line of an ``--inputs-from`` file taken as a path (Linux's PATH_MAX).
MAX_LISTED_PATH = 4096
#: Most characters read from an ``--inputs-from`` file (10 million paths of 100 characters): a
#: device such as ``/dev/zero`` named by mistake ends with an error instead of never.
MAX_LISTING_CHARS = 1 << 30


def read_inputs_file(listing: Path) -> ExpandedInputs:
    """The inputs an ``--inputs-from`` file names, one path per line (``-``: standard input).

    Lines are paths as they are (no globbing, no folders, nothing looked at on disk: a corpus
    of 100k files is listed, not walked; each file is checked when its turn comes). Blank lines
    are ignored, repeated paths kept once; a line longer than :data:`MAX_LISTED_PATH` is a problem.
    """
    result = ExpandedInputs()
    seen: set[str] = set()
    try:
        handle = sys.stdin if str(listing) == "-" else open(listing, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InputError(f"--inputs-from {listing}: {exc.strerror or exc}") from exc
    with contextlib.nullcontext(handle) if handle is sys.stdin else handle:
        number = read = 0

        def next_piece(limit: int) -> str:
            nonlocal read
            piece = handle.readline(limit)  # bounded: a file without newlines is not one huge line
            read += len(piece)
            if read > MAX_LISTING_CHARS:
                raise InputError(f"--inputs-from {listing}: longer than {MAX_LISTING_CHARS} characters; split the list")
            return piece

        while True:
            line = next_piece(MAX_LISTED_PATH + 2)
            if not line:
                return result
            number += 1
            name = line.rstrip("\r\n")
            if len(name) > MAX_LISTED_PATH:
                while line and not line.endswith("\n"):  # the rest of the overlong line
                    line = next_piece(MAX_LISTED_PATH)
                result.problems.append((f"{listing}:{number}", f"{listing}, line {number}: longer than a path can be"))
            elif name.strip() and name not in seen:
                seen.add(name)
                result.files.append(Path(name))


#: Largest number allowed in a template field's format spec (``{track:>20}``): a width of
#: 10⁸ would allocate gigabytes.
FORMAT_SPEC_MAX = 255


def check_template(template: str, ext: str | None = None) -> None:
    """Reject a ``--filename`` template with unknown fields, huge format widths, a path that
    leaves the output folder (absolute, or with a ``..`` component), or, given the output
    format's extension ``ext``, names that do not end in it (the format comes from ``-f``)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"--filename '{template}': {exc}") from None
    fields = {name for _, name, _, _ in parsed if name is not None}
    unknown = fields - set(TEMPLATE_FIELDS)
    if unknown:
        raise InputError(
            f"--filename '{template}': unknown field(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
        )
    for _, name, spec, _ in parsed:
        if name is not None and spec and any(int(n) > FORMAT_SPEC_MAX for n in re.findall(r"\d+", spec)):
            raise InputError(f"--filename '{template}': format '{{{name}:{spec}}}' is wider than {FORMAT_SPEC_MAX}")
    try:
        sample = template.format(**{**{name: "x" for name in TEMPLATE_FIELDS}, "ext": ext or "x"})
    except (ValueError, IndexError, KeyError) as exc:
        raise InputError(f"--filename '{template}': {exc}") from None
    if _escapes(sample):
        raise InputError(
            f"--filename '{template}': the name must stay inside the output folder "
            "(no absolute path, no '..'); use -o to choose the folder"
        )
    if ext is not None:
        suffix = Path(sample).suffix
        if suffix.lower() != "." + ext:
            ends = f"end in '{suffix}'" if suffix else "have no extension"
            raise InputError(
                f"--filename '{template}': names would {ends} but the format is {ext}; "
                f"end the template in .{{ext}}, or choose the format with -f"
            )


def _escapes(relative: str) -> bool:
    path = Path(relative)
    return path.is_absolute() or relative.startswith(("/", "\\")) or any(part == ".." for part in path.parts)


#: Characters never kept in a value that reaches a file name.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def safe_component(value: str) -> str:
    """A template field's value made safe as (part of) one file-name component.

    Path separators and control characters become ``_``, bytes that are not UTF-8 (names are
    decoded with surrogate escapes) become ``_``, and a value of ``.``/``..``/empty becomes
    ``_``: whatever a file name, sidecar or registry says, it cannot climb out of the folder.
    """
    raw = os.fsencode(value) if isinstance(value, str) else bytes(value)
    text = raw.decode("utf-8", errors="replace").replace("\ufffd", "_")
    text = _UNSAFE.sub("_", unicodedata.normalize("NFC", text))
    return "_" if text.strip(".") == "" else text


def _shorten(component: str) -> str:
    """A file-name component cut to :data:`NAME_MAX_BYTES`, unique by a hash, extension kept."""
    data = component.encode()
    if len(data) <= NAME_MAX_BYTES:
        return component
    digest = hashlib.sha1(data).hexdigest()[:SHORT_HASH_CHARS]
    stem, dot, ext = component.rpartition(".")
    suffix = f".{ext}" if dot and len(ext.encode()) <= 16 else ""
    head = (stem if suffix else component).encode()
    budget = NAME_MAX_BYTES - len(suffix.encode()) - SHORT_HASH_CHARS - 1
    return f"{head[:budget].decode(errors='ignore')}~{digest}{suffix}"


def output_path(
    template: str, output_dir: Path, input_path: Path, stem: str, ext: str, model: str
) -> Path:
    """The file a stem of an input is written to: always inside ``output_dir``.

    Every field is passed through :func:`safe_component`; a name longer than the file system
    allows is shortened (the track first, then any component), kept unique with a hash.

    Raises:
        InputError: the template leaves the output folder (see :func:`check_template`).
    """
    fields = dict(
        track=input_path.stem, stem=stem, ext=ext, model=model, parent=input_path.resolve().parent.name
    )
    fields = {key: safe_component(value) for key, value in fields.items()}
    name = template.format(**fields)
    excess = len(name.encode()) - NAME_MAX_BYTES
    if excess > 0 and "/" not in name:  # keep the name legal: shorten the track name, keep it unique with a hash
        track = fields["track"]
        digest = hashlib.sha1(track.encode()).hexdigest()[:SHORT_HASH_CHARS]
        budget = max(1, len(track.encode()) - excess - SHORT_HASH_CHARS - 1)
        short = track.encode()[:budget].decode(errors="ignore")
        name = template.format(**{**fields, "track": f"{short}~{digest}"})
    if _escapes(name):
        raise InputError(f"--filename '{template}' would write {name!r} outside {output_dir}")
    parts = [_shorten(part) for part in Path(name).parts]
    return output_dir.joinpath(*parts)


def own_outputs(plan: dict[Path, dict[str, Path]]) -> set[Path]:
    """Inputs of ``plan`` that are outputs of another input of it (a rerun with ``-o`` equal to
    the input folder finds its earlier stems among the inputs): they are not inputs."""
    owner = {out.resolve(): path for path, outs in plan.items() for out in outs.values()}
    return {path for path in plan if owner.get(path.resolve(), path) != path}


def find_collisions(plan: dict[Path, dict[str, Path]]) -> list[str]:
    """Messages for outputs that two (input, stem) pairs would share, or that overwrite an input."""
    owners: dict[Path, tuple[Path, str]] = {}
    inputs = {path.resolve() for path in plan}
    messages = []
    for input_path, outputs in plan.items():
        for stem, out in outputs.items():
            key = out.resolve()
            if key in inputs:
                messages.append(f"{out}: output would overwrite an input file; choose another -o or --filename")
            if key in owners:
                other, other_stem = owners[key]
                messages.append(
                    f"{out}: both {other} ({other_stem}) and {input_path} ({stem}) would be written here; "
                    "use a --filename template with {parent} or {stem}, or separate runs"
                )
            else:
                owners[key] = (input_path, stem)
    return messages
