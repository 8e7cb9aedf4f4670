"""Stylising with a trained model: tiles, batches, folders, and the model files."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.models.files import save_style_model
from styleforge.nets.transform_net import TransformNet
from styleforge.transfer.model import StyleModel, load_style_model
from styleforge.transfer.plan import plan_outputs
from styleforge.transfer.tiles import stylize_tiled
from tests.conftest import make_photo


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    net = TransformNet()
    with torch.no_grad():  # give the untrained network some contrast
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("model") / "mosaic.safetensors"
    return save_style_model(net, path, {"style_image": "mosaic.jpg", "steps": 0}, Image.new("RGB", (300, 200), (9, 9, 9)))


def _photo(width: int, height: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None]


def test_tiled_equals_untiled_away_from_seams_and_seams_are_bounded(model_file: Path) -> None:
    net = load_style_model(model_file).net
    x = _photo(288, 64)  # tile 160, overlap 32: tiles cover columns [0, 160) and [128, 288)
    with torch.inference_mode():
        whole = net(x)
        bare = stylize_tiled(net, x, tile=160, overlap=32, stats_pixels=10**9, context=0)
        tiled = stylize_tiled(net, x, tile=160, overlap=32, stats_pixels=10**9)  # default: 64 px of context
    assert tiled.shape == bare.shape == whole.shape
    bare_diff = (bare - whole).abs()[0].amax(0)  # (H, W) on the 0-255 scale
    # Without context: a pixel seen by one tile only, further from that tile's inner edge than
    # the network's receptive-field radius (about 60 px), comes out as in the untiled run ...
    receptive = 64
    assert float(bare_diff[:, : 160 - receptive].max()) < 0.05
    assert float(bare_diff[:, 128 + receptive :].max()) < 0.05
    # ... and near the seam, where the tiles saw mirrored borders, the blend keeps the error
    # bounded and small on average, with no jump from column to column.
    band = bare_diff[:, 100:190]
    assert float(band.max()) < 80.0 and float(band.mean()) < 6.0
    step = (bare[0, :, :, 1:] - bare[0, :, :, :-1]).abs().mean(dim=(0, 1))
    assert float(step[120:170].max()) < 3 * float(step.mean()) + 5
    # With context wider than the receptive field the tiled result is the untiled one everywhere.
    assert float((tiled - whole).abs().max()) < 0.05


@pytest.mark.parametrize("width", [290, 291, 293])
def test_tiles_starting_off_the_four_pixel_grid_equal_the_whole_image(model_file: Path, width: int) -> None:
    # The last tile starts at width - 160 (130, 131, 133): the network is shift-equivariant
    # only for multiples of 4, so its crop must start on the whole image's grid.
    net = load_style_model(model_file).net
    x = _photo(width, 70, seed=3)
    with torch.inference_mode():
        whole = net(x)
        tiled = stylize_tiled(net, x, tile=160, overlap=32, stats_pixels=10**9)
    assert float((tiled - whole).abs().max()) < 0.05


def test_tiles_use_whole_image_instance_norm_statistics(model_file: Path) -> None:
    net = load_style_model(model_file).net
    x = _photo(128, 64, seed=1)
    x[:, :, :, 64:] *= 0.3  # the right half is much darker: per-tile statistics would differ a lot
    with torch.inference_mode():
        whole = net(x)
        tiled = stylize_tiled(net, x, tile=64, overlap=16, stats_pixels=10**9, context=0)
        naive = torch.cat([net(x[:, :, :, :64]), net(x[:, :, :, 64:])], dim=3)
    assert float((tiled - whole).abs()[..., 8:40].mean()) < float((naive - whole).abs()[..., 8:40].mean()) / 3


def test_model_stylize_tiles_big_images_automatically(model_file: Path) -> None:
    opts = TransferOptions(auto_tile_pixels=64 * 64, tile_overlap=16)
    model = load_style_model(model_file, options=opts)
    img = Image.fromarray(np.asarray(_photo(150, 90)[0].permute(1, 2, 0), dtype=np.uint8))
    untiled = load_style_model(model_file).stylize(img)
    tiled = model.stylize(img)
    assert tiled.size == (150, 90)
    assert np.abs(np.asarray(tiled, int) - np.asarray(untiled, int)).max() <= 1  # 8-bit rounding only


def test_batch_equals_one_by_one(model_file: Path) -> None:
    model = load_style_model(model_file)
    images = [Image.new("RGB", (40, 30), c) for c in ((200, 10, 10), (10, 200, 10))]
    batch = model.stylize_batch(images)
    for img, out in zip(images, batch):
        assert np.abs(np.asarray(model.stylize(img), int) - np.asarray(out, int)).max() <= 1


def test_batch_runs_one_image_per_pass_on_cpu_and_whole_on_cuda(model_file: Path) -> None:
    model = load_style_model(model_file, device="cpu")
    seen = []
    network = model.forward
    model.forward = lambda x: seen.append(tuple(x.shape)) or network(x)
    images = [Image.new("RGB", (40, 30), c) for c in ((200, 10, 10), (10, 200, 10), (10, 10, 200))]
    batch = model.stylize_batch(images)
    assert seen == [(1, 3, 30, 40)] * 3
    for img, out in zip(images, batch, strict=True):
        assert np.array_equal(np.asarray(model.stylize(img)), np.asarray(out))
    assert StyleModel.images_per_pass(types.SimpleNamespace(device=torch.device("cuda")), 8) == 8


def test_model_files_and_metadata(model_file: Path, tmp_path: Path) -> None:
    meta = json.loads(model_file.with_suffix(".json").read_text())
    assert meta["style_image"] == "mosaic.jpg" and meta["network"] == {"format": "styleforge-transformnet", "norm": "instance",
                                                                       "upsample": "resize", "input_divisor": "255",
                                                                       "output": "tanh", "parameters": 1_679_235}
    assert isinstance(load_style_model(model_file), StyleModel)
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    with pytest.raises(StyleforgeError, match="cannot read model"):
        load_style_model(tmp_path / "bad.safetensors")
    with pytest.raises(StyleforgeError, match="no such file"):
        load_style_model(tmp_path / "missing.safetensors")


def test_plan_outputs_mirrors_folders(tmp_path: Path) -> None:
    (tmp_path / "in" / "a").mkdir(parents=True)
    make_photo(tmp_path / "in" / "a" / "x.jpg")
    make_photo(tmp_path / "in" / "y.png")
    single = make_photo(tmp_path / "z.webp")
    items = plan_outputs([tmp_path / "in", single], tmp_path / "out")
    assert sorted(str(i.target.relative_to(tmp_path)) for i in items) == ["out/in/a/x.jpg", "out/in/y.png", "out/z.webp"]
    assert plan_outputs([single], tmp_path / "one.png")[0].target == tmp_path / "one.png"
    with pytest.raises(StyleforgeError, match="use a folder"):
        plan_outputs([tmp_path / "in"], tmp_path / "x.jpg")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_stylize_matches_cpu_fp32(model_file: Path) -> None:
    img = Image.fromarray(np.asarray(_photo(96, 64)[0].permute(1, 2, 0), dtype=np.uint8))
    cpu = load_style_model(model_file, options=TransferOptions(device="cpu", precision="fp32")).stylize(img)
    gpu_model = load_style_model(model_file, options=TransferOptions(device="cuda"))
    assert gpu_model.options.precision == "fp16" and gpu_model.device.type == "cuda"
    mse = np.mean((np.asarray(gpu_model.stylize(img), float) - np.asarray(cpu, float)) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 35


def test_cpu_fp32_runs_channels_last_and_equals_the_plain_network(model_file: Path) -> None:
    model = load_style_model(model_file, options=TransferOptions(device="cpu", precision="fp32"))
    assert model.memory_format == torch.channels_last
    assert model.net.conv2.conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    hook = model.net.conv2.register_forward_pre_hook(lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    img = Image.fromarray(np.asarray(_photo(48, 40)[0].permute(1, 2, 0), dtype=np.uint8))
    out = np.asarray(model.stylize(img), int)
    hook.remove()
    assert seen == [True]
    plain = TransformNet()
    plain.load_state_dict(model.net.state_dict())
    with torch.no_grad():
        expected = plain.eval()(torch.from_numpy(np.asarray(img, np.float32)).permute(2, 0, 1)[None])
    assert np.abs(out - expected[0].permute(1, 2, 0).round().numpy()).max() <= 1
