"""Streaming pieces: chunked audio sources, a model-rate view of them, atomic streaming writers,
and the chunk plan that makes chunked separation equal whole-file separation.

Why chunking can be exact: the network sees the spectrogram in windows on a fixed grid of
``roi`` frames; a chunk that starts on that grid, carries a margin of whole windows on each side
(discarded afterwards), and is normalised by the whole file's peak magnitude gives its core
frames exactly the inputs they have in a whole-file run. Resampling, STFT and synthesis are
local, so the margins also absorb their edge effects.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Protocol

import numpy as np
import soundfile as sf

from .audio import (
    F32_BYTES,
    MAX_CHANNELS,
    AudioInfo,
    _check_readable,
    _ffprobe_available,
    _probe_stream,
    ffmpeg_available,
    ffmpeg_decode_command,
    ffmpeg_decode_error,
    raw_f32_args,
    check_sample_rate,
    decode_to_wav,
    declared_frames,
    _prepare_samples,
    _reason,
    _replace_nonfinite,
    _resolve_subtype,
    downmix_to_stereo,
    finish_output,
    output_format_from_path,
    prepare_output,
)
from .errors import AudioError

#: Input samples of resampler context read on each side of a model-rate block.
RESAMPLE_CONTEXT = 16384
#: Frames ffmpeg's pipe is read by (about 1.5 s at 44.1 kHz).
PIPE_BLOCK_FRAMES = 1 << 16
#: Bytes of ffmpeg's error output kept for a message.
MAX_TOOL_MESSAGE_BYTES = 4096


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none (macOS, Windows, musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc ``malloc_trim``).

    A streamed run frees tens of MB per chunk from several threads, and glibc keeps such blocks
    in per-thread arenas. Trimming after each chunk took a 60-minute run's peak RSS from 2.63 to
    2.51 GB (`scripts/bench_stream.py memory`; the rest of the fix was smaller chunks and
    synthesis intermediates). Elsewhere this does nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class AudioSource(Protocol):
    """Random access to a decoded input: ``read(start, stop)`` → ``(C ≤ 2, stop − start)``."""

    sample_rate: int
    frames: int
    channels: int

    def read(self, start: int, stop: int) -> np.ndarray: ...


@dataclass
class ArraySource:
    """An in-memory wave ``(C ≤ 2, N)`` as a source."""

    wave: np.ndarray
    sample_rate: int

    @property
    def frames(self) -> int:
        return int(self.wave.shape[1])

    @property
    def channels(self) -> int:
        return int(self.wave.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.wave[:, max(0, start) : max(0, stop)]


class NoDeclaredLength(Exception):
    """A file whose header gives no length (a FLAC an encoder wrote to a pipe)."""


class SoundFileSource:
    """A libsndfile-readable file read block by block (seek + read): memory stays flat.

    Non-finite samples become 0 and are counted once (``nonfinite``) as the file is read in
    order; files with more than two channels are downmixed per block (the downmix's peak
    limiting then acts per block).
    """

    def __init__(self, path: Path, name: Path | None = None) -> None:
        """Open ``path``; ``name`` is the file messages name (default ``path``).

        Raises:
            AudioError: the rate is out of range, or the header declares more frames than the
                file can hold.
            NoDeclaredLength: the header gives no length (:func:`open_source` then decodes the
                file with ffmpeg).
            soundfile.SoundFileError: libsndfile cannot read it.
        """
        self.path = path
        self.name = name if name is not None else path
        self._handle = sf.SoundFile(str(path))
        try:
            self.sample_rate = int(self._handle.samplerate)
            check_sample_rate(self.name, self.sample_rate)
            frames = declared_frames(self._handle, self.path, self.name)
        except AudioError:
            self._handle.close()
            raise
        if frames is None:  # libsndfile cannot seek in such a stream: ffmpeg decodes it instead
            self._handle.close()
            raise NoDeclaredLength(f"{self.name}: its header gives no length")
        self.frames = frames
        self.file_channels = int(self._handle.channels)
        self.channels = min(self.file_channels, MAX_CHANNELS)
        self.subtype = self._handle.subtype
        self.nonfinite = 0
        self._counted_until = 0
        # libsndfile's length of an MP3 without a length header is an estimate: a short read
        # of such a file is only an error when the file changed since it was opened
        self._estimated_length = self._handle.format == "MP3"
        self._opened_size = self._size()

    def _size(self) -> int | None:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return None

    def _ended_early(self, got_until: int) -> AudioError:
        return AudioError(
            f"{self.name}: file ended early ({got_until} of {self.frames} frames); "
            "it may still be copying — try again when it is complete"
        )

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as ``(channels, n)`` float32.

        Raises:
            AudioError: the file holds fewer frames than its header declared (it shrank, or is
                still being written) — padding would pass silence off as the real audio.
        """
        start, stop = max(0, start), min(self.frames, stop)
        if stop <= start:
            return np.zeros((self.channels, 0), np.float32)
        try:
            self._handle.seek(start)
            data = np.ascontiguousarray(self._handle.read(stop - start, dtype="float32", always_2d=True).T)
        except (sf.SoundFileError, RuntimeError) as exc:
            if self._size() != self._opened_size:
                raise self._ended_early(start) from None
            raise AudioError(f"{self.name}: cannot be decoded past frame {start} ({_reason(exc)})") from None
        if data.shape[1] < stop - start:
            if self._estimated_length and self._size() == self._opened_size:
                data = np.pad(data, ((0, 0), (0, stop - start - data.shape[1])))
            else:
                raise self._ended_early(start + data.shape[1])
        bad = ~np.isfinite(data)
        if bad.any():
            fresh = bad[:, max(0, self._counted_until - start) :]
            self.nonfinite += int(np.count_nonzero(fresh))
            data[bad] = 0.0
        self._counted_until = max(self._counted_until, stop)
        if data.shape[0] > MAX_CHANNELS:
            data = downmix_to_stereo(data)
        return data

    def close(self) -> None:
        self._handle.close()


class FfmpegSource:
    """A file libsndfile cannot read (m4a, mp4, mkv, opus, ...) decoded by ffmpeg through a pipe,
    block by block: neither the decoded wave nor a decoded copy on disk is ever held whole.

    ffprobe gives the first audio stream's rate and channels; a first decoding pass counts the
    frames (and the NaN/Inf samples, replaced by 0 on every pass). A read then decodes forward
    from where the last one stopped, keeping only what it returns (a chunk's read span), and a
    read that starts before that restarts ffmpeg from the file's start: the streamed pipeline
    reads each of its two passes in time order, so each pass decodes the file once. ffmpeg runs
    in its own session (a terminal's Ctrl-C reaches uvrsep, which stops it) and is killed by
    :meth:`close`; if uvrsep dies, ffmpeg ends on the closed pipe.
    """

    def __init__(self, path: Path) -> None:
        """Probe ``path`` and count its frames.

        Raises:
            AudioError: ffmpeg/ffprobe cannot decode it, it has no audio stream, or its rate is
                out of range.
        """
        probed = _probe_stream(path)
        if probed is None:
            raise AudioError(f"{path}: cannot decode (not an audio file?); convert it to WAV/FLAC")
        self.path = self.name = path
        self.sample_rate, self.file_channels, self.subtype = probed
        check_sample_rate(path, self.sample_rate)
        self.channels = min(self.file_channels, MAX_CHANNELS)
        self._stat = self._identity()
        self._process: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self._position = 0  # frames decoded so far in this pass
        self._kept = np.zeros((self.file_channels, 0), np.float32)  # decoded frames [_kept_start, _position)
        self._kept_start = 0
        self._nonfinite_seen = 0
        self._start()
        counted = 0
        try:
            while True:
                block = self._decode(PIPE_BLOCK_FRAMES)
                if block is None:
                    break
                counted += block.shape[1]
        except BaseException:
            self.close()
            raise
        self.frames = counted
        self.nonfinite = self._nonfinite_seen

    def _identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def _start(self) -> None:
        """(Re)start decoding from the file's first frame."""
        self._stop_process()
        if self._identity() != self._stat:
            raise AudioError(f"{self.name}: the file changed while it was read; try again when it is complete")
        self._errors = tempfile.TemporaryFile()
        cmd = ffmpeg_decode_command(self.path, raw_f32_args(self.sample_rate, self.file_channels))
        try:
            self._process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._errors, start_new_session=True
            )
        except OSError as exc:
            raise AudioError(f"{self.name}: cannot run ffmpeg ({_reason(exc)}); check your ffmpeg installation") from None
        self._position, self._kept_start = 0, 0
        self._kept = np.zeros((self.file_channels, 0), np.float32)
        self._nonfinite_seen = 0

    def _decode(self, frames: int) -> np.ndarray | None:
        """The next up to ``frames`` frames ``(file_channels, n)``, or None at the stream's end
        (where a failed ffmpeg is an AudioError)."""
        assert self._process is not None and self._process.stdout is not None
        frame_bytes = F32_BYTES * self.file_channels
        raw = self._process.stdout.read(frames * frame_bytes)
        if not raw:
            self._finish()
            return None
        usable = len(raw) - len(raw) % frame_bytes  # a torn last frame at the end is dropped
        block = np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, self.file_channels).T.astype(np.float32)
        self._nonfinite_seen += _replace_nonfinite(block)
        self._position += block.shape[1]
        return block

    def _finish(self) -> None:
        """The pipe ended: ffmpeg's exit status decides whether that was the stream's end."""
        assert self._process is not None and self._errors is not None
        code = self._process.wait()
        self._errors.seek(0)
        stderr = self._errors.read(MAX_TOOL_MESSAGE_BYTES)
        self._stop_process()
        if code != 0:
            raise ffmpeg_decode_error(self.path, stderr, self.name)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as ``(channels, n)`` float32.

        Raises:
            AudioError: ffmpeg fails, or the file changed since it was opened (fewer frames, or
                another size or time) — padding would pass silence off as the real audio.
        """
        start, stop = max(0, start), min(self.frames, stop)
        if stop <= start:
            return np.zeros((self.channels, 0), np.float32)
        if self._process is None or start < self._kept_start:
            self._start()
        drop = min(start, self._position) - self._kept_start  # kept frames not needed again this pass
        self._kept, self._kept_start = self._kept[:, drop:], self._kept_start + drop
        pieces = [self._kept]
        while self._position < stop:
            skipping = self._position < start  # frames wholly before the span are decoded and dropped
            block = self._decode(min(PIPE_BLOCK_FRAMES, start - self._position) if skipping else stop - self._position)
            if block is None:
                raise AudioError(
                    f"{self.name}: file ended early ({self._position} of {self.frames} frames); "
                    "it changed while it was read — try again when it is complete"
                )
            if skipping:
                self._kept_start = self._position
            else:
                pieces.append(block)
        if len(pieces) > 1:
            self._kept = np.concatenate(pieces, axis=1)
        data = np.ascontiguousarray(self._kept[:, start - self._kept_start : stop - self._kept_start])
        if data.shape[0] > MAX_CHANNELS:
            data = downmix_to_stereo(data)
        return data

    def _stop_process(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process.wait()
            self._process = None
        if self._errors is not None:
            self._errors.close()
            self._errors = None

    def close(self) -> None:
        """Stop ffmpeg (idempotent)."""
        self._stop_process()
        self._kept = np.zeros((self.file_channels, 0), np.float32)


def _open_decoded(path: Path) -> SoundFileSource | FfmpegSource:
    """What libsndfile cannot read: through ffmpeg's pipe (:class:`FfmpegSource`), or, where
    ffprobe is missing, decoded by ffmpeg into a float WAV in a private temporary folder
    (``$TMPDIR``; it needs that much free disk) and read from there block by block. The WAV is
    unlinked as soon as it is open (POSIX), so nothing is left behind however the run ends.

    Raises:
        AudioError: as :func:`uvrsep.audio.read_audio`.
    """
    if not ffmpeg_available():
        raise AudioError(f"{path}: cannot decode (not an audio file?); convert it to WAV/FLAC or install ffmpeg")
    if _ffprobe_available():
        return FfmpegSource(path)
    folder = Path(tempfile.mkdtemp(prefix="uvrsep-"))
    try:
        wav = folder / "decoded.wav"
        decode_to_wav(path, wav)
        try:
            return SoundFileSource(wav, name=path)
        except (sf.SoundFileError, RuntimeError, ValueError, TypeError):
            raise AudioError(f"{path}: ffmpeg output could not be read back; convert it to WAV/FLAC") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # where an open file cannot be removed, it stays in $TMPDIR


def open_source(path: str | os.PathLike[str]) -> tuple[AudioSource, AudioInfo]:
    """A block-readable source: libsndfile formats directly, others decoded by ffmpeg
    (:func:`_open_decoded`: through its pipe, or a temporary WAV where ffprobe is missing).

    Raises:
        AudioError: as :func:`uvrsep.audio.read_audio`.
    """
    path = Path(path)
    _check_readable(path)
    try:
        source = SoundFileSource(path)
    except (NoDeclaredLength, sf.SoundFileError, RuntimeError, ValueError, TypeError):
        source = _open_decoded(path)
    info = AudioInfo(path, source.sample_rate, source.file_channels, source.frames, source.subtype, 0)
    return source, info


class ModelRateSource:
    """``source`` seen at ``rate`` (the model's), resampled block by block with ``res_type``.

    A block ``[a, b)`` at the model rate is made from input samples starting on a multiple of
    ``in_rate / gcd``, so the block's samples fall on the whole-file resampler's grid, with
    :data:`RESAMPLE_CONTEXT` input samples of context on each side.
    """

    def __init__(self, source: AudioSource, rate: int, res_type: str) -> None:
        from .transforms import resample

        self._resample = resample
        self.source = source
        self.rate = rate
        self.res_type = res_type
        common = math.gcd(source.sample_rate, rate)
        self._in_unit = source.sample_rate // common
        self._out_unit = rate // common
        self.frames = math.ceil(source.frames * rate / source.sample_rate) if source.frames else 0

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.frames, stop)
        if self.source.sample_rate == self.rate:
            return self.source.read(start, stop)
        first_in = (start * self._in_unit // self._out_unit - RESAMPLE_CONTEXT) // self._in_unit * self._in_unit
        first_in = max(0, first_in)
        last_in = min(self.source.frames, -(-stop * self._in_unit // self._out_unit) + RESAMPLE_CONTEXT)
        block = self.source.read(first_in, last_in)
        out = self._resample(block, self.source.sample_rate, self.rate, self.res_type)
        offset = first_in // self._in_unit * self._out_unit
        piece = out[:, start - offset : stop - offset]
        if piece.shape[1] < stop - start:
            piece = np.pad(piece, ((0, 0), (0, stop - start - piece.shape[1])))
        return np.ascontiguousarray(piece, dtype=np.float32)


@dataclass(frozen=True)
class Chunk:
    """A chunk of a streamed run: core ``[start, stop)`` and the read span ``[read_start, read_stop)``
    (model-rate samples)."""

    start: int
    stop: int
    read_start: int
    read_stop: int


def plan_chunks(
    samples: int, unit: int, chunk_units: int, margin_units: int, from_end: bool = False, align: int = 1
) -> list[Chunk]:
    """Cut ``samples`` into cores of ``chunk_units·unit`` samples, each read with
    ``margin_units·unit`` samples more on both sides (clipped to the file), in time order.

    Cores are laid from the start (the last one shorter) or, with ``from_end``, from the end
    (the first one shorter): params that reverse the signal count their frame grid from the
    input's end, so each read span then ends ``k·unit`` samples before it, and its start is
    moved back to a multiple of ``align`` (the lower bands' sample grid, counted from a wave's
    first sample: :attr:`uvrsep.params.ModelParams.sample_grid`).
    """
    step, margin = unit * chunk_units, unit * margin_units
    chunks = []
    for offset in range(0, max(samples, 1), step):
        if not from_end:
            start, stop = offset, min(samples, offset + step)
            chunks.append(Chunk(start, stop, max(0, start - margin), min(samples, stop + margin)))
            continue
        start, stop = max(0, samples - offset - step), samples - offset
        read_start = max(0, start - margin)
        chunks.append(Chunk(start, stop, read_start - read_start % align, min(samples, stop + margin)))
    return chunks[::-1] if from_end else chunks


class RawStemFile:
    """An append-only file of float32 frames ``(n, C)``, written ``(C, m)`` block by block and
    read back memory-mapped (an ensemble member's stem, the decoded input of an ensemble, a
    part of a long file's stem under ``split --ray``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.channels = 0
        self.frames = 0
        self._handle = open(path, "wb")

    def write(self, block: np.ndarray) -> None:
        self.channels = self.channels or block.shape[0]
        self._handle.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
        self.frames += block.shape[1]

    def close(self) -> None:
        self._handle.close()

    def view(self) -> np.ndarray:
        """``(C, n)`` read-only view of what was written (memory-mapped)."""
        self.close()
        return raw_stem_view(self.path, max(self.channels, 1), self.frames)


def raw_stem_view(path: Path, channels: int, frames: int) -> np.ndarray:
    """``(channels, frames)`` read-only view of a :class:`RawStemFile` (memory-mapped)."""
    if not frames:
        return np.zeros((channels, 0), np.float32)
    return np.memmap(path, np.float32, "r", shape=(frames, channels)).T


class StreamWriter:
    """Writes an audio file block by block to a hidden ``.part`` file beside ``path`` and puts
    it in place only on :meth:`commit`; anything else (an exception, Ctrl-C) removes it.

    Use as a context manager; ``write`` returns the samples clipped in that block.
    """

    def __init__(
        self, path: str | os.PathLike[str], sample_rate: int, channels: int,
        subtype: str | None = None, overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.format = output_format_from_path(self.path)
        self.subtype = _resolve_subtype(self.path, self.format, subtype)
        self.overwrite = overwrite
        self.frames = 0
        self.clipped = 0
        self._tmp = prepare_output(self.path, overwrite)
        try:
            self._handle = sf.SoundFile(
                str(self._tmp), "w", samplerate=int(sample_rate), channels=channels,
                subtype=self.subtype, format=self.format,
            )
        except (OSError, sf.SoundFileError, RuntimeError, ValueError) as exc:
            self._discard()
            raise AudioError(f"{self.path}: cannot write ({_reason(exc)}); check the folder's permissions") from exc

    def write(self, block: np.ndarray) -> int:
        """Append ``(C, n)`` samples; returns how many were clipped."""
        samples, clipped = _prepare_samples(self.path, block, self.format, self.subtype)
        try:
            self._handle.write(samples)
        except (OSError, sf.SoundFileError, RuntimeError) as exc:
            raise AudioError(f"{self.path}: cannot write ({_reason(exc)}); check free space and permissions") from exc
        self.frames += samples.shape[0]
        self.clipped += clipped
        return clipped

    def commit(self) -> None:
        """Close, flush to disk and move into place."""
        try:
            self._handle.close()
            finish_output(self._tmp, self.path, self.overwrite)
        except AudioError:
            raise
        except (OSError, sf.SoundFileError, RuntimeError) as exc:
            raise AudioError(f"{self.path}: cannot write ({_reason(exc)}); check free space and permissions") from exc
        finally:
            self._discard()

    def _discard(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and not handle.closed:
            with contextlib.suppress(Exception):
                handle.close()
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def __enter__(self) -> "StreamWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self._discard()

