"""AdaIN models exported to ONNX (one graph for any style: the style's statistics are
inputs, and the graph reports an input's own statistics) and quantised to INT8: ONNX
Runtime agrees with PyTorch through ``transfer`` (styles blended, alpha, tiles), the CLI
exports and stylises, and misuse is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import styleforge as sf
from styleforge.config import QuantizeOptions, TransferOptions
from styleforge.deploy.export import export_style_model
from styleforge.deploy.quantize import quantize_model
from styleforge.models.files import save_style_model
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, make_photo, run_cli
from tests.synthetic import random_adain_network


@pytest.fixture(scope="module")
def model_file(weight_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = random_adain_network(sf.load_vgg19(str(weight_files["pth"])), seed=5)
    return save_style_model(net, tmp_path_factory.mktemp("adain-export") / "adain.safetensors", {"options": {"image_size": 32}})


@pytest.fixture(scope="module")
def exported(model_file: Path) -> Path:
    return export_style_model(model_file, model_file.with_suffix(".onnx")).path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("adain-images")
    return {name: make_photo(folder / f"{name}.png", size, seed=seed)
            for name, size, seed in (("photo", (90, 70), 1), ("wave", (64, 80), 2), ("scream", (72, 56), 3), ("big", (200, 150), 4))}


def _stylise(model: Path, photo: Path, tile: int | None = None, **options: object) -> np.ndarray:
    opts = TransferOptions(device="cpu", precision="fp32", **options)  # type: ignore[arg-type]
    return np.asarray(load_style_model(model, options=opts).stylize(Image.open(photo), tile=tile)).astype(np.float32)


def test_the_graph_takes_the_style_as_inputs(exported: Path) -> None:
    model = onnx.load(str(exported))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["styleforge_format"] == "styleforge-onnx-adain" and meta["channels"] == "8"  # the tiny VGG's conv4_1
    assert [i.name for i in model.graph.input] == ["image", "style_mean", "style_std", "alpha", "content_mean", "content_std", "freeze"]
    assert [o.name for o in model.graph.output] == ["stylized", "image_mean", "image_std"]


@pytest.mark.parametrize("options", [
    {"styles": ("wave",)},
    {"styles": ("wave", "scream"), "style_weights": "wave:1,1:2", "alpha": 0.6, "style_size": 48},
])
def test_onnx_runtime_matches_pytorch_through_transfer(model_file: Path, exported: Path, images: dict[str, Path], options: dict) -> None:
    options = {**options, "styles": tuple(str(images[s]) for s in options["styles"])}
    torch_out = _stylise(model_file, images["photo"], **options)
    onnx_out = _stylise(exported, images["photo"], **options)
    assert np.abs(onnx_out - torch_out).max() <= 1.0


def test_tiles_of_the_onnx_model_share_the_whole_images_statistics(model_file: Path, exported: Path, images: dict[str, Path]) -> None:
    options = {"styles": (str(images["wave"]),), "tile_overlap": 16}
    whole = _stylise(model_file, images["big"], **options)
    tiled = _stylise(exported, images["big"], tile=64, **options)
    assert np.abs(tiled - whole).mean() < 0.05 and np.abs(tiled - whole).max() <= 2


def test_int8_quantised_model_stays_close(exported: Path, images: dict[str, Path], tmp_path: Path) -> None:
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i in range(4):
        make_photo(calibration / f"c{i}.png", (70 + 5 * i, 60), seed=40 + i)
    out = tmp_path / "adain-int8.onnx"
    report = quantize_model(QuantizeOptions(mean=(0.0,), std=(1.0,), crop=(48, 48), original_models_path=str(exported),
                                            save_model_path=str(out), data_path=str(calibration), batch_size=2, num_runs=2,
                                            output_tensor_names=("stylized",), channel_quantization=True))
    assert report.quantized_nodes > 0
    options = {"styles": (str(images["wave"]),)}
    float_out, int8_out = _stylise(exported, images["photo"], **options), _stylise(out, images["photo"], **options)
    psnr = 10 * np.log10(255.0**2 / float(np.mean((float_out - int8_out) ** 2)))
    assert 20 < psnr < 80, psnr  # close, and really quantised (not bit-identical)


def test_cli_export_transfer_and_refusals(model_file: Path, exported: Path, images: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "cli.onnx"
    done = run_cli("export", "--model", str(model_file), "-o", str(target), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["kind"] == "AdaIN model" and max(c["max_abs_diff"] for c in report["checks"]) <= report["tolerance"]
    result = run_cli("transfer", "--model", str(target), "--style", str(images["wave"]), "--alpha", "0.5", str(images["photo"]),
                     "-o", str(tmp_path / "out.png"), "--json")
    assert result.returncode == 0, result.stderr
    assert "onnx" in json.loads(result.stdout)["device"].lower()
    assert_user_error(run_cli("transfer", "--model", str(exported), str(images["photo"]), "-o", str(tmp_path / "x.png")),
                      "give one or more with --style IMAGE")
    assert_user_error(run_cli("export", "--model", str(model_file), "-o", str(tmp_path / "y.onnx"), "--style-weights", "0"),
                      "do not apply to an AdaIN model")
    with pytest.raises(sf.StyleforgeError, match="needs a style first"):
        from styleforge.nets.onnx import OnnxAdaINNet

        OnnxAdaINNet(exported)(torch.zeros(1, 3, 16, 16))
