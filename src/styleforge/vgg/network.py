"""VGG19 (Simonyan & Zisserman 2014, configuration E) with the course's 43 layer names.

The network is built from the shapes of the weights it is given, so the same code runs
ImageNet's 64..512-channel VGG19 and the narrow 4..16-channel ones the tests use::

    conv1_1 relu1_1 conv1_2 relu1_2 pool1
    conv2_1 relu2_1 conv2_2 relu2_2 pool2
    conv3_1 relu3_1 ... conv3_4 relu3_4 pool3
    conv4_1 relu4_1 ... conv4_4 relu4_4 pool4
    conv5_1 relu5_1 ... conv5_4 relu5_4 pool5
    fc6 relu6 fc7 relu7 fc8 softmax

Convolutions are 3x3, stride 1, padding 1; pools are 2x2 max (or average) with stride 2.
Before fc6 the pool5 map is adaptively average-pooled to ``g x g`` (g = 7 for ImageNet;
a no-op at 224x224 input) and flattened in (C, H, W) order, as torchvision does; for
MatConvNet's fc6, stored as a 7x7 convolution, this is the same computation. Dropout
is omitted: the module is only ever used in inference mode (its weights are frozen).

Every input goes through the weights' own :class:`~styleforge.vgg.preprocessing.Convention`
(:meth:`VGG19.normalize`, :meth:`VGG19.preprocess`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from styleforge.errors import StyleforgeError
from styleforge.vgg.architecture import CONV_NAMES, FC_NAMES, LAYER_INDEX, LAYER_NAMES, plan_extraction
from styleforge.vgg.classes import Prediction, class_names_for, top_predictions
from styleforge.vgg.preprocessing import TORCHVISION, Convention, network_input
from styleforge.vgg.weights.formats import WeightsBundle

__all__ = ["LAYER_NAMES", "POOLING_MODES", "VGG19", "Prediction", "load_vgg19"]

POOLING_MODES = ("max", "avg")


class VGG19(nn.Module):
    """VGG19 whose activations can be read by layer name.

    Args:
        widths: output channels of the 16 conv layers (ImageNet: 64, 64, 128, 128,
            256 x4, 512 x8), or of the first few of them for a feature network cut
            after that conv (:meth:`truncated`).
        classifier: ``(fc6_out, fc7_out, num_classes)``, or ``None`` for a
            feature-only network.
        pool_grid: side ``g`` of the adaptive average pool before fc6.
        convention: how images are prepared for these weights.
        class_names: names of the classifier outputs (default: ImageNet's for 1000).
        pooling: ``max`` (the trained network) or ``avg`` (Gatys et al. report
            smoother style transfer with average pooling).
    """

    def __init__(
        self,
        widths: Sequence[int],
        classifier: tuple[int, int, int] | None = None,
        pool_grid: int = 7,
        convention: Convention = TORCHVISION,
        class_names: list[str] | None = None,
        pooling: str = "max",
    ) -> None:
        super().__init__()
        if not 1 <= len(widths) <= len(CONV_NAMES) or (classifier is not None and len(widths) != len(CONV_NAMES)):
            raise ValueError(f"VGG19 needs {len(CONV_NAMES)} conv widths (or fewer without a classifier), got {len(widths)}")
        if pooling not in POOLING_MODES:
            raise StyleforgeError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLING_MODES)}")
        in_channels = 3
        for name, width in zip(CONV_NAMES, widths, strict=False):
            self.add_module(name, nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
            in_channels = width
        self.last_conv = CONV_NAMES[len(widths) - 1]
        self.pool_grid = pool_grid
        self.pooling = pooling
        self.convention = convention
        self.has_classifier = classifier is not None
        if classifier is not None:
            features = in_channels * pool_grid * pool_grid
            for name, width in zip(FC_NAMES, classifier, strict=True):
                self.add_module(name, nn.Linear(features, width))
                features = width
        self.class_names = class_names_for(classifier[2], class_names) if classifier else []
        self.register_buffer("_mean", torch.tensor(convention.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(convention.std).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_bundle(cls, bundle: WeightsBundle, pooling: str = "max") -> VGG19:
        """Build the network a weights bundle describes and load its arrays exactly."""
        bundle.validate()
        tensors = bundle.tensors
        widths = [tensors[f"{n}.weight"].shape[0] for n in CONV_NAMES]
        classifier = None
        grid = 7
        if "fc6.weight" in tensors:
            classifier = tuple(tensors[f"{n}.weight"].shape[0] for n in FC_NAMES)
            grid = math.isqrt(tensors["fc6.weight"].shape[1] // widths[-1])
        model = cls(widths, classifier, grid, bundle.convention, bundle.class_names, pooling)  # type: ignore[arg-type]
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
        model.load_state_dict(state, strict=True)
        return model

    def truncated(self, last_conv: str) -> VGG19:
        """A copy of the convolutions up to ``last_conv`` (e.g. ``conv4_1``: the AdaIN
        encoder), same convention and pooling, without a classifier."""
        if last_conv not in CONV_NAMES[: len(self.widths)]:
            raise StyleforgeError(f"cannot cut VGG19 after {last_conv!r}: it has convolutions up to {self.last_conv}")
        count = CONV_NAMES.index(last_conv) + 1
        cut = VGG19(self.widths[:count], convention=self.convention, pooling=self.pooling)
        cut.load_state_dict({k: v for k, v in self.state_dict().items() if k.split(".")[0] in CONV_NAMES[:count]})
        return cut.to(self.device).eval().requires_grad_(False)

    def _deepest_layer(self) -> int:
        """Index of the last layer this network computes: everything for the full network,
        else the relu after its last conv (and the pool when that conv ends a block)."""
        if self.last_conv == CONV_NAMES[-1]:
            return len(LAYER_NAMES) - 1
        relu = LAYER_INDEX[self.last_conv] + 1
        return relu + 1 if LAYER_NAMES[relu + 1].startswith("pool") else relu

    @property
    def widths(self) -> tuple[int, ...]:
        """Output channels of the convolutions this network has."""
        return tuple(getattr(self, name).out_channels for name in CONV_NAMES if hasattr(self, name))

    @property
    def device(self) -> torch.device:
        """The device the parameters live on."""
        return self.conv1_1.weight.device

    # ------------------------------------------------------------------ preprocessing

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Map RGB pixels in [0, 1] (NCHW) to this network's input convention.

        ``(pixels * input_scale - mean) / std``; differentiable, so style transfer can
        optimise images in [0, 1] whatever the weights expect.
        """
        scaled = pixels * self.convention.input_scale
        return (scaled - self._mean.to(scaled.dtype)) / self._std.to(scaled.dtype)

    def preprocess(
        self,
        images: Image.Image | Iterable[Image.Image],
        size: int = 224,
        resize: str | None = None,
    ) -> torch.Tensor:
        """Turn PIL image(s) into a normalised NCHW float tensor on this model's device.

        Args:
            images: one RGB PIL image or several.
            size: side of the square network input.
            resize: ``crop`` or ``squash``; default: the convention's own policy.

        Returns:
            A float32 tensor of shape (N, 3, size, size).
        """
        batch = [images] if isinstance(images, Image.Image) else list(images)
        pixels = network_input(batch, size, resize or self.convention.resize)
        return self.normalize(torch.from_numpy(pixels).to(self.device))

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the fc8 logits (before softmax), shape (N, num_classes)."""
        return self.extract(x, ["fc8"])["fc8"]

    def extract(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Return the activations of the named layers, computing nothing past the deepest.

        Args:
            x: a normalised NCHW batch (see :meth:`preprocess`, :meth:`normalize`).
            names: any of :data:`LAYER_NAMES`.

        Returns:
            ``{name: tensor}`` in the order requested.
        """
        wanted, last = plan_extraction(names, self.has_classifier)
        if last > self._deepest_layer():
            raise StyleforgeError(f"this VGG19 stops at {self.last_conv}; layer {LAYER_NAMES[last]} is not available")
        if x.ndim != 4 or x.shape[1] != 3:
            raise StyleforgeError(f"VGG19 expects an (N, 3, H, W) batch, got shape {tuple(x.shape)}")
        found: dict[str, torch.Tensor] = {}
        for name in LAYER_NAMES[: last + 1]:
            x = self._apply_layer(name, x)
            if name in wanted:
                found[name] = x
        return {name: found[name] for name in wanted}

    def _apply_layer(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name.startswith("relu"):
            return F.relu(x)  # not in place: the conv output may have been requested
        if name.startswith("pool"):
            if self.pooling == "avg":
                return F.avg_pool2d(x, kernel_size=2, stride=2)
            return F.max_pool2d(x, kernel_size=2, stride=2)
        if name == "softmax":
            return F.softmax(x, dim=1)
        if name == "fc6":
            x = torch.flatten(F.adaptive_avg_pool2d(x, self.pool_grid), 1)
        return getattr(self, name)(x)

    # ------------------------------------------------------------------ classification

    @torch.inference_mode()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Return softmax class probabilities (float32) for a preprocessed batch."""
        return F.softmax(self(x).float(), dim=1)

    def classify(
        self,
        images: Image.Image | Iterable[Image.Image],
        top_k: int = 5,
        batch_size: int = 8,
        size: int = 224,
    ) -> list[list[Prediction]]:
        """Classify PIL image(s); returns per image the ``top_k`` predictions, best first."""
        batch = [images] if isinstance(images, Image.Image) else list(images)
        probs = torch.cat([self.probabilities(self.preprocess(batch[i : i + batch_size], size)) for i in range(0, len(batch), batch_size)])
        return self.top_predictions(probs, top_k)

    def top_predictions(self, probs: torch.Tensor, top_k: int) -> list[list[Prediction]]:
        """Turn an (N, classes) probability tensor into sorted top-k predictions."""
        if not self.has_classifier:
            raise StyleforgeError("these weights have no classifier (fc6-fc8), so they cannot classify")
        return top_predictions(probs.float().cpu().numpy(), self.class_names, top_k)


def load_vgg19(source: str = "vgg19", device: str | torch.device = "cpu", pooling: str = "max") -> VGG19:
    """Load VGG19 from a cache name or a .pth/.mat/.safetensors path, frozen, in eval mode.

    Args:
        source: ``vgg19``, ``vgg19-matconvnet``, another cached name, or a file path; an
            exported ``.onnx`` classifier gives an
            :class:`~styleforge.nets.onnx.OnnxClassifier` (classification only).
        device: ``auto``, ``cpu``, ``cuda`` or a ``torch.device``.
        pooling: ``max`` or ``avg`` pooling layers.

    Returns:
        A :class:`VGG19` whose parameters do not require gradients.
    """
    from styleforge.devices import resolve_device
    from styleforge.vgg.weights.store import load_bundle

    if str(source).lower().endswith(".onnx"):
        from styleforge.vgg.onnx_classifier import OnnxClassifier

        return OnnxClassifier(source, str(device))  # type: ignore[return-value]

    model = VGG19.from_bundle(load_bundle(source), pooling=pooling)
    model.requires_grad_(False)
    return model.eval().to(resolve_device(device))

