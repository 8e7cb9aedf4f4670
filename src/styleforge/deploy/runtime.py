"""Running exported ONNX models with ONNX Runtime behind styleforge's own interfaces.

* :class:`OnnxTransformNet` is called like :class:`~styleforge.transform_net.TransformNet`
  (an (N, 3, H, W) 0-255 tensor in and out), so :class:`~styleforge.transfer.StyleModel`,
  ``transfer`` and its batching work unchanged on a ``.onnx`` style model. Inputs smaller
  than the graph's 5-pixel minimum are padded here exactly as the PyTorch network pads
  them, so results agree at every size.
* :class:`OnnxClassifier` has the classification interface of the PyTorch and NumPy
  VGG19 (``convention``, ``class_names``, ``preprocess``, ``probabilities``,
  ``top_predictions``), so ``classify`` takes a ``.onnx`` classifier as ``--weights``.

Device: ``cpu`` uses ONNX Runtime's CPU execution provider; ``cuda`` its CUDA provider
(refused with a message when this onnxruntime build has none); ``auto`` picks CUDA when
available. The chosen provider is part of the device description every command prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from styleforge.classes import Prediction, class_names_for, top_predictions
from styleforge.errors import StyleforgeError, one_line
from styleforge.fsutil import check_regular_file
from styleforge.preprocessing import Convention, network_input

if TYPE_CHECKING:
    import torch

#: ``styleforge_format`` metadata of the two kinds of exported file.
STYLE_FORMAT = "styleforge-onnx-transformnet"
CLASSIFIER_FORMAT = "styleforge-onnx-vgg19"


def require_onnxruntime() -> Any:
    """Import onnxruntime, or say how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise StyleforgeError("ONNX models need onnxruntime: pip install 'styleforge[onnx]'") from None
    return onnxruntime


def open_session(path: str | os.PathLike[str], device: str) -> tuple[Any, str, dict[str, str]]:
    """Open an ONNX Runtime session on ``device`` (auto|cpu|cuda).

    Returns:
        (session, device description, the file's metadata).
    """
    ort = require_onnxruntime()
    file = check_regular_file(path, "ONNX model")
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise StyleforgeError("--device cuda: this onnxruntime has no CUDA execution provider (install onnxruntime-gpu)")
    use_cuda = device in ("cuda", "auto") and "CUDAExecutionProvider" in available
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(file), providers=providers)
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own types for a bad file)
        raise StyleforgeError(f"cannot read ONNX model '{file}': {one_line(exc, 200)}") from None
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    where = "cuda" if use_cuda else "cpu"
    return session, f"{where} (onnxruntime {ort.__version__}, {session.get_providers()[0]})", metadata


def _expect_format(file: Path, metadata: dict[str, str], expected: str, what: str) -> None:
    found = metadata.get("styleforge_format")
    if found != expected:
        raise StyleforgeError(f"'{file}' is not a {what} exported by styleforge (styleforge_format={found!r})")


class OnnxTransformNet:
    """An exported transform network, callable like the PyTorch one (see module docstring)."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu") -> None:
        self.session, self.device_description, self.metadata = open_session(path, device)
        _expect_format(Path(path), self.metadata, STYLE_FORMAT, "style model")
        self.norm = self.metadata.get("norm", "instance")
        self.upsample = self.metadata.get("upsample", "resize")
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise an (N, 3, H, W) 0-255 batch; returns the same shape on ``x``'s device."""
        import torch

        from styleforge.transform_net import _pad_to_fit

        height, width = x.shape[2:]
        padded = _pad_to_fit(x.float()).contiguous().cpu().numpy()  # a no-op from 8x8 up
        out = self.session.run(None, {self.input_name: padded})[0]
        return torch.from_numpy(out[:, :, :height, :width]).to(x.device)

    def to(self, *args: object, **kwargs: object) -> OnnxTransformNet:
        """The session lives where it was opened; for interface compatibility."""
        return self

    def eval(self) -> OnnxTransformNet:
        """For interface compatibility (an exported graph is always in inference mode)."""
        return self

    def requires_grad_(self, flag: bool = True) -> OnnxTransformNet:
        """For interface compatibility (an exported graph has no gradients)."""
        return self


class OnnxClassifier:
    """An exported VGG19 classifier with the classification interface of :class:`styleforge.vgg.VGG19`."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu") -> None:
        file = Path(path)
        self.session, self.device_description, self.metadata = open_session(file, device)
        _expect_format(file, self.metadata, CLASSIFIER_FORMAT, "VGG19 classifier")
        self.convention = Convention.from_json(self.metadata["convention"])
        self.input_size = int(self.metadata.get("input_size", "224"))
        outputs = [o.name for o in self.session.get_outputs()]
        self.class_names = class_names_for(self.session.get_outputs()[outputs.index("logits")].shape[1],
                                           json.loads(self.metadata.get("class_names", "null")))
        self.input_name = self.session.get_inputs()[0].name

    def preprocess(self, images: Image.Image | Iterable[Image.Image], size: int | None = None,
                   resize: str | None = None) -> np.ndarray:
        """PIL image(s) -> the normalised (N, 3, S, S) batch the graph takes (S fixed at export)."""
        size = self.input_size if size is None else size
        if size != self.input_size:
            raise StyleforgeError(f"this ONNX classifier was exported for {self.input_size}x{self.input_size} inputs; "
                                  f"use --size {self.input_size} (or export again with --size {size})")
        batch = [images] if isinstance(images, Image.Image) else list(images)
        pixels = network_input(batch, size, resize or self.convention.resize)
        if self.metadata.get("input_preprocessing") == "raw-0-255":  # normalisation folded in (use_convfirst)
            return (pixels * np.float32(255.0)).astype(np.float32)
        mean = np.asarray(self.convention.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.convention.std, dtype=np.float32).reshape(1, 3, 1, 1)
        return ((pixels * np.float32(self.convention.input_scale) - mean) / std).astype(np.float32)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, classes) of a preprocessed batch."""
        return self.session.run(["probabilities"], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def top_predictions(self, probs: np.ndarray, top_k: int) -> list[list[Prediction]]:
        """Per image, the ``top_k`` predictions, best first."""
        return top_predictions(probs, self.class_names, top_k)

    def classify(self, images: Image.Image | Iterable[Image.Image], top_k: int = 5) -> list[list[Prediction]]:
        """Classify PIL image(s): per image the ``top_k`` predictions."""
        return self.top_predictions(self.probabilities(self.preprocess(images)), top_k)

    def extract(self, *args: object, **kwargs: object) -> None:
        """Exported classifiers have no named intermediate layers."""
        raise StyleforgeError("an exported ONNX classifier gives logits and probabilities only; "
                              "feature extraction (stylize, train) needs the VGG19 weights file")
