"""Params files: the 25 bundled configs against the SPEC §2 table, lookup by name / file name /
path, and clear ParamsErrors (naming the field) for malformed files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from uvrsep.errors import ParamsError
from uvrsep.params import BandParams, ModelParams, list_params, load_params, params_dir

# SPEC §2 table: file -> (bins, split_bin, he_h). split_bin = band 1's crop_stop; he_h =
# input_high_end_h = (top n_fft/2 - top crop_stop) + (pre_filter_stop - pre_filter_start).
SPEC_TABLE = {
    "1band_sr16000_hl512": (1024, 1024, 1),
    "1band_sr32000_hl512": (1024, 1024, 21),
    "1band_sr33075_hl384": (1024, 1024, 21),
    "1band_sr44100_hl1024": (1024, 1024, 1),
    "1band_sr44100_hl256": (256, 256, 0),
    "1band_sr44100_hl512": (1024, 1024, 1),
    "1band_sr44100_hl512_cut": (1024, 700, 1),
    "1band_sr44100_hl512_nf1024": (512, 512, 1),
    "2band_32000": (768, 240, 28),
    "2band_44100_lofi": (512, 192, 194),
    "2band_48000": (768, 240, 284),
    "3band_44100": (768, 278, 82),
    "3band_44100_mid": (768, 278, 82),
    "3band_44100_msb2": (640, 187, 14),
    "4band_44100": (768, 186, 30),
    "4band_44100_mid": (768, 186, 30),
    "4band_44100_msb": (768, 186, 30),
    "4band_44100_msb2": (768, 186, 30),
    "4band_44100_reverse": (768, 186, 30),
    "4band_44100_sw": (768, 186, 30),
    "4band_v2": (672, 85, 101),
    "4band_v2_sn": (672, 85, 101),
    "4band_v3": (672, 85, 101),
    "4band_v3_sn": (672, 85, 101),
    "ensemble": (1280, 374, 26),
}

# SPEC §2 "flags" column (4band_44100_msb2 really carries mid_side_b, as the table says).
SPEC_FLAGS = {
    "3band_44100_mid": {"mid_side"},
    "4band_44100_mid": {"mid_side"},
    "3band_44100_msb2": {"mid_side_b2"},
    "ensemble": {"mid_side_b2"},
    "4band_44100_msb": {"mid_side_b"},
    "4band_44100_msb2": {"mid_side_b"},
    "4band_44100_reverse": {"reverse"},
    "4band_44100_sw": {"stereo_w"},
}
FLAGS = ("mid_side", "mid_side_b", "mid_side_b2", "reverse", "stereo_w", "stereo_n")

# SPEC §2, rows "2band_32000/48000 fill only 723 of 768 rows and 2band_44100_lofi 502 of 512".
# 1band_sr44100_hl512_cut copies rows [0, 700) only (SPEC §2 table); every other file fills bins.
SPEC_FILLED_ROWS = {"2band_32000": 723, "2band_48000": 723, "2band_44100_lofi": 502, "1band_sr44100_hl512_cut": 700}


def _raw(name: str) -> dict:
    return json.loads((params_dir() / f"{name}.json").read_text())


def _write(tmp_path: Path, data: dict | str, name: str = "custom.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# --- the bundled files -----------------------------------------------------------------------


def test_params_dir_holds_exactly_the_25_bundled_files() -> None:
    directory = params_dir()
    assert directory.is_dir()
    stems = sorted(p.stem for p in directory.glob("*.json"))
    assert stems == list_params()
    assert len(list_params()) == 25
    assert set(list_params()) == set(SPEC_TABLE)
    for name in ("4band_v2", "4band_v3_sn", "ensemble", "1band_sr44100_hl512_cut"):
        assert name in list_params()


@pytest.mark.parametrize("name", sorted(SPEC_TABLE))
def test_every_bundled_file_matches_the_spec_table(name: str) -> None:
    params = load_params(name)
    bins, split_bin, he_h = SPEC_TABLE[name]
    assert params.name == name
    assert params.bins == bins
    assert params.split_bin == split_bin
    assert params.high_end_bins == he_h
    # the he_h formula of SPEC §3.4, from the raw JSON numbers
    raw = _raw(name)
    top = raw["band"][str(len(raw["band"]))]
    assert he_h == (top["n_fft"] // 2 - top["crop_stop"]) + (raw["pre_filter_stop"] - raw["pre_filter_start"])
    assert params.sr == params.top.sr == top["sr"]
    assert params.n_bands == len(raw["band"])
    assert {flag for flag in FLAGS if getattr(params, flag)} == SPEC_FLAGS.get(name, set())
    # bands are ordered lowest first and stack without overlap inside bins (SPEC §3.5)
    offsets = params.band_offsets
    assert offsets[0] == 0
    for band, offset, nxt in zip(params.bands, offsets, offsets[1:] + (None,)):
        if nxt is not None:
            assert nxt == offset + band.crop_stop - band.crop_start
    filled = sum(b.crop_stop - b.crop_start for b in params.bands)
    assert filled == SPEC_FILLED_ROWS.get(name, bins)
    # the network needs bins/2 to be a multiple of 16 (SPEC §1.2)
    assert (bins // 2) % 16 == 0


def test_4band_v2_values_per_spec() -> None:
    p = load_params("4band_v2")
    assert (p.bins, p.sr, p.pre_filter_start, p.pre_filter_stop) == (672, 44100, 668, 672)
    assert p.n_bands == 4
    expected = [
        # sr, hl, n_fft, crop_start, crop_stop, lpf_start, lpf_stop, hpf_start, hpf_stop, res_type
        (7350, 80, 640, 0, 85, 25, 53, None, None, "polyphase"),
        (7350, 80, 320, 4, 87, 31, 62, 25, 12, "polyphase"),
        (14700, 160, 512, 17, 216, 139, 210, 48, 24, "polyphase"),
        (44100, 480, 960, 78, 383, None, None, 130, 86, "kaiser_fast"),
    ]
    for band, row in zip(p.bands, expected):
        got = (band.sr, band.hl, band.n_fft, band.crop_start, band.crop_stop, band.lpf_start,
               band.lpf_stop, band.hpf_start, band.hpf_stop, band.res_type)
        assert got == row
    # combined layout: [0,85) band 1, [85,168) band 2, [168,367) band 3, [367,672) band 4
    assert p.band_offsets == (0, 85, 168, 367)
    assert p.band_offsets[-1] + p.top.crop_rows == 672
    assert [b.n_bins for b in p.bands] == [321, 161, 257, 481]
    assert p.split_bin == 85
    assert p.high_end_bins == (480 - 383) + (672 - 668) == 101
    assert not any(getattr(p, flag) for flag in FLAGS)
    assert p.top is p.bands[-1]
    # hl/sr is the same in every band (SPEC §2: all bands have almost the same frame count)
    assert len({band.hl / band.sr for band in p.bands}) == 1


def test_4band_v3_sn_reads_n_bins_and_convert_channels() -> None:
    raw = _raw("4band_v3_sn")
    assert "bins" not in raw and raw["n_bins"] == 672
    p = load_params("4band_v3_sn")
    assert p.bins == 672
    assert p.top.convert_channels == "stereo_n"
    assert all(b.convert_channels is None for b in p.bands[:-1])
    # apart from reduction_bins and convert_channels it is 4band_v2 (SPEC §2 "as 4band_v2")
    v2 = load_params("4band_v2")
    assert [dataclasses.replace(b, convert_channels=None) for b in p.bands] == list(v2.bands)
    assert (p.pre_filter_start, p.pre_filter_stop) == (v2.pre_filter_start, v2.pre_filter_stop)
    assert p.reduction_bins == 530 and v2.reduction_bins == 637


def test_1band_cut_has_the_inverted_pre_filter() -> None:
    p = load_params("1band_sr44100_hl512_cut")
    assert p.pre_filter_start > p.pre_filter_stop == 700 == p.top.crop_stop


# --- lookup ----------------------------------------------------------------------------------


def _same_content(a: ModelParams, b: ModelParams) -> bool:
    fields = ("bins", "sr", "pre_filter_start", "pre_filter_stop", "bands", *FLAGS, "unstable_bins", "reduction_bins")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def test_load_by_name_file_name_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    by_name = load_params("4band_v2")
    by_file_name = load_params("4band_v2.json")
    by_path = load_params(params_dir() / "4band_v2.json")
    by_str_path = load_params(str(params_dir() / "4band_v2.json"))
    assert by_name == by_file_name == by_path == by_str_path
    copy = tmp_path / "my_params.json"
    copy.write_text((params_dir() / "4band_v2.json").read_text())
    from_copy = load_params(copy)
    assert from_copy.name == str(copy)
    assert _same_content(from_copy, by_name)
    # a relative path to an existing file is a path
    monkeypatch.chdir(tmp_path)
    assert _same_content(load_params("my_params.json"), by_name)
    # ModelParams passes through
    assert load_params(by_name) is by_name


def test_unknown_name_lists_the_available_names() -> None:
    with pytest.raises(ParamsError) as err:
        load_params("5band_v9")
    message = str(err.value)
    assert "5band_v9" in message
    for name in list_params():
        assert name in message


def test_missing_path_in_a_folder_is_not_taken_for_a_bundled_name(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "4band_v2.json")


# --- malformed files -------------------------------------------------------------------------


def _load_modified(tmp_path: Path, modify, base: str = "4band_v2") -> ModelParams:
    data = _raw(base)
    modify(data)
    return load_params(_write(tmp_path, data))


def test_missing_band_field_names_band_and_field(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as err:
        _load_modified(tmp_path, lambda d: d["band"]["2"].pop("hl"))
    message = str(err.value)
    assert "band 2" in message and "'hl'" in message and "missing" in message


def test_missing_top_level_field_is_named(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="'pre_filter_start'"):
        _load_modified(tmp_path, lambda d: d.pop("pre_filter_start"))
    with pytest.raises(ParamsError, match="'band'"):
        _load_modified(tmp_path, lambda d: d.pop("band"))
    with pytest.raises(ParamsError, match="'bins'"):
        _load_modified(tmp_path, lambda d: d.pop("bins"))


@pytest.mark.parametrize(
    "modify,field,where",
    [
        (lambda d: d["band"]["3"].__setitem__("n_fft", "512"), "'n_fft'", "band 3"),
        (lambda d: d["band"]["1"].__setitem__("sr", 7350.0), "'sr'", "band 1"),
        (lambda d: d["band"]["4"].__setitem__("crop_stop", True), "'crop_stop'", "band 4"),
        (lambda d: d["band"]["2"].__setitem__("res_type", 3), "'res_type'", "band 2"),
        (lambda d: d["band"]["2"].__setitem__("res_type", "best"), "'res_type'", "band 2"),
        (lambda d: d.__setitem__("bins", "672"), "'bins'", "params"),
        (lambda d: d.__setitem__("mid_side", "yes"), "'mid_side'", "params"),
        (lambda d: d["band"]["4"].__setitem__("convert_channels", "surround"), "'convert_channels'", "band 4"),
    ],
)
def test_wrong_type_names_the_field(tmp_path: Path, modify, field: str, where: str) -> None:
    with pytest.raises(ParamsError) as err:
        _load_modified(tmp_path, modify)
    message = str(err.value)
    assert field in message and where in message


@pytest.mark.parametrize(
    "band",
    [
        {"1": "a", "2": "b"},
        {},
        [],
    ],
)
def test_band_must_be_a_non_empty_object_of_objects(tmp_path: Path, band) -> None:
    with pytest.raises(ParamsError, match="band"):
        _load_modified(tmp_path, lambda d: d.__setitem__("band", band))


def test_bad_band_numbering(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as err:
        _load_modified(tmp_path, lambda d: d["band"].__setitem__("5", d["band"].pop("4")))
    assert "'band'" in str(err.value) and "[1, 2, 3, 5]" in str(err.value)
    with pytest.raises(ParamsError, match="band numbers"):
        _load_modified(tmp_path, lambda d: d["band"].__setitem__("low", d["band"].pop("1")))
    with pytest.raises(ParamsError, match=r"1\.\.4"):
        _load_modified(tmp_path, lambda d: d["band"].__setitem__("0", d["band"].pop("1")))


def test_bins_must_be_a_multiple_of_16(tmp_path: Path) -> None:
    # 680 rows: enough for the 672 the bands fill, but not a multiple of 16
    with pytest.raises(ParamsError) as err:
        _load_modified(tmp_path, lambda d: d.update(bins=680))
    assert "'bins'" in str(err.value) and "multiple of 16" in str(err.value)


def test_bands_must_fit_in_bins(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="'bins'"):
        _load_modified(tmp_path, lambda d: d.update(bins=656))


def test_crop_stop_beyond_the_band_stft(tmp_path: Path) -> None:
    # band 3: n_fft 512 -> 257 rows; crop_stop 258 is one too many
    with pytest.raises(ParamsError) as err:
        _load_modified(tmp_path, lambda d: d["band"]["3"].update(crop_stop=258))
    message = str(err.value)
    assert "band 3" in message and "crop_stop" in message and "257" in message
    # exactly n_fft/2 + 1 is allowed by the band check (the row total then fails instead)
    band = BandParams(sr=14700, hl=160, n_fft=512, crop_start=17, crop_stop=257, res_type="polyphase")
    band.validate("x")


def test_top_level_sr_must_match_the_top_band(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="'sr'"):
        _load_modified(tmp_path, lambda d: d.update(sr=48000))


def test_non_positive_hop_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="band 2.*'hl'"):
        _load_modified(tmp_path, lambda d: d["band"]["2"].update(hl=0))


def test_upper_band_needs_hpf(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="hpf"):
        _load_modified(tmp_path, lambda d: d["band"]["4"].pop("hpf_stop"))
    with pytest.raises(ParamsError, match="lpf"):
        _load_modified(tmp_path, lambda d: (d["band"]["2"].pop("lpf_start"), d["band"]["2"].pop("lpf_stop")))


@pytest.mark.parametrize("text", ["{", "", "{'bins': 672}", "[1, 2]", "null"])
def test_invalid_json_is_a_params_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, text))
    assert "custom.json" in str(err.value)


def test_unused_flags_default_to_false_and_unknown_keys_are_kept(tmp_path: Path) -> None:
    p = _load_modified(tmp_path, lambda d: d.update(aggr_correction={"left": 0.1, "right": 0.0}))
    assert not any(getattr(p, flag) for flag in FLAGS)
    assert p.extra == {"aggr_correction": {"left": 0.1, "right": 0.0}}


# --- malformed files that load but cannot run --------------------------------------------------

# Each of these passes ModelParams.validate() but makes analysis/synthesis crash with a raw
# TypeError/IndexError. Either load_params() should reject it with a ParamsError naming the field,
# or the transforms should cope.
_LOADS_BUT_CRASHES = [
    pytest.param(
        "1band_sr44100_hl512", lambda d: d["band"]["1"].update(hpf_start=5), "hpf_stop",
        id="1band-hpf_start-without-hpf_stop",
    ),
    pytest.param("4band_v2", lambda d: d.update(pre_filter_stop=700), "pre_filter_stop", id="pre_filter_stop>bins+1"),
    pytest.param(
        "4band_v2", lambda d: d["band"]["2"].update(lpf_stop=500), "lpf_stop", id="lpf_stop>n_fft/2+1",
    ),
]


@pytest.mark.parametrize("base,modify,field", _LOADS_BUT_CRASHES)
def test_params_that_load_can_be_analysed_and_synthesised(tmp_path: Path, base, modify, field) -> None:
    from uvrsep.transforms import analyze, synthesize

    try:
        params = _load_modified(tmp_path, modify, base)
    except ParamsError as err:
        assert field in str(err)
        return
    wave = (np.random.default_rng(0).standard_normal((2, 8 * params.top.hl)) * 0.1).astype(np.float32)
    analysis = analyze(wave, params)
    out = synthesize(analysis.spec, params, analysis.high_end)
    assert out.shape == (2, params.top.hl * (analysis.frames - 1))
    assert math.isfinite(float(np.abs(out).max()))


@pytest.mark.parametrize(
    "name,grid", [("4band_44100_reverse", 4), ("4band_v2", 6), ("1band_sr44100_hl512", 1), ("3band_44100", 4)]
)
def test_sample_grid_is_where_every_band_has_a_sample(name, grid):
    """44100 → 22050 → 11025: every 4th top-rate sample; 44100 → 14700 → 7350: every 6th."""
    params = load_params(name)
    assert params.sample_grid == grid
    for band in params.bands:
        assert (grid * band.sr) % params.top.sr == 0
