"""Weight conversions are exact: every format gives the logits of an independent
reference forward pass for the same random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from styleforge.errors import StyleforgeError
from styleforge.vgg.network import VGG19, load_vgg19
from styleforge.vgg.preprocessing import MATCONVNET, TORCHVISION
from styleforge.vgg.weights.formats import read_weights_file, torchvision_key_map, write_safetensors
from tests.synthetic import (
    MATCONVNET_MEAN,
    SourceWeights,
    matconvnet_reference_logits,
    random_weights,
    torchvision_reference,
    write_matconvnet_mat,
    write_torchvision_pth,
)


def test_torchvision_key_map_matches_the_real_vgg19_layout() -> None:
    mapping = torchvision_key_map()
    # Indices of the 16 convs in torchvision's vgg19().features, and its classifier slots.
    expected_conv_indices = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert [k for k, v in mapping.items() if v.startswith("conv")] == [f"features.{i}" for i in expected_conv_indices]
    assert mapping["features.34"] == "conv5_4"
    assert [mapping[f"classifier.{i}"] for i in (0, 3, 6)] == ["fc6", "fc7", "fc8"]


@pytest.mark.parametrize("size", [64, 96])  # 96: pool5 is 3x3, adaptively pooled to 2x2
def test_torchvision_pth_gives_reference_logits(tiny_source: SourceWeights, weight_files: dict[str, Path], size: int) -> None:
    reference = torchvision_reference(tiny_source)
    vgg = load_vgg19(str(weight_files["pth"]))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)
    got = vgg(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert vgg.convention == TORCHVISION


def test_matconvnet_mat_gives_reference_logits(tiny_source: SourceWeights, weight_files: dict[str, Path]) -> None:
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, size=(64, 64, 3))  # HWC 0..255, as MatConvNet takes it
    expected = matconvnet_reference_logits(tiny_source, image, MATCONVNET_MEAN)
    vgg = load_vgg19(str(weight_files["mat"]))
    pixels = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    got = vgg(vgg.normalize(pixels))[0].double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert vgg.convention.mean == MATCONVNET.mean and vgg.convention.input_scale == 255.0
    assert vgg.class_names[1] == "synthetic class 1, number 1"


def test_asymmetric_kernels_catch_a_transposed_conversion(tiny_source: SourceWeights, weight_files: dict[str, Path]) -> None:
    """The parity checks above would fail for a spatially transposed kernel: prove the weights are asymmetric enough."""
    vgg = load_vgg19(str(weight_files["mat"]))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    good = vgg(x)
    for name in ("conv1_1", "fc6"):
        broken = load_vgg19(str(weight_files["mat"]))
        module = getattr(broken, name)
        with torch.no_grad():
            if name == "conv1_1":
                module.weight.copy_(module.weight.transpose(2, 3).clone())
            else:  # flatten (H, W, C) instead of (C, H, W)
                c5 = broken.conv5_4.weight.shape[0]
                g = broken.pool_grid
                w = tiny_source.fcs[0][0]  # (h1, C5, g, g)
                module.weight.copy_(torch.from_numpy(w.transpose(0, 2, 3, 1).reshape(w.shape[0], c5 * g * g).copy()))
        assert (broken(x) - good).abs().max() > 1e-3, name


def test_legacy_matconvnet_layout_is_read_the_same(tiny_source: SourceWeights, tmp_path: Path) -> None:
    legacy = read_weights_file(write_matconvnet_mat(tiny_source, tmp_path / "old.mat", legacy=True))
    modern = read_weights_file(write_matconvnet_mat(tiny_source, tmp_path / "new.mat"))
    assert legacy.tensors.keys() == modern.tensors.keys()
    for key in modern.tensors:
        np.testing.assert_array_equal(legacy.tensors[key], modern.tensors[key])
    assert legacy.convention.mean == modern.convention.mean == MATCONVNET_MEAN


def test_pth_and_mat_convert_to_identical_arrays(weight_files: dict[str, Path]) -> None:
    from_pth = read_weights_file(weight_files["pth"])
    from_mat = read_weights_file(weight_files["mat"])
    assert from_pth.tensors.keys() == from_mat.tensors.keys()
    for key in from_pth.tensors:
        np.testing.assert_array_equal(from_pth.tensors[key], from_mat.tensors[key])


@pytest.mark.parametrize("fmt", ["pth", "mat"])
def test_safetensors_round_trip_is_exact_and_keeps_convention(weight_files: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    original = read_weights_file(weight_files[fmt])
    path = write_safetensors(original, tmp_path / "w.safetensors")
    again = read_weights_file(path)
    for key in original.tensors:
        np.testing.assert_array_equal(again.tensors[key], original.tensors[key])
    assert again.convention == original.convention
    assert again.class_names == original.class_names
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(VGG19.from_bundle(again)(x), VGG19.from_bundle(original)(x), rtol=0, atol=0)


def test_feature_only_weights_load_without_classifier(tmp_path: Path) -> None:
    src = random_weights(seed=5)
    state = torch.load(write_torchvision_pth(src, tmp_path / "full.pth"), weights_only=True)
    features_only = {k: v for k, v in state.items() if k.startswith("features.")}
    torch.save(features_only, tmp_path / "features.pth")
    vgg = load_vgg19(str(tmp_path / "features.pth"))
    assert not vgg.has_classifier
    assert vgg.extract(torch.randn(1, 3, 32, 32), ["relu5_4"])["relu5_4"].shape == (1, 10, 2, 2)
    with pytest.raises(StyleforgeError, match="no classifier"):
        vgg(torch.randn(1, 3, 32, 32))


def test_unexpected_keys_are_refused(tmp_path: Path) -> None:
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3), "features.1.running_mean": torch.zeros(4)}, tmp_path / "bn.pth")
    with pytest.raises(StyleforgeError, match="unexpected keys"):
        read_weights_file(tmp_path / "bn.pth")


def test_pickled_objects_are_not_executed(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: D105
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(StyleforgeError, match="cannot read torchvision weights"):
        read_weights_file(tmp_path / "evil.pth")


@pytest.mark.parametrize("content,suffix,message", [
    (b"not a mat file at all", ".mat", "is not a MATLAB .mat file .it is text"),
    (b"garbage", ".safetensors", "cannot read safetensors"),
    (b"garbage", ".pth", "cannot read torchvision"),
    (b"garbage", ".onnx", "unknown suffix"),
])
def test_corrupt_weight_files_raise_clear_errors(tmp_path: Path, content: bytes, suffix: str, message: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(StyleforgeError, match=message):
        read_weights_file(path)


def test_wrong_shapes_are_refused(tmp_path: Path) -> None:
    src = random_weights(seed=2)
    state = torch.load(write_torchvision_pth(src, tmp_path / "ok.pth"), weights_only=True)
    state["features.2.weight"] = torch.zeros(4, 5, 3, 3)  # C_in does not follow conv1_1's C_out
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(StyleforgeError, match="conv1_2"):
        read_weights_file(tmp_path / "bad.pth")
