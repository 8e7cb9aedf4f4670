"""Stylising with an AdaIN model: the model file round-trips exactly and needs no VGG19
file, ``transfer`` equals an independent computation (alpha, several styles blended by
weight, style size), tiles share the whole image's content statistics, colour keeping
and video go through the same path, and the CLI runs end to end and refuses misuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import styleforge as sf
from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.images.io import image_to_array, resize_long_side
from styleforge.models.files import save_style_model
from styleforge.nets.adain import AdaINNet, adain
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, make_photo, run_cli
from tests.synthetic import random_adain_network, random_style_network


@pytest.fixture(scope="module")
def net(weight_files: dict[str, Path]) -> AdaINNet:
    return random_adain_network(sf.load_vgg19(str(weight_files["pth"])), seed=4)


@pytest.fixture(scope="module")
def model_file(net: AdaINNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_style_model(net, tmp_path_factory.mktemp("adain") / "adain.safetensors", {"kind": "adain"})


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    return {"photo": make_photo(folder / "photo.png", (96, 72), seed=1), "wave": make_photo(folder / "wave.png", (60, 80), seed=2),
            "scream": make_photo(folder / "scream.png", (70, 50), seed=3), "big": make_photo(folder / "big.png", (232, 168), seed=4)}


def _pixels(path: Path, side: int | None = None) -> torch.Tensor:
    """The image as (1, 3, H, W) 0-255; with ``side``, a style image as the model sees it:
    resized to that long side, then centre-cropped to multiples of 8."""
    image = Image.open(path).convert("RGB")
    if side is None:
        return torch.from_numpy(image_to_array(image) * 255.0)
    pixels = np.asarray(resize_long_side(image, side))
    height, width = pixels.shape[0] // 8 * 8, pixels.shape[1] // 8 * 8
    top, left = (pixels.shape[0] - height) // 2, (pixels.shape[1] - width) // 2
    return torch.from_numpy(pixels[top : top + height, left : left + width].astype(np.float32)).permute(2, 0, 1)[None]


def _reference(net: AdaINNet, photo: Path, styles: list[Path], weights: list[float], alpha: float, style_size: int) -> np.ndarray:
    """Blend the AdaIN outputs themselves (not the statistics), decode, round."""
    with torch.no_grad():
        content = _pixels(photo)
        pad_h, pad_w = -content.shape[2] % 8, -content.shape[3] % 8
        padded = torch.nn.functional.pad(content, (0, pad_w, 0, pad_h), mode="replicate")
        f = net.encode(padded)["relu4_1"]
        total = sum(weights)
        aligned = sum(w / total * adain(f, net.encode(_pixels(s, style_size))["relu4_1"]) for w, s in zip(weights, styles, strict=True))
        out = net.decode(alpha * aligned + (1 - alpha) * f)[:, :, : content.shape[2], : content.shape[3]]
    return out.clamp(0, 255).round()[0].permute(1, 2, 0).numpy()


def test_the_model_file_round_trips_and_holds_its_encoder(net: AdaINNet, model_file: Path, images: dict[str, Path]) -> None:
    header = json.loads(model_file.with_suffix(".json").read_text())["network"]
    assert header["format"] == "styleforge-adain" and header["encoder_widths"].count(",") == 8  # conv1_1..conv4_1
    loaded = load_style_model(model_file, options=TransferOptions(device="cpu", styles=(str(images["wave"]),))).net.net
    assert loaded.state_dict().keys() == net.state_dict().keys()
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert not any(k.startswith("encoder.conv4_2") for k in loaded.state_dict())  # cut after conv4_1


@pytest.mark.parametrize(("weights", "alpha", "style_size"), [(None, 1.0, 512), ("0:1,scream:3", 0.6, 40)])
def test_transfer_equals_an_independent_computation(net: AdaINNet, model_file: Path, images: dict[str, Path],
                                                      weights: str | None, alpha: float, style_size: int) -> None:
    styles = [images["wave"], images["scream"]]
    options = TransferOptions(device="cpu", precision="fp32", styles=tuple(str(s) for s in styles), style_weights=weights,
                              alpha=alpha, style_size=style_size)
    got = np.asarray(load_style_model(model_file, options=options).stylize(Image.open(images["photo"]))).astype(np.float32)
    expected = _reference(net, images["photo"], styles, [1.0, 3.0] if weights else [1.0, 1.0], alpha, style_size)
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1.0


def test_alpha_zero_ignores_the_style(model_file: Path, images: dict[str, Path]) -> None:
    def run(style: Path) -> np.ndarray:
        options = TransferOptions(device="cpu", precision="fp32", styles=(str(style),), alpha=0.0)
        return np.asarray(load_style_model(model_file, options=options).stylize(Image.open(images["photo"])))

    assert np.array_equal(run(images["wave"]), run(images["scream"]))


def test_tiles_share_the_whole_images_content_statistics(model_file: Path, images: dict[str, Path]) -> None:
    options = TransferOptions(device="cpu", precision="fp32", styles=(str(images["wave"]),), tile_overlap=16)
    model = load_style_model(model_file, options=options)
    photo = Image.open(images["big"])
    whole = np.asarray(model.stylize(photo)).astype(np.float32)
    tiled = np.asarray(model.stylize(photo, tile=64)).astype(np.float32)
    assert np.abs(tiled - whole).mean() < 0.01 and np.abs(tiled - whole).max() <= 1  # measured: 2e-5 and 1 (rounding)
    # Each tile normalised by its own statistics instead: visibly different tiles.
    model.net.record_norm_statistics = lambda x: None  # type: ignore[method-assign]
    per_tile = np.asarray(model.stylize(photo, tile=64)).astype(np.float32)
    assert np.abs(per_tile - whole).mean() > 0.5  # measured: 1.3 (the image's std is 18)


def test_misuse_is_refused_in_one_line(model_file: Path, images: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(StyleforgeError, match="AdaIN model, which takes any painting"):
        load_style_model(model_file, options=TransferOptions(device="cpu"))
    with pytest.raises(StyleforgeError, match="--strength-mode norm is for instance-norm"):
        load_style_model(model_file, options=TransferOptions(device="cpu", styles=(str(images["wave"]),), strength_mode="norm"))
    with pytest.raises(StyleforgeError, match="out of range: 1 --style image"):
        load_style_model(model_file, options=TransferOptions(device="cpu", styles=(str(images["wave"]),), style_weights="1"))
    plain = save_style_model(random_style_network(seed=1), tmp_path / "plain.safetensors", {})
    with pytest.raises(StyleforgeError, match="has its style built in"):
        load_style_model(plain, options=TransferOptions(device="cpu", styles=(str(images["wave"]),)))
    with pytest.raises(StyleforgeError, match="use --strength"):
        load_style_model(plain, options=TransferOptions(device="cpu", alpha=0.5))


def test_cli_trains_then_stylises_files_with_colour_kept(weight_files: dict[str, Path], images: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "paintings").mkdir()
    for i in range(4):
        make_photo(tmp_path / "photos" / f"p{i}.png", (40, 40), seed=10 + i)
        make_photo(tmp_path / "paintings" / f"s{i}.png", (40, 44), seed=20 + i)
    out = tmp_path / "run"
    trained = run_cli("train-adain", "--styles", str(tmp_path / "paintings"), "--data", str(tmp_path / "photos"), "--out", str(out),
                      "--weights", str(weight_files["pth"]), "--image-size", "32", "--batch-size", "2", "--max-steps", "3",
                      "--checkpoint-every", "2", "--workers", "0", "--device", "cpu", "--test-image", str(images["photo"]))
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip() == str(out / "adain.safetensors")
    assert "3 steps of batch 2" in trained.stderr and (out / "preview_step0000002.jpg").is_file() and (out / "loss.png").is_file()
    for model in (out / "adain.safetensors", out / "checkpoint.pt"):
        target = tmp_path / f"{model.stem}.png"
        result = run_cli("transfer", "--model", str(model), "--style", str(images["wave"]), "--style", str(images["scream"]),
                         "--style-weights", "wave:2,1:1", "--alpha", "0.8", "--preserve-color", "luminance", str(images["photo"]),
                         "-o", str(target), "--device", "cpu", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["images"][0]["output"] == str(target)
        assert Image.open(target).size == (96, 72)
    assert_user_error(run_cli("transfer", "--model", str(out / "adain.safetensors"), str(images["photo"]), "-o", str(tmp_path / "x.png")),
                      "give one or more with --style IMAGE")


def test_video_goes_through_the_same_model(model_file: Path, images: dict[str, Path], tmp_path: Path) -> None:
    from tests.video.clips import Camera, read_frames, write_clip

    clip = write_clip(tmp_path / "clip.mp4", Camera(frames=3), audio=False)
    out = tmp_path / "styled.mkv"
    result = run_cli("transfer", "--model", str(model_file), "--style", str(images["wave"]), str(clip), "-o", str(out),
                     "--device", "cpu", "--crf", "0", "--temporal-smoothing")
    assert result.returncode == 0, result.stderr
    assert len(read_frames(out)) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(model_file: Path, images: dict[str, Path]) -> None:
    def run(device: str, precision: str) -> np.ndarray:
        options = TransferOptions(device=device, precision=precision, styles=(str(images["wave"]),), alpha=0.8)
        return np.asarray(load_style_model(model_file, options=options).stylize(Image.open(images["photo"]))).astype(np.float32)

    cpu = run("cpu", "fp32")
    assert np.abs(run("cuda", "fp32") - cpu).max() <= 2
    assert np.abs(run("cuda", "fp16") - cpu).mean() < 2
