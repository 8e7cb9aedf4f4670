r"""How close a result is to a reference: PSNR and SSIM of 8-bit RGB images.

* PSNR = :math:`10\log_{10}(255^2 / \mathrm{MSE})` over all pixels and channels
  (infinite for identical images).
* SSIM as defined by Wang, Bovik, Sheikh & Simoncelli (2004): local means, variances and
  covariance under an 11x11 Gaussian window (sigma 1.5), :math:`C_1 = (0.01 \cdot 255)^2`,
  :math:`C_2 = (0.03 \cdot 255)^2`, computed on each channel over the "valid" window
  positions and averaged; 1 for identical images.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy.ndimage import correlate1d


def psnr(result: Image.Image, reference: Image.Image) -> float:
    """PSNR in dB of ``result`` against ``reference`` (same size, RGB)."""
    a, b = _array(result), _array(reference)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(result: Image.Image, reference: Image.Image) -> float:
    """Mean SSIM of ``result`` against ``reference`` (same size, RGB; module docstring)."""
    a, b = _array(result), _array(reference)
    window = _gaussian(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        mu_x, mu_y = _blur(x, window), _blur(y, window)
        var_x = _blur(x * x, window) - mu_x**2
        var_y = _blur(y * y, window) - mu_y**2
        cov = _blur(x * y, window) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        scores.append(float(ssim_map.mean()))
    return float(np.mean(scores))


def _array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64)


def _gaussian(size: int, sigma: float) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def _blur(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter, keeping only positions where the window fits (valid)."""
    half = len(window) // 2
    blurred = correlate1d(correlate1d(x, window, axis=0, mode="nearest"), window, axis=1, mode="nearest")
    if x.shape[0] > 2 * half and x.shape[1] > 2 * half:
        return blurred[half:-half, half:-half]
    return blurred  # smaller than the window: use every position
