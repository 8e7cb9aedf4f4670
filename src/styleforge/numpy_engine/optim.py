r"""Adam (Kingma & Ba 2015), course formula 3.17:

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2,\quad
    x \leftarrow x - \eta \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
"""

from __future__ import annotations

import numpy as np


class Adam:
    """Adam for one array; ``step(x, grad)`` returns the updated array (``x`` is not modified).

    Args:
        lr: learning rate eta.
        beta1, beta2: decay rates of the first and second moment estimates.
        eps: added to the denominator.
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.t = 0

    def step(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Apply one update to ``x`` with gradient ``grad``; returns the new array."""
        if self.m is None:
            self.m, self.v = np.zeros_like(grad), np.zeros_like(grad)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return (x - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(x.dtype, copy=False)
