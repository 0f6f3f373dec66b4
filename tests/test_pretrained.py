"""Registry, cache, verified downloads (from a local HTTP server), identification, safe loading."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from uvrsep import pretrained
from uvrsep.cli import main
from uvrsep.cli_models import models_app
from uvrsep.errors import ModelError
from uvrsep.nets import ASPPNetConfig, LSTMNetConfig, build_net, config_from_name, detect_architecture
from uvrsep.params import list_params, load_params
from uvrsep.pretrained import (
    UVR_HASH_TAIL_BYTES,
    UnknownModelError,
    download,
    get_entry,
    home_dir,
    is_cached,
    is_offline,
    list_models,
    lookup_hash,
    model_info,
    models_dir,
    resolve_model,
    uvr_hash,
)
from uvrsep.testing import random_state_dict

from .conftest import DATA, load_keys

TINY = ASPPNetConfig(width=4)


class _Server:
    """A 127.0.0.1 HTTP server serving ``files`` (name → bytes); counts requests. ``truncate``
    names files sent with a Content-Length larger than the body, then the connection closed."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                name = self.path.lstrip("/")
                server.requests.append(name)
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in server.truncate else body)
                if name in server.truncate:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def model_bytes(tmp_path: Path, config=TINY, seed: int = 0) -> bytes:
    path = tmp_path / f"m{seed}.pth"
    torch.save(random_state_dict(config, seed), path)
    return path.read_bytes()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def _entry(server: _Server, name: str, body: bytes, **overrides) -> dict:
    return {
        "name": name, "file": f"{name}.pth", "url": server.url + f"{name}.pth", "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(), "arch": TINY.arch_name, "params": "1band_sr44100_hl1024",
        "primary_stem": "Instrumental", "description": "test", "source": "test", **overrides,
    }


@pytest.fixture
def registry(tmp_path, monkeypatch, server):
    """A registry of small models served locally; cache in tmp_path/home/models."""
    good = model_bytes(tmp_path, seed=1)
    server.files = {name: good for name in ("good", "bad", "cut", "bare", "pinned", "wrongarch", "Rec")}
    server.files = {f"{name}.pth": body for name, body in server.files.items()}
    server.truncate = {"cut.pth"}
    models = [
        _entry(server, "good", good),
        _entry(server, "bad", good, sha256="0" * 64),
        _entry(server, "cut", good),
        _entry(server, "gone", good, sha256=None),
        # no size, no sha256: verified by UVR's hash table, else by a safe load of the right arch
        _entry(server, "bare", good, sha256=None, bytes=None),
        _entry(server, "pinned", good, sha256=None, bytes=None, uvr_hash="0" * 32),
        _entry(server, "wrongarch", good, sha256=None, bytes=None, arch="123812"),
        _entry(server, "Rec", good, recommended=True, primary_stem="Vocals"),
    ]
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"models": models}))
    monkeypatch.setenv("UVRSEP_REGISTRY", str(reg))
    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UVRSEP_OFFLINE", raising=False)
    return tmp_path / "home" / "models"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- downloads -----------------------------------------------------------------------------------


def test_download_caches_and_second_use_makes_no_request(registry, server):
    path = download(get_entry("good"), progress=False)
    assert path == registry / "good.pth" and path.read_bytes() == server.files["good.pth"]
    assert server.requests == ["good.pth"]
    assert is_cached(get_entry("good"))
    resolved = resolve_model("good", progress=False)
    assert resolved.path == path and resolved.arch == TINY.arch_name and resolved.source == "test"
    assert download(get_entry("GOOD.pth"), progress=False) == path
    assert server.requests == ["good.pth"]  # the cache answered
    assert leftovers(registry) == ["good.pth"]


def test_download_goes_through_a_hidden_part_file(registry, monkeypatch):
    seen = []
    real_verify = pretrained._verify

    def spy(entry, path):
        seen.append(Path(path))
        real_verify(entry, path)

    monkeypatch.setattr(pretrained, "_verify", spy)
    download(get_entry("good"), progress=False)
    assert len(seen) == 1 and seen[0].parent == registry
    assert re.fullmatch(r"\.good\.pth\..+\.part", seen[0].name)
    assert not seen[0].exists()


def test_checksum_mismatch_leaves_nothing(registry):
    with pytest.raises(ModelError, match=r"download bad from http://127\.0\.0\.1:\d+/bad\.pth: checksum mismatch"):
        download(get_entry("bad"), progress=False)
    assert leftovers(registry) == []


def test_interrupted_transfer_leaves_nothing(registry):
    with pytest.raises(ModelError, match="connection closed|incomplete"):
        download(get_entry("cut"), progress=False, timeout=5)
    assert leftovers(registry) == []


def test_http_404(registry):
    with pytest.raises(ModelError, match=r"download gone from http://\S+/gone\.pth: HTTP 404 .*-m PATH"):
        download(get_entry("gone"), progress=False)
    assert leftovers(registry) == []


def test_size_announced_by_the_server_is_checked_first(registry, server, tmp_path, monkeypatch):
    reg = json.loads(Path(os.environ["UVRSEP_REGISTRY"]).read_text())
    reg["models"][0]["bytes"] += 1
    Path(os.environ["UVRSEP_REGISTRY"]).write_text(json.dumps(reg))
    with pytest.raises(ModelError, match=r"the server offers \d+ bytes, expected \d+"):
        download(get_entry("good"), progress=False)
    assert leftovers(registry) == []


def test_keyboard_interrupt_mid_transfer_leaves_nothing(registry, monkeypatch):
    import tqdm

    def interrupt(self, n=1):
        raise KeyboardInterrupt

    monkeypatch.setattr(tqdm.tqdm, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download(get_entry("good"), progress=False)
    assert leftovers(registry) == []


def test_failed_forced_download_keeps_the_cached_file(registry, server):
    path = download(get_entry("good"), progress=False)
    original = path.read_bytes()
    server.files["good.pth"] = original[:-10] + b"0123456789"  # same size, altered content
    with pytest.raises(ModelError, match="checksum mismatch"):
        download(get_entry("good"), force=True, progress=False)
    assert path.read_bytes() == original and leftovers(registry) == ["good.pth"]


def test_wrong_size_in_cache_is_downloaded_again(registry, server):
    registry.mkdir(parents=True)
    (registry / "good.pth").write_bytes(b"stale")
    assert not is_cached(get_entry("good"))
    download(get_entry("good"), progress=False)
    assert (registry / "good.pth").read_bytes() == server.files["good.pth"]


def test_entries_without_sha256_are_checked_by_uvr_hash_or_by_a_safe_load(registry, server, monkeypatch):
    # unknown hash, no checksum: accepted because it loads safely as the registry's arch
    assert download(get_entry("bare"), progress=False).is_file()
    # ... refused when the architecture differs from the registry's
    with pytest.raises(ModelError, match="unknown file .*expected 123812"):
        download(get_entry("wrongarch"), progress=False)
    # ... accepted when UVR's table knows the file, whatever the arch field says
    digest = hashlib.md5(server.files["wrongarch.pth"]).hexdigest()
    monkeypatch.setattr(pretrained, "_model_data", lambda: {digest: {"vr_model_param": "4band_v2", "primary_stem": "Vocals"}})
    assert download(get_entry("wrongarch"), progress=False).is_file()
    # a registry uvr_hash pins the exact file
    with pytest.raises(ModelError, match=f"UVR hash {digest}, expected 0+"):
        download(get_entry("pinned"), progress=False)
    assert leftovers(registry) == ["bare.pth", "wrongarch.pth"]


def test_non_model_without_checksum_is_refused(registry, server):
    server.files["bare.pth"] = b"<html>not a model</html>"
    with pytest.raises(ModelError, match="not a usable model"):
        download(get_entry("bare"), progress=False)
    assert leftovers(registry) == []


def test_offline_names_the_missing_file(registry, server, monkeypatch, capsys, tmp_path):
    with pytest.raises(ModelError, match=r"model good is not cached at \S+good\.pth and --offline/UVRSEP_OFFLINE forbids"):
        resolve_model("good", offline=True)
    monkeypatch.setenv("UVRSEP_OFFLINE", "1")
    assert is_offline() and is_offline(False)  # the CLI's False default does not override the environment
    with pytest.raises(ModelError, match="uvrsep models download good"):
        download(get_entry("good"), offline=False)
    song = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(song, torch.zeros(1000, 2).numpy(), 44100)
    assert main(["split", str(song), "-m", "good", "-o", str(tmp_path / "out")]) == 2
    assert "offline" in capsys.readouterr().err
    assert server.requests == []
    monkeypatch.setenv("UVRSEP_OFFLINE", "0")
    assert not is_offline()


# -- cache location and registry lookups ---------------------------------------------------------


def test_home_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path / "h"))
    assert home_dir() == tmp_path / "h" and models_dir() == tmp_path / "h" / "models"
    monkeypatch.delenv("UVRSEP_HOME")
    monkeypatch.setattr(pretrained.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert home_dir() == tmp_path / "xdg" / "uvrsep"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert home_dir() == Path.home() / ".cache" / "uvrsep"
    monkeypatch.setattr(pretrained.sys, "platform", "darwin")
    assert home_dir() == Path.home() / "Library" / "Caches" / "uvrsep"
    monkeypatch.setattr(pretrained.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert home_dir() == tmp_path / "local" / "uvrsep"


def test_get_entry_is_case_insensitive():
    assert get_entry("2_hp-uvr").name == "2_HP-UVR"
    assert get_entry("UVR-De-Echo-Normal.PTH").name == "UVR-De-Echo-Normal"
    assert get_entry("hp5_only_main_vocal.pth").source == "rvc"
    assert get_entry("nope") is None


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean 2_HP-UVR.*uvrsep models list"):
        resolve_model("2_HP-UV")
    with pytest.raises(ModelError, match="model file not found"):
        resolve_model("missing/dir/model.pth")


def test_broken_custom_registry_is_one_line_error(tmp_path, monkeypatch):
    bad = tmp_path / "r.json"
    bad.write_text("{not json")
    monkeypatch.setenv("UVRSEP_REGISTRY", str(bad))
    with pytest.raises(ModelError, match="UVRSEP_REGISTRY"):
        list_models()
    bad.write_text(json.dumps({"models": [{"name": "x"}]}))
    with pytest.raises(ModelError, match="lacks file, url"):
        list_models()


# -- the default model ---------------------------------------------------------------------------


def test_default_model_is_the_bundled_one_until_the_recommended_one_is_cached(registry, server):
    bundled = resolve_model(None, offline=True)
    assert (bundled.name, bundled.source) == ("bundled", "bundled")
    assert (bundled.params.name, bundled.primary_stem, bundled.arch) == ("4band_v2", "Instrumental", "33966")
    assert server.requests == []  # never a silent download
    download(get_entry("rec"), progress=False)
    resolved = resolve_model(None, offline=True)
    assert resolved.name == "Rec" and resolved.primary_stem == "Vocals"
    assert server.requests == ["Rec.pth"]


def test_no_default_model_without_bundle_or_cache(registry, monkeypatch):
    monkeypatch.setattr(pretrained, "bundled_model_path", lambda: None)
    with pytest.raises(ModelError, match="no model given and no default model is available offline"):
        resolve_model(None, offline=True)


def test_bundled_model_is_compact_and_official():
    """<= 20 MB, fp16, the exact keys/shapes of UVR's 33966KB nets (loads in the original code)."""
    from uvrsep.pretrained import bundled_model_path

    path = bundled_model_path()
    assert path is not None and path.stat().st_size <= 20 * 1024 * 1024
    state = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    official = {name: tuple(shape) for name, shape, *_ in load_keys("keys_33966.json")}
    assert {k: tuple(v.shape) for k, v in state.items()} == official
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["params"] == "4band_v2" and meta["primary_stem"] == "Instrumental"


# -- safe loading, identification ----------------------------------------------------------------


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"weight": Evil()}, path)
    with pytest.raises(ModelError, match="refused"):
        resolve_model(str(path), params="4band_v2")
    with pytest.raises(ModelError, match="refused"):
        model_info(str(path))
    assert not marker.exists()


def test_malicious_download_is_refused_and_does_not_run(registry, server, tmp_path):
    marker = tmp_path / "pwned2"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pth"
    torch.save({"weight": Evil()}, evil)
    server.files["bare.pth"] = evil.read_bytes()
    with pytest.raises(ModelError, match="refused"):
        download(get_entry("bare"), progress=False)
    assert not marker.exists() and leftovers(registry) == []


def test_truncated_and_non_torch_files(tmp_path):
    good = tmp_path / "g.pth"
    good.write_bytes(model_bytes(tmp_path))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:2000])
    text = tmp_path / "text.pth"
    text.write_text("hello")
    for path in (cut, text):
        with pytest.raises(ModelError, match=path.name):
            resolve_model(str(path), params="4band_v2")


def test_uvr_hash_of_large_and_small_files(tmp_path):
    big = tmp_path / "big.bin"
    data = os.urandom(UVR_HASH_TAIL_BYTES + 1234)
    big.write_bytes(data)
    assert uvr_hash(big) == hashlib.md5(data[-10_240_000:]).hexdigest() == hashlib.md5(data[1234:]).hexdigest()
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc" * 1000)
    assert uvr_hash(small) == hashlib.md5(b"abc" * 1000).hexdigest()


def test_hash_lookup_gives_params_and_stem(tmp_path, monkeypatch):
    path = tmp_path / "mystery.pth"
    path.write_bytes(model_bytes(tmp_path, seed=3))
    with pytest.raises(ModelError, match=r"unknown model \(UVR hash [0-9a-f]{32}\); pass --params NAME \(one of: .*4band_v2"):
        resolve_model(str(path))
    digest = uvr_hash(path)
    monkeypatch.setattr(pretrained, "_model_data", lambda: {digest: {"vr_model_param": "4band_v3", "primary_stem": "No Echo"}})
    resolved = resolve_model(str(path))
    assert resolved.params.name == "4band_v3" and resolved.primary_stem == "No Echo" and resolved.uvr_hash == digest
    assert resolved.source == "uvr"
    # explicit arguments win
    resolved = resolve_model(str(path), params="4band_v2", primary_stem="Vocals")
    assert (resolved.params.name, resolved.primary_stem) == ("4band_v2", "Vocals")
    info = model_info(str(path))
    assert info["known"] and info["params"] == "4band_v3" and info["primary_stem"] == "No Echo"


def test_unknown_hash_with_params_defaults_to_instrumental(tmp_path):
    path = tmp_path / "mine.pth"
    path.write_bytes(model_bytes(tmp_path, seed=4))
    resolved = resolve_model(str(path), params="4band_v2")
    assert resolved.primary_stem == "Instrumental" and resolved.source == "file" and resolved.name == "mine"


def test_local_copy_of_a_registry_file_uses_the_registry(tmp_path):
    """A file named like a registry model, with its architecture, gets its params and stem."""
    path = tmp_path / "HP3_all_vocals.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in random_state_dict(config_from_name("123812"), 0).items()}, path)
    resolved = resolve_model(str(path))
    assert (resolved.name, resolved.params.name, resolved.primary_stem) == ("HP3_all_vocals", "4band_v2", "Vocals")
    # a different net under a registry name is not taken for the registry model
    torch.save(random_state_dict(TINY, 0), path)
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model(str(path))


def test_lstm_bins_mismatch_is_reported(tmp_path):
    path = tmp_path / "lstm.pth"
    torch.save(random_state_dict(LSTMNetConfig(nout=8, nout_lstm=16, bins=672), 0), path)
    with pytest.raises(ModelError, match="bins"):
        resolve_model(str(path), params="1band_sr44100_hl1024")
    assert resolve_model(str(path), params="4band_v3").arch == "lstm_8_16_672"


# -- the shipped registry and model data ---------------------------------------------------------


def test_shipped_registry_lists_every_model():
    result = CliRunner().invoke(models_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    uvr = json.loads((DATA / "reference" / "uvr_vr_download_list.json").read_text())
    rvc = json.loads((DATA / "reference" / "rvc_uvr5_weights.json").read_text())
    expected = {f[:-4] for f in uvr["vr_download_list"].values()} | {f["file"][:-4] for f in rvc["files"]}
    assert [row["name"] for row in rows] == [e.name for e in list_models()]
    assert {row["name"] for row in rows} == expected and len(rows) == len(expected)
    assert sum(row["recommended"] for row in rows) == 1
    rvc_by_file = {f["file"]: f for f in rvc["files"]}
    for row in rows:
        assert row["url"].startswith("https://") and row["url"].endswith("/" + row["file"])
        assert row["file"] == row["name"] + ".pth" and len(row["stems"]) == 2 and row["cached"] is False
        if row["source"] == "rvc":
            assert (row["bytes"], row["sha256"]) == (rvc_by_file[row["file"]]["bytes"], rvc_by_file[row["file"]]["sha256"])
            assert row["url"] == "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/uvr5_weights/" + row["file"]
        else:
            assert row["source"] == "uvr" and row["url"] == uvr["single_model_repo_url"] + row["file"]


def test_shipped_registry_is_consistent_with_uvr_model_data():
    """Every entry's params exist and fit its architecture; UVR entries agree with UVR's table."""
    records = json.loads((Path(pretrained.__file__).parent / "model_data.json").read_text())
    assert len(records) == 30
    uvr_pairs = {(r["vr_model_param"], r["primary_stem"]) for r in records.values()}
    for entry in list_models():
        assert entry.params in list_params(), entry.name
        bins = load_params(entry.params).bins
        config = config_from_name(entry.arch, bins=bins)
        with torch.device("meta"):
            build_net(config).check_bins(bins)
        if entry.arch.startswith("lstm_"):
            assert entry.arch == f"lstm_{entry.nout}_{entry.nout_lstm}", entry.name
        else:
            assert entry.nout is None and entry.nout_lstm is None
        if entry.source == "uvr":
            assert (entry.params, entry.primary_stem) in uvr_pairs, entry.name
        if entry.uvr_hash:
            record = lookup_hash(entry.uvr_hash)
            assert record["vr_model_param"] == entry.params and record["primary_stem"] == entry.primary_stem
            assert record.get("nout", entry.nout) == entry.nout
        if entry.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)


def test_models_list_table_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(models_app, ["list"])
    assert result.exit_code == 0 and "HP5_only_main_vocal *" in result.stdout and "no_echo/echo" in result.stdout
    result = runner.invoke(models_app, ["path"])
    assert result.exit_code == 0 and result.stdout.strip() == str(tmp_path / "models")


# -- `models download` / `models info` -----------------------------------------------------------


def test_models_download_command(registry, server):
    runner = CliRunner()
    result = runner.invoke(models_app, ["download", "good", "nope"])
    assert result.exit_code == 2 and "unknown model 'nope'" in result.stderr and server.requests == []
    result = runner.invoke(models_app, ["download", "-q", "good", "gone"])
    assert result.exit_code == 1 and "HTTP 404" in result.stderr
    assert result.stdout.strip() == str(registry / "good.pth")
    result = runner.invoke(models_app, ["download", "cut", "--offline"])
    assert result.exit_code == 1 and "forbids downloading" in result.stderr


def test_models_info_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(models_app, ["info", "2_HP-UV"])
    assert result.exit_code == 2 and result.stderr.startswith("error: model '2_HP-UV'")
    junk = tmp_path / "junk.pth"
    junk.write_text("junk")
    result = runner.invoke(models_app, ["info", str(junk)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "junk.pth" in result.stderr


def test_models_info_of_a_registry_model_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path))
    result = CliRunner().invoke(models_app, ["info", "UVR-De-Echo-Normal", "--json"])
    info = json.loads(result.stdout)
    assert info["path"] is None and info["cached"] is False and info["arch"] == "lstm_48_128"
    assert (info["params"], info["primary_stem"], info["uvr_hash"]) == ("4band_v3", "No Echo", "f200a145434efc7dcf0cd093f517ed52")


def test_models_info_identifies_a_renamed_file_by_checksum(registry, tmp_path):
    path = tmp_path / "renamed.pth"
    path.write_bytes(Path(download(get_entry("good"), progress=False)).read_bytes())
    info = model_info(str(path))
    assert info["name"] == "good" and info["known"] and info["params"] == "1band_sr44100_hl1024"
    assert info["cached"] is False and model_info("good")["cached"] is True


@pytest.mark.parametrize(
    "config",
    [config_from_name("31191"), config_from_name("33966"), config_from_name("123812"),
     config_from_name("129605"), LSTMNetConfig(48, 128, 672), LSTMNetConfig(16, 128, 1024)],
    ids=lambda c: c.arch_name,
)
def test_models_info_reports_the_architecture(tmp_path, capsys, config):
    path = tmp_path / "model.pth"
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in random_state_dict(config, 0).items()}
    torch.save(state, path)  # the fp16 form RVC ships
    assert main(["models", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == config.arch_name and info["dtype"] == "float16"
    assert info["uvr_hash"] == uvr_hash(path) and info["bytes"] == path.stat().st_size
    assert info["known"] is False and info["params"] is None
    assert info["parameters"] == sum(p.numel() for p in build_net(config).parameters())


def test_537238_is_detected_without_materialising_it():
    """The HP2 net (135 M parameters, ~540 MB in fp32) is detected from a meta-device state dict."""
    with torch.device("meta"):
        net = build_net(config_from_name("537238"))
    state = net.state_dict()
    assert detect_architecture(state).arch_name == "537238"
    assert 130e6 < sum(p.numel() for p in net.parameters()) < 140e6
