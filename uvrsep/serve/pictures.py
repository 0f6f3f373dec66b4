"""Spectrogram pictures of a job's input and stems, so a user sees what went where.

Every picture has the same absolute scale (dB relative to a full-scale sine), so a stem's
picture is dark where the stem lost the sound the input had. Time runs left to right over
:data:`PICTURE_WIDTH` columns whatever the length (each column analyses at most
:data:`SNAPSHOT_FRAMES` FFT frames of its span, read through the engine's streaming sources,
so a long file costs bounded memory); frequency runs bottom to top on a log scale. Written as
PNG with ``zlib`` (no imaging library).
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from pathlib import Path

import numpy as np

PICTURE_WIDTH = 800
PICTURE_HEIGHT = 256
PICTURE_FFT = 2048
#: Fewest samples a column stands for (shorter inputs get fewer columns, overlapping FFTs).
MIN_COLUMN_FRAMES = PICTURE_FFT // 4
#: FFT frames (hop ``PICTURE_FFT // 2``) averaged into one column at most.
SNAPSHOT_FRAMES = 8
#: Lowest frequency drawn (Hz); the top row is the Nyquist frequency.
LOWEST_HZ = 30.0
#: Level drawn black and level drawn white, in dB relative to a full-scale sine.
FLOOR_DB = -100.0
CEILING_DB = -10.0
#: Colour ramp from FLOOR_DB to CEILING_DB (RGB anchors at even steps: black, violet, red, orange, pale yellow).
RAMP = np.array(
    [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]], dtype=np.float64
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COMPRESSION = 6


def spectrogram_levels(path: str | os.PathLike[str], width: int = PICTURE_WIDTH, height: int = PICTURE_HEIGHT) -> np.ndarray:
    """``(height, columns)`` levels in dB (row 0 = highest frequency) of an audio file's mono
    mix; ``columns = min(width, frames // MIN_COLUMN_FRAMES)`` (at least 1).

    Raises:
        AudioError: the file cannot be read (as ``uvrsep split`` says it).
    """
    from ..stream import open_source

    source, info = open_source(path)
    try:
        frames = int(source.frames)
        columns = max(1, min(width, frames // MIN_COLUMN_FRAMES))
        window = np.hanning(PICTURE_FFT).astype(np.float64)
        full_scale = (window.sum() / 2) ** 2  # a full-scale sine's peak power
        rows = _RowBands(info.sample_rate, height)
        levels = np.empty((height, columns), dtype=np.float32)
        hop = PICTURE_FFT // 2
        for column in range(columns):
            start = min(column * frames // columns, max(0, frames - PICTURE_FFT))  # the last one ends at the end
            stop = min((column + 1) * frames // columns, start + PICTURE_FFT + hop * (SNAPSHOT_FRAMES - 1))
            block = np.asarray(source.read(start, max(stop, start + PICTURE_FFT)), dtype=np.float64)
            mono = np.nan_to_num(block.mean(axis=0)) if block.size else np.zeros(0)
            mono = np.pad(mono, (0, max(0, PICTURE_FFT - mono.size)))
            count = 1 + (mono.size - PICTURE_FFT) // hop
            snaps = np.lib.stride_tricks.sliding_window_view(mono, PICTURE_FFT)[::hop][:count]
            power = (np.abs(np.fft.rfft(snaps * window, axis=1)) ** 2).mean(axis=0)
            levels[:, column] = 10 * np.log10(np.maximum(rows.power(power) / full_scale, 1e-30))
        return levels
    finally:
        if hasattr(source, "close"):
            source.close()


class _RowBands:
    """The picture's rows as log-spaced frequency bands, top row first. A band that holds FFT
    bins shows the loudest of them (a narrow peak is never missed between rows); a band
    narrower than a bin (the lowest rows) shows the spectrum interpolated at its centre."""

    def __init__(self, sample_rate: int, height: int) -> None:
        bin_hz = sample_rate / PICTURE_FFT
        edges = np.geomspace(LOWEST_HZ, sample_rate / 2, height + 1) / bin_hz  # in bins, ascending
        self.centres = np.sqrt(edges[:-1] * edges[1:])
        low, high = np.ceil(edges[:-1]).astype(int), np.floor(edges[1:]).astype(int)
        self.wide = high >= low
        # maximum.reduceat over [low0, high0+1, low1, high1+1, ...]: the even results are the bands
        self.bounds = np.stack([low[self.wide], high[self.wide] + 1], axis=1).ravel()

    def power(self, spectrum: np.ndarray) -> np.ndarray:
        """``(bins,)`` power → ``(height,)`` row powers, top row first."""
        rows = np.interp(self.centres, np.arange(spectrum.size), spectrum)
        padded = np.append(spectrum, 0.0)  # a band may end at the last bin
        rows[self.wide] = np.maximum.reduceat(padded, np.minimum(self.bounds, spectrum.size))[::2]
        return rows[::-1]


def colourise(levels: np.ndarray) -> np.ndarray:
    """dB levels ``(H, W)`` → ``(H, W, 3)`` uint8 on :data:`RAMP` between the floor and ceiling."""
    position = np.clip((levels - FLOOR_DB) / (CEILING_DB - FLOOR_DB), 0.0, 1.0) * (len(RAMP) - 1)
    anchors = np.arange(len(RAMP))
    return np.stack([np.interp(position, anchors, RAMP[:, c]) for c in range(3)], axis=-1).round().astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 image as PNG (8-bit RGB, no filter)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + np.ascontiguousarray(row).tobytes() for row in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, PNG_COMPRESSION)) + chunk(b"IEND", b"")


def write_spectrogram(audio: str | os.PathLike[str], png: str | os.PathLike[str]) -> Path:
    """Draw ``audio``'s spectrogram into ``png`` (written whole, then renamed into place)."""
    png = Path(png)
    tmp = png.with_name(f".{png.name}.{uuid.uuid4().hex[:8]}.part")  # two requests may draw it at once
    tmp.write_bytes(png_bytes(colourise(spectrogram_levels(audio))))
    os.replace(tmp, png)
    return png
