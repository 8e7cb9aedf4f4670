"""Style strength and colour preservation for fast models (``transfer --strength``,
``--preserve-color``), checked against independent NumPy computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.images.color import rgb_to_yiq
from styleforge.models.files import save_style_model
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, make_photo, run_cli
from tests.synthetic import random_style_network


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_style_model(random_style_network(seed=2), tmp_path_factory.mktemp("m") / "m.safetensors", {})


def stylise(model_file: Path, photo: Image.Image, **options: object) -> np.ndarray:
    model = load_style_model(model_file, options=TransferOptions(device="cpu", precision="fp32", **options))
    return np.asarray(model.stylize(photo), dtype=np.float64)


@pytest.fixture
def photo(tmp_path: Path) -> Image.Image:
    return Image.open(make_photo(tmp_path / "p.png", size=(64, 48), seed=5)).convert("RGB")


def test_strength_blends_in_pixels(model_file: Path, photo: Image.Image) -> None:
    full = stylise(model_file, photo)
    pixels = np.asarray(photo, dtype=np.float64)
    assert np.array_equal(stylise(model_file, photo, strength=0.0), pixels)
    assert np.abs(stylise(model_file, photo, strength=0.25) - (0.25 * full + 0.75 * pixels)).max() <= 1.0
    assert np.abs(full - pixels).mean() > 20  # the style does change the photo


def test_luminance_keeps_the_photos_chroma(model_file: Path, photo: Image.Image) -> None:
    full, kept = stylise(model_file, photo), stylise(model_file, photo, preserve_color="luminance")
    yiq_kept, yiq_full, yiq_photo = (rgb_to_yiq(a / 255.0) for a in (kept, full, np.asarray(photo, dtype=np.float64)))
    inside = (kept > 2).all(axis=2) & (kept < 253).all(axis=2)  # where no channel was clipped to 0..255
    assert np.abs(yiq_kept[..., 0] - yiq_full[..., 0])[inside].max() < 0.01
    assert np.abs(yiq_kept[..., 1:] - yiq_photo[..., 1:])[inside].max() < 0.01


def test_histogram_matches_the_photos_colour_statistics(model_file: Path, photo: Image.Image) -> None:
    kept = stylise(model_file, photo, preserve_color="histogram").reshape(-1, 3)
    pixels = np.asarray(photo, dtype=np.float64).reshape(-1, 3)
    assert np.abs(kept.mean(axis=0) - pixels.mean(axis=0)).max() < 2.0
    # The covariance matches up to what clipping to 0..255 takes from this saturated photo.
    target = np.cov(pixels, rowvar=False)
    assert np.abs(np.cov(kept, rowvar=False) - target).max() < 0.15 * np.abs(target).max()
    before = np.cov(stylise(model_file, photo).reshape(-1, 3), rowvar=False)
    assert np.abs(before - target).max() > 2 * np.abs(np.cov(kept, rowvar=False) - target).max()


@pytest.mark.parametrize(("options", "fragment"), [({"strength": 1.5}, "strength must be from 0 to 1"),
                                                   ({"strength": float("nan")}, "strength must be from 0 to 1"),
                                                   ({"preserve_color": "sepia"}, "unknown colour preservation")])
def test_bad_options_are_refused(model_file: Path, options: dict, fragment: str) -> None:
    with pytest.raises(StyleforgeError, match=fragment):
        load_style_model(model_file, options=TransferOptions(device="cpu", **options))


def test_cli_strength_and_colour(model_file: Path, tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png", size=(64, 48))
    out = tmp_path / "o.png"
    result = run_cli("transfer", "--model", str(model_file), str(photo), "-o", str(out), "--strength", "0", "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(photo).convert("RGB")))
    result = run_cli("transfer", "--model", str(model_file), str(photo), "-o", str(out), "--preserve-color", "histogram",
                     "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    assert_user_error(run_cli("transfer", "--model", str(model_file), str(photo), "-o", str(out), "--strength", "-1"),
                      "strength must be from 0 to 1")


def _weakened_copy(model_file: Path, target: Path, strength: float) -> Path:
    """The model file with every instance norm's scale/shift moved toward identity, written
    with safetensors directly (independent of styleforge's in-place weakening)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(model_file))
    with safe_open(str(model_file), framework="np") as handle:
        header = handle.metadata()
    for key in list(tensors):
        if key.split(".")[-2].startswith("norm") and tensors[key].ndim == 1:
            value = tensors[key].astype(np.float64)
            tensors[key] = (1 + strength * (value - 1) if key.endswith("weight") else strength * value).astype(np.float32)
    save_file(tensors, str(target), metadata=header)
    return target


@pytest.mark.parametrize("strength", [0.0, 0.4])
def test_norm_strength_interpolates_the_instance_norm_parameters(model_file: Path, photo: Image.Image, tmp_path: Path,
                                                                  strength: float) -> None:
    expected = stylise(_weakened_copy(model_file, tmp_path / "weak.safetensors", strength), photo)
    got = stylise(model_file, photo, strength=strength, strength_mode="norm")
    assert np.abs(got - expected).max() <= 1.0
    pixel = stylise(model_file, photo, strength=strength)
    assert np.abs(got - pixel).mean() > 5  # a different operation from the pixel blend
    if strength == 0.0:
        assert np.abs(got - np.asarray(photo, dtype=np.float64)).mean() > 5  # 0 is the un-modulated network, not the photo


def test_norm_strength_one_is_the_network(model_file: Path, photo: Image.Image) -> None:
    assert np.array_equal(stylise(model_file, photo, strength_mode="norm"), stylise(model_file, photo))


def test_norm_strength_needs_an_instance_norm_pytorch_model(tmp_path: Path, model_file: Path) -> None:
    from styleforge.nets.transform_net import TransformNet

    batch = save_style_model(TransformNet(norm="batch"), tmp_path / "bn.safetensors", {})
    with pytest.raises(StyleforgeError, match="needs an instance-norm network"):
        load_style_model(batch, options=TransferOptions(device="cpu", strength=0.5, strength_mode="norm"))
    (tmp_path / "m.onnx").write_bytes(b"not read: the option is refused first")
    with pytest.raises(StyleforgeError, match="which an ONNX file fixes"):
        load_style_model(tmp_path / "m.onnx", options=TransferOptions(device="cpu", strength=0.5, strength_mode="norm"))
    photo = make_photo(tmp_path / "p.png", size=(32, 24))
    assert_user_error(run_cli("transfer", "--model", str(batch), str(photo), "-o", str(tmp_path / "o.png"), "--strength", "0.5",
                              "--strength-mode", "norm", "--device", "cpu"), "needs an instance-norm network")
