"""The --power-difference switch: instance norm's variance and the squared-difference
losses through the operator, in training, stylising and Gatys, equal to the default path."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.losses.perceptual import content_loss, style_loss, style_target, total_variation
from styleforge.models.files import save_style_model
from styleforge.nets.transform_net import InstanceNorm
from styleforge.training.johnson import train
from styleforge.transfer.model import load_style_model
from tests.conftest import make_photo, run_cli
from tests.synthetic import random_style_network


def test_losses_are_bit_identical_with_the_operator() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 8, 9, 7, generator=g), torch.randn(1, 8, 9, 7, generator=g)
    target = style_target(torch.randn(1, 8, 11, 5, generator=g))
    image = torch.rand(2, 3, 16, 12, generator=g)
    for norm in ("course", "mse", "sum"):
        assert torch.equal(content_loss(x, y, norm, True), content_loss(x, y, norm, False))
    for norm in ("course", "johnson", "mse"):
        assert torch.equal(style_loss(x, target, norm, True), style_loss(x, target, norm, False))
    assert torch.equal(total_variation(image, "l2", True), total_variation(image, "l2", False))


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 2e-5), (torch.float64, 1e-12), (torch.bfloat16, 0.02)])
def test_instance_norm_with_the_operator_equals_the_fused_one(dtype: torch.dtype, tolerance: float) -> None:
    torch.manual_seed(1)
    norm = InstanceNorm(6).to(dtype)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(3, 6, 10, 9) * 4 + 2).to(dtype)
    expected = torch.nn.functional.instance_norm(x.double(), weight=norm.weight.double(), bias=norm.bias.double(), eps=norm.eps)
    norm.power_difference = True
    got = norm(x)
    assert got.dtype == dtype
    assert float((got.detach().double() - expected).abs().max()) < tolerance  # normalised units (about unit variance)


def test_stylising_and_tiles_are_the_same_with_the_switch(tmp_path: Path) -> None:
    path = save_style_model(random_style_network(seed=2), tmp_path / "m.safetensors", {"style_image": "s.png"})
    photo = Image.open(make_photo(tmp_path / "p.png", size=(90, 70), seed=3)).convert("RGB")
    results = {}
    for flag in (False, True):
        model = load_style_model(path, options=TransferOptions(device="cpu", precision="fp32", power_difference=flag))
        assert all(m.power_difference is flag for m in model.net.modules() if isinstance(m, InstanceNorm))
        results[flag] = [np.asarray(model.stylize(photo), dtype=float), np.asarray(model.stylize(photo, tile=48), dtype=float)]
    for plain, switched in zip(results[False], results[True], strict=True):
        assert np.abs(plain - switched).max() <= 1  # fp32 rounding of the variance, then 8-bit output


def test_training_steps_are_the_same_with_the_switch(weight_files: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        make_photo(photos / f"{i}.png", size=(60, 52), seed=i)
    style = make_photo(tmp_path / "style.png", size=(48, 48), seed=9)
    losses = {}
    for flag in (False, True):
        out = tmp_path / f"run{flag}"
        train(style, photos, out, weights=str(weight_files["pth"]), max_steps=3, image_size=48, batch_size=2, workers=0,
              device="cpu", precision="fp32", log_every=1, checkpoint_every=0, progress=False, power_difference=flag)
        with open(out / "log.csv") as handle:
            losses[flag] = [[float(row[k]) for k in ("content", "style", "tv")] for row in csv.DictReader(handle)]
    np.testing.assert_allclose(losses[True][0], losses[False][0], rtol=1e-5)  # the same network: fp32 rounding only
    # Later steps: Adam's first updates are about lr * sign(gradient), so rounding-level
    # differences in near-zero gradients become whole-step differences in a few weights.
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-2)


def test_cli_switch_and_its_refusals(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    content = make_photo(tmp_path / "c.png", size=(40, 32), seed=1)
    style = make_photo(tmp_path / "s.png", size=(40, 32), seed=2)
    outputs = {}
    for flag in ((), ("--power-difference",)):
        out = tmp_path / f"g{len(flag)}.png"
        done = run_cli("stylize", str(content), "--style", str(style), "-o", str(out), "--weights", str(weight_files["pth"]),
                       "--iterations", "3", "--size", "32", "--device", "cpu", "--quiet", *flag)
        assert done.returncode == 0, done.stderr
        outputs[len(flag)] = np.asarray(Image.open(out), dtype=float)
    assert np.abs(outputs[0] - outputs[1]).max() <= 1
    refused = run_cli("stylize", str(content), "--style", str(style), "-o", str(tmp_path / "n.png"), "--weights", str(weight_files["pth"]),
                      "--engine", "numpy", "--power-difference")
    assert refused.returncode == 2 and "NumPy engine" in refused.stderr
