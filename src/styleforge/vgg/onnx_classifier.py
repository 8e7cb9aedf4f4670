"""An exported VGG19 classifier run by ONNX Runtime or OpenVINO, with the classification
interface of the PyTorch and NumPy VGG19 (``convention``, ``class_names``, ``preprocess``,
``probabilities``, ``top_predictions``), so ``classify`` takes a ``.onnx`` classifier as
``--weights``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import numpy as np
from PIL import Image

from styleforge.errors import StyleforgeError
from styleforge.runtime.exports import CLASSIFIER_FORMAT, expect_format, source_label
from styleforge.runtime.sessions import open_session
from styleforge.vgg.classes import Prediction, class_names_for, top_predictions
from styleforge.vgg.preprocessing import Convention, network_input


class OnnxClassifier:
    """An exported VGG19 classifier with the classification interface of :class:`styleforge.vgg.network.VGG19`."""

    def __init__(self, source: str | os.PathLike[str] | bytes, device: str = "cpu", runtime: str = "auto") -> None:
        self.session = open_session(source, device, runtime)
        self.device_description, self.metadata = self.session.description, self.session.metadata
        expect_format(source_label(source), self.metadata, CLASSIFIER_FORMAT, "VGG19 classifier")
        self.convention = Convention.from_json(self.metadata["convention"])
        self.input_size = int(self.metadata.get("input_size", "224"))
        self.class_names = class_names_for(int(self.metadata["num_classes"]), json.loads(self.metadata.get("class_names", "null")))
        self.input_name = self.session.input_names[0]

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
        return self.session.run({self.input_name: np.ascontiguousarray(x, dtype=np.float32)}, ["probabilities"])[0]

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
