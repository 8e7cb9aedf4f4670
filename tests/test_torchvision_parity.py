"""Cross-check against torchvision's own VGG19 where torchvision is installed.

torchvision is not a dependency (it has no CPU build on the project's machines), so
this test skips there; on machines that have it (e.g. the CUDA image) it proves that a
file saved from ``torchvision.models.vgg19()`` loads into styleforge's VGG19 with the
same logits, at full ImageNet size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import styleforge as sf

torchvision = pytest.importorskip("torchvision")


def test_full_size_torchvision_vgg19_state_dict_loads_with_identical_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.vgg19(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "vgg19-random.pth")
    ours = sf.load_vgg19(str(tmp_path / "vgg19-random.pth"))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x)
    torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-4)
    assert sum(p.numel() for p in ours.parameters()) == 143_667_240  # VGG19's published parameter count
