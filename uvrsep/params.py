"""Model-params JSON files (``configs/``): typed, validated, and found by name or path.

A params file describes the multi-band spectrogram a VR model was trained on: the bands (sample
rate, hop, FFT size, which bins are copied into the combined spectrogram, crossover ramps,
resampler) and the combined height ``bins``. The 25 files of the reference ship in
``uvrsep.configs``; :func:`load_params` takes one of their names (``"4band_v2"``) or a path.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .errors import ParamsError

#: Flags that may be absent from a file (they default to False, as in the reference loader).
FLAG_KEYS = ("mid_side", "mid_side_b", "mid_side_b2", "reverse", "stereo_w", "stereo_n")
#: Resamplers a band may name (librosa ``res_type`` values the reference files use or accept).
RES_TYPES = (
    "polyphase", "kaiser_fast", "kaiser_best", "sinc_best", "sinc_medium", "sinc_fastest",
    "soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq", "soxr_qq", "scipy", "fft", "linear", "zero_order_hold",
)
CONVERT_CHANNELS = ("stereo_n", "mid_side", "mid_side_c")
#: Upper limits on the values that size allocations (a crafted file must not ask for gigabytes;
#: the reference files use n_fft ≤ 2048, sr ≤ 48000, bins ≤ 1024 and at most 4 bands).
MAX_N_FFT = 16384
MAX_SR = 192_000
MAX_BINS = 8192
MAX_BANDS = 8


def _field(data: Mapping[str, Any], key: str, where: str, kind: type, default: Any = ...) -> Any:
    """Read ``data[key]`` as ``kind``; a missing or wrong value names the field."""
    if key not in data:
        if default is ...:
            raise ParamsError(f"{where}: missing field '{key}'")
        return default
    value = data[key]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: field '{key}' must be an integer, got {value!r}")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: field '{key}' must be true or false, got {value!r}")
    elif kind is str and not isinstance(value, str):
        raise ParamsError(f"{where}: field '{key}' must be a string, got {value!r}")
    return value


@dataclass(frozen=True)
class BandParams:
    """One band of a multi-band spectrogram.

    Attributes:
        sr: the band's sample rate.
        hl: hop length in samples.
        n_fft: FFT size; the band's STFT has ``n_fft // 2 + 1`` rows.
        crop_start: first STFT row copied into the combined spectrogram.
        crop_stop: one past the last copied row.
        res_type: resampler that makes this band's wave from the band above (top band: the one
            used to bring the input to ``sr``).
        lpf_start, lpf_stop: low-pass ramp rows at synthesis (bands below the top), or None.
        hpf_start, hpf_stop: high-pass ramp rows at synthesis (bands above the first), or None;
            ``hpf_start <= 0`` means no filter.
        convert_channels: UVR v5.1 per-band channel conversion name, or None.
    """

    sr: int
    hl: int
    n_fft: int
    crop_start: int
    crop_stop: int
    res_type: str
    lpf_start: int | None = None
    lpf_stop: int | None = None
    hpf_start: int | None = None
    hpf_stop: int | None = None
    convert_channels: str | None = None

    @property
    def n_bins(self) -> int:
        """Rows of this band's STFT (``n_fft // 2 + 1``)."""
        return self.n_fft // 2 + 1

    @property
    def crop_rows(self) -> int:
        """Rows this band contributes to the combined spectrogram."""
        return self.crop_stop - self.crop_start

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "BandParams":
        if not isinstance(data, Mapping):
            raise ParamsError(f"{where}: must be an object")
        values: dict[str, Any] = {
            key: _field(data, key, where, int) for key in ("sr", "hl", "n_fft", "crop_start", "crop_stop")
        }
        values["res_type"] = _field(data, "res_type", where, str)
        for key in ("lpf_start", "lpf_stop", "hpf_start", "hpf_stop"):
            values[key] = _field(data, key, where, int, None)
        values["convert_channels"] = _field(data, "convert_channels", where, str, None)
        band = cls(**values)
        band.validate(where)
        return band

    def validate(self, where: str) -> None:
        for key in ("sr", "hl", "n_fft"):
            if getattr(self, key) <= 0:
                raise ParamsError(f"{where}: field '{key}' must be positive, got {getattr(self, key)}")
        if self.n_fft > MAX_N_FFT:
            raise ParamsError(f"{where}: field 'n_fft' ({self.n_fft}) is above the limit of {MAX_N_FFT}")
        if self.sr > MAX_SR:
            raise ParamsError(f"{where}: field 'sr' ({self.sr}) is above the limit of {MAX_SR} Hz")
        if self.hl > self.n_fft:
            raise ParamsError(
                f"{where}: field 'hl' ({self.hl}) is larger than 'n_fft' ({self.n_fft}): frames would leave "
                "gaps and part of the output would be silent"
            )
        if not 0 <= self.crop_start < self.crop_stop <= self.n_bins:
            raise ParamsError(
                f"{where}: fields 'crop_start'/'crop_stop' must satisfy 0 <= start < stop <= "
                f"n_fft/2+1 = {self.n_bins}, got {self.crop_start}/{self.crop_stop}"
            )
        if self.res_type not in RES_TYPES:
            raise ParamsError(f"{where}: field 'res_type' {self.res_type!r} is not one of {', '.join(RES_TYPES)}")
        if self.convert_channels is not None and self.convert_channels not in CONVERT_CHANNELS:
            raise ParamsError(
                f"{where}: field 'convert_channels' {self.convert_channels!r} is not one of {', '.join(CONVERT_CHANNELS)}"
            )
        if (self.lpf_start is None) != (self.lpf_stop is None):
            raise ParamsError(f"{where}: fields 'lpf_start' and 'lpf_stop' must be given together")
        if self.hpf_start is not None and self.hpf_start > 0 and self.hpf_stop is None:
            raise ParamsError(f"{where}: field 'hpf_stop' is needed when 'hpf_start' > 0")
        for key in ("lpf_start", "lpf_stop", "hpf_start", "hpf_stop"):
            value = getattr(self, key)
            if value is not None and value >= self.n_bins:
                raise ParamsError(f"{where}: field '{key}' ({value}) must be below n_fft/2+1 = {self.n_bins}")


@dataclass(frozen=True)
class ModelParams:
    """A whole params file.

    Attributes:
        name: file stem (``"4band_v2"``) or the path it came from.
        bins: network height; the combined spectrogram has ``bins + 1`` rows.
        sr: output sample rate (the top band's).
        pre_filter_start, pre_filter_stop: rows of the combined spectrogram's top fade.
        bands: bands from lowest (band 1) to top.
        mid_side, mid_side_b, mid_side_b2, reverse, stereo_w, stereo_n: channel flags (only
            ``mid_side``, ``mid_side_b2`` and ``reverse`` are used at inference, as in the reference).
        unstable_bins, reduction_bins: training-only values, kept for completeness.
    """

    name: str
    bins: int
    sr: int
    pre_filter_start: int
    pre_filter_stop: int
    bands: tuple[BandParams, ...]
    mid_side: bool = False
    mid_side_b: bool = False
    mid_side_b2: bool = False
    reverse: bool = False
    stereo_w: bool = False
    stereo_n: bool = False
    unstable_bins: int = 0
    reduction_bins: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def top(self) -> BandParams:
        """The top band (highest sample rate): the model's input and output rate."""
        return self.bands[-1]

    @property
    def split_bin(self) -> int:
        """Default aggressiveness split: band 1's ``crop_stop``."""
        return self.bands[0].crop_stop

    @property
    def high_end_bins(self) -> int:
        """Rows of the top band kept as "high end" (the reference's ``input_high_end_h``)."""
        return (self.top.n_fft // 2 - self.top.crop_stop) + (self.pre_filter_stop - self.pre_filter_start)

    @property
    def sample_grid(self) -> int:
        """Top-rate samples between two positions every band's wave has a sample at: the least
        common multiple of ``top.sr / gcd(top.sr, band.sr)`` (4 for 44100 → 22050 → 11025).
        Padding a wave at its start by a multiple of it leaves the lower bands' resampled
        samples where they were (their grid is counted from the wave's first sample)."""
        grid = 1
        for band in self.bands:
            grid = math.lcm(grid, self.top.sr // math.gcd(self.top.sr, band.sr))
        return grid

    @property
    def band_offsets(self) -> tuple[int, ...]:
        """First combined-spectrogram row of each band."""
        offsets, row = [], 0
        for band in self.bands:
            offsets.append(row)
            row += band.crop_rows
        return tuple(offsets)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str) -> "ModelParams":
        """Build and validate from a parsed JSON object; errors name the file and field."""
        where = f"params '{name}'"
        if not isinstance(data, Mapping):
            raise ParamsError(f"{where}: top level must be a JSON object")
        data = dict(data)
        if "bins" not in data and "n_bins" in data:  # UVR's loader accepts n_bins (4band_v3_sn)
            data["bins"] = data["n_bins"]
        bands_raw = _field(data, "band", where, dict)
        if not isinstance(bands_raw, Mapping) or not bands_raw:
            raise ParamsError(f"{where}: field 'band' must be a non-empty object of bands 1..n")
        try:
            numbers = sorted(int(key) for key in bands_raw)
        except ValueError:
            raise ParamsError(f"{where}: field 'band' keys must be band numbers 1..n") from None
        if len(numbers) > MAX_BANDS:
            raise ParamsError(f"{where}: {len(numbers)} bands, more than the limit of {MAX_BANDS}")
        if numbers != list(range(1, len(numbers) + 1)):
            raise ParamsError(f"{where}: field 'band' keys must be 1..{len(numbers)}, got {numbers}")
        by_number = {int(key): value for key, value in bands_raw.items()}
        bands = tuple(BandParams.from_dict(by_number[n], f"{where} band {n}") for n in numbers)
        known = {"bins", "n_bins", "band", "sr", "pre_filter_start", "pre_filter_stop", "unstable_bins",
                 "reduction_bins", *FLAG_KEYS}
        params = cls(
            name=name,
            bins=_field(data, "bins", where, int),
            sr=_field(data, "sr", where, int),
            pre_filter_start=_field(data, "pre_filter_start", where, int),
            pre_filter_stop=_field(data, "pre_filter_stop", where, int),
            bands=bands,
            unstable_bins=_field(data, "unstable_bins", where, int, 0),
            reduction_bins=_field(data, "reduction_bins", where, int, 0),
            extra={key: value for key, value in data.items() if key not in known},
            **{flag: _field(data, flag, where, bool, False) for flag in FLAG_KEYS},
        )
        params.validate()
        return params

    def validate(self) -> None:
        where = f"params '{self.name}'"
        if self.bins <= 0 or self.bins % 16:
            raise ParamsError(f"{where}: field 'bins' must be a positive multiple of 16, got {self.bins}")
        if self.bins > MAX_BINS:
            raise ParamsError(f"{where}: field 'bins' ({self.bins}) is above the limit of {MAX_BINS}")
        if self.sr != self.top.sr:
            raise ParamsError(f"{where}: field 'sr' ({self.sr}) must equal the top band's sr ({self.top.sr})")
        rows = sum(band.crop_rows for band in self.bands)
        if rows > self.bins:
            raise ParamsError(f"{where}: the bands' crop ranges fill {rows} rows, more than 'bins' = {self.bins}")
        for key in ("pre_filter_start", "pre_filter_stop"):
            if not 0 <= getattr(self, key) <= self.bins:
                raise ParamsError(f"{where}: field '{key}' must be within 0..bins ({self.bins}), got {getattr(self, key)}")
        if self.high_end_bins > self.top.n_fft // 2:
            raise ParamsError(f"{where}: 'pre_filter_start'/'pre_filter_stop' make a high end taller than the top band")
        for lower, upper in zip(self.bands, self.bands[1:]):
            if upper.sr < lower.sr:
                raise ParamsError(f"{where}: bands must be ordered by rising sr")
            if lower.lpf_start is None:
                raise ParamsError(f"{where}: every band below the top needs 'lpf_start'/'lpf_stop'")
            if upper.hpf_start is None or (upper.hpf_start > 0 and upper.hpf_stop is None):
                raise ParamsError(f"{where}: every band above the first needs 'hpf_start'/'hpf_stop'")


def params_dir() -> Path:
    """Directory of the bundled params files (installed package or source checkout)."""
    try:
        bundled = resources.files("uvrsep.configs")
        path = Path(str(bundled))
        if path.is_dir() and any(path.glob("*.json")):
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "configs"


def list_params() -> list[str]:
    """Names of the bundled params files, sorted."""
    return sorted(path.stem for path in params_dir().glob("*.json"))


def load_params(name_or_path: str | os.PathLike | ModelParams) -> ModelParams:
    """Load params by bundled name (``"4band_v2"``, ``"4band_v2.json"``) or JSON path."""
    if isinstance(name_or_path, ModelParams):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if not path.is_file():
        stem = path.name[:-5] if path.name.endswith(".json") else path.name
        bundled = params_dir() / f"{stem}.json"
        if path.parent == Path(".") and bundled.is_file():
            path = bundled
        else:
            raise ParamsError(
                f"params '{text}': no such file and not a bundled name; "
                f"use one of {', '.join(list_params())} or a JSON path"
            )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"params '{path}': cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ParamsError(f"params '{path}': not valid JSON ({exc})") from None
    name = path.stem if path.parent == params_dir() else str(path)
    return ModelParams.from_dict(data, name)
