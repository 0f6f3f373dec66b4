"""The server's spectrogram pictures (:mod:`uvrsep.serve.pictures`): levels, colours, PNG."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import soundfile as sf

from uvrsep.serve.pictures import (
    CEILING_DB,
    FLOOR_DB,
    LOWEST_HZ,
    MIN_COLUMN_FRAMES,
    PICTURE_HEIGHT,
    PICTURE_WIDTH,
    RAMP,
    colourise,
    spectrogram_levels,
    write_spectrogram,
)

RATE = 44100


def png_pixels(data: bytes) -> np.ndarray:
    """The ``(H, W, 3)`` pixels of an 8-bit RGB PNG without filters (as the server writes),
    after checking its signature and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        assert struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def rows_hz(rate: int = RATE) -> np.ndarray:
    """Each row's centre frequency, top row first."""
    edges = np.geomspace(LOWEST_HZ, rate / 2, PICTURE_HEIGHT + 1)
    return np.sqrt(edges[:-1] * edges[1:])[::-1]


@pytest.mark.parametrize("hz,amplitude", [(1000.0, 1.0), (5000.0, 0.1)])
def test_a_sine_is_one_bright_row_at_its_level(tmp_path, hz, amplitude):
    t = np.arange(RATE * 2) / RATE
    path = tmp_path / "sine.wav"
    sf.write(path, (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32), RATE, subtype="FLOAT")
    levels = spectrogram_levels(path)
    assert levels.shape == (PICTURE_HEIGHT, min(PICTURE_WIDTH, 2 * RATE // MIN_COLUMN_FRAMES))
    loudest = levels.max(axis=0)
    expected_db = 20 * np.log10(amplitude)
    assert np.all(np.abs(loudest - expected_db) < 1.6)  # the Hann window's scalloping is at most 1.42 dB
    row = int(np.median(levels.argmax(axis=0)))
    assert abs(rows_hz()[row] / hz - 1) < 0.03  # within its row (2.6 % wide)
    far = np.abs(np.log2(rows_hz() / hz)) > 1  # an octave away
    assert levels[far].max() < expected_db - 40


def test_the_left_of_the_picture_is_the_start(tmp_path):
    wave = np.zeros(RATE * 4, dtype=np.float32)
    wave[: RATE * 2] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE * 2) / RATE)
    path = tmp_path / "half.wav"
    sf.write(path, wave, RATE, subtype="FLOAT")
    loudest = spectrogram_levels(path).max(axis=0)
    half = loudest.size // 2
    assert loudest[: half - 2].min() > -10 and loudest[half + 2 :].max() < -250


def test_silence_and_stereo_and_a_short_file(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros((500, 2), dtype=np.float32), RATE)
    levels = spectrogram_levels(path)
    assert levels.shape == (PICTURE_HEIGHT, 1) and levels.max() < -250
    rgb = colourise(levels)
    assert (rgb == RAMP[0]).all()


def test_colours_run_from_floor_to_ceiling():
    levels = np.array([[FLOOR_DB - 20, FLOOR_DB, (FLOOR_DB + CEILING_DB) / 2, CEILING_DB, CEILING_DB + 20]])
    rgb = colourise(levels).astype(int)
    assert (rgb[0, 0] == RAMP[0]).all() and (rgb[0, 1] == RAMP[0]).all()
    assert (rgb[0, 3] == RAMP[-1]).all() and (rgb[0, 4] == RAMP[-1]).all()
    brightness = rgb.sum(axis=-1)[0]
    assert brightness[1] < brightness[2] < brightness[3]


def test_the_png_holds_the_colours(tmp_path):
    t = np.arange(RATE) / RATE
    audio = tmp_path / "a.wav"
    sf.write(audio, (0.5 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32), RATE)
    png = write_spectrogram(audio, tmp_path / "a.png")
    np.testing.assert_array_equal(png_pixels(png.read_bytes()), colourise(spectrogram_levels(audio)))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_an_unreadable_file_says_so(tmp_path):
    from uvrsep.errors import AudioError

    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(AudioError, match="junk.wav"):
        spectrogram_levels(path)
