"""ONNX export of the transform network and the classifier: round trips against PyTorch
at many shapes, the two tracing traps, metadata, and the exported files run through
``transfer`` and ``classify`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import styleforge as sf
from styleforge.deploy.export import export_classifier
from styleforge.errors import StyleforgeError
from styleforge.nets.onnx import OnnxTransformNet
from styleforge.transfer.model import load_style_model
from styleforge.vgg.onnx_classifier import OnnxClassifier
from tests.conftest import assert_user_error, make_photo, run_cli


@pytest.mark.parametrize("shape", [(1, 3, 64, 48), (2, 3, 37, 53), (3, 3, 100, 61), (1, 3, 17, 201), (1, 3, 6, 5), (1, 3, 1, 1)])
def test_style_round_trip_matches_pytorch_at_every_shape(style_model: Path, exported: Path, shape: tuple[int, ...]) -> None:
    """Batches hold different images; each is compared with PyTorch run on it alone."""
    net = load_style_model(style_model).net
    onnx_net = OnnxTransformNet(exported)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 255
    with torch.inference_mode():
        expected = torch.cat([net(x[i : i + 1]) for i in range(shape[0])])
    got = onnx_net(x)
    assert got.shape == expected.shape
    # Grey levels (0-255): float32 summation order only; 5e-3 is 2e-5 of the range. Tiny
    # images have few pixels per instance-norm mean, so rounding weighs more there.
    tolerance = 5e-3 if min(shape[2:]) >= 16 else 2e-2
    assert float((got - expected).abs().max()) < tolerance


def test_tracing_the_eager_network_fixes_the_batch_to_one(style_model: Path) -> None:
    """Why export_mode exists, measured with this torch: exported as it runs eagerly, the
    single-image batch-norm shortcut of instance norm fixes the graph's batch to 1 (trap
    a). The pad branch (trap b) is handled by torch 2.13's symbolic shapes for the
    current forward; export_mode pads unconditionally all the same, and the round trips
    above check odd sizes and batches of different images on the exported file."""
    from styleforge.deploy import export as export_module

    net = load_style_model(style_model).net.eval()
    batch, height, width = (torch.export.Dim(n, min=1 if n == "batch" else 5, max=4096) for n in ("batch", "height", "width"))
    data = export_module._export(net, torch.rand(1, 3, 64, 48) * 255, ["stylized"], {"x": {0: batch, 2: height, 3: width}})
    naive = onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim
    assert naive[0].dim_value == 1  # the batch was specialised away


def test_style_metadata_and_graph(exported: Path, style_model: Path) -> None:
    model = onnx.load(str(exported))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["styleforge_format"] == "styleforge-onnx-transformnet" and meta["style_image"] == "wave.jpg"
    assert meta["norm"] == "instance" and len(meta["source_sha256"]) == 64 and meta["styleforge_version"]
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["stylized"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]  # dynamic batch, height, width
    assert not list(exported.parent.glob("*.data"))  # self-contained
    assert sum(n.op_type == "InstanceNormalization" for n in model.graph.node) == 15


def test_classifier_export_gives_logits_and_probabilities(classifier_weights: Path, tmp_path: Path) -> None:
    report = export_classifier(str(classifier_weights), tmp_path / "vgg19.onnx")
    model = onnx.load(str(report.path))
    assert [o.name for o in model.graph.output] == ["logits", "probabilities"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["convention"])["name"] == "torchvision" and meta["input_size"] == "224"
    vgg = sf.load_vgg19(str(classifier_weights))
    onnx_vgg = sf.load_vgg19(str(report.path))
    assert isinstance(onnx_vgg, OnnxClassifier)
    images = [make_photo(tmp_path / f"{i}.png", size=(90 + i, 70), seed=i) for i in range(3)]
    pil = [Image.open(p).convert("RGB") for p in images]
    expected = vgg.probabilities(vgg.preprocess(pil)).numpy()
    np.testing.assert_allclose(onnx_vgg.probabilities(onnx_vgg.preprocess(pil)), expected, atol=1e-6)
    with pytest.raises(StyleforgeError, match="exported for 224x224"):
        onnx_vgg.preprocess(pil, size=256)
    with pytest.raises(StyleforgeError, match="feature extraction"):
        onnx_vgg.extract()


def test_cli_export_then_transfer_and_classify_on_onnx(style_model: Path, classifier_weights: Path, tmp_path: Path) -> None:
    onnx_model = tmp_path / "wave.onnx"
    done = run_cli("export", "--model", str(style_model), "-o", str(onnx_model), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["kind"] == "style model" and max(c["max_abs_diff"] for c in report["checks"]) < report["tolerance"]
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        make_photo(photos / f"p{i}.png", size=(41 + i, 30), seed=i)
    onnx_run = run_cli("transfer", "--model", str(onnx_model), str(photos), "-o", str(tmp_path / "a"), "--json")
    torch_run = run_cli("transfer", "--model", str(style_model), str(photos), "-o", str(tmp_path / "b"), "--precision", "fp32")
    assert onnx_run.returncode == 0 and torch_run.returncode == 0, onnx_run.stderr + torch_run.stderr
    assert "onnxruntime" in json.loads(onnx_run.stdout)["device"]
    for i in range(3):
        a = np.asarray(Image.open(tmp_path / "a" / "photos" / f"p{i}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / "b" / "photos" / f"p{i}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1  # 8-bit rounding of a < 1e-3 difference

    onnx_vgg = tmp_path / "vgg19.onnx"
    assert run_cli("export", "--classifier", "--weights", str(classifier_weights), "-o", str(onnx_vgg)).returncode == 0
    by_onnx = run_cli("classify", str(photos / "p0.png"), "--weights", str(onnx_vgg), "--json")
    by_torch = run_cli("classify", str(photos / "p0.png"), "--weights", str(classifier_weights), "--json")
    assert by_onnx.returncode == 0, by_onnx.stderr
    o, t = json.loads(by_onnx.stdout), json.loads(by_torch.stdout)
    assert o["engine"] == "onnxruntime" and [p["class_id"] for p in o["images"][0]["top_k"]] == [p["class_id"] for p in t["images"][0]["top_k"]]


def test_export_and_onnx_refusals(style_model: Path, exported: Path, classifier_weights: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(big)
    (tmp_path / "text.onnx").write_text("not onnx")
    cases = [
        (["export", "--model", str(style_model), "-o", str(tmp_path / "x.txt")], "needs the suffix .onnx"),
        (["export", "--model", str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "x.onnx")], "no such file"),
        (["export", "--classifier", "--weights", str(classifier_weights), "--size", "256", "-o", str(tmp_path / "v.onnx")],
         "takes 224x224 inputs"),
        (["export", "-o", str(tmp_path / "x.onnx")], "one of the arguments --model --classifier is required"),
        (["transfer", "--model", str(tmp_path / "text.onnx"), str(big), "-o", str(tmp_path / "o.png")], "cannot read ONNX model"),
        (["transfer", "--model", str(exported), str(big), "-o", str(tmp_path / "o.png"), "--runtime", "openvino", "--device", "cuda"],
         "runs on the CPU"),
        (["transfer", "--model", str(exported), str(big), "-o", str(tmp_path / "o.png"), "--compile"], "applies to PyTorch models"),
        (["classify", str(big), "--weights", str(exported)], "is not a VGG19 classifier exported by styleforge"),
    ]
    for argv, fragment in cases:
        assert_user_error(run_cli(*argv), fragment)
    assert not list(tmp_path.glob("x.*")) and not (tmp_path / "o.png").exists()
