r"""The normalisation constants of the perceptual losses, shared by both engines.

This module imports neither PyTorch nor NumPy: :mod:`styleforge.losses.perceptual` (PyTorch) and
:mod:`styleforge.numpy_engine.losses` (NumPy) both take their constants from here, so
the two engines optimise exactly the same objective.

Notation (course, formulas 3.10-3.15): feature maps :math:`X` of the generated image
and :math:`Y` of the target at one layer, shape (N, C, H, W).

Content loss :math:`L_c = k_c \sum (X - Y)^2` with, per ``normalization``:

* ``course``: :math:`k_c = 1/(2NCHW)` (formula 3.11);
* ``mse``: :math:`k_c = 1/(NCHW)` (Johnson et al. 2016, PyTorch's fast_neural_style);
* ``sum``: :math:`k_c = 1/2` (Gatys et al. 2016, unnormalised).

Style loss. Each Gram matrix is divided by its own number of positions, so the style
image's size never scales the loss: with :math:`P_n = X_n X_n^\top/(HW)` for the
generated image and :math:`T = Y Y^\top/(H_s W_s)` for a style image of
:math:`H_s \times W_s` feature positions (or a blend of several such targets),

.. math:: L_s = k_s \sum_{n,i,j} (P_n - T)_{ij}^2

with, per ``normalization``:

* ``course``: :math:`k_s = 1/(4NC^2)`. When the style image has the generated image's
  size this is exactly formula 3.13, :math:`\frac{1}{4NC^2H^2W^2}\sum (G - A)^2` with
  unnormalised Grams :math:`G = X X^\top`, :math:`A = Y Y^\top`;
* ``johnson``: :math:`k_s = 1/(NC^2)`, i.e. :math:`\frac1N\sum_n \lVert G_n/(CHW) -
  A/(CH_sW_s)\rVert_F^2` (Johnson et al. 2016, "style reconstruction loss");
* ``mse``: :math:`k_s = 1/(NC^4)`, the mean over N*C*C of the squared differences of
  the C*H*W-normalised Grams (PyTorch's fast_neural_style and neural-transfer tutorial,
  jcjohnson/neural-style, the course's training lab).

Gradient (both Grams symmetric): :math:`\partial L_s/\partial X_n = \frac{4k_s}{HW}(P_n - T) X_n`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from styleforge.config import CONTENT_NORMALIZATIONS, STYLE_NORMALIZATIONS, normalized_weights
from styleforge.errors import StyleforgeError

Target = TypeVar("Target")


def content_scale(normalization: str, numel: int) -> float:
    """Return :math:`k_c` for content features of ``numel`` = N*C*H*W elements."""
    if normalization == "course":
        return 1.0 / (2.0 * numel)
    if normalization == "mse":
        return 1.0 / numel
    if normalization == "sum":
        return 0.5
    raise StyleforgeError(f"unknown content loss normalisation {normalization!r}; use one of {', '.join(CONTENT_NORMALIZATIONS)}")


def style_scale(normalization: str, batch: int, channels: int) -> float:
    """Return :math:`k_s` for a batch of ``batch`` images with ``channels`` feature channels."""
    if normalization == "course":
        return 1.0 / (4.0 * batch * channels**2)
    if normalization == "johnson":
        return 1.0 / (batch * channels**2)
    if normalization == "mse":
        return 1.0 / (batch * channels**4)
    raise StyleforgeError(f"unknown style loss normalisation {normalization!r}; use one of {', '.join(STYLE_NORMALIZATIONS)}")


def blend_targets(targets_per_style: Sequence[Mapping[str, Target]], blend: Sequence[float] | None) -> dict[str, Target]:
    r"""Blend several styles' per-position Gram targets: :math:`T^l = \sum_k b_k T^l_k`.

    Because every :math:`T^l_k` is already divided by its own style image's number of
    positions, the styles are weighed by the blend weights only, whatever their sizes.

    Args:
        targets_per_style: per style image, ``{layer: (C, C) per-position Gram}``
            (tensors or arrays).
        blend: one non-negative weight per style (normalised here); None = equal.

    Returns:
        ``{layer: blended target}``.
    """
    shares = normalized_weights(len(targets_per_style), blend, "blend", "style images")
    layers = targets_per_style[0].keys()
    return {layer: sum(b * t[layer] for b, t in zip(shares, targets_per_style, strict=True)) for layer in layers}  # type: ignore[misc]


def normalized_layer_weights(layers: Sequence[str], weights: Sequence[float] | None) -> dict[str, float]:
    """Return ``{layer: weight}`` with the weights summing to 1 (equal when ``weights`` is None)."""
    return dict(zip(layers, normalized_weights(len(layers), weights, "style layer", "style layers"), strict=True))
