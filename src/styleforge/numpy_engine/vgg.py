"""VGG19 built from the NumPy layers, loaded from the same weight files as the PyTorch one.

The layer sequence, names and preprocessing convention are those of
:mod:`styleforge.vgg.network`; before fc6 the pool5 map must already be ``g x g`` (e.g. a
224x224 input for ImageNet weights), where PyTorch's adaptive average pool is the
identity. ``backward`` runs from any set of named layers down to the input image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
from PIL import Image

from styleforge.errors import StyleforgeError
from styleforge.numpy_engine.layers import Conv2d, Layer, Linear, MaxPool2d, ReLU, Softmax
from styleforge.vgg.architecture import LAYER_INDEX, LAYER_NAMES, plan_extraction
from styleforge.vgg.classes import Prediction, class_names_for, top_predictions
from styleforge.vgg.preprocessing import network_input
from styleforge.vgg.weights.formats import WeightsBundle


class VGG19:
    """VGG19 on NumPy arrays (NCHW), layers addressable by the course's 43 names.

    Args:
        bundle: canonical weights (see :mod:`styleforge.vgg.weights.formats`).
        impl: ``fast`` or ``naive`` kernels for every layer.
        dtype: computation dtype (float32 by default; float64 for gradient checks).
    """

    def __init__(self, bundle: WeightsBundle, impl: str = "fast", dtype: type = np.float32) -> None:
        bundle.validate()
        self.convention = bundle.convention
        self.dtype = dtype
        self.layers: dict[str, Layer] = {}
        tensors = bundle.tensors
        self.has_classifier = "fc6.weight" in tensors
        for name in LAYER_NAMES:
            if name.startswith("conv"):
                weight = tensors[f"{name}.weight"]
                layer: Layer = Conv2d(weight.shape[1], weight.shape[0], 3, stride=1, padding=1, impl=impl)
            elif name.startswith("fc"):
                if not self.has_classifier:
                    break
                weight = tensors[f"{name}.weight"]
                layer = Linear(weight.shape[1], weight.shape[0], impl=impl)
            elif name.startswith("relu"):
                layer = ReLU(impl=impl)
            elif name.startswith("pool"):
                layer = MaxPool2d(2, 2, impl=impl)
            else:
                layer = Softmax(impl=impl)
            if name.startswith(("conv", "fc")):
                layer.weight = tensors[f"{name}.weight"].astype(dtype)  # type: ignore[attr-defined]
                layer.bias = tensors[f"{name}.bias"].astype(dtype)  # type: ignore[attr-defined]
            self.layers[name] = layer
        self.class_names = class_names_for(tensors["fc8.weight"].shape[0], bundle.class_names) if self.has_classifier else []
        self.pool_grid = int(round((tensors["fc6.weight"].shape[1] / tensors["conv5_4.weight"].shape[0]) ** 0.5)) if self.has_classifier else 0
        mean = np.asarray(self.convention.mean, dtype=np.float64).reshape(1, 3, 1, 1)
        std = np.asarray(self.convention.std, dtype=np.float64).reshape(1, 3, 1, 1)
        self._scale = (self.convention.input_scale / std).astype(dtype)
        self._offset = (mean / std).astype(dtype)
        self._pool5_shape: tuple[int, ...] = ()

    @classmethod
    def load(cls, source: str | os.PathLike[str], impl: str = "fast", dtype: type = np.float32) -> VGG19:
        """Load from a cache name or a .mat/.safetensors path (a .pth needs PyTorch to unpickle)."""
        from styleforge.vgg.weights.store import load_bundle

        return cls(load_bundle(source), impl=impl, dtype=dtype)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """RGB in [0, 1] -> the weights' input convention: ``(p * scale - mean) / std``."""
        return (pixels.astype(self.dtype, copy=False) * self._scale - self._offset).astype(self.dtype, copy=False)

    def normalize_backward(self, grad: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. the [0, 1] pixels from the gradient w.r.t. the normalised input."""
        return grad * self._scale

    def preprocess(self, images: Image.Image | Iterable[Image.Image], size: int = 224, resize: str | None = None) -> np.ndarray:
        """PIL image(s) -> a normalised (N, 3, size, size) batch, exactly as the PyTorch
        VGG19's ``preprocess`` (``resize``: ``crop``/``squash``, default the convention's)."""
        batch = [images] if isinstance(images, Image.Image) else list(images)
        return self.normalize(network_input(batch, size, resize or self.convention.resize))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Softmax class probabilities (N, classes) of a preprocessed batch."""
        if not self.has_classifier:
            raise StyleforgeError("these weights have no classifier (fc6-fc8), so they cannot classify")
        return self.extract(x, ["softmax"])["softmax"]

    def top_predictions(self, probs: np.ndarray, top_k: int) -> list[list[Prediction]]:
        """Per image, the ``top_k`` (class id, name, probability), best first."""
        return top_predictions(probs, self.class_names, top_k)

    def extract(self, x: np.ndarray, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
        """Forward a normalised batch; returns the named activations, stopping at the deepest."""
        wanted, last = plan_extraction(names, self.has_classifier)
        x = x.astype(self.dtype, copy=False)
        found: dict[str, np.ndarray] = {}
        for name in LAYER_NAMES[: last + 1]:
            if name == "fc6":
                x = self._flatten_pool5(x)
            x = self.layers[name].forward(x)
            if name in wanted:
                found[name] = x
        self._depth = last
        return {n: found[n] for n in wanted}

    def backward(self, grads: dict[str, np.ndarray]) -> np.ndarray:
        """Back-propagate dL/d(layer output) for the named layers down to the input.

        Must follow an :meth:`extract` that reached every named layer.

        Returns:
            dL/dx for the normalised input of the last :meth:`extract`.
        """
        deepest = max(LAYER_INDEX[n] for n in grads)
        if deepest > self._depth:
            raise StyleforgeError("backward from a layer deeper than the last forward pass")
        grad: np.ndarray | None = None
        for name in reversed(LAYER_NAMES[: deepest + 1]):
            if name in grads:
                grad = grads[name] if grad is None else grad + grads[name]
            if grad is not None:
                grad = self.layers[name].backward(grad)
                if name == "fc6":
                    grad = grad.reshape(self._pool5_shape)
        return grad

    def _flatten_pool5(self, x: np.ndarray) -> np.ndarray:
        if x.shape[2:] != (self.pool_grid, self.pool_grid):
            raise StyleforgeError(
                f"the NumPy classifier needs pool5 of {self.pool_grid}x{self.pool_grid} (got {x.shape[2]}x{x.shape[3]}); "
                f"use an input of {32 * self.pool_grid}x{32 * self.pool_grid}"
            )
        self._pool5_shape = x.shape
        return x.reshape(x.shape[0], -1)


__all__ = ["VGG19"]
