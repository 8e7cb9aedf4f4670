"""The weights cache and verified downloads (served from a loopback HTTP server)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from styleforge.errors import StyleforgeError
from styleforge.utils.download import download_file
from styleforge.vgg.weights import registry, store
from styleforge.vgg.weights.formats import read_safetensors, read_weights_file
from styleforge.vgg.weights.registry import REGISTRY, WeightSpec


def test_cache_location_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLEFORGE_HOME", str(tmp_path / "sf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.weights_dir() == tmp_path / "sf" / "weights"
    monkeypatch.delenv("STYLEFORGE_HOME")
    assert registry.weights_dir() == tmp_path / "xdg" / "styleforge" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert registry.weights_dir() == tmp_path / "home" / ".cache" / "styleforge" / "weights"


def test_download_verifies_sha256_prefix_and_renames(server: tuple[str, dict], tmp_path: Path) -> None:
    url, routes = server
    body = b"weights" * 100_000
    routes["/w.bin"] = (body, None)
    digest = hashlib.sha256(body).hexdigest()
    result = download_file(f"{url}/w.bin", tmp_path / "w.bin", sha256_prefix=digest[:8], progress=True)
    assert result.path.read_bytes() == body and result.sha256 == digest
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]


@pytest.mark.parametrize("case", ["bad-sha", "bad-md5", "truncated", "missing"])
def test_failed_downloads_leave_nothing_behind(server: tuple[str, dict], tmp_path: Path, case: str) -> None:
    url, routes = server
    body = b"x" * 50_000
    routes["/ok"] = (body, None)
    routes["/cut"] = (body, len(body) * 2)
    path = {"truncated": "/cut", "missing": "/absent"}.get(case, "/ok")
    kwargs = {"bad-sha": {"sha256_prefix": "00000000"}, "bad-md5": {"md5": "0" * 32}}.get(case, {})
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(StyleforgeError) as info:
        download_file(f"{url}{path}", dest, progress=False, timeout=5, **kwargs)
    assert not dest.parent.exists()  # not even the folder the download made
    assert {"bad-sha": "checksum mismatch", "bad-md5": "MD5", "truncated": "stopped after", "missing": "HTTP 404"}[case] in str(info.value)


def test_progress_lines_when_not_a_terminal(server: tuple[str, dict], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url, routes = server
    routes["/big"] = (b"y" * (3 << 20), None)
    download_file(f"{url}/big", tmp_path / "big", progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1] == "downloading big: 3.0 MiB / 3.0 MiB (100%)"


def test_download_registry_weights_converts_into_cache(
    server: tuple[str, dict], weight_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, routes = server
    body = weight_files["pth"].read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    routes["/models/tiny-vgg.pth"] = (body, None)
    spec = WeightSpec("vgg19", f"{url}/models/tiny-vgg.pth", "tiny-vgg.pth", len(body), "test", sha256_prefix=digest[:8])
    monkeypatch.setitem(REGISTRY, "vgg19", spec)
    path = store.download_weights("vgg19", progress=False)
    assert path == registry.weights_dir() / "vgg19.safetensors"
    cached = read_safetensors(path)
    original = read_weights_file(weight_files["pth"])
    for key in original.tensors:
        np.testing.assert_array_equal(cached.tensors[key], original.tensors[key])
    assert cached.extra["source_sha256"] == digest and cached.extra["source_url"] == spec.url
    assert cached.convention.name == "torchvision"
    assert not (registry.downloads_dir() / "tiny-vgg.pth").exists()  # original removed after conversion


def test_offline_download_says_how_to_import(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = WeightSpec("vgg19", "http://127.0.0.1:9/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth", 574_673_361, "t", sha256_prefix="dcbb9e9d")
    monkeypatch.setitem(REGISTRY, "vgg19", spec)
    with pytest.raises(StyleforgeError, match=r"offline.*styleforge weights import PATH/vgg19-dcbb9e9d.pth"):
        store.download_weights("vgg19", progress=False)
    assert not any(registry.downloads_dir().glob("*"))


def test_import_list_path_remove(weight_files: dict[str, Path]) -> None:
    path = store.import_weights(weight_files["mat"])
    assert path.name == "tiny_vgg.safetensors"
    entries = {e.name: e for e in store.list_weights()}
    assert entries["tiny_vgg"].cached and "MatConvNet tiny_vgg.mat" in entries["tiny_vgg"].description
    assert not entries["vgg19"].cached and not entries["vgg19-matconvnet"].cached
    assert store.weights_path("tiny_vgg") == path
    bundle = store.load_bundle("tiny_vgg")
    assert bundle.convention.name == "matconvnet" and bundle.extra["source_file"] == "tiny_vgg.mat"
    assert store.remove_weights("tiny_vgg") == path and not path.exists()
    with pytest.raises(StyleforgeError, match="unknown weights 'tiny_vgg'"):
        store.weights_path("tiny_vgg")


def test_import_under_registry_name_checks_the_published_checksum(weight_files: dict[str, Path]) -> None:
    with pytest.raises(StyleforgeError, match="reserved for vgg19-dcbb9e9d.pth"):
        store.import_weights(weight_files["pth"], name="vgg19")
    assert store.default_import_name(Path("/x/vgg19-dcbb9e9d.pth")) == "vgg19"
    assert store.default_import_name(Path("imagenet-vgg-verydeep-19.mat")) == "vgg19-matconvnet"


def test_missing_registry_weights_error_names_url_size_and_commands() -> None:
    with pytest.raises(StyleforgeError) as info:
        store.load_bundle("vgg19")
    message = str(info.value)
    for fragment in ("styleforge weights download vgg19", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                     "574.7 MB", "styleforge weights import PATH/vgg19-dcbb9e9d.pth"):
        assert fragment in message


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 65])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(StyleforgeError):
        store.cached_path(name)


def test_a_folder_in_the_cache_is_not_weights(isolated_home: Path) -> None:
    from styleforge.vgg.weights.registry import weights_dir
    from styleforge.vgg.weights.store import list_weights, weights_path

    (weights_dir() / "stray.safetensors").mkdir(parents=True)
    assert "stray" not in {entry.name for entry in list_weights()}
    with pytest.raises(StyleforgeError) as info:
        weights_path("stray")
    assert "unknown weights 'stray'" in str(info.value) and "(known: vgg19, vgg19-matconvnet)" in str(info.value)
