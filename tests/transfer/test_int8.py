"""``transfer --precision int8`` (styleforge.transfer.int8): the model quantised once on
the shipped photos and cached, its printed PSNR against an independent computation, the
blend baked into the copy, a retrained model quantised again, nothing cached after a
failure, the refusals, and the options that keep working (tiles, strength, colour, video)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.images.color import restore_chroma
from styleforge.images.io import read_image
from styleforge.images.samples import shipped_photos
from styleforge.models.files import save_style_model
from styleforge.models.loading import load_network
from styleforge.nets.transform_net import TransformNet
from styleforge.runtime.sessions import is_int8_file, openvino_available
from styleforge.transfer.model import load_style_model
from styleforge.utils.home import styleforge_home
from tests.conftest import make_photo, run_cli
from tests.synthetic import SMALL_NET, small_style_model

pytest.importorskip("onnxruntime")

INT8 = TransferOptions(device="cpu", precision="int8")


def own_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images, written out here (not styleforge's)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def fp32_output(path: Path, photo: Image.Image, style: int | None = None) -> np.ndarray:
    """The PyTorch fp32 output of the model at ``path`` (style ``style`` selected), as uint8."""
    net, _ = load_network(path)
    if style is not None:
        net.select_styles([1.0 if i == style else 0.0 for i in range(net.styles)])
    x = torch.from_numpy(np.asarray(photo, dtype=np.float32)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        y = net.eval()(x)
    return np.clip(np.rint(y[0].permute(1, 2, 0).numpy()), 0, 255).astype(np.uint8)


def copies() -> list[Path]:
    return sorted((styleforge_home() / "int8").glob("*/model_int8.onnx"))


def test_the_copy_is_int8_near_fp32_and_its_psnr_is_the_one_measured(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    model = load_style_model(path, options=INT8)
    [file] = copies()
    graph = onnx.load(str(file))
    assert is_int8_file({p.key: p.value for p in graph.metadata_props})
    assert sum(node.op_type == "QuantizeLinear" for node in graph.graph.node) >= 3  # the middle convolutions
    # The printed figure is the mean PSNR on the shipped photos, recomputed here independently.
    values = []
    for photo_file in shipped_photos():
        photo = read_image(photo_file)
        values.append(own_psnr(np.asarray(model.stylize(photo)), fp32_output(path, photo)))
    assert model.metadata["int8_psnr_db"] == pytest.approx(float(np.mean(values)), abs=1e-3)
    assert 10.0 < model.metadata["int8_psnr_db"] < 60.0  # near fp32 (a small random network rounds badly), not equal
    assert f"{model.metadata['int8_psnr_db']:.1f} dB PSNR against fp32" in model.prepare().line
    assert model.options.precision == "int8"
    assert len(shipped_photos()) == 4


def test_cli_quantises_once_then_reuses_the_copy(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    photo = make_photo(tmp_path / "p.png", (40, 28))
    first = run_cli("transfer", "--model", str(path), str(photo), "-o", str(tmp_path / "a.png"), "--precision", "int8", "--json")
    assert first.returncode == 0, first
    report = json.loads(first.stdout)
    assert report["precision"] == "int8" and report["runtime"] in ("openvino", "onnxruntime")
    assert "quantised now" in report["runtime_reason"] and "dB PSNR against fp32" in report["runtime_reason"]
    [file] = copies()
    modified = file.stat().st_mtime_ns
    if report["runtime"] == "openvino":  # its compiled blobs are kept per machine beside the copy
        assert list(file.parent.glob("blobs-*/*.blob"))
    second = run_cli("transfer", "--model", str(path), str(photo), "-o", str(tmp_path / "b.png"), "--precision", "int8")
    assert second.returncode == 0, second
    assert second.stdout.splitlines()[0].startswith("runtime: ")
    assert "--precision int8: cached" in second.stdout.splitlines()[0]
    assert copies() == [file] and file.stat().st_mtime_ns == modified
    assert Image.open(tmp_path / "b.png").size == (40, 28)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


def test_each_blend_has_its_own_copy_in_that_style(tmp_path: Path) -> None:
    path = small_style_model(tmp_path, styles=3)
    photo = read_image(make_photo(tmp_path / "p.png", (48, 40)))
    outputs = {}
    for spec in ("1", "0:0.5,2:0.5"):
        model = load_style_model(path, options=TransferOptions(device="cpu", precision="int8", style_weights=spec))
        outputs[spec] = np.asarray(model.stylize(photo))
    assert len(copies()) == 2
    style1, style0 = fp32_output(path, photo, style=1), fp32_output(path, photo, style=0)
    assert own_psnr(outputs["1"], style1) > own_psnr(outputs["1"], style0) + 3


def test_a_retrained_model_is_quantised_again(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    load_style_model(path, options=INT8)
    torch.manual_seed(5)
    save_style_model(TransformNet(**SMALL_NET), path, {})  # the same file name, new weights
    model = load_style_model(path, options=INT8)
    assert len(copies()) == 2 and "quantised now" in model.prepare().reason


def test_a_failed_quantisation_caches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import styleforge.deploy.quantize as quantize

    def fail(*args: object, **kwargs: object) -> None:
        raise StyleforgeError("calibration failed")

    monkeypatch.setattr(quantize, "quantize_style_export", fail)
    with pytest.raises(StyleforgeError, match="calibration failed"):
        load_style_model(small_style_model(tmp_path), options=INT8)
    assert copies() == [] and not any(p.name.startswith(".") for p in (styleforge_home() / "int8").iterdir())


def test_an_onnx_file_is_refused_with_the_quantize_command(tmp_path: Path) -> None:
    from styleforge.deploy.export import export_style_model

    exported = export_style_model(small_style_model(tmp_path), tmp_path / "m.onnx").path
    with pytest.raises(StyleforgeError, match="styleforge quantize"):
        load_style_model(exported, options=INT8)


def test_tiles_strength_and_colour_apply_to_the_int8_copy(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    photo = read_image(make_photo(tmp_path / "p.png", (200, 150)))
    reference = fp32_output(path, photo)
    exact = TransferOptions(device="cpu", precision="int8", runtime="onnxruntime")  # integer kernels: the same for every shape
    whole = load_style_model(path, options=exact).stylize(photo)
    tiled = load_style_model(path, options=replace(exact, tile=64, tile_overlap=16)).stylize(photo)
    assert tiled.size == whole.size == (200, 150)
    assert own_psnr(np.asarray(tiled), np.asarray(whole)) > 40  # the tiles share the whole image's statistics
    if openvino_available():  # OpenVINO's rounding depends on the shape: tiles are as faithful as the whole image
        whole = load_style_model(path, options=INT8).stylize(photo)
        tiled = load_style_model(path, options=replace(INT8, tile=64, tile_overlap=16)).stylize(photo)
        assert own_psnr(np.asarray(tiled), reference) > own_psnr(np.asarray(whole), reference) - 2
    none = load_style_model(path, options=replace(exact, strength=0.0)).stylize(photo)
    np.testing.assert_array_equal(np.asarray(none), np.asarray(photo))
    whole = load_style_model(path, options=exact).stylize(photo)
    kept = load_style_model(path, options=replace(exact, preserve_color="luminance")).stylize(photo)
    np.testing.assert_array_equal(np.asarray(kept), np.asarray(restore_chroma(whole, photo)))
    assert own_psnr(np.asarray(kept), np.asarray(whole)) < 40  # the colours did change


def test_video_runs_on_the_int8_copy(tmp_path: Path) -> None:
    from tests.video.clips import Camera, write_clip

    clip = write_clip(tmp_path / "c.mp4", Camera(width=64, height=48, frames=4), audio=False)
    result = run_cli("transfer", "--model", str(small_style_model(tmp_path)), str(clip), "-o", str(tmp_path / "o.mp4"),
                     "--precision", "int8")
    assert result.returncode == 0, result
    assert "--precision int8: quantised now" in result.stdout and (tmp_path / "o.mp4").stat().st_size > 0
