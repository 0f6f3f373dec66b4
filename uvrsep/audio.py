"""Reading and writing audio files.

Reading goes through soundfile (libsndfile) first and falls back to ffmpeg for what libsndfile
cannot decode (AAC/M4A, video containers, MP3 with an old libsndfile, ...). Every wave this
module hands out or takes in is ``float32`` shaped ``(channels, frames)``; files with more than
two channels are downmixed to stereo (:func:`downmix_to_stereo`), and NaN/Inf samples become
silence (and are counted).

Writing is atomic: the samples go to a hidden ``.{name}.{random}.part`` file beside the target,
which is fsynced and then renamed onto it, so an interrupted run never leaves a truncated output
under the real name, and a rerun that skips existing outputs never skips a broken one. Integer
outputs are clipped at full scale (never wrapped around), and the number of clipped samples is
returned so the caller can warn.

Every problem a user can cause raises :class:`~uvrsep.errors.AudioError` with a one-line message
naming the file and what to do about it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

from .errors import AudioError

#: Extensions (lowercase, with the dot) taken as audio/video inputs when scanning folders.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma",
        ".mp4", ".mkv", ".webm", ".mov", ".avi", ".mka",
    }
)

#: Output extension → soundfile format name.
OUTPUT_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}
#: Default subtype (sample encoding) of each output format.
SUBTYPES: dict[str, str] = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}
#: Subtypes each output format accepts.
ALLOWED_SUBTYPES: dict[str, tuple[str, ...]] = {
    "WAV": ("PCM_16", "PCM_24", "FLOAT"),
    "FLAC": ("PCM_16", "PCM_24"),
    "OGG": ("VORBIS",),
    "MP3": ("MPEG_LAYER_III",),
}
#: Formats written with a lossy codec (encoded from float samples; clipped at ±1).
LOSSY_FORMATS: frozenset[str] = frozenset({"OGG", "MP3"})

#: Bits per sample of the integer subtypes.
INTEGER_BITS: dict[str, int] = {"PCM_16": 16, "PCM_24": 24}
#: Largest positive sample an integer subtype stores exactly: libsndfile scales floats by
#: ``2**(bits-1)``, so full scale is ``[-1, 1 - 2**-(bits-1)]`` (``1 - 1/32768`` for PCM_16).
INTEGER_PEAK: dict[str, float] = {name: 1.0 - 2.0 ** -(bits - 1) for name, bits in INTEGER_BITS.items()}
#: Clip limit of samples fed to a lossy encoder.
LOSSY_PEAK = 1.0

#: Gain of the centre and surround channels in the → stereo downmix (ITU-R BS.775: -3 dB).
DOWNMIX_SIDE_GAIN = 1.0 / math.sqrt(2.0)
#: Channel order of the standard layouts by channel count (WAV / ffmpeg default order).
STANDARD_LAYOUTS: dict[int, tuple[str, ...]] = {
    3: ("FL", "FR", "FC"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FR", "FC", "BL", "BR"),
    6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
    7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"),
    8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"),
}
#: (left gain, right gain) of each channel in the stereo downmix.
DOWNMIX_GAINS: dict[str, tuple[float, float]] = {
    "FL": (1.0, 0.0),
    "FR": (0.0, 1.0),
    "FC": (DOWNMIX_SIDE_GAIN, DOWNMIX_SIDE_GAIN),
    "LFE": (0.0, 0.0),
    "BL": (DOWNMIX_SIDE_GAIN, 0.0),
    "BR": (0.0, DOWNMIX_SIDE_GAIN),
    "SL": (DOWNMIX_SIDE_GAIN, 0.0),
    "SR": (0.0, DOWNMIX_SIDE_GAIN),
    "BC": (DOWNMIX_SIDE_GAIN**2, DOWNMIX_SIDE_GAIN**2),
}
#: Channels of the waves this module returns at most.
MAX_CHANNELS = 2

#: Bytes per sample of ffmpeg's raw ``f32le`` output.
F32_BYTES = 4
#: ffmpeg encoder, its quality option and output muxer for the lossy formats when libsndfile
#: cannot write them (LAME V2 ≈ 190 kb/s; Vorbis q5 ≈ 160 kb/s).
FFMPEG_ENCODERS: dict[str, tuple[str, str, str]] = {
    "MP3": ("libmp3lame", "2", "mp3"),
    "OGG": ("libvorbis", "5", "ogg"),
}
#: The ``[demuxer @ 0x55d0c0ffee00] `` context ffmpeg puts before some error lines.
FFMPEG_CONTEXT = re.compile(r"^\[[^\]]*@ 0x[0-9a-fA-F]+\]\s*")
#: Random bytes in a temporary file's name.
TEMP_TOKEN_BYTES = 4
#: Suffix of temporary output files.
PART_SUFFIX = ".part"
#: Suffix of a temporary file holding a part of a stem at the model's rate (``split --ray``
#: separates a long file in parts on several workers; one writer joins them in order).
SEGMENT_SUFFIX = ".seg" + PART_SUFFIX
#: Permissions of a new output file (before the umask), as ``open()`` would create it.
NEW_FILE_MODE = 0o666
#: Sample rates an MP3 file can store (MPEG-1/2/2.5 layer III).
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
#: Input sample rates accepted: a header outside them is damaged or crafted.
MIN_INPUT_RATE = 1000
MAX_INPUT_RATE = 768_000
#: Most samples per byte a compressed file can hold (FLAC codes a block of digital silence in a
#: few bytes, a few hundred to a few thousand samples per byte): a header that declares more is
#: refused before anything is allocated for it.
MAX_SAMPLES_PER_BYTE = 4096
#: libsndfile's frame count for a stream whose header gives no length (a FLAC an encoder wrote
#: to a pipe). libsndfile cannot seek in such a stream, so ffmpeg decodes it instead.
UNKNOWN_FRAMES = 2**63 - 1


@dataclass
class AudioInfo:
    """What :func:`read_audio` found in a file.

    Attributes:
        path: the file read.
        sample_rate: samples per second per channel.
        channels: channels in the file (the returned wave has ``min(channels, 2)``: files with
            more channels are downmixed to stereo).
        frames: samples per channel.
        subtype: sample encoding: the soundfile subtype (``"PCM_16"``, ``"FLOAT"``,
            ``"MPEG_LAYER_III"``, ...), or ffmpeg's codec name (``"aac"``) for files decoded by
            ffmpeg; None when unknown.
        nonfinite: NaN/Inf samples in the decoded audio, replaced by 0.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    subtype: str | None
    nonfinite: int

    @property
    def duration(self) -> float:
        """Length in seconds (0 when the sample rate is unknown)."""
        return self.frames / self.sample_rate if self.sample_rate > 0 else 0.0


# -- helpers -------------------------------------------------------------------------------------


def ffmpeg_available() -> bool:
    """Whether an ``ffmpeg`` executable is on the PATH."""
    return shutil.which("ffmpeg") is not None


def _ffprobe_available() -> bool:
    return shutil.which("ffprobe") is not None


def _one_line(text: str) -> str:
    """First non-empty line of ``text`` (stripped), or ``""``."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _reason(exc: BaseException) -> str:
    """A short one-line description of an exception from soundfile or the OS."""
    if isinstance(exc, sf.LibsndfileError):
        return _one_line(exc.error_string) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _one_line(str(exc)) or type(exc).__name__


def _ffmpeg_input(path: Path) -> str:
    """``path`` as an ffmpeg input URL: the ``file:`` protocol, so names with colons or a
    leading dash are never taken as another protocol or an option."""
    return "file:" + os.path.abspath(path)


def _tool_error(stderr: bytes, path: Path) -> str:
    """First line of an ffmpeg/ffprobe error, without the ``file:/abs/path: `` prefix it adds."""
    line = _one_line(stderr.decode("utf-8", "replace"))
    for prefix in (_ffmpeg_input(path) + ": ", os.path.abspath(path) + ": "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return FFMPEG_CONTEXT.sub("", line) or "unknown error"


def _run_tool(path: Path, cmd: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg/ffprobe (``cmd[0]``) for ``path``; a tool that cannot start is an AudioError."""
    try:
        return subprocess.run(cmd, capture_output=True, check=False)
    except OSError as exc:
        raise AudioError(f"{path}: cannot run {cmd[0]} ({_reason(exc)}); check your ffmpeg installation") from exc


def _replace_nonfinite(wave: np.ndarray) -> int:
    """Set NaN/Inf samples of ``wave`` to 0 in place; returns how many there were."""
    bad = ~np.isfinite(wave)
    count = int(np.count_nonzero(bad))
    if count:
        wave[bad] = 0.0
    return count


# -- reading -------------------------------------------------------------------------------------


def _check_readable(path: Path) -> None:
    """Raise a clear AudioError for a missing, non-regular, unreadable or empty file."""
    if not path.exists():
        raise AudioError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file; pass the folder itself as an INPUT to process its files")
    try:
        with open(path, "rb") as handle:
            first = handle.read(1)
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({_reason(exc)}); check its permissions") from exc
    if not first:
        raise AudioError(f"{path}: file is empty (0 bytes); re-export or re-download it")


def check_sample_rate(path: Path, rate: int) -> None:
    """Raise AudioError unless ``rate`` is within :data:`MIN_INPUT_RATE`..:data:`MAX_INPUT_RATE`."""
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioError(
            f"{path}: sample rate {rate} Hz is outside {MIN_INPUT_RATE}–{MAX_INPUT_RATE} Hz; its header is "
            "damaged, or resample it first (ffmpeg -i IN -ar 44100 OUT.wav)"
        )


def declared_frames(handle: sf.SoundFile, path: Path, name: Path | None = None) -> int | None:
    """The frame count ``handle``'s header declares, or None when it declares none. ``name`` is
    the file messages name (default ``path``: a decoded copy names its original).

    Raises:
        AudioError: it declares more samples than a file of this size can hold.
    """
    frames = int(handle.frames)
    if frames < 0 or frames >= UNKNOWN_FRAMES:
        return None
    size = path.stat().st_size
    if frames * max(1, int(handle.channels)) > size * MAX_SAMPLES_PER_BYTE:
        raise AudioError(
            f"{name or path}: its header declares {frames} frames, more than a {size}-byte file can hold; it is "
            "damaged or still copying — re-export it, or try again when it is complete"
        )
    return frames


def _read_soundfile(path: Path) -> tuple[np.ndarray, int, int, str | None] | None:
    """Decode with libsndfile → ``((C, N) float32, sample_rate, channels, subtype)``, or None
    when libsndfile cannot read the file.

    Raises:
        AudioError: its rate is out of range, or its header declares more than it can hold.
    """
    try:
        with sf.SoundFile(str(path)) as handle:
            rate, channels, subtype = int(handle.samplerate), int(handle.channels), handle.subtype
            check_sample_rate(path, rate)
            if declared_frames(handle, path) is None:
                return None  # no length in the header: ffmpeg decodes it (libsndfile cannot seek)
            data = handle.read(dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError):
        return None
    return np.ascontiguousarray(data.T), rate, channels, subtype


def _probe_stream(path: Path) -> tuple[int, int, str | None] | None:
    """``(sample_rate, channels, codec)`` of the first audio stream, via ffprobe; None when the
    numbers are missing. Raises AudioError when ffprobe fails or finds no audio stream."""
    cmd = [
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries", "stream=sample_rate,channels,codec_name", "-of", "json", _ffmpeg_input(path),
    ]
    proc = _run_tool(path, cmd)
    if proc.returncode != 0:
        raise AudioError(f"{path}: cannot decode ({_tool_error(proc.stderr, path)}); convert it to WAV/FLAC")
    try:
        streams = json.loads(proc.stdout.decode("utf-8", "replace") or "{}").get("streams") or []
    except json.JSONDecodeError:
        return None
    if not streams:
        raise AudioError(f"{path}: has no audio stream; pass a file with sound in it")
    stream = streams[0]
    try:
        rate, channels = int(stream.get("sample_rate", 0)), int(stream.get("channels", 0))
    except (TypeError, ValueError):
        return None
    if rate <= 0 or channels <= 0:
        return None
    codec = stream.get("codec_name")
    return rate, channels, str(codec) if codec else None


def ffmpeg_decode_command(path: Path, args: list[str]) -> list[str]:
    """``ffmpeg -i path -map 0:a:0 *args``: decode the first audio stream."""
    return ["ffmpeg", "-nostdin", "-v", "error", "-i", _ffmpeg_input(path), "-map", "0:a:0", *args]


def raw_f32_args(rate: int, channels: int) -> list[str]:
    """ffmpeg output options for raw float32 on stdout at the probed rate and channel count
    (forced, so the bytes are read with the layout they have)."""
    return ["-ar", str(rate), "-ac", str(channels), "-f", "f32le", "-acodec", "pcm_f32le", "-"]


def ffmpeg_decode_error(path: Path, stderr: bytes, name: Path | None = None) -> AudioError:
    """The one-line error for a failed ffmpeg decode of ``path`` (messages name ``name``)."""
    message = _tool_error(stderr, path)
    if "matches no streams" in message:
        return AudioError(f"{name or path}: has no audio stream; pass a file with sound in it")
    return AudioError(f"{name or path}: ffmpeg cannot decode it ({message}); convert it to WAV/FLAC")


def _run_ffmpeg_decode(path: Path, args: list[str]) -> bytes:
    """Run :func:`ffmpeg_decode_command`; returns stdout, or raises AudioError."""
    proc = _run_tool(path, ffmpeg_decode_command(path, args))
    if proc.returncode != 0:
        raise ffmpeg_decode_error(path, proc.stderr)
    return proc.stdout


def _read_ffmpeg_pipe(path: Path, rate: int, channels: int) -> np.ndarray:
    """Decode the first audio stream to raw float32 (:func:`raw_f32_args`) → ``(channels, N)``."""
    raw = _run_ffmpeg_decode(path, raw_f32_args(rate, channels))
    frame_bytes = F32_BYTES * channels
    usable = len(raw) - len(raw) % frame_bytes
    interleaved = np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, channels)
    return np.array(interleaved.T, dtype=np.float32, order="C")  # a writable copy


def decode_to_wav(path: Path, wav: Path) -> None:
    """Decode the first audio stream of ``path`` with ffmpeg into the float WAV ``wav`` (RF64
    when large; its header carries rate and channels, so no ffprobe is needed).

    Raises:
        AudioError: ffmpeg is missing, or cannot decode the file.
    """
    if not ffmpeg_available():
        raise AudioError(f"{path}: cannot decode (not an audio file?); convert it to WAV/FLAC or install ffmpeg")
    _run_ffmpeg_decode(path, ["-acodec", "pcm_f32le", "-rf64", "auto", "-f", "wav", "file:" + str(wav)])


def _read_ffmpeg_wav(path: Path) -> tuple[np.ndarray, int, int]:
    """Decode the first audio stream through a temporary float WAV → ``((C, N), rate, channels)``."""
    with tempfile.TemporaryDirectory(prefix="uvrsep-") as folder:
        wav = Path(folder) / "decoded.wav"
        decode_to_wav(path, wav)
        decoded = _read_soundfile(wav)
    if decoded is None:
        raise AudioError(f"{path}: ffmpeg output could not be read back; convert it to WAV/FLAC")
    wave, rate, channels, _ = decoded
    return wave, rate, channels


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, AudioInfo]:
    """Decode an audio (or video) file.

    libsndfile is tried first; what it cannot read is decoded by ffmpeg (first audio stream,
    with ffprobe for its rate and channels, or through a temporary WAV when ffprobe is missing).

    Args:
        path: the file.

    Returns:
        ``(wave, info)``: ``wave`` is float32 shaped ``(channels, frames)`` with 1 or 2 channels
        (more are downmixed by :func:`downmix_to_stereo`), NaN/Inf samples set to 0 (counted in
        ``info.nonfinite``). A file with no samples gives ``(channels, 0)``.

    Raises:
        AudioError: the file is missing, a folder, empty (0 bytes), unreadable, has no audio
            stream, or cannot be decoded (by libsndfile, nor by ffmpeg or ffmpeg is missing).
    """
    path = Path(path)
    _check_readable(path)
    decoded = _read_soundfile(path)
    subtype: str | None
    if decoded is not None:
        wave, rate, channels, subtype = decoded
    elif not ffmpeg_available():
        raise AudioError(f"{path}: cannot decode (not an audio file?); convert it to WAV/FLAC or install ffmpeg")
    else:
        probed = _probe_stream(path) if _ffprobe_available() else None
        if probed is not None:
            rate, channels, subtype = probed
            wave = _read_ffmpeg_pipe(path, rate, channels)
        else:
            wave, rate, channels = _read_ffmpeg_wav(path)
            subtype = None
    check_sample_rate(path, rate)
    nonfinite = _replace_nonfinite(wave)
    frames = int(wave.shape[1])
    if wave.shape[0] > MAX_CHANNELS:
        wave = downmix_to_stereo(wave)
    info = AudioInfo(path=path, sample_rate=rate, channels=channels, frames=frames, subtype=subtype, nonfinite=nonfinite)
    return np.ascontiguousarray(wave, dtype=np.float32), info


def probe_duration(path: str | os.PathLike[str]) -> float | None:
    """Length of a file in seconds, without decoding it (libsndfile header, else ffprobe).

    Args:
        path: the file.

    Returns:
        Seconds, or None when neither libsndfile nor ffprobe can tell (or the file is missing).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        info = sf.info(str(path))
        if info.samplerate > 0 and info.frames >= 0:
            return info.frames / info.samplerate
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError):
        pass
    if not _ffprobe_available():
        return None
    cmd = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", _ffmpeg_input(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
        if proc.returncode != 0:
            return None
        value = float(json.loads(proc.stdout.decode("utf-8", "replace"))["format"]["duration"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


# -- channels ------------------------------------------------------------------------------------


def downmix_to_stereo(wave: np.ndarray) -> np.ndarray:
    """Fold a multichannel wave to stereo.

    3 to 8 channels are taken in the WAV/ffmpeg default order of their layout (3.0 FL FR FC;
    quad FL FR BL BR; 5.0 FL FR FC BL BR; 5.1 FL FR FC LFE BL BR; 6.1 FL FR FC LFE BC SL SR;
    7.1 FL FR FC LFE BL BR SL SR) and folded as in ITU-R BS.775: the centre goes to both sides
    at −3 dB (0.7071) — dialogue lives there —, left surrounds to the left and right surrounds
    to the right at −3 dB, a back centre to both at −6 dB, LFE is dropped. More than eight
    channels are split by index: the average of the even-indexed channels is the left, that of
    the odd-indexed ones the right.

    Summing channels can raise the peak; when the result's peak exceeds the input's (largest
    absolute sample of any channel), the whole result is scaled by ``input_peak / result_peak``,
    so the downmix never clips where the input did not, and reaches full scale only if the input
    did. The gain is one factor for the whole wave (no pumping).

    Args:
        wave: ``(C, N)`` float samples.

    Returns:
        ``(2, N)`` float (float32 for non-float input) when ``C > 2``; ``wave`` itself when
        ``C <= 2``.

    Raises:
        ValueError: ``wave`` is not 2-D.
    """
    if wave.ndim != 2:
        raise ValueError(f"wave must be (channels, samples), got shape {wave.shape}")
    channels = wave.shape[0]
    if channels <= MAX_CHANNELS:
        return wave
    dtype = wave.dtype if np.issubdtype(wave.dtype, np.floating) else np.dtype(np.float32)
    source = wave.astype(dtype, copy=False)
    layout = STANDARD_LAYOUTS.get(channels)
    if layout is not None:
        matrix = np.array([DOWNMIX_GAINS[name] for name in layout], dtype=dtype).T  # (2, C)
        left, right = matrix @ source
    else:
        left = source[0::2].mean(axis=0)
        right = source[1::2].mean(axis=0)
    out = np.stack([left, right]).astype(dtype, copy=False)
    if out.size:
        in_peak = float(np.max(np.abs(source)))
        out_peak = float(np.max(np.abs(out)))
        if math.isfinite(out_peak) and out_peak > in_peak:
            out *= dtype.type(in_peak / out_peak)
    return out


# -- writing -------------------------------------------------------------------------------------


def _lossy_writable(fmt: str) -> bool:
    """Whether this libsndfile can write ``fmt`` itself."""
    return fmt in sf.available_formats()


def storable_rate(fmt: str, rate: int) -> int:
    """``rate``, or for MP3 (which stores only :data:`MP3_RATES`) the lowest of those at or
    above it, 48000 above them all."""
    if fmt != "MP3" or rate in MP3_RATES:
        return rate
    return next((allowed for allowed in MP3_RATES if allowed >= rate), MP3_RATES[-1])


def output_format_from_path(path: str | os.PathLike[str]) -> str:
    """The soundfile format an output path's extension asks for.

    Args:
        path: output file; ``.wav``, ``.flac``, ``.ogg`` or ``.mp3`` (any case).

    Returns:
        ``"WAV"``, ``"FLAC"``, ``"OGG"`` or ``"MP3"``.

    Raises:
        AudioError: another extension, or OGG/MP3 when neither this libsndfile nor ffmpeg can
            encode it.
    """
    path = Path(path)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: cannot write '{path.suffix or '(no extension)'}' files; use .wav, .flac, .ogg or .mp3")
    if fmt in LOSSY_FORMATS and not _lossy_writable(fmt) and not ffmpeg_available():
        raise AudioError(
            f"{path}: this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}; install ffmpeg or use .wav/.flac"
        )
    return fmt


def _resolve_subtype(path: Path, fmt: str, subtype: str | None) -> str:
    """``subtype`` (upper-cased) checked against ``fmt``, or the format's default."""
    if subtype is None:
        return SUBTYPES[fmt]
    chosen = subtype.upper()
    if chosen not in ALLOWED_SUBTYPES[fmt]:
        allowed = ", ".join(ALLOWED_SUBTYPES[fmt])
        hint = " (FLAC stores integers only; write WAV for FLOAT)" if fmt == "FLAC" and chosen == "FLOAT" else ""
        raise AudioError(f"{path}: {fmt} cannot be written as {chosen}{hint}; use {allowed}")
    return chosen


def _prepare_samples(path: Path, wave: np.ndarray, fmt: str, subtype: str) -> tuple[np.ndarray, int]:
    """``(C, N)`` wave → contiguous ``(N, C)`` float32 ready for soundfile, and the number of
    samples clipped. NaN/Inf become 0; integer subtypes are clipped to their full scale and
    lossy formats to ±1; FLOAT keeps every value."""
    data = np.array(wave, dtype=np.float32, copy=True)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[0] < 1:
        raise AudioError(f"{path}: cannot write audio shaped {wave.shape}; expected (channels, samples)")
    _replace_nonfinite(data)
    if subtype in INTEGER_PEAK:
        low, high = -1.0, INTEGER_PEAK[subtype]
    elif fmt in LOSSY_FORMATS:
        low, high = -LOSSY_PEAK, LOSSY_PEAK
    else:
        return np.ascontiguousarray(data.T), 0
    clipped = int(np.count_nonzero(data > high) + np.count_nonzero(data < low))
    if clipped:
        np.clip(data, low, high, out=data)
    return np.ascontiguousarray(data.T), clipped


#: The hidden temporary files this process created and has not published. An interrupt can
#: land between creating one and handing it to the code that removes it on failure (inside a
#: constructor, before a context manager is entered); :func:`remove_temp_files` then removes
#: what is still there. Published files leave the set, so it does not grow over a long batch.
_CREATED_TEMP_FILES: set[Path] = set()


def temp_file_beside(target: Path, suffix: str = PART_SUFFIX) -> Path:
    """Create (exclusively) and return an empty hidden file beside ``target``."""
    while True:
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(TEMP_TOKEN_BYTES)}{suffix}")
        try:
            fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, NEW_FILE_MODE)
        except FileExistsError:
            continue
        _CREATED_TEMP_FILES.add(candidate)
        os.close(fd)
        return candidate


def remove_temp_files() -> int:
    """Remove the hidden temporary files of this process that still exist (published ones were
    renamed away, discarded ones removed); returns how many. For an interrupted run."""
    removed = 0
    for path in list(_CREATED_TEMP_FILES):
        _CREATED_TEMP_FILES.discard(path)
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def _temp_target_name(name: str) -> str | None:
    """The target's name of a temporary file's name (``.{name}.{hex}.part``,
    ``.{name}.{hex}.wav.part``, ``.{name}.{hex}.seg.part``), or None when it is not one."""
    for suffix in (PART_SUFFIX, ".wav" + PART_SUFFIX, SEGMENT_SUFFIX):
        if name.startswith(".") and name.endswith(suffix):
            stem, dot, token = name[1 : -len(suffix)].rpartition(".")
            if dot and len(token) == 2 * TEMP_TOKEN_BYTES and all(c in "0123456789abcdef" for c in token):
                return stem
    return None


def remove_stale_temp_files(targets: Iterable[Path]) -> int:
    """Remove every temporary file of a write of one of ``targets`` (one listing per folder),
    whoever created it: those left by writers that died (a killed ``--ray`` worker, a killed
    driver's workers). Only when no writer of these targets can still be running. Returns how many."""
    wanted: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        wanted.setdefault(target.parent, set()).add(target.name)
    removed = 0
    for folder, names in wanted.items():
        try:
            entries = [entry.name for entry in os.scandir(folder)]
        except OSError:
            continue
        for name in entries:
            if _temp_target_name(name) in names:
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
                    removed += 1
    return removed


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (POSIX); silently skipped where folders cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _exists_error(path: Path) -> AudioError:
    return AudioError(f"{path}: exists; pass --overwrite or choose another output dir")


def _encode_ffmpeg(path: Path, tmp: Path, samples: np.ndarray, sample_rate: int, fmt: str) -> None:
    """Encode ``samples`` ``(N, C)`` into ``tmp`` as ``fmt`` with ffmpeg, via a float WAV."""
    if not ffmpeg_available():
        raise AudioError(
            f"{path}: this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}; install ffmpeg or use .wav/.flac"
        )
    encoder, quality, muxer = FFMPEG_ENCODERS[fmt]
    wav = temp_file_beside(path, ".wav" + PART_SUFFIX)
    try:
        sf.write(str(wav), samples, sample_rate, subtype="FLOAT", format="WAV")
        cmd = [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", "file:" + os.path.abspath(wav),
            "-c:a", encoder, "-q:a", quality, "-f", muxer, "file:" + os.path.abspath(tmp),
        ]
        proc = _run_tool(path, cmd)
        if proc.returncode != 0:
            raise AudioError(f"{path}: ffmpeg cannot encode {fmt} ({_tool_error(proc.stderr, wav)}); use .wav/.flac")
    finally:
        with contextlib.suppress(FileNotFoundError):
            wav.unlink()


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` onto ``path``. Without ``overwrite`` a hard link is made (it
    fails if ``path`` exists, so a file created meanwhile is never replaced); filesystems
    without hard links fall back to an existence check and a rename."""
    if overwrite:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise _exists_error(path) from exc
        except (OSError, NotImplementedError, AttributeError):
            if os.path.lexists(path):
                raise _exists_error(path) from None
            os.replace(tmp, path)
        else:
            tmp.unlink()
    _CREATED_TEMP_FILES.discard(tmp)  # published: nothing left to remove on an interrupt


def prepare_output(path: Path, overwrite: bool, suffix: str = PART_SUFFIX) -> Path:
    """Check ``path`` can be written, create its folder, and return a new empty hidden temporary
    file beside it, ending in ``suffix`` (the caller writes there, then :func:`finish_output`;
    ``split --ray`` writes a long file's parts to :data:`SEGMENT_SUFFIX` files this way)."""
    if path.is_dir():
        raise AudioError(f"{path}: is a folder; choose another output file name")
    if not overwrite and os.path.lexists(path):
        raise _exists_error(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AudioError(f"{path.parent}: cannot create folder ({_reason(exc)}); check the output dir and its permissions") from exc
    try:
        return temp_file_beside(path, suffix)
    except OSError as exc:
        raise AudioError(f"{path}: cannot write ({_reason(exc)}); check the folder's permissions") from exc


def finish_output(tmp: Path, path: Path, overwrite: bool) -> None:
    """Flush the written ``tmp`` to disk and move it onto ``path`` (see :func:`_publish`)."""
    _fsync_file(tmp)
    _publish(tmp, path, overwrite)
    _fsync_dir(path.parent)


def write_audio(
    path: str | os.PathLike[str],
    wave: np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    overwrite: bool = False,
) -> int:
    """Write a wave to ``path`` atomically, in the format its extension names.

    The samples are written to a hidden ``.{name}.{random}.part`` file in the same folder,
    fsynced, then renamed onto ``path``; on any error the temporary file is removed and ``path``
    is untouched. Parent folders are created.

    Args:
        path: output file (``.wav``, ``.flac``, ``.ogg`` or ``.mp3``).
        wave: ``(C, N)`` float samples (``(N,)`` is taken as mono). NaN/Inf are written as 0.
        sample_rate: samples per second.
        subtype: ``"PCM_16"``, ``"PCM_24"`` or ``"FLOAT"`` for WAV (FLAC: PCM only); None: the
            format's default (:data:`SUBTYPES`).
        overwrite: replace an existing ``path``; otherwise an existing file is an error (checked
            again when the output is put in place, so a file created meanwhile is kept).

    Returns:
        Samples (over all channels) beyond full scale that were clipped: integer subtypes clip
        to ``[-1, 1 - 2**-(bits-1)]`` (never wrapping around), OGG/MP3 to ``[-1, 1]``; FLOAT
        stores every value and returns 0.

    Raises:
        AudioError: unsupported extension or subtype, ``path`` exists without ``overwrite``,
            or the file cannot be written (permissions, disk full, codec unavailable, ...).
    """
    path = Path(path)
    fmt = output_format_from_path(path)
    chosen = _resolve_subtype(path, fmt, subtype)
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(f"{path}: invalid sample rate {sample_rate!r}; pass a positive integer")
    samples, clipped = _prepare_samples(path, wave, fmt, chosen)
    tmp = prepare_output(path, overwrite)
    try:
        if fmt in LOSSY_FORMATS and not _lossy_writable(fmt):
            _encode_ffmpeg(path, tmp, samples, int(sample_rate), fmt)
        else:
            sf.write(str(tmp), samples, int(sample_rate), subtype=chosen, format=fmt)
        finish_output(tmp, path, overwrite)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot write ({_reason(exc)}); check free space and permissions") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return clipped
