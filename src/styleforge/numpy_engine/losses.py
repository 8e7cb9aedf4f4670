r"""Loss layers with hand-written gradients (course formulas 3.10-3.16).

The normalisation constants come from :mod:`styleforge.losses.scales`, shared with the
PyTorch side, so the two engines optimise the same objective:

* content: :math:`L = k_c\sum (X - Y)^2`, :math:`\nabla_X L = 2k_c (X - Y)`;
* style: :math:`P_n = X_n X_n^\top/(HW)`, :math:`L = k_s\sum_n \lVert P_n - T\rVert_F^2`
  against a per-position target :math:`T` (:func:`style_target`),
  :math:`\nabla_{X_n} L = \frac{4k_s}{HW} (P_n - T) X_n` (P and T symmetric);
* total variation on the image: mean squared (``l2``) or absolute (``l1``) differences
  of vertical and horizontal neighbours.
"""

from __future__ import annotations

import numpy as np

from styleforge.errors import StyleforgeError
from styleforge.losses.scales import content_scale, style_scale


def gram(x: np.ndarray) -> np.ndarray:
    """Per-image Gram matrices :math:`X_n X_n^\\top` of (N, C, H, W) features: (N, C, C)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    return flat @ flat.transpose(0, 2, 1)


def style_target(x: np.ndarray) -> np.ndarray:
    """Per-position Gram matrices :math:`X_n X_n^\\top/(HW)`: (N, C, C), the stored style target."""
    h, w = x.shape[2:]
    return gram(x) / (h * w)


class ContentLoss:
    """Feature reconstruction loss; ``forward(x, y)`` then ``backward()`` -> dL/dx."""

    def __init__(self, normalization: str = "course") -> None:
        content_scale(normalization, 1)  # refuses an unknown name now, not at forward
        self.normalization = normalization
        self._diff: np.ndarray | None = None
        self._k = 0.0

    def forward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Return the loss of features ``x`` against target ``y``."""
        self._diff = x - y
        self._k = content_scale(self.normalization, x.size)
        return float(self._k * np.sum(self._diff.astype(np.float64) ** 2))

    def backward(self) -> np.ndarray:
        """dL/dx for the last :meth:`forward`."""
        return (2 * self._k) * self._diff


class StyleLoss:
    """Gram-matrix style loss; ``forward(x, T)`` then ``backward()`` -> dL/dx."""

    def __init__(self, normalization: str = "course") -> None:
        style_scale(normalization, 1, 1)  # refuses an unknown name now, not at forward
        self.normalization = normalization
        self._x: np.ndarray | None = None
        self._diff: np.ndarray | None = None
        self._k = 0.0

    def forward(self, x: np.ndarray, target: np.ndarray) -> float:
        """Return the loss of features ``x`` (N, C, H, W) against a per-position Gram (C, C)."""
        n, c = x.shape[:2]
        self._k = style_scale(self.normalization, n, c)
        self._x = x
        self._diff = style_target(x) - target
        return float(self._k * np.sum(self._diff.astype(np.float64) ** 2))

    def backward(self) -> np.ndarray:
        """dL/dx for the last :meth:`forward`."""
        n, c, h, w = self._x.shape
        grad = (self._diff @ self._x.reshape(n, c, h * w)) * (4 * self._k / (h * w))
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
