"""Running exported ONNX models with ONNX Runtime behind styleforge's own interfaces.

* :class:`OnnxTransformNet` is called like :class:`~styleforge.transform_net.TransformNet`
  (an (N, 3, H, W) 0-255 tensor in and out), so :class:`~styleforge.transfer.StyleModel`,
  ``transfer`` and its batching work unchanged on a ``.onnx`` style model. Inputs smaller
  than the graph's 5-pixel minimum are padded here exactly as the PyTorch network pads
  them, so results agree at every size.
* :class:`OnnxClassifier` has the classification interface of the PyTorch and NumPy
  VGG19 (``convention``, ``class_names``, ``preprocess``, ``probabilities``,
  ``top_predictions``), so ``classify`` takes a ``.onnx`` classifier as ``--weights``.

Device: ``cpu`` runs on the CPU; ``cuda`` uses ONNX Runtime's CUDA provider (refused
with a message when this onnxruntime build has none); ``auto`` picks CUDA when
available. Runtime: ONNX Runtime, or OpenVINO for INT8 files on the CPU
(:mod:`~styleforge.deploy.sessions`). Runtime and provider are part of the device
description every command prints.

Exported style models can be run in tiles: the whole image's instance-norm statistics
are recorded with a derived graph and fed to another while the tiles run
(:mod:`~styleforge.deploy.norm_graphs`), as the PyTorch network's record/freeze modes do.
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
from styleforge.deploy.sessions import Session, open_session
from styleforge.errors import StyleforgeError
from styleforge.preprocessing import Convention, network_input

if TYPE_CHECKING:
    import torch

#: ``styleforge_format`` metadata of the two kinds of exported file.
STYLE_FORMAT = "styleforge-onnx-transformnet"
CLASSIFIER_FORMAT = "styleforge-onnx-vgg19"


def _expect_format(file: Path | str, metadata: dict[str, str], expected: str, what: str) -> None:
    found = metadata.get("styleforge_format")
    if found != expected:
        raise StyleforgeError(f"'{file}' is not a {what} exported by styleforge (styleforge_format={found!r})")


class OnnxTransformNet:
    """An exported transform network, callable like the PyTorch one (see module docstring)."""

    def __init__(self, source: str | os.PathLike[str] | bytes, device: str = "cpu", runtime: str = "auto") -> None:
        self.source, self.device, self.runtime = source, device, runtime
        self.session = open_session(source, device, runtime)
        self.metadata = self.session.metadata
        _expect_format(_label(source), self.metadata, STYLE_FORMAT, "style model")
        self.device_description = self.session.description
        self.norm = self.metadata.get("norm", "instance")
        self.upsample = self.metadata.get("upsample", "resize")
        # Inputs are padded up to the smallest side the graph can reflect (a no-op above it).
        from styleforge.transform_net import INPUT_MIN_SIDE, MIN_SIDE

        self.min_side = INPUT_MIN_SIDE if self.metadata.get("padding") == "input" else MIN_SIDE
        self.input_name = self.session.input_names[0]
        self.norm_statistics: dict[str, np.ndarray] | None = None
        self._derived: dict[str, Session] = {}
        self._onnx_model: Any = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise an (N, 3, H, W) 0-255 batch; returns the same shape on ``x``'s device.

        After :meth:`record_norm_statistics`, each image is normalised with the recorded
        statistics instead of its own (one image at a time: tiles).
        """
        import torch

        from styleforge.transform_net import _pad_to_fit

        height, width = x.shape[2:]
        feeds = {self.input_name: _pad_to_fit(x.float(), self.min_side).contiguous().cpu().numpy()}
        session = self.session
        if self.norm_statistics is not None:
            if x.shape[0] != 1:
                raise StyleforgeError("recorded instance-norm statistics apply to one image (tile) at a time")
            session = self._derived_session("frozen")
            feeds |= self.norm_statistics
        out = session.run(feeds, [session.output_names[0]])[0]
        return torch.from_numpy(out[:, :, :height, :width]).to(x.device)

    def record_norm_statistics(self, x: torch.Tensor) -> None:
        """Record every instance norm's statistics on the (1, 3, H, W) image ``x``; later
        calls normalise with them until :meth:`clear_norm_statistics`."""
        from styleforge.deploy.norm_graphs import MEAN, VAR, instance_norm_nodes
        from styleforge.transform_net import _pad_to_fit

        if x.shape[0] != 1:
            raise StyleforgeError("instance-norm statistics are recorded one image at a time")
        session = self._derived_session("statistics")
        names = [n.format(i) for i in range(len(instance_norm_nodes(self._model()))) for n in (MEAN, VAR)]
        values = session.run({self.input_name: _pad_to_fit(x.float(), self.min_side).contiguous().cpu().numpy()}, names)
        self.norm_statistics = {name: value[0] for name, value in zip(names, values, strict=True)}

    def clear_norm_statistics(self) -> None:
        """Back to per-image statistics."""
        self.norm_statistics = None

    def _model(self) -> Any:
        """The file's ModelProto (read on first use: only tiling needs it)."""
        import onnx

        if self._onnx_model is None:
            self._onnx_model = onnx.load_from_string(self.source) if isinstance(self.source, bytes) else onnx.load(str(self.source))
        return self._onnx_model

    def _derived_session(self, kind: str) -> Session:
        """The statistics or frozen-statistics graph (built on first use, then kept)."""
        from styleforge.deploy.norm_graphs import frozen_statistics_graph, statistics_graph

        if kind not in self._derived:
            derive = statistics_graph if kind == "statistics" else frozen_statistics_graph
            data = derive(self._model()).SerializeToString()
            self._derived[kind] = open_session(data, self.device, self.runtime, metadata=self.metadata)
        return self._derived[kind]

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

    def __init__(self, source: str | os.PathLike[str] | bytes, device: str = "cpu", runtime: str = "auto") -> None:
        self.session = open_session(source, device, runtime)
        self.device_description, self.metadata = self.session.description, self.session.metadata
        _expect_format(_label(source), self.metadata, CLASSIFIER_FORMAT, "VGG19 classifier")
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


def _label(source: str | os.PathLike[str] | bytes) -> str:
    return "the exported model" if isinstance(source, bytes) else str(source)
