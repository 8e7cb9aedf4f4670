"""Shared fixtures of the deployment tests: a style model with non-trivial weights, its
ONNX export, and tiny classifier weights with ImageNet's 7x7 pool grid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from styleforge.deploy.export import export_style_model
from styleforge.transform_net import TransformNet
from tests.synthetic import random_weights, write_torchvision_pth


@pytest.fixture(scope="session")
def style_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TransformNet with random (not identity-like) weights and real instance-norm affine terms."""
    from styleforge.transfer import save_style_model

    torch.manual_seed(0)
    net = TransformNet()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("weight") and param.ndim == 1:
                param.uniform_(0.5, 1.5)
            elif name.endswith("bias") and param.ndim == 1:
                param.uniform_(-0.5, 0.5)
    folder = tmp_path_factory.mktemp("export")
    return save_style_model(net, folder / "wave.safetensors", {"style_image": "wave.jpg", "options": {"norm": "instance"}})


@pytest.fixture(scope="session")
def exported(style_model: Path) -> Path:
    return export_style_model(style_model, style_model.with_suffix(".onnx")).path


@pytest.fixture(scope="session")
def classifier_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_torchvision_pth(random_weights(seed=4, grid=7), tmp_path_factory.mktemp("cls") / "tv7.pth")


