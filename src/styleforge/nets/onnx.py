"""Exported ONNX style networks run by ONNX Runtime or OpenVINO behind the interface of
styleforge's PyTorch networks.

* :class:`OnnxTransformNet` is called like :class:`~styleforge.nets.transform_net.TransformNet`
  (an (N, 3, H, W) 0-255 tensor in and out), so :class:`~styleforge.transfer.model.StyleModel`,
  ``transfer`` and its batching work unchanged on a ``.onnx`` style model. Inputs smaller
  than the graph's 5-pixel minimum are padded here exactly as the PyTorch network pads
  them, so results agree at every size.
* :class:`OnnxAdaINNet` is the same for an exported AdaIN network, its style statistics
  fed as graph inputs.

Device: ``cpu`` runs on the CPU; ``cuda`` uses ONNX Runtime's CUDA provider (refused
with a message when this onnxruntime build has none); ``auto`` picks CUDA when
available. Runtime: ONNX Runtime, or OpenVINO for INT8 files on the CPU
(:mod:`~styleforge.runtime.sessions`). Runtime and provider are part of the device
description every command prints.

Exported style models can be run in tiles: the whole image's instance-norm statistics
are recorded with a derived graph and fed to another while the tiles run
(:mod:`~styleforge.runtime.norm_graphs`), as the PyTorch network's record/freeze modes do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from styleforge.errors import StyleforgeError
from styleforge.runtime.exports import (
    ADAIN_FORMAT,
    ADAIN_INPUTS,
    ADAIN_OUTPUTS,
    STYLE_FORMAT,
    STYLE_VECTOR,
    STYLE_WEIGHTS,
    expect_format,
    source_label,
)
from styleforge.runtime.sessions import Session, open_session

if TYPE_CHECKING:
    import torch

class OnnxTransformNet:
    """An exported transform network, callable like the PyTorch one (see module docstring)."""

    def __init__(self, source: str | os.PathLike[str] | bytes, device: str = "cpu", runtime: str = "auto",
                 session: Session | None = None) -> None:
        """``source``: the ``.onnx`` file (a path or its bytes), opened on ``device`` by
        ``runtime``; or, with ``session``, the graph already opened (an OpenVINO copy of a
        PyTorch network: :mod:`styleforge.transfer.runtimes`), ``source`` naming it."""
        self.source, self.device, self.runtime = source, device, runtime
        self.session = session if session is not None else open_session(source, device, runtime)
        self.metadata = self.session.metadata
        expect_format(source_label(source), self.metadata, STYLE_FORMAT, "style model")
        self.device_description = self.session.description
        self.norm = self.metadata.get("norm", "instance")
        self.upsample = self.metadata.get("upsample", "resize")
        # Inputs are padded up to the smallest side the graph can reflect (a no-op above it).
        from styleforge.nets.transform_net import INPUT_MIN_SIDE, MIN_SIDE

        self.min_side = INPUT_MIN_SIDE if self.metadata.get("padding") == "input" else MIN_SIDE
        self.input_name = self.session.input_names[0]
        # A multi-style export takes the style weights as a second input (style 0 by default).
        self.styles = len(json.loads(self.metadata["styles"])) if STYLE_WEIGHTS in self.session.input_names else 1
        self.style_weights = np.eye(self.styles, dtype=np.float32)[0]
        # A style-vector export (magenta-arbitrary) takes the vector (D,) as its second input.
        self.style_vector = int(self.metadata.get("style_vector", "0")) if STYLE_VECTOR in self.session.input_names else 0
        self.vector = np.zeros(self.style_vector, dtype=np.float32)
        self.norm_statistics: dict[str, np.ndarray] | None = None
        self._derived: dict[str, Session] = {}
        self._onnx_model: Any = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise an (N, 3, H, W) 0-255 batch; returns the same shape on ``x``'s device.

        After :meth:`record_norm_statistics`, each image is normalised with the recorded
        statistics instead of its own (one image at a time: tiles).
        """
        import torch

        from styleforge.nets.transform_net import _pad_to_fit

        height, width = x.shape[2:]
        feeds = self._feeds(_pad_to_fit(x.float(), self.min_side))
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
        from styleforge.nets.transform_net import _pad_to_fit
        from styleforge.runtime.norm_graphs import MEAN, VAR, instance_norm_nodes

        if x.shape[0] != 1:
            raise StyleforgeError("instance-norm statistics are recorded one image at a time")
        session = self._derived_session("statistics")
        names = [n.format(i) for i in range(len(instance_norm_nodes(self._model()))) for n in (MEAN, VAR)]
        values = session.run(self._feeds(_pad_to_fit(x.float(), self.min_side)), names)
        self.norm_statistics = {name: value[0] for name, value in zip(names, values, strict=True)}

    def clear_norm_statistics(self) -> None:
        """Back to per-image statistics."""
        self.norm_statistics = None

    def select_styles(self, weights: Iterable[float]) -> None:
        """Blend a multi-style export's styles with ``weights`` (K numbers >= 0, positive sum)."""
        values = np.asarray(list(weights), dtype=np.float32)
        if self.styles == 1 or values.shape != (self.styles,) or (values < 0).any() or not values.sum() > 0:
            raise StyleforgeError(f"style weights need {self.styles} numbers >= 0 with a positive sum; "
                                  f"this file {'takes' if self.styles > 1 else 'holds one style and takes'} none other")
        self.style_weights = values

    def set_style_vector(self, vector: Iterable[float]) -> None:
        """Condition a style-vector export on ``vector`` (D finite numbers)."""
        values = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not self.style_vector or values.shape != (self.style_vector,) or not np.isfinite(values).all():
            raise StyleforgeError(f"a style vector needs {self.style_vector} finite numbers for this file, got {values.size}"
                                  if self.style_vector else "this file takes no style vector")
        self.vector = values

    def _feeds(self, padded: torch.Tensor) -> dict[str, np.ndarray]:
        feeds = {self.input_name: padded.contiguous().cpu().numpy()}
        if self.styles > 1:
            feeds[STYLE_WEIGHTS] = self.style_weights
        if self.style_vector:
            feeds[STYLE_VECTOR] = self.vector
        return feeds

    def _model(self) -> Any:
        """The file's ModelProto (read on first use: only tiling needs it)."""
        import onnx

        if self._onnx_model is None:
            self._onnx_model = onnx.load_from_string(self.source) if isinstance(self.source, bytes) else onnx.load(str(self.source))
        return self._onnx_model

    def _derived_session(self, kind: str) -> Session:
        """The statistics or frozen-statistics graph (built on first use, then kept)."""
        from styleforge.runtime.norm_graphs import frozen_statistics_graph, statistics_graph

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


class OnnxAdaINNet:
    """An exported AdaIN model, callable like :class:`~styleforge.nets.adain.AdaINStylizer`
    once :meth:`set_style` has fixed the style.

    The graph takes ``image`` (N, 3, H, W) 0-255 with H and W multiples of 8 (padded here
    by edge replication, as the PyTorch stylizer pads, and cropped back), the style's
    relu4_1 ``style_mean`` and ``style_std`` (1, C, 1, 1), ``alpha`` (1, 1, 1, 1), and
    ``content_mean``/``content_std`` used instead of each image's own statistics when
    ``freeze`` is 1 (tiles). Besides ``stylized`` it outputs ``image_mean`` and
    ``image_std``, the input's own relu4_1 statistics: run on a painting, they are that
    painting's style (:meth:`statistics`), so one file serves any style.
    """

    #: Tile crops must start on this grid (three poolings by 2).
    alignment = 8

    def __init__(self, source: str | os.PathLike[str] | bytes, device: str = "cpu", runtime: str = "auto") -> None:
        self.session = open_session(source, device, runtime)
        self.metadata = self.session.metadata
        expect_format(source_label(source), self.metadata, ADAIN_FORMAT, "AdaIN model")
        self.device_description = self.session.description
        channels = int(self.metadata.get("channels", "512"))
        self._unset = np.zeros((1, channels, 1, 1), np.float32)
        self.style: tuple[np.ndarray, np.ndarray] | None = None
        self.alpha = 1.0
        self.content: tuple[np.ndarray, np.ndarray] | None = None

    def statistics(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """relu4_1 channel (mean, std) of a (1, 3, H, W) 0-255 image (padded as :meth:`__call__` pads)."""
        _, mean, std = self._run(pixels, (self._unset, self._unset + 1.0), 1.0, None)
        return mean, std

    def set_style(self, mean: np.ndarray, std: np.ndarray, alpha: float = 1.0) -> None:
        """Stylise toward relu4_1 statistics ``mean``/``std`` (1, C, 1, 1) with content-style trade-off ``alpha``."""
        from styleforge.nets.adain import check_alpha

        check_alpha(alpha)
        self.style, self.alpha = (np.asarray(mean, np.float32).reshape(1, -1, 1, 1), np.asarray(std, np.float32).reshape(1, -1, 1, 1)), alpha

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise an (N, 3, H, W) 0-255 batch toward the style; same shape, on ``x``'s device."""
        import torch

        if self.style is None:
            raise StyleforgeError("an AdaIN model needs a style first (set_style, or transfer --style IMAGE)")
        height, width = x.shape[2:]
        out, _, _ = self._run(x, self.style, self.alpha, self.content)
        return torch.from_numpy(out[:, :, :height, :width]).to(x.device)

    def _run(self, x: torch.Tensor, style: tuple[np.ndarray, np.ndarray], alpha: float,
             content: tuple[np.ndarray, np.ndarray] | None) -> list[np.ndarray]:
        from styleforge.nets.adain import pad_for_decoder

        frozen = content if content is not None else (self._unset, self._unset + 1.0)
        feeds = dict(zip(ADAIN_INPUTS, (pad_for_decoder(x.float())[0].contiguous().cpu().numpy(), *style,
                                        np.full((1, 1, 1, 1), alpha, np.float32), *frozen,
                                        np.full((1, 1, 1, 1), 1.0 if content is not None else 0.0, np.float32)), strict=True))
        return self.session.run(feeds, list(ADAIN_OUTPUTS))

    def record_norm_statistics(self, x: torch.Tensor) -> None:
        """Use the (1, 3, H, W) image ``x``'s content statistics for every later call (tiles)."""
        self.content = self.statistics(x)

    def clear_norm_statistics(self) -> None:
        """Back to each input's own content statistics."""
        self.content = None

    def to(self, *args: object, **kwargs: object) -> OnnxAdaINNet:
        """The session lives where it was opened; for interface compatibility."""
        return self

    def eval(self) -> OnnxAdaINNet:
        """For interface compatibility."""
        return self

    def requires_grad_(self, flag: bool = True) -> OnnxAdaINNet:
        """For interface compatibility."""
        return self
