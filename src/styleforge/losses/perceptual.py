r"""Perceptual losses shared by optimisation-based (Gatys) and feed-forward (Johnson)
style transfer, on PyTorch.

The formulas and their normalisation constants are in :mod:`styleforge.losses.scales`
(shared with the NumPy engine). In short, for features :math:`X` (N, C, H, W):

* content: :math:`L_c = k_c \sum (X - Y)^2`;
* style: :math:`L_s = k_s \sum_n \lVert X_nX_n^\top/(HW) - T\rVert_F^2` against a
  *per-position* target Gram :math:`T = YY^\top/(H_sW_s)` (:func:`style_target`), so a
  style image of any size gives the same target for the same texture; with equal sizes
  and ``course`` this is formula 3.13.

Total variation of an image batch in [0, 1], ``kind``: ``"l2"`` (default) is the mean
over pixels of squared differences between vertical and horizontal neighbours (summed
over the two directions, Mahendran & Vedaldi's beta = 2 regulariser), ``"l1"`` the
same with absolute differences (anisotropic TV). Using means keeps one weight
meaningful at every image size.
"""

from __future__ import annotations

import torch

from styleforge.config import TV_KINDS
from styleforge.errors import StyleforgeError
from styleforge.losses.scales import content_scale, style_scale


def squared_difference(x: torch.Tensor, y: torch.Tensor, power_difference: bool = False) -> torch.Tensor:
    """:math:`(x - y)^2` with broadcasting: the plain expression, or with ``power_difference``
    the PowerDifference operator (:mod:`styleforge.ops`, z = 2; the same numbers)."""
    if power_difference:
        from styleforge.ops import power_difference as op

        return op(x, y, 2.0)
    return (x - y).square()


def content_loss(x: torch.Tensor, y: torch.Tensor, normalization: str = "course", power_difference: bool = False) -> torch.Tensor:
    """Feature reconstruction loss between generated features ``x`` and target ``y``.

    Args:
        x: (N, C, H, W) features of the generated image.
        y: target features, same shape (or broadcastable over N).
        normalization: ``course``, ``mse`` or ``sum`` (:mod:`styleforge.losses.scales`).
        power_difference: square the differences with the PowerDifference operator.

    Returns:
        A scalar tensor.
    """
    return squared_difference(x, y, power_difference).sum() * content_scale(normalization, x.numel())


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """Gram matrices :math:`G_n = X_n X_n^\\top` of (N, C, H, W) features, shape (N, C, C).

    Summed over the H*W positions (the course's G). Half-precision inputs are promoted
    to float32 (Gram entries sum H*W products and lose too much in bf16/fp16).
    """
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    return torch.bmm(flat, flat.transpose(1, 2))


def style_target(x: torch.Tensor) -> torch.Tensor:
    """Per-position Gram matrices :math:`X_n X_n^\\top / (HW)` of (N, C, H, W) features.

    This is what :func:`style_loss` compares, and the form in which style targets are
    stored: dividing by the number of positions makes a style image's target depend on
    its texture, not on its pixel count. Returns (N, C, C) float32 (or float64).
    """
    h, w = x.shape[2:]
    return gram_matrix(x) / (h * w)


def style_loss(x: torch.Tensor, target: torch.Tensor, normalization: str = "course", power_difference: bool = False) -> torch.Tensor:
    """Style loss of features ``x`` against a per-position target Gram.

    Args:
        x: (N, C, H, W) features of the generated image.
        target: (C, C) or (N, C, C) per-position Gram of the style (:func:`style_target`
            of the style image's features, or a blend of several), broadcast over N.
        normalization: ``course``, ``johnson`` or ``mse`` (:mod:`styleforge.losses.scales`).
        power_difference: square the differences with the PowerDifference operator.

    Returns:
        A scalar tensor.
    """
    n, c = x.shape[:2]
    generated = style_target(x)
    return squared_difference(generated, target.to(generated.dtype), power_difference).sum() * style_scale(normalization, n, c)


def total_variation(image: torch.Tensor, kind: str = "l2", power_difference: bool = False) -> torch.Tensor:
    """Total variation of an (N, C, H, W) image batch (module docstring for ``kind``);
    ``power_difference`` squares the ``l2`` differences with the PowerDifference operator."""
    below, above = image[:, :, 1:, :], image[:, :, :-1, :]
    right, left = image[:, :, :, 1:], image[:, :, :, :-1]
    if kind == "l2":
        return squared_difference(below, above, power_difference).mean() + squared_difference(right, left, power_difference).mean()
    dh, dw = below - above, right - left
    if kind == "l1":
        return dh.abs().mean() + dw.abs().mean()
    raise StyleforgeError(f"unknown total variation kind {kind!r}; use one of {', '.join(TV_KINDS)}")
