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


def _positions_by_channels(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` (N, C, H, W) as a matrix batch without copying where its layout allows:
    (N, H*W, C) for channels_last memory (returns True), else (N, C, H*W) (False)."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c), True
    return x.reshape(n, c, h * w), False


class _Gram(torch.autograd.Function):
    r""":math:`G = XX^\top` with the gradient :math:`(\bar G + \bar G^\top)X` as one
    matrix product in the features' own memory layout.

    Autograd's own ``bmm(X, X^T)`` gives two products, one transposed, added strided, and
    a gradient in NCHW that then meets the channels_last gradient from the next
    convolution: on a 2-core CPU those two strided additions cost more than all of
    VGG19's bf16 convolutions at 256 px (benchmarks/gatys.py).
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        flat, positions_first = _positions_by_channels(x)
        ctx.save_for_backward(flat)
        ctx.positions_first, ctx.shape = positions_first, x.shape
        return flat.transpose(1, 2) @ flat if positions_first else flat @ flat.transpose(1, 2)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (flat,) = ctx.saved_tensors
        symmetric = grad + grad.transpose(1, 2)
        n, c, h, w = ctx.shape
        if ctx.positions_first:  # d(F^T) = F^T (G' + G'^T), back to channels_last NCHW
            return (flat @ symmetric).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return (symmetric @ flat).reshape(n, c, h, w)


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    r"""Gram matrices :math:`G_n = X_n X_n^\top` of (N, C, H, W) features, shape (N, C, C).

    Summed over the H*W positions (the course's G). Half-precision inputs are promoted
    to float32 (Gram entries sum H*W products and lose too much in bf16/fp16). Works on
    NCHW and channels_last features alike, without a layout copy (:class:`_Gram`).
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # keeps the memory format
    return _Gram.apply(x)


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
