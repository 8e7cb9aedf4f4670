"""Community style networks imported exactly: pytorch/examples checkpoints and ONNX Model
Zoo files written by the tests in their real layouts give the independent reference's
output; downloads try mirrors and verify SHA-256; wrong layouts are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.models import registry, store
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, make_photo, run_cli
from tests.models.reference import (
    export_opset9,
    export_zoo_onnx,
    old_style_state_dict,
    random_reference,
    reference_output,
)

FP32 = TransferOptions(device="cpu", precision="fp32")
#: On 0-255 outputs, fp32 rounding of the channels_last (ours) against the NCHW
#: (reference) convolutions: ~3e-3 at most; a wrong conversion is off by whole units.
ATOL = 1e-2


def ours(name_or_path: object, x: torch.Tensor) -> torch.Tensor:
    model = load_style_model(name_or_path, options=FP32)
    with torch.no_grad():
        return model.net(x)


@pytest.fixture(scope="module")
def reference() -> object:
    return random_reference(seed=3)


def test_pytorch_examples_checkpoint_gives_the_reference_output(reference: object, tmp_path: Path) -> None:
    torch.save(old_style_state_dict(reference), tmp_path / "candy.pth")  # with the old running stats
    installed = store.import_model(tmp_path / "candy.pth")
    assert installed == store.models_dir() / "candy.safetensors"
    x = torch.rand(2, 3, 64, 48) * 255
    expected = reference_output(reference, x)
    assert 0.02 < float((expected == 255).float().mean() + (expected == 0).float().mean()) < 0.9  # clamping is exercised
    torch.testing.assert_close(ours("candy", x), expected, atol=ATOL, rtol=0)
    meta = json.loads(installed.with_suffix(".json").read_text())
    assert meta["layout"] == "pytorch-examples" and meta["original_sha256"] == hashlib.sha256((tmp_path / "candy.pth").read_bytes()).hexdigest()
    assert meta["network"]["input_divisor"] == "1" and meta["network"]["output"] == "clamp"


def test_onnx_zoo_file_gives_the_reference_output_at_any_size(reference: object, tmp_path: Path) -> None:
    export_zoo_onnx(reference, tmp_path / "my-mosaic.onnx")  # not the zoo's own file name (that one is checksum-checked)
    graph = onnx.load(str(tmp_path / "my-mosaic.onnx"))
    assert graph.opset_import[0].version == 9 and graph.graph.input[0].name == "input1"
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    store.import_model(tmp_path / "my-mosaic.onnx", "mosaic")
    for shape in ((1, 3, 224, 224), (1, 3, 96, 160)):  # the fixed zoo size, and another one
        x = torch.rand(*shape) * 255
        torch.testing.assert_close(ours("mosaic", x), reference_output(reference, x), atol=ATOL, rtol=0)


def test_imported_model_stylises_photos_through_the_cli(reference: object, tmp_path: Path) -> None:
    torch.save(reference.state_dict(), tmp_path / "udnie.pth")
    result = run_cli("models", "import", str(tmp_path / "udnie.pth"), "--name", "udnie")
    assert result.returncode == 0 and "udnie.safetensors" in result.stdout, result.stderr
    listing = json.loads(run_cli("models", "list", "--json").stdout)
    assert [m["name"] for m in listing["installed"]] == ["udnie"] and len(listing["downloadable"]) == len(registry.MODELS)
    photo = make_photo(tmp_path / "p.png", size=(64, 48))
    result = run_cli("transfer", "--model", "udnie", str(photo), "-o", str(tmp_path / "out.png"), "--precision", "fp32",
                     "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    x = torch.from_numpy(np.asarray(Image.open(photo), dtype=np.float32)).permute(2, 0, 1)[None]
    expected = reference_output(reference, x)[0].permute(1, 2, 0).round().numpy()
    assert np.abs(np.asarray(Image.open(tmp_path / "out.png"), dtype=np.float32) - expected).max() <= 1
    assert run_cli("models", "path", "udnie").stdout.strip().endswith("udnie.safetensors")
    assert run_cli("models", "remove", "udnie").returncode == 0
    assert_user_error(run_cli("models", "path", "udnie"), "no installed style model 'udnie'")


def test_wrong_layouts_are_refused_naming_what_does_not_fit(reference: object, tmp_path: Path) -> None:
    state = reference.state_dict()
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(StyleforgeError, match="key 'extra.weight' does not fit"):
        store.import_model(tmp_path / "extra.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("res5")}, tmp_path / "short.pth")
    with pytest.raises(StyleforgeError, match="residuals.4.conv1.conv.bias"):
        store.import_model(tmp_path / "short.pth")
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3), torch.nn.Tanh())
    export_opset9(small, torch.rand(1, 3, 8, 8), tmp_path / "other.onnx")
    with pytest.raises(StyleforgeError, match=r"\(Tanh\) does not fit"):
        store.import_model(tmp_path / "other.onnx")
    (tmp_path / "text.onnx").write_text("not onnx")
    with pytest.raises(StyleforgeError, match="cannot read ONNX model"):
        store.import_model(tmp_path / "text.onnx")
    assert not store.models_dir().exists() or not any(store.models_dir().iterdir())


def test_download_tries_mirrors_and_verifies_sha256(reference: object, server: tuple[str, dict], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, routes = server
    export_zoo_onnx(reference, tmp_path / "candy-9.onnx")
    body = (tmp_path / "candy-9.onnx").read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    routes["/hf/candy-9.onnx"] = (body, None)
    routes["/short/candy-9.onnx"] = (body[:1000], len(body))  # a dropped connection
    routes["/changed/candy-9.onnx"] = (body[:-1] + b"\0", None)  # a file that is not the published one

    def spec(*urls: str) -> registry.ModelSpec:
        return registry.ModelSpec("candy", "candy-9.onnx", tuple(f"{url}{u}" for u in urls), digest, len(body), "onnx-zoo",
                                  "test zoo", "BSD-3-Clause")

    monkeypatch.setitem(registry.MODELS, "candy", spec("/gone/candy-9.onnx", "/short/candy-9.onnx", "/changed/candy-9.onnx"))
    with pytest.raises(StyleforgeError) as refused:
        store.download_model("candy", progress=False)
    message = str(refused.value)
    assert "HTTP 404" in message and "stopped after 1,000" in message and "checksum mismatch" in message
    assert "styleforge models import PATH/candy-9.onnx" in message
    assert not store.models_dir().exists() or not any(store.models_dir().rglob("*"))

    monkeypatch.setitem(registry.MODELS, "candy", spec("/gone/candy-9.onnx", "/hf/candy-9.onnx"))
    path = store.download_model("candy", progress=False)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["original_sha256"] == digest and meta["licence"] == "BSD-3-Clause" and meta["source"] == "test zoo"
    assert sorted(p.name for p in store.models_dir().iterdir()) == ["candy.json", "candy.safetensors"]
    x = torch.rand(1, 3, 48, 64) * 255
    torch.testing.assert_close(ours("candy", x), reference_output(reference, x), atol=ATOL, rtol=0)


def test_a_known_file_with_the_wrong_checksum_is_refused_on_import(reference: object, tmp_path: Path) -> None:
    torch.save(reference.state_dict(), tmp_path / "ignored.pth")
    (tmp_path / "udnie-9.onnx").write_bytes(b"x" * 100)  # the zoo's name, not its content
    with pytest.raises(StyleforgeError, match="checksum mismatch"):
        store.import_model(tmp_path / "udnie-9.onnx")


def test_registry_lists_the_zoo_files_with_their_published_checksums() -> None:
    zoo = {name: spec for name, spec in registry.MODELS.items() if spec.layout == "onnx-zoo"}
    assert set(zoo) == {"candy", "mosaic", "pointilism", "rain-princess", "udnie"}
    for spec in zoo.values():
        assert len(spec.sha256) == 64 and spec.size == 6_728_029 and len(spec.urls) >= 2
        assert all(u.endswith(spec.filename) for u in spec.urls)
    assert registry.MODELS["candy"].sha256.startswith("9d11a352")
    torch7 = [spec for spec in registry.MODELS.values() if spec.layout == "torch7-fast-neural-style"]
    assert len(torch7) == 10 and all(spec.sha256 is None and spec.urls[0].startswith("https://cs.stanford.edu/") for spec in torch7)
    assert {spec.filename for spec in torch7} >= {"la_muse.t7", "the_wave.t7", "composition_vii.t7"}
    assert registry.spec_for_file("la_muse.t7") is None  # two different files share that name


def test_a_zoo_file_runs_as_is_at_its_fixed_size(reference: object, tmp_path: Path) -> None:
    """``transfer --model candy-9.onnx`` without importing: ONNX Runtime runs the zoo graph at
    224x224; at that size the result is the reference's, at others it is resized in and out."""
    export_zoo_onnx(reference, tmp_path / "zoo.onnx")
    photo = make_photo(tmp_path / "p.png", size=(224, 224))
    result = run_cli("transfer", "--model", str(tmp_path / "zoo.onnx"), str(photo), "-o", str(tmp_path / "o.png"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "as-is at 224x224" in result.stdout
    x = torch.from_numpy(np.asarray(Image.open(photo), dtype=np.float32)).permute(2, 0, 1)[None]
    expected = reference_output(reference, x)[0].permute(1, 2, 0).round().numpy()
    assert np.abs(np.asarray(Image.open(tmp_path / "o.png"), dtype=np.float32) - expected).max() <= 1
    other = make_photo(tmp_path / "q.png", size=(100, 60))
    model = load_style_model(tmp_path / "zoo.onnx", options=FP32)
    assert model.stylize(Image.open(other)).size == (100, 60)
    with pytest.raises(StyleforgeError, match="cannot be tiled; import it"):
        model.stylize(Image.open(other), tile=32)
