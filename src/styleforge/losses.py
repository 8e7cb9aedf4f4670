r"""Perceptual losses shared by optimisation-based (Gatys) and feed-forward (Johnson)
style transfer.

Notation (course, formulas 3.10-3.15): feature maps :math:`X` of the generated image and
:math:`Y` of the target at one layer, shape (N, C, H, W).

Content (feature reconstruction) loss, ``normalization``:

* ``"course"`` (default; SPEC): :math:`L_c = \frac{1}{2NCHW}\sum (X - Y)^2`;
* ``"mse"``: :math:`\frac{1}{NCHW}\sum (X - Y)^2` (PyTorch's fast_neural_style,
  Johnson et al. 2016 "feature reconstruction loss", jcjohnson/neural-style);
* ``"sum"``: :math:`\frac{1}{2}\sum (X - Y)^2` (Gatys et al. 2016, unnormalised).

Gram matrix :math:`G = X X^\top` per image over the H*W positions, shape (N, C, C);
``normalize=True`` divides by C*H*W (Johnson et al. 2016).

Style loss of one layer against a target Gram :math:`A` (given unnormalised), with
``normalization``:

* ``"course"`` (default; SPEC, Gatys et al. 2016 eq. 4 with a batch mean):
  :math:`L_s = \frac{1}{4 N C^2 H^2 W^2}\sum_{n,i,j} (G - A)^2`;
* ``"johnson"``: :math:`\frac{1}{N}\sum_n \lVert G/(CHW) - A/(CHW) \rVert_F^2`
  (Johnson et al. 2016 "style reconstruction loss");
* ``"mse"``: the mean over N*C*C of :math:`(G/(CHW) - A/(CHW))^2` (PyTorch's
  fast_neural_style and its neural-transfer tutorial, jcjohnson/neural-style).

Total variation of an image batch in [0, 1], ``kind``: ``"l2"`` (default) is the mean
over pixels of squared differences between vertical and horizontal neighbours (summed
over the two directions, Mahendran & Vedaldi's beta = 2 regulariser), ``"l1"`` the
same with absolute differences (anisotropic TV). Using means keeps one weight
meaningful at every image size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from styleforge.config import CONTENT_NORMALIZATIONS, STYLE_NORMALIZATIONS, TV_KINDS, normalized_weights
from styleforge.errors import StyleforgeError


def content_loss(x: torch.Tensor, y: torch.Tensor, normalization: str = "course") -> torch.Tensor:
    """Feature reconstruction loss between generated features ``x`` and target ``y``.

    Args:
        x: (N, C, H, W) features of the generated image.
        y: target features, same shape (or broadcastable over N).
        normalization: ``course``, ``mse`` or ``sum`` (module docstring).

    Returns:
        A scalar tensor.
    """
    squared = (x - y).square().sum()
    if normalization == "course":
        return squared / (2 * x.numel())
    if normalization == "mse":
        return squared / x.numel()
    if normalization == "sum":
        return squared / 2
    raise StyleforgeError(f"unknown content loss normalisation {normalization!r}; use one of {', '.join(CONTENT_NORMALIZATIONS)}")


def gram_matrix(x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Gram matrices :math:`G_{n} = X_n X_n^\\top` of (N, C, H, W) features, shape (N, C, C).

    Half-precision inputs are promoted to float32 (Gram entries sum H*W products and
    lose too much in bf16/fp16). ``normalize`` divides by C*H*W.
    """
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    gram = torch.bmm(flat, flat.transpose(1, 2))
    return gram / (c * h * w) if normalize else gram


def style_loss(
    x: torch.Tensor,
    target_gram: torch.Tensor,
    normalization: str = "course",
) -> torch.Tensor:
    """Style loss of features ``x`` against an unnormalised target Gram matrix.

    Args:
        x: (N, C, H, W) features of the generated image.
        target_gram: (C, C) or (N, C, C) unnormalised Gram matrix of the style
            (broadcast over the batch).
        normalization: ``course``, ``johnson`` or ``mse`` (module docstring).

    Returns:
        A scalar tensor.
    """
    n, c, h, w = x.shape
    gram = gram_matrix(x)
    diff = gram - target_gram.to(gram.dtype)
    if normalization == "course":
        return diff.square().sum() / (4 * n * c**2 * (h * w) ** 2)
    scaled = diff.square().sum() / (c * h * w) ** 2
    if normalization == "johnson":
        return scaled / n
    if normalization == "mse":
        return scaled / (n * c * c)
    raise StyleforgeError(f"unknown style loss normalisation {normalization!r}; use one of {', '.join(STYLE_NORMALIZATIONS)}")


def total_variation(image: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Total variation of an (N, C, H, W) image batch (module docstring for ``kind``)."""
    dh = image[:, :, 1:, :] - image[:, :, :-1, :]
    dw = image[:, :, :, 1:] - image[:, :, :, :-1]
    if kind == "l2":
        return dh.square().mean() + dw.square().mean()
    if kind == "l1":
        return dh.abs().mean() + dw.abs().mean()
    raise StyleforgeError(f"unknown total variation kind {kind!r}; use one of {', '.join(TV_KINDS)}")


def normalized_layer_weights(layers: Sequence[str], weights: Sequence[float] | None) -> dict[str, float]:
    """Per-layer style weights summing to 1 (equal when ``weights`` is None)."""
    return dict(zip(layers, normalized_weights(len(layers), weights, "style layer", "style layers"), strict=True))


def blended_grams(grams_per_style: Sequence[Mapping[str, torch.Tensor]], blend: Sequence[float]) -> dict[str, torch.Tensor]:
    """Blend several styles' Gram targets: :math:`A^l = \\sum_k b_k A^l_k` with the b_k summing to 1.

    Args:
        grams_per_style: per style image, ``{layer: (C, C) Gram}``.
        blend: one non-negative weight per style (normalised here).

    Returns:
        ``{layer: blended Gram}``.
    """
    shares = normalized_weights(len(grams_per_style), blend, "blend", "style images")
    layers = grams_per_style[0].keys()
    return {layer: sum(b * grams[layer] for b, grams in zip(shares, grams_per_style, strict=True)) for layer in layers}  # type: ignore[misc]
