"""jcjohnson/fast-neural-style Torch7 models: files written byte by byte in torch7's
binary format with the module structure train.lua saves give the output of an
independent reference forward pass (tests/models/torch7.py) through styleforge's own
network (padding="input", BGR/mean pixels); wrong structures are refused naming the
module; the download takes the file as served and records its SHA-256."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.models import registry, store
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, run_cli
from tests.models.torch7 import jcjohnson_model, reference_stylise, save_t7

FP32 = TransferOptions(device="cpu", precision="fp32")


def photo(seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A smooth random photo-like image (H, W, 3) 0-255."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)


def stylise(name: str, image: np.ndarray) -> np.ndarray:
    model = load_style_model(name, options=FP32)
    with torch.no_grad():
        out = model.net(torch.from_numpy(image).permute(2, 0, 1)[None])
    return out[0].permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize(("batch_norm", "preprocessing"), [(False, "vgg"), (True, None), (False, "resnet")],
                         ids=["instance-norm-vgg", "eccv16-batch-norm-default-vgg", "resnet-preprocessing"])
def test_t7_model_gives_the_reference_output(tmp_path: Path, batch_norm: bool, preprocessing: str | None) -> None:
    checkpoint = jcjohnson_model(seed=5, batch_norm=batch_norm, preprocessing=preprocessing)
    store.import_model(save_t7(checkpoint, tmp_path / "la_muse.t7"))
    for seed, size in ((0, (64, 48)), (1, (96, 52))):
        image = photo(seed, size)
        expected = reference_stylise(checkpoint, image)
        got = stylise("la_muse", image)
        assert 10 < expected.std()  # not a flat image
        assert np.abs(got - expected).max() < 0.25 and np.abs(got - expected).mean() < 0.01


def test_metadata_and_convention_are_recorded(tmp_path: Path) -> None:
    file = save_t7(jcjohnson_model(seed=1), tmp_path / "the_scream.t7")
    installed = store.import_model(file, "scream")
    meta = json.loads(installed.with_suffix(".json").read_text())
    assert meta["layout"] == "torch7-fast-neural-style" and meta["original_file"] == "the_scream.t7"
    assert meta["original_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    network = meta["network"]
    assert (network["padding"], network["upsample"], network["channel_order"], network["output_scale"]) == ("input", "deconv", "bgr", "150")
    assert network["input_mean"] == network["output_offset"] == "103.939,116.779,123.68"


def test_any_size_small_and_odd_images_through_the_cli(tmp_path: Path) -> None:
    """Their network needs sides that are multiples of 4 and over 40 pixels; styleforge pads and crops."""
    save_t7(jcjohnson_model(seed=2), tmp_path / "candy.t7")
    assert run_cli("models", "import", str(tmp_path / "candy.t7"), "--name", "jj-candy").returncode == 0
    for size in ((31, 17), (3, 2), (70, 45)):
        source = tmp_path / f"in{size[0]}.png"
        Image.fromarray(photo(3, (72, 48)).astype(np.uint8)).resize(size).save(source)
        result = run_cli("transfer", "--model", "jj-candy", str(source), "-o", str(tmp_path / f"out{size[0]}.png"),
                         "--device", "cpu", "--quiet")
        assert result.returncode == 0, result.stderr
        assert Image.open(tmp_path / f"out{size[0]}.png").size == size


def test_tiled_output_matches_the_whole_image(tmp_path: Path) -> None:
    store.import_model(save_t7(jcjohnson_model(seed=4), tmp_path / "mosaic.t7"), "jj-mosaic")
    image = Image.fromarray(photo(6, (200, 120)).astype(np.uint8))
    model = load_style_model("jj-mosaic", options=FP32)
    whole = np.asarray(model.stylize(image), dtype=np.float32)
    tiled = np.asarray(model.stylize(image, tile=96), dtype=np.float32)
    assert np.abs(whole - tiled).mean() < 2.0


def _edited(change: Callable[[list], None]) -> dict:
    """A model whose top-level module list was changed by ``change``."""
    checkpoint = jcjohnson_model(seed=0)
    change(checkpoint["model"].fields["modules"])
    return checkpoint


def _pad20(layers: list) -> None:
    layers[0].fields.update(pad_l=20, pad_r=20, pad_t=20, pad_b=20)


def _shave1(layers: list) -> None:
    layers[10].fields["modules"][0].fields["modules"][1].fields["size"] = 1


def _wide_conv(layers: list) -> None:
    layers[4].fields["nOutputPlane"] = 65


def _no_tanh(layers: list) -> None:
    del layers[-3]


def _trailing(layers: list) -> None:
    layers.append(copy.deepcopy(layers[3]))


def _padded_block(layers: list) -> None:
    layers[11].fields["modules"][0].fields["modules"][0].fields["modules"][0].fields["padW"] = 1


STRUCTURES = {
    "input-pad": (_pad20, "module 1 (nn.SpatialReflectionPadding)"),
    "shave": (_shave1, "module 11: residual block"),
    "conv-size": (_wide_conv, "module 5 (nn.SpatialConvolution) does not fit"),
    "no-tanh": (_no_tanh, "expected Tanh"),
    "trailing": (_trailing, "expected the end of the model"),
    "padded-residual": (_padded_block, "residual block at module 12, module 1 (nn.SpatialConvolution)"),
}


@pytest.mark.parametrize("case", list(STRUCTURES))
def test_other_structures_are_refused_naming_the_module(tmp_path: Path, case: str) -> None:
    change, fragment = STRUCTURES[case]
    file = save_t7(_edited(change), tmp_path / "odd.t7")
    with pytest.raises(StyleforgeError) as refused:
        store.import_model(file)
    assert fragment in str(refused.value) and "odd.t7" in str(refused.value), str(refused.value)
    assert not store.models_dir().exists() or not any(store.models_dir().iterdir())


def test_damaged_files_are_refused_in_one_line(tmp_path: Path) -> None:
    body = save_t7(jcjohnson_model(seed=0), tmp_path / "full.t7").read_bytes()
    (tmp_path / "cut.t7").write_bytes(body[: len(body) // 3])
    assert_user_error(run_cli("models", "import", str(tmp_path / "cut.t7")), "cannot read Torch7 file")
    save_t7({"weights": [1.0, 2.0]}, tmp_path / "table.t7")
    assert_user_error(run_cli("models", "import", str(tmp_path / "table.t7")), "not the nn.Sequential of fast-neural-style")


def test_download_records_the_served_files_checksum(tmp_path: Path, server: tuple[str, dict],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url, routes = server
    body = save_t7(jcjohnson_model(seed=7), tmp_path / "feathers.t7").read_bytes()
    routes["/models/instance_norm/feathers.t7"] = (body, None)
    spec = registry.MODELS["jcjohnson-feathers"]
    assert spec.sha256 is None and spec.urls == (f"{registry.JCJOHNSON_URL}/instance_norm/feathers.t7",)
    monkeypatch.setitem(registry.MODELS, spec.name, registry.ModelSpec(
        spec.name, spec.filename, (f"{url}/models/instance_norm/feathers.t7",), None, None, spec.layout, spec.source, spec.licence))
    path = store.download_model("jcjohnson-feathers", progress=False)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["original_sha256"] == hashlib.sha256(body).hexdigest() and "personal or research" in meta["licence"]
    image = photo(8)
    assert np.abs(stylise("jcjohnson-feathers", image) - reference_stylise(jcjohnson_model(seed=7), image)).max() < 0.25


def test_exported_to_onnx_it_runs_at_any_size(tmp_path: Path) -> None:
    """The export of the input-padded network: ONNX Runtime pads small inputs up to the
    44 pixels the 40-pixel reflection needs, as the PyTorch path does."""
    from styleforge.deploy.export import export_style_model

    installed = store.import_model(save_t7(jcjohnson_model(seed=9), tmp_path / "udnie.t7"), "jj-udnie")
    report = export_style_model(installed, tmp_path / "udnie.onnx")
    assert report.max_difference <= 0.05
    onnx_model, torch_model = (load_style_model(p, options=FP32) for p in (tmp_path / "udnie.onnx", installed))
    for size in ((90, 70), (20, 9)):
        image = Image.fromarray(photo(10, (96, 72)).astype(np.uint8)).resize(size)
        a, b = (np.asarray(m.stylize(image), dtype=np.float32) for m in (onnx_model, torch_model))
        assert a.shape == (size[1], size[0], 3) and np.abs(a - b).max() <= 1
