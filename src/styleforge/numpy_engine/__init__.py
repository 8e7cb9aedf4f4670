"""A from-scratch NumPy engine: VGG19 and Gatys style transfer with hand-written backward
passes, as the course builds them before using a framework. Imports nothing from PyTorch.

* :mod:`~styleforge.numpy_engine.layers`: Linear, ReLU, Conv2d, MaxPool2d, Softmax, each
  with ``impl="naive"`` (loops of the definition) or ``"fast"`` (im2col, strided views);
* :mod:`~styleforge.numpy_engine.kernels`: im2col / col2im through strided views;
* :mod:`~styleforge.numpy_engine.losses`: content, style and total-variation losses with
  their gradients;
* :mod:`~styleforge.numpy_engine.optim`: Adam and L-BFGS;
* :mod:`~styleforge.numpy_engine.vgg`: VGG19 from the same weight files as the PyTorch one;
* :mod:`~styleforge.gatys.numpy_engine`: the Gatys loop (``engine="numpy"``).
"""

from styleforge.numpy_engine.layers import Conv2d, Linear, MaxPool2d, ReLU, Softmax
from styleforge.numpy_engine.losses import ContentLoss, StyleLoss, TotalVariationLoss, gram, style_target
from styleforge.numpy_engine.optim import LBFGS, Adam
from styleforge.numpy_engine.vgg import VGG19

__all__ = [
    "VGG19",
    "Adam",
    "LBFGS",
    "ContentLoss",
    "Conv2d",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Softmax",
    "StyleLoss",
    "TotalVariationLoss",
    "gram",
    "style_target",
]
