"""Pictures to PyTorch tensors and back: uint8 RGB images as float (N, 3, H, W) 0-255
batches, the form every style network takes and returns."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def images_to_tensor(images: list[Image.Image], device: torch.device) -> torch.Tensor:
    """uint8 HWC images -> float NCHW on ``device`` (channels_last strides, from the permute)."""
    arrays = np.stack([np.asarray(img, dtype=np.uint8) for img in images])
    return torch.from_numpy(arrays).to(device).permute(0, 3, 1, 2).float()


def tensor_to_images(y: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) 0-255 float tensor -> N RGB images (clamped and rounded)."""
    arrays = y.float().clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a, mode="RGB") for a in arrays]
