"""Shared fixtures of the deployment tests: a style model with non-trivial weights, its
ONNX export, and tiny classifier weights with ImageNet's 7x7 pool grid."""

from __future__ import annotations

from pathlib import Path

import pytest

from styleforge.deploy.export import export_style_model
from tests.synthetic import random_style_network, random_weights, write_torchvision_pth


@pytest.fixture(scope="session")
def style_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TransformNet with random (not identity-like) weights and real instance-norm affine terms."""
    from styleforge.models.files import save_style_model

    folder = tmp_path_factory.mktemp("export")
    return save_style_model(random_style_network(seed=0), folder / "wave.safetensors", {"style_image": "wave.jpg", "options": {"norm": "instance"}})


@pytest.fixture(scope="session")
def exported(style_model: Path) -> Path:
    return export_style_model(style_model, style_model.with_suffix(".onnx")).path


@pytest.fixture(scope="session")
def classifier_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_torchvision_pth(random_weights(seed=4, grid=7), tmp_path_factory.mktemp("cls") / "tv7.pth")


