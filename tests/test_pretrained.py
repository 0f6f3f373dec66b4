"""Registry, cache, verified downloads (from a local HTTP server), identification, safe loading."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest
import torch

from uvrsep import pretrained
from uvrsep.cli import main
from uvrsep.errors import ModelError
from uvrsep.nets import ASPPNetConfig, LSTMNetConfig, config_from_name
from uvrsep.pretrained import (
    UVR_HASH_TAIL_BYTES,
    download,
    get_entry,
    list_models,
    model_info,
    resolve_model,
    uvr_hash,
)
from uvrsep.testing import random_state_dict


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
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def model_bytes(tmp_path: Path, config=ASPPNetConfig(width=4), seed: int = 0) -> bytes:
    path = tmp_path / f"m{seed}.pth"
    torch.save(random_state_dict(config, seed), path)
    return path.read_bytes()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def registry(tmp_path, monkeypatch, server):
    """A registry of three small models served locally; cache in tmp_path."""
    good = model_bytes(tmp_path, seed=1)
    server.files = {"good.pth": good, "bad.pth": good, "cut.pth": good}
    server.truncate = {"cut.pth"}
    entry = lambda name, sha: dict(  # noqa: E731
        name=name, file=f"{name}.pth", url=server.url + f"{name}.pth", bytes=len(good), sha256=sha,
        arch="aspp_w4_b5_l4", params="1band_sr44100_hl1024", primary_stem="Instrumental",
        description="test", source="test",
    )
    data = {"models": [
        entry("good", hashlib.sha256(good).hexdigest()),
        entry("bad", "0" * 64),
        entry("cut", hashlib.sha256(good).hexdigest()),
        {**entry("gone", None), "url": server.url + "gone.pth"},
    ]}
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(data))
    monkeypatch.setenv("UVRSEP_REGISTRY", str(reg))
    monkeypatch.setenv("UVRSEP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UVRSEP_OFFLINE", raising=False)
    return tmp_path / "home" / "models"


def test_download_caches_and_second_use_makes_no_request(registry, server):
    path = download(get_entry("good"), progress=False)
    assert path == registry / "good.pth" and path.read_bytes() == server.files["good.pth"]
    assert server.requests == ["good.pth"]
    resolved = resolve_model("good", progress=False)
    assert resolved.path == path and resolved.arch == "aspp_w4_b5_l4"
    assert server.requests == ["good.pth"]  # the cache answered


def test_checksum_mismatch_leaves_nothing(registry):
    with pytest.raises(ModelError, match="checksum"):
        download(get_entry("bad"), progress=False)
    assert list(registry.iterdir()) == []


def test_interrupted_transfer_leaves_nothing(registry):
    with pytest.raises(ModelError, match="connection closed|incomplete"):
        download(get_entry("cut"), progress=False, timeout=5)
    assert list(registry.iterdir()) == []


def test_http_404(registry):
    with pytest.raises(ModelError, match="HTTP 404"):
        download(get_entry("gone"), progress=False)
    assert not registry.exists() or list(registry.iterdir()) == []


def test_offline_names_the_missing_file(registry, server, monkeypatch, capsys, tmp_path):
    with pytest.raises(ModelError, match="not cached .*good.pth.*offline"):
        resolve_model("good", offline=True)
    monkeypatch.setenv("UVRSEP_OFFLINE", "1")
    song = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(song, torch.zeros(1000, 2).numpy(), 44100)
    assert main(["split", str(song), "-m", "good", "-o", str(tmp_path / "out")]) == 2
    assert "offline" in capsys.readouterr().err
    assert server.requests == []


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"weight": Evil()}, path)
    with pytest.raises(ModelError, match="refused"):
        resolve_model(str(path), params="4band_v2")
    assert not marker.exists()


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
    assert uvr_hash(big) == hashlib.md5(data[-10_240_000:]).hexdigest()
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc" * 1000)
    assert uvr_hash(small) == hashlib.md5(b"abc" * 1000).hexdigest()


def test_hash_lookup_gives_params_and_stem(tmp_path, monkeypatch):
    path = tmp_path / "mystery.pth"
    path.write_bytes(model_bytes(tmp_path, seed=3))
    with pytest.raises(ModelError, match="unknown model .*--params"):
        resolve_model(str(path))
    digest = uvr_hash(path)
    monkeypatch.setattr(pretrained, "_model_data", lambda: {digest: {"vr_model_param": "4band_v3", "primary_stem": "No Echo"}})
    resolved = resolve_model(str(path))
    assert resolved.params.name == "4band_v3" and resolved.primary_stem == "No Echo" and resolved.uvr_hash == digest
    # explicit arguments win
    resolved = resolve_model(str(path), params="4band_v2", primary_stem="Vocals")
    assert (resolved.params.name, resolved.primary_stem) == ("4band_v2", "Vocals")


def test_unknown_name_suggests_close_names():
    with pytest.raises(ModelError, match="did you mean 2_HP-UVR"):
        resolve_model("2_HP-UV")


def test_lstm_bins_mismatch_is_reported(tmp_path):
    path = tmp_path / "lstm.pth"
    torch.save(random_state_dict(LSTMNetConfig(nout=8, nout_lstm=16, bins=672), 0), path)
    with pytest.raises(ModelError, match="bins"):
        resolve_model(str(path), params="1band_sr44100_hl1024")
    assert resolve_model(str(path), params="4band_v3").arch == "lstm_8_16_672"


def test_shipped_registry_lists_every_model(capsys):
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    uvr = json.loads((Path(__file__).resolve().parents[2] / "shared/reference/uvr_vr_download_list.json").read_text())
    rvc = json.loads((Path(__file__).resolve().parents[2] / "shared/reference/rvc_uvr5_weights.json").read_text())
    expected = {f[:-4] for f in uvr["vr_download_list"].values()} | {f["file"][:-4] for f in rvc["files"]}
    assert {row["name"] for row in rows} == expected
    assert sum(row["recommended"] for row in rows) == 1
    for row in rows:
        assert row["url"].startswith("https://") and row["url"].endswith(row["file"])
        if row["source"] == "rvc":
            assert len(row["sha256"]) == 64 and row["bytes"] > 0
    assert len(list_models()) == len(expected)


@pytest.mark.parametrize(
    "config",
    [config_from_name("31191"), config_from_name("33966"), config_from_name("123812"),
     config_from_name("129605"), LSTMNetConfig(48, 128, 672)],
    ids=lambda c: c.arch_name,
)
def test_models_info_reports_the_architecture(tmp_path, capsys, config):
    path = tmp_path / "model.pth"
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in random_state_dict(config, 0).items()}
    torch.save(state, path)  # the fp16 form RVC ships
    assert main(["models", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == config.arch_name and info["dtype"] == "float16"
    assert info["uvr_hash"] == uvr_hash(path)
    assert model_info(str(path))["parameters"] > 0
