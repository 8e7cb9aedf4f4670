r"""Loss layers with hand-written gradients (course formulas 3.10-3.16).

The normalisations are the same as :mod:`styleforge.losses` (the PyTorch side), so the
two engines optimise the same objective:

* content: :math:`L = k\sum (X - Y)^2`, :math:`\nabla_X L = 2k (X - Y)` with
  :math:`k = 1/(2NCHW)` (``course``, giving formula 3.11), :math:`1/(NCHW)` (``mse``) or
  :math:`1/2` (``sum``);
* style: :math:`G_n = X_n X_n^\top`, :math:`L = k\sum (G - A)^2`,
  :math:`\nabla_{X_n} L = 4k (G_n - A) X_n` (G and A symmetric) with
  :math:`k = 1/(4NC^2H^2W^2)` (``course``, giving formula 3.15), :math:`1/(N(CHW)^2)`
  (``johnson``) or :math:`1/(NC^2(CHW)^2)` (``mse``);
* total variation on the image: mean squared (``l2``) or absolute (``l1``) differences
  of vertical and horizontal neighbours.
"""

from __future__ import annotations

import numpy as np

from styleforge.errors import StyleforgeError


def gram(x: np.ndarray) -> np.ndarray:
    """Per-image Gram matrices of (N, C, H, W) features: (N, C, C)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    return flat @ flat.transpose(0, 2, 1)


class ContentLoss:
    """Feature reconstruction loss; ``forward(x, y)`` then ``backward()`` -> dL/dx."""

    def __init__(self, normalization: str = "course") -> None:
        if normalization not in ("course", "mse", "sum"):
            raise StyleforgeError(f"unknown content loss normalisation {normalization!r}")
        self.normalization = normalization
        self._diff: np.ndarray | None = None
        self._k = 0.0

    def forward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Return the loss of features ``x`` against target ``y``."""
        self._diff = x - y
        self._k = {"course": 1.0 / (2 * x.size), "mse": 1.0 / x.size, "sum": 0.5}[self.normalization]
        return float(self._k * np.sum(self._diff.astype(np.float64) ** 2))

    def backward(self) -> np.ndarray:
        """dL/dx for the last :meth:`forward`."""
        return (2 * self._k) * self._diff


class StyleLoss:
    """Gram-matrix style loss; ``forward(x, A)`` then ``backward()`` -> dL/dx."""

    def __init__(self, normalization: str = "course") -> None:
        if normalization not in ("course", "johnson", "mse"):
            raise StyleforgeError(f"unknown style loss normalisation {normalization!r}")
        self.normalization = normalization
        self._x: np.ndarray | None = None
        self._diff: np.ndarray | None = None
        self._k = 0.0

    def forward(self, x: np.ndarray, target_gram: np.ndarray) -> float:
        """Return the loss of features ``x`` (N, C, H, W) against an unnormalised Gram (C, C)."""
        n, c, h, w = x.shape
        chw = float(c * h * w)
        self._k = {
            "course": 1.0 / (4.0 * n * c**2 * (h * w) ** 2),
            "johnson": 1.0 / (n * chw**2),
            "mse": 1.0 / (n * c**2 * chw**2),
        }[self.normalization]
        self._x = x
        self._diff = gram(x) - target_gram
        return float(self._k * np.sum(self._diff.astype(np.float64) ** 2))

    def backward(self) -> np.ndarray:
        """dL/dx for the last :meth:`forward`."""
        n, c, h, w = self._x.shape
        grad = (self._diff @ self._x.reshape(n, c, h * w)) * (4 * self._k)
        return grad.reshape(self._x.shape).astype(self._x.dtype, copy=False)


class TotalVariationLoss:
    """Total variation of an image batch; ``forward(x)`` then ``backward()`` -> dL/dx."""

    def __init__(self, kind: str = "l2") -> None:
        if kind not in ("l2", "l1"):
            raise StyleforgeError(f"unknown total variation kind {kind!r}")
        self.kind = kind
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> float:
        """Return the total variation of ``x``."""
        self._x = x
        dh, dw = np.diff(x, axis=2), np.diff(x, axis=3)
        if self.kind == "l2":
            return float(np.mean(dh.astype(np.float64) ** 2) + np.mean(dw.astype(np.float64) ** 2))
        return float(np.mean(np.abs(dh)) + np.mean(np.abs(dw)))

    def backward(self) -> np.ndarray:
        """dL/dx for the last :meth:`forward`."""
        x = self._x
        dh, dw = np.diff(x, axis=2), np.diff(x, axis=3)
        if self.kind == "l2":
            gh, gw = 2 * dh / dh.size, 2 * dw / dw.size
        else:
            gh, gw = np.sign(dh) / dh.size, np.sign(dw) / dw.size
        grad = np.zeros_like(x)
        grad[:, :, 1:, :] += gh
        grad[:, :, :-1, :] -= gh
        grad[:, :, :, 1:] += gw
        grad[:, :, :, :-1] -= gw
        return grad
