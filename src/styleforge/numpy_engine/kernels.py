r"""im2col and col2im on NCHW arrays through strided views (no per-pixel Python loops).

A k x k window at stride s over a padded input ``xp`` of shape (N, C, Hp, Wp) is seen,
without copying, as an array of shape (N, C, OH, OW, k, k) with
OH = (Hp - k) // s + 1 (``numpy.lib.stride_tricks.sliding_window_view``, then a strided
slice). ``im2col`` lays those windows out as the columns of a (C*k*k, N*OH*OW) matrix so a
convolution is one matrix product (the course's im2col speed-up).

``col2im`` is the adjoint: it accumulates gradients of every window position back into
the padded input. It loops over the k*k offsets inside the window (9 iterations for a
3x3 kernel), each a vectorised strided add over all windows at once:

.. math:: \nabla X_{pad}[n, c, i s + p, j s + q] \mathrel{+}= \nabla W_{in}[n, c, i, j, p, q]
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Spatial output size of a window operation (floor mode, like PyTorch)."""
    return (size + 2 * padding - kernel) // stride + 1


def pad(x: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pad the two spatial axes of an NCHW array."""
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def windows(xp: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """A read-only (N, C, OH, OW, k, k) view of every k x k window at ``stride``."""
    view = sliding_window_view(xp, (kernel, kernel), axis=(2, 3))
    return view[:, :, ::stride, ::stride]


def im2col(xp: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Windows as matrix columns: (C*k*k, N*OH*OW), row order (c, p, q), column order (n, i, j).

    This "K-major" layout (as in Caffe) copies each window row with unit stride along
    the image width, and for N = 1 the product ``W (C_out, C*k*k) @ cols`` is already the
    (C_out, OH, OW) output: no transposes of large arrays on either pass.
    """
    win = windows(xp, kernel, stride)
    n, c, oh, ow, k, _ = win.shape
    return win.transpose(1, 4, 5, 0, 2, 3).reshape(c * k * k, n * oh * ow)


def col2im(window_grads: np.ndarray, padded_shape: tuple[int, ...], stride: int) -> np.ndarray:
    """Accumulate (N, C, OH, OW, k, k) window gradients into a zero (N, C, Hp, Wp) array."""
    _, _, oh, ow, k, _ = window_grads.shape
    out = np.zeros(padded_shape, dtype=window_grads.dtype)
    for p in range(k):
        for q in range(k):
            out[:, :, p : p + stride * oh : stride, q : q + stride * ow : stride] += window_grads[:, :, :, :, p, q]
    return out


def crop(xp: np.ndarray, padding: int) -> np.ndarray:
    """Remove ``padding`` from the two spatial axes (inverse of :func:`pad` for gradients)."""
    if padding == 0:
        return xp
    return xp[:, :, padding:-padding, padding:-padding]
