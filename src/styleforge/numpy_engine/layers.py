r"""Network layers on NCHW NumPy arrays, each with a forward and a hand-written backward.

Weights use PyTorch's layout (Linear (out, in); Conv2d (C_out, C_in, kH, kW)) so the
engines can be compared directly. Every layer takes ``impl="naive"`` (the loops of the
definition: readable, slow, the reference) or ``impl="fast"`` (vectorised: im2col and
one matrix product, strided views, no per-pixel Python loops).

``forward(x)`` keeps what ``backward`` needs; ``backward(dy)`` returns dL/dx and stores
parameter gradients in ``grad_weight`` / ``grad_bias``. Course formulas:

* convolution (3.3): :math:`Y[n,o,h,w] = \sum_{c,p,q} W[o,c,p,q]\,X_{pad}[n,c,hs+p,ws+q] + b[o]`;
  backward (3.5, 3.6): :math:`\nabla W[o,c,p,q] = \sum_{n,h,w}\nabla Y[n,o,h,w]\,X_{pad}[n,c,hs+p,ws+q]`,
  :math:`\nabla b[o] = \sum_{n,h,w}\nabla Y[n,o,h,w]`, and :math:`\nabla X_{pad}` gathers
  :math:`\nabla Y[n,o,h,w]\,W[o,c,p,q]` at every position the window touched;
* max pooling (3.7-3.9): the gradient goes to the arg-max of each window; ties go to
  the first maximum in row-major order (as PyTorch's CPU kernel does), in both impls;
* fully connected: :math:`Y = X W^\top + b`, :math:`\nabla X = \nabla Y\,W`,
  :math:`\nabla W = \nabla Y^\top X`;
* softmax over axis 1: :math:`\nabla X = Y \odot (\nabla Y - \sum_j \nabla Y_j Y_j)`.
"""

from __future__ import annotations

import abc

import numpy as np

from styleforge.errors import StyleforgeError
from styleforge.numpy_engine import kernels

IMPLS = ("naive", "fast")


def _check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise StyleforgeError(f"unknown impl {impl!r}; use 'naive' or 'fast'")
    return impl


class Layer(abc.ABC):
    """Base class: ``forward``, ``backward``, parameters and their gradients."""

    impl: str = "fast"

    def params(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (empty for parameter-free layers)."""
        return {}

    def grads(self) -> dict[str, np.ndarray]:
        """Gradients from the last ``backward``, by the same names as :meth:`params`."""
        return {}

    @abc.abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output, keeping what :meth:`backward` needs."""

    @abc.abstractmethod
    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Return dL/dx for dL/dy (the last forward's input), storing parameter gradients."""


class Linear(Layer):
    """Fully connected layer, weight (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, impl: str = "fast", rng: np.random.Generator | None = None) -> None:
        rng = rng or np.random.default_rng(0)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = rng.uniform(-bound, bound, (out_features, in_features)).astype(np.float32)
        self.bias = rng.uniform(-bound, bound, out_features).astype(np.float32)
        self.impl = _check_impl(impl)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self._x: np.ndarray | None = None

    def params(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    def grads(self) -> dict[str, np.ndarray]:
        return {"weight": self.grad_weight, "bias": self.grad_bias}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, in) -> (N, out)."""
        self._x = x
        w, b = self.weight.astype(x.dtype, copy=False), self.bias.astype(x.dtype, copy=False)
        if self.impl == "fast":
            return x @ w.T + b
        out = np.empty((x.shape[0], w.shape[0]), dtype=x.dtype)
        for n in range(x.shape[0]):
            for o in range(w.shape[0]):
                out[n, o] = np.dot(x[n], w[o]) + b[o]
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """(N, out) -> (N, in); stores grad_weight and grad_bias."""
        x = self._x
        w = self.weight.astype(dy.dtype, copy=False)
        if self.impl == "fast":
            self.grad_weight = dy.T @ x
            self.grad_bias = dy.sum(axis=0)
            return dy @ w
        dx = np.zeros_like(x)
        self.grad_weight = np.zeros(w.shape, dtype=dy.dtype)
        self.grad_bias = np.zeros(w.shape[0], dtype=dy.dtype)
        for n in range(x.shape[0]):
            for o in range(w.shape[0]):
                self.grad_weight[o] += dy[n, o] * x[n]
                self.grad_bias[o] += dy[n, o]
                dx[n] += dy[n, o] * w[o]
        return dx


class ReLU(Layer):
    """max(0, x); the gradient passes where x > 0."""

    def __init__(self, impl: str = "fast") -> None:
        self.impl = _check_impl(impl)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        if self.impl == "fast":
            return np.where(self._mask, x, 0).astype(x.dtype, copy=False)
        out = np.empty_like(x)
        for index in np.ndindex(x.shape):
            out[index] = x[index] if x[index] > 0 else 0
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.impl == "fast":
            return np.where(self._mask, dy, 0).astype(dy.dtype, copy=False)
        dx = np.zeros_like(dy)
        for index in np.ndindex(dy.shape):
            if self._mask[index]:
                dx[index] = dy[index]
        return dx


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as PyTorch and MatConvNet compute it).

    Args:
        c_in: channels; k: square kernel size; stride; padding (zeros).
        c_out: channels; k: square kernel size; stride; padding (zeros).
        impl: ``naive`` loops or ``fast`` im2col + one matrix product.
    """

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0, impl: str = "fast",
                 rng: np.random.Generator | None = None) -> None:
        rng = rng or np.random.default_rng(0)
        self.weight = rng.normal(0.0, np.sqrt(2.0 / (c_in * k * k)), (c_out, c_in, k, k)).astype(np.float32)
        self.bias = np.zeros(c_out, dtype=np.float32)
        self.stride, self.padding, self.k = stride, padding, k
        self.impl = _check_impl(impl)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self._xp: np.ndarray | None = None
        self._cols: np.ndarray | None = None

    def params(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    def grads(self) -> dict[str, np.ndarray]:
        return {"weight": self.grad_weight, "bias": self.grad_bias}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C_in, H, W) -> (N, C_out, OH, OW)."""
        xp = kernels.pad(x, self.padding)
        w, b = self.weight.astype(x.dtype, copy=False), self.bias.astype(x.dtype, copy=False)
        n, _, hp, wp = xp.shape
        oh, ow = kernels.output_size(hp, self.k, self.stride), kernels.output_size(wp, self.k, self.stride)
        self._xp = xp
        if self.impl == "fast":
            self._cols = kernels.im2col(xp, self.k, self.stride)  # (C_in*k*k, N*OH*OW)
            out = w.reshape(w.shape[0], -1) @ self._cols + b[:, None]  # (C_out, N*OH*OW)
            return np.ascontiguousarray(out.reshape(-1, n, oh, ow).transpose(1, 0, 2, 3))
        s, k = self.stride, self.k
        out = np.empty((n, w.shape[0], oh, ow), dtype=x.dtype)
        for b_ in range(n):
            for o in range(w.shape[0]):
                for i in range(oh):
                    for j in range(ow):
                        out[b_, o, i, j] = np.sum(w[o] * xp[b_, :, i * s : i * s + k, j * s : j * s + k]) + b[o]
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """(N, C_out, OH, OW) -> (N, C_in, H, W); stores grad_weight and grad_bias."""
        xp, w = self._xp, self.weight.astype(dy.dtype, copy=False)
        if self.impl == "fast":
            n, c_out, oh, ow = dy.shape
            dy_cols = dy.transpose(1, 0, 2, 3).reshape(c_out, -1)  # (C_out, N*OH*OW); a view when N = 1
            self.grad_weight = (dy_cols @ self._cols.T).reshape(w.shape)
            self.grad_bias = dy_cols.sum(axis=1)
            dcols = w.reshape(c_out, -1).T @ dy_cols  # (C_in*k*k, N*OH*OW)
            window_grads = dcols.reshape(w.shape[1], self.k, self.k, n, oh, ow).transpose(3, 0, 4, 5, 1, 2)
            return kernels.crop(kernels.col2im(window_grads, xp.shape, self.stride), self.padding)
        s, k = self.stride, self.k
        dxp = np.zeros_like(xp)
        self.grad_weight = np.zeros(w.shape, dtype=dy.dtype)
        self.grad_bias = np.zeros(w.shape[0], dtype=dy.dtype)
        for b_ in range(dy.shape[0]):
            for o in range(dy.shape[1]):
                for i in range(dy.shape[2]):
                    for j in range(dy.shape[3]):
                        g = dy[b_, o, i, j]
                        self.grad_weight[o] += g * xp[b_, :, i * s : i * s + k, j * s : j * s + k]
                        self.grad_bias[o] += g
                        dxp[b_, :, i * s : i * s + k, j * s : j * s + k] += g * w[o]
        return kernels.crop(dxp, self.padding)


class MaxPool2d(Layer):
    """Max pooling with a k x k window at ``stride`` (no padding, floor mode)."""

    def __init__(self, k: int = 2, stride: int | None = None, impl: str = "fast") -> None:
        self.k, self.stride = k, stride or k
        self.impl = _check_impl(impl)
        self._argmax: np.ndarray | None = None  # flat position inside each window
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, OH, OW); remembers each window's arg-max."""
        self._shape = x.shape
        k, s = self.k, self.stride
        if self.impl == "fast":
            flat = kernels.windows(x, k, s)
            flat = flat.reshape(*flat.shape[:4], k * k)
            self._argmax = flat.argmax(axis=-1)  # first maximum on ties
            return np.take_along_axis(flat, self._argmax[..., None], axis=-1)[..., 0]
        n, c, h, w = x.shape
        oh, ow = kernels.output_size(h, k, s), kernels.output_size(w, k, s)
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        self._argmax = np.empty((n, c, oh, ow), dtype=np.int64)
        for b in range(n):
            for ch in range(c):
                for i in range(oh):
                    for j in range(ow):
                        window = x[b, ch, i * s : i * s + k, j * s : j * s + k]
                        pos = int(np.argmax(window))  # row-major, first maximum
                        self._argmax[b, ch, i, j] = pos
                        out[b, ch, i, j] = window.flat[pos]
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Route each output gradient to its window's arg-max (accumulating on overlaps)."""
        k, s = self.k, self.stride
        if self.impl == "fast":
            window_grads = np.zeros((*dy.shape, k * k), dtype=dy.dtype)
            np.put_along_axis(window_grads, self._argmax[..., None], dy[..., None], axis=-1)
            return kernels.col2im(window_grads.reshape(*dy.shape, k, k), self._shape, s)
        dx = np.zeros(self._shape, dtype=dy.dtype)
        for b in range(dy.shape[0]):
            for ch in range(dy.shape[1]):
                for i in range(dy.shape[2]):
                    for j in range(dy.shape[3]):
                        pos = int(self._argmax[b, ch, i, j])
                        dx[b, ch, i * s + pos // k, j * s + pos % k] += dy[b, ch, i, j]
        return dx


class Softmax(Layer):
    """Softmax over axis 1 of an (N, K) array (max-subtracted for stability)."""

    def __init__(self, impl: str = "fast") -> None:
        self.impl = _check_impl(impl)
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.impl == "fast":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            self._y = e / e.sum(axis=1, keepdims=True)
            return self._y
        y = np.empty_like(x)
        for n in range(x.shape[0]):
            row = np.exp(x[n] - max(x[n]))
            y[n] = row / sum(row)
        self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._y
        if self.impl == "fast":
            return y * (dy - (dy * y).sum(axis=1, keepdims=True))
        dx = np.empty_like(dy)
        for n in range(dy.shape[0]):
            dot = sum(dy[n, j] * y[n, j] for j in range(dy.shape[1]))
            dx[n] = y[n] * (dy[n] - dot)
        return dx
