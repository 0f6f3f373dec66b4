"""Turning command-line INPUTS into files, and planning where each stem is written.

INPUTS are files, directories (their audio files; recursive on request) and glob patterns
(expanded here too, so quoted patterns such as ``"albums/**/*.flac"`` work on every shell).
"""

from __future__ import annotations

import glob
import hashlib
import os
import string
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


def _folder_files(folder: Path, recursive: bool, extensions: frozenset[str]) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if _is_audio(p, extensions))


def expand_inputs(args: list[str], recursive: bool, extensions: frozenset[str]) -> ExpandedInputs:
    """Expand files, folders and glob patterns into a de-duplicated list of audio files.

    A file named explicitly is taken whatever its extension (the decoder decides); files found
    in folders or by patterns must have an audio extension.
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
            add(path)
        elif GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(arg, recursive=True))
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


def check_template(template: str) -> None:
    """Reject a ``--filename`` template with unknown fields or that cannot name stems apart."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InputError(f"--filename '{template}': {exc}") from None
    unknown = fields - set(TEMPLATE_FIELDS)
    if unknown:
        raise InputError(
            f"--filename '{template}': unknown field(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
        )


def output_path(
    template: str, output_dir: Path, input_path: Path, stem: str, ext: str, model: str
) -> Path:
    """The file a stem of an input is written to."""
    fields = dict(track=input_path.stem, stem=stem, ext=ext, model=model, parent=input_path.resolve().parent.name)
    name = template.format(**fields)
    excess = len(name.encode()) - NAME_MAX_BYTES
    if excess > 0:  # keep the name legal: shorten the track name, keep it unique with a hash
        track = fields["track"]
        digest = hashlib.sha1(track.encode()).hexdigest()[:SHORT_HASH_CHARS]
        budget = max(1, len(track.encode()) - excess - SHORT_HASH_CHARS - 1)
        short = track.encode()[:budget].decode(errors="ignore")
        name = template.format(**{**fields, "track": f"{short}~{digest}"})
    return output_dir / name


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
