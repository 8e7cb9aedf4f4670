r"""Colour preservation for style transfer (Gatys, Bethge, Hertzmann & Shechtman 2016,
"Preserving color in neural artistic style transfer").

* **luminance**: transfer style on luminance only. Content and style are reduced to
  their luminance Y (YIQ, NTSC 1953 coefficients); the style's Y is affinely matched to
  the content's mean and standard deviation; the result's Y is then recombined with
  the content's own I and Q chroma, so the output has exactly the content's colours.
* **histogram**: before transfer, recolour the style image so its RGB mean and
  covariance equal the content's: :math:`x' = \Sigma_c^{1/2}\Sigma_s^{-1/2}(x - \mu_s) + \mu_c`
  (symmetric matrix square roots).

All functions take and return 8-bit RGB PIL images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from styleforge.errors import StyleforgeError

PRESERVE_COLOR_MODES = ("luminance", "histogram")

# NTSC RGB -> YIQ; rows give Y, I, Q.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB floats in [0, 1] -> YIQ."""
    return rgb @ _RGB_TO_YIQ.T


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    """(..., 3) YIQ -> RGB floats (not clipped)."""
    return yiq @ _YIQ_TO_RGB.T


def to_float(img: Image.Image) -> np.ndarray:
    """PIL RGB -> (H, W, 3) float64 in [0, 1]."""
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def to_image(rgb: np.ndarray) -> Image.Image:
    """(H, W, 3) floats in [0, 1] -> PIL RGB (clipped and rounded)."""
    return Image.fromarray(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8), mode="RGB")


def luminance_image(img: Image.Image, match_to: Image.Image | None = None) -> Image.Image:
    """Return the luminance of ``img`` as a gray RGB image.

    Args:
        img: an RGB image.
        match_to: if given, the luminance is affinely mapped to this image's luminance
            mean and standard deviation (for the style image in luminance-only transfer).
    """
    y = rgb_to_yiq(to_float(img))[..., 0]
    if match_to is not None:
        target = rgb_to_yiq(to_float(match_to))[..., 0]
        y = (y - y.mean()) / max(y.std(), 1e-6) * target.std() + target.mean()
    return to_image(np.repeat(y[..., None], 3, axis=2))


def restore_chroma(result: Image.Image, content: Image.Image) -> Image.Image:
    """Combine the luminance of ``result`` with the I/Q chroma of ``content`` (resized to match)."""
    if content.size != result.size:
        content = content.resize(result.size, Image.Resampling.BICUBIC)
    yiq = rgb_to_yiq(to_float(content))
    yiq[..., 0] = rgb_to_yiq(to_float(result))[..., 0]
    return to_image(yiq_to_rgb(yiq))


def match_color_histogram(style: Image.Image, content: Image.Image, eps: float = 1e-5) -> Image.Image:
    """Recolour ``style`` so its RGB mean and covariance equal those of ``content``."""
    s = to_float(style).reshape(-1, 3)
    c = to_float(content).reshape(-1, 3)
    mu_s, mu_c = s.mean(axis=0), c.mean(axis=0)
    cov_s = np.cov(s, rowvar=False) + eps * np.eye(3)
    cov_c = np.cov(c, rowvar=False) + eps * np.eye(3)
    transform = _sqrtm(cov_c) @ np.linalg.inv(_sqrtm(cov_s))
    matched = (s - mu_s) @ transform.T + mu_c
    return to_image(matched.reshape(style.size[1], style.size[0], 3))


def check_mode(mode: str | None) -> str | None:
    """Validate a ``preserve_color`` value (None means off)."""
    if mode is not None and mode not in PRESERVE_COLOR_MODES:
        raise StyleforgeError(f"unknown colour preservation {mode!r}; use one of {', '.join(PRESERVE_COLOR_MODES)}")
    return mode


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
