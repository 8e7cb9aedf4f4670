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
        beta1: decay rates of the first and second moment estimates.
        beta2: decay rates of the first and second moment estimates.
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


class LBFGS:
    r"""L-BFGS (Nocedal 1980) without line search, one iteration per ``step(x, grad)``.

    The same algorithm as ``torch.optim.LBFGS(line_search_fn=None, max_iter=1)``, which
    the PyTorch engine uses, so both engines follow the same path: the two-loop
    recursion over the last ``history_size`` pairs :math:`s_k = x_{k+1} - x_k`,
    :math:`y_k = g_{k+1} - g_k` (a pair is kept only if :math:`y^\top s > 10^{-10}`),
    initial Hessian scale :math:`y^\top s / y^\top y`, a first step of
    :math:`\min(1, 1/\lVert g\rVert_1)\cdot lr` and then steps of ``lr``; no step is
    taken when the direction is not one of descent (:math:`g^\top d > 1`, PyTorch's test
    with ``tolerance_change=-1``).
    """

    def __init__(self, lr: float = 1.0, history_size: int = 100) -> None:
        self.lr, self.history_size = lr, history_size
        self.dirs: list[np.ndarray] = []  # y_k
        self.steps: list[np.ndarray] = []  # s_k
        self.rho: list[float] = []  # 1 / (y_k . s_k)
        self.h_diag = 1.0
        self.direction: np.ndarray | None = None
        self.step_size = 0.0
        self.prev_grad: np.ndarray | None = None
        self.iterations = 0

    def step(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Return ``x`` moved along the L-BFGS direction for gradient ``grad``."""
        g = grad.reshape(-1)
        self.iterations += 1
        if self.iterations == 1:
            d = -g
        else:
            self._remember(g - self.prev_grad, self.direction * self.step_size)
            d = self._two_loop(g)
        self.prev_grad = g.copy()
        self.step_size = min(1.0, 1.0 / float(np.abs(g).sum())) * self.lr if self.iterations == 1 else self.lr
        self.direction = d
        if float(g @ d) > 1.0:
            return x
        return (x.reshape(-1) + self.step_size * d).reshape(x.shape).astype(x.dtype, copy=False)

    def _remember(self, y: np.ndarray, s: np.ndarray) -> None:
        ys = float(y @ s)
        if ys <= 1e-10:
            return
        if len(self.dirs) == self.history_size:
            self.dirs.pop(0), self.steps.pop(0), self.rho.pop(0)
        self.dirs.append(y)
        self.steps.append(s)
        self.rho.append(1.0 / ys)
        self.h_diag = ys / float(y @ y)

    def _two_loop(self, g: np.ndarray) -> np.ndarray:
        q = -g
        alphas = [0.0] * len(self.dirs)
        for i in range(len(self.dirs) - 1, -1, -1):
            alphas[i] = float(self.steps[i] @ q) * self.rho[i]
            q = q - alphas[i] * self.dirs[i]
        r = q * self.h_diag
        for i in range(len(self.dirs)):
            beta = float(self.dirs[i] @ r) * self.rho[i]
            r = r + (alphas[i] - beta) * self.steps[i]
        return r
