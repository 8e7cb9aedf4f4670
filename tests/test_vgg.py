"""VGG19 module: layer names, extraction, preprocessing per convention, classification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import styleforge as sf
from styleforge.errors import StyleforgeError
from styleforge.vgg.network import LAYER_NAMES
from styleforge.vgg.preprocessing import MATCONVNET, TORCHVISION, Convention, resize_for_network


@pytest.fixture(scope="module")
def vgg_pth(weight_files: dict[str, Path]) -> sf.VGG19:
    return sf.load_vgg19(str(weight_files["pth"]))


def test_the_43_course_layer_names() -> None:
    assert len(LAYER_NAMES) == 43
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-7:] == ("pool5", "fc6", "relu6", "fc7", "relu7", "fc8", "softmax")
    assert sum(n.startswith("conv") for n in LAYER_NAMES) == 16


def test_network_shape_follows_the_weights(vgg_pth: sf.VGG19) -> None:
    assert vgg_pth.conv3_1.weight.shape == (8, 6, 3, 3)
    assert vgg_pth.fc6.weight.shape == (12, 10 * 2 * 2) and vgg_pth.pool_grid == 2
    assert all(not p.requires_grad for p in vgg_pth.parameters())
    assert not vgg_pth.training


def test_extract_returns_requested_layers_in_order_with_right_shapes(vgg_pth: sf.VGG19) -> None:
    x = torch.randn(2, 3, 64, 48)
    feats = vgg_pth.extract(x, ["relu4_2", "conv1_1", "pool2", "softmax"])
    assert list(feats) == ["relu4_2", "conv1_1", "pool2", "softmax"]
    assert feats["conv1_1"].shape == (2, 4, 64, 48)
    assert feats["pool2"].shape == (2, 6, 16, 12)
    assert feats["relu4_2"].shape == (2, 8, 8, 6)
    torch.testing.assert_close(feats["softmax"].sum(dim=1), torch.ones(2))
    assert (feats["relu4_2"] >= 0).all()


def test_extract_conv_output_is_not_clobbered_by_relu(vgg_pth: sf.VGG19) -> None:
    feats = vgg_pth.extract(torch.randn(1, 3, 32, 32), ["conv1_1", "relu1_1"])
    assert (feats["conv1_1"] < 0).any()
    torch.testing.assert_close(feats["relu1_1"], feats["conv1_1"].clamp_min(0))


def test_extract_stops_after_the_deepest_requested_layer(vgg_pth: sf.VGG19) -> None:
    called: list[str] = []
    handles = [getattr(vgg_pth, n).register_forward_hook(lambda m, i, o, n=n: called.append(n)) for n in ("conv4_1", "conv4_2", "conv5_1", "fc6")]
    try:
        vgg_pth.extract(torch.randn(1, 3, 32, 32), ["relu1_1", "conv4_1"])
    finally:
        for h in handles:
            h.remove()
    assert called == ["conv4_1"]


def test_extract_errors(vgg_pth: sf.VGG19) -> None:
    with pytest.raises(StyleforgeError, match="unknown VGG19 layer 'conv6_1'"):
        vgg_pth.extract(torch.randn(1, 3, 32, 32), ["conv6_1"])
    with pytest.raises(StyleforgeError, match=r"\(N, 3, H, W\)"):
        vgg_pth.extract(torch.randn(3, 32, 32), ["conv1_1"])


def test_gradients_flow_to_the_input(vgg_pth: sf.VGG19) -> None:
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg_pth.extract(vgg_pth.normalize(x), ["relu3_1"])["relu3_1"].square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_avg_pooling_option(weight_files: dict[str, Path]) -> None:
    vgg = sf.load_vgg19(str(weight_files["pth"]), pooling="avg")
    x = torch.randn(1, 3, 32, 32)
    conv = vgg.extract(x, ["relu1_2", "pool1"])
    torch.testing.assert_close(conv["pool1"], torch.nn.functional.avg_pool2d(conv["relu1_2"], 2))


def _uniform(color: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> Image.Image:
    return Image.new("RGB", size, color)


@pytest.mark.parametrize("convention", [TORCHVISION, MATCONVNET])
def test_normalisation_follows_the_convention(weight_files: dict[str, Path], convention: Convention) -> None:
    vgg = sf.load_vgg19(str(weight_files["pth" if convention is TORCHVISION else "mat"]))
    x = vgg.preprocess(_uniform((51, 102, 204)), size=32)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    rgb = np.array([51, 102, 204]) / 255.0
    expected = (rgb * convention.input_scale - np.array(convention.mean)) / np.array(convention.std)
    np.testing.assert_allclose(x[0, :, 5, 7].numpy(), expected, rtol=1e-5, atol=1e-4)


def test_crop_policy_takes_the_centre_and_squash_keeps_everything() -> None:
    img = Image.new("RGB", (448, 224), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 100, 224))  # a red band on the far left
    cropped = np.asarray(resize_for_network(img, 224, "crop"))
    squashed = np.asarray(resize_for_network(img, 224, "squash"))
    assert cropped.shape == squashed.shape == (224, 224, 3)
    assert cropped[..., 0].max() == 0  # the centre 196 source columns hold no red
    assert squashed[:, :45, 0].min() > 200  # squash keeps the band (100/448 of the width)


def test_preprocess_device_and_batch(vgg_pth: sf.VGG19) -> None:
    x = vgg_pth.preprocess([_uniform((0, 0, 0)), _uniform((255, 255, 255), (50, 80))], size=40)
    assert x.shape == (2, 3, 40, 40) and x.device == vgg_pth.device


def test_classify_top_k_sorted_and_probabilities_valid(vgg_pth: sf.VGG19) -> None:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)) for _ in range(3)]
    results = vgg_pth.classify(images, top_k=4, batch_size=2, size=64)
    assert len(results) == 3
    for preds in results:
        probs = [p.probability for p in preds]
        assert len(preds) == 4 and probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-6
        assert all(p.class_name == f"class_{p.class_id}" for p in preds)  # 10 classes: generic names
    # Same image alone or in a batch gives the same answer.
    alone = vgg_pth.classify(images[2], top_k=4, size=64)[0]
    assert [p.class_id for p in alone] == [p.class_id for p in results[2]]
    np.testing.assert_allclose([p.probability for p in alone], [p.probability for p in results[2]], rtol=1e-5)


def test_top_k_is_capped_at_number_of_classes(vgg_pth: sf.VGG19) -> None:
    assert len(vgg_pth.classify(_uniform((1, 2, 3)), top_k=50, size=32)[0]) == 10


def test_imagenet_names_are_shipped() -> None:
    from styleforge.vgg.classes import class_names_for, imagenet_classes

    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby" and names[999] == "toilet tissue"
    assert class_names_for(1000) == list(names)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(weight_files: dict[str, Path]) -> None:
    cpu = sf.load_vgg19(str(weight_files["pth"]), device="cpu")
    gpu = sf.load_vgg19(str(weight_files["pth"]), device="cuda")
    assert gpu.device.type == "cuda"
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-3, atol=1e-3)
    img = Image.new("RGB", (80, 60), (30, 140, 90))
    assert [p.class_id for p in gpu.classify(img, size=64)[0]] == [p.class_id for p in cpu.classify(img, size=64)[0]]
