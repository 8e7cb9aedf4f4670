"""The one place that reads style-model files: what a file is, and its network.

Every consumer (``transfer``, ``export``, ``train --extend``, the service's style list)
goes through two entry points:

* :func:`inspect_model` gives a :class:`ModelInfo` from the file's header alone
  (safetensors metadata and its JSON sidecar, ONNX ``metadata_props``, or the training
  checkpoint's own fields): the kind of network, its styles and its metadata;
* :func:`load_network` gives the network itself, a :class:`StyleNetwork`, with the
  metadata it was saved with.

Each format is one :class:`ModelReader` in :data:`READERS`, tried in order by
:func:`reader_for`:

=================  =======================  ===========================================
reader             files                    network
=================  =======================  ===========================================
``checkpoint``     ``*.pt``                 as of the checkpoint's step (``train``)
``onnx-export``    ``*.onnx`` from styleforge  :class:`~styleforge.nets.onnx.OnnxTransformNet`,
                                            :class:`~styleforge.nets.onnx.OnnxAdaINNet`
``onnx-zoo``       other ``*.onnx``         :class:`~styleforge.models.formats.onnx_zoo.ZooOnnxNet`
``safetensors``    everything else          :class:`~styleforge.nets.transform_net.TransformNet`,
                                            :class:`~styleforge.nets.adain.AdaINNet`
=================  =======================  ===========================================

A file whose suffix no other reader claims is read as safetensors, styleforge's own
format, whose reader then says what is wrong with it. Community layouts (pytorch/examples
``.pth``, Torch7 ``.t7``, Magenta) are converted once by ``styleforge models import``
(:mod:`styleforge.models.store`) into the safetensors format, so they need no reader here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from styleforge.errors import StyleforgeError
from styleforge.models.files import MODEL_FORMAT, network_from_state, read_sidecar
from styleforge.models.formats.adain import adain_from_state, is_adain_header

if TYPE_CHECKING:
    import torch

#: The kinds of network a style-model file holds.
TRANSFORM_NET, ADAIN, STYLE_VECTOR = "transformnet", "adain", "style-vector"


class StyleNetwork(Protocol):
    """What every loaded style network offers (PyTorch and ONNX alike): called on an
    (N, 3, H, W) 0-255 tensor it returns the stylised tensor of the same size; its
    normalisation statistics can be recorded on a whole image and frozen for tiles."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def record_norm_statistics(self, x: torch.Tensor) -> None: ...

    def clear_norm_statistics(self) -> None: ...

    def to(self, *args: object, **kwargs: object) -> StyleNetwork: ...

    def eval(self) -> StyleNetwork: ...

    def requires_grad_(self, flag: bool = True) -> StyleNetwork: ...


@dataclass(frozen=True)
class ModelInfo:
    """What a style-model file holds, read from its header alone.

    Attributes:
        path: the file.
        reader: the :class:`ModelReader` that reads it (``safetensors``, ``checkpoint``,
            ``onnx-export``, ``onnx-zoo``).
        kind: ``transformnet`` (its styles built in), ``adain`` or ``style-vector``
            (both take any painting as the style).
        styles: how many styles are built in (1 for a single-style network; 0 for a
            network that takes any painting).
        style_names: their names, one per built-in style.
        header: the architecture fields (safetensors metadata, checkpoint convention or
            ONNX ``metadata_props``), all text.
        metadata: what the model was saved with (the JSON sidecar, the checkpoint's
            style and options, or the ONNX ``metadata_props``).
    """

    path: Path
    reader: str
    kind: str
    styles: int
    style_names: list[str] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def runtime(self) -> str:
        """``onnx`` for an ONNX file (ONNX Runtime or OpenVINO runs it), else ``pytorch``."""
        return "onnx" if self.reader.startswith("onnx") else "pytorch"

    @property
    def takes_any_style(self) -> bool:
        """Whether the network is given its style at run time (``--style IMAGE``)."""
        return self.kind in (ADAIN, STYLE_VECTOR)


class ModelReader(Protocol):
    """One style-model file format: which files it claims, their header, their network."""

    name: str

    def claims(self, path: Path) -> bool:
        """Whether ``path`` is in this format (by suffix, or by a look at its header)."""
        ...

    def inspect(self, path: Path) -> ModelInfo:
        """The :class:`ModelInfo` of ``path``; raises StyleforgeError when unreadable."""
        ...

    def load(self, path: Path, device: str, runtime: str) -> tuple[StyleNetwork, dict]:
        """The network in ``path`` (on ``device``, run by ``runtime`` for ONNX files) and
        its metadata; raises StyleforgeError when unreadable."""
        ...


def style_names(metadata: dict, count: int) -> list[str]:
    """The names of a model's ``count`` styles, from its metadata (``style0``... when absent)."""
    styles = metadata.get("styles")
    if isinstance(styles, list) and len(styles) == count:
        return [str(entry.get("name", f"style{i}")) if isinstance(entry, dict) else str(entry) for i, entry in enumerate(styles)]
    return [f"style{i}" for i in range(count)]


def _transform_info(path: Path, reader: str, header: dict[str, str], metadata: dict) -> ModelInfo:
    """The ModelInfo of a transform network recorded with ``header`` (its convention)."""
    if int(header.get("style_vector", "0") or 0) > 0:
        return ModelInfo(path, reader, STYLE_VECTOR, 0, [], header, metadata)
    count = int(header.get("styles", "1") or 1)
    return ModelInfo(path, reader, TRANSFORM_NET, count, style_names(metadata, count), header, metadata)


class SafetensorsReader:
    """``NAME.safetensors`` with its optional ``NAME.json``: styleforge's own model format
    (a transform network, or an AdaIN encoder and decoder)."""

    name = "safetensors"

    def claims(self, path: Path) -> bool:
        """Every file no other reader claims."""
        return True

    def inspect(self, path: Path) -> ModelInfo:
        """The header of ``path`` and the style names of its sidecar."""
        from styleforge.utils.safetensors_files import read_safetensors_header

        with _community_hint(path):
            header = read_safetensors_header(path)
        metadata = read_sidecar(path.with_suffix(".json"))
        if is_adain_header(header):
            return ModelInfo(path, self.name, ADAIN, 0, [], header, metadata)
        _check_format(path, header)
        return _transform_info(path, self.name, header, metadata)

    def load(self, path: Path, device: str, runtime: str) -> tuple[StyleNetwork, dict]:
        """The PyTorch network (on the CPU; the caller moves it) and the sidecar."""
        from styleforge.utils.safetensors_files import read_safetensors_file

        with _community_hint(path):
            header, state = read_safetensors_file(path, "pt", "model")
        metadata = read_sidecar(path.with_suffix(".json"))
        if is_adain_header(header):
            return adain_from_state(path, header, state), metadata
        _check_format(path, header)
        return network_from_state(path, header, state), metadata


#: Suffixes of published layouts that ``models import`` converts (no reader runs them as they are).
IMPORTED_SUFFIXES = (".pth", ".model", ".t7")


@contextlib.contextmanager
def _community_hint(path: Path) -> Iterator[None]:
    """Turn the safetensors reader's error on a pytorch/examples or Torch7 file into the
    step that was missed: installing it with ``models import``."""
    try:
        yield
    except StyleforgeError:
        if path.suffix.lower() not in IMPORTED_SUFFIXES:
            raise
        raise StyleforgeError(f"'{path}' is not a styleforge model file: a {path.suffix} style network (pytorch/examples, "
                              f"jcjohnson/fast-neural-style) is converted once with 'styleforge models import {path}', "
                              "then used as --model NAME") from None


def _check_format(path: Path, header: dict[str, str]) -> None:
    if header.get("format") != MODEL_FORMAT:
        raise StyleforgeError(f"'{path}' is not a styleforge style model (metadata format={header.get('format')!r})")


class CheckpointReader:
    """``checkpoint.pt`` written by ``train`` or ``train-adain`` (read with
    ``weights_only=True``): the network as of the checkpoint's step."""

    name = "checkpoint"

    def claims(self, path: Path) -> bool:
        """Files ending in ``.pt``."""
        return path.suffix == ".pt"

    def inspect(self, path: Path) -> ModelInfo:
        """Kind and styles from the checkpoint's own fields."""
        payload = self._payload(path)
        if payload.get("kind") == "adain":
            return ModelInfo(path, self.name, ADAIN, 0, [], dict(payload.get("header") or {}), self._adain_metadata(payload))
        return _transform_info(path, self.name, self._convention(payload), self._metadata(payload))

    def load(self, path: Path, device: str, runtime: str) -> tuple[StyleNetwork, dict]:
        """The network of the checkpoint's step and metadata naming its source."""
        payload = self._payload(path)
        if payload.get("kind") == "adain":
            return adain_from_state(path, payload.get("header") or {}, payload["model"]), self._adain_metadata(payload)
        return network_from_state(path, self._convention(payload), payload["model"]), self._metadata(payload)

    @staticmethod
    def _payload(path: Path) -> dict:
        from styleforge.models.checkpoint import read_checkpoint

        return read_checkpoint(path)

    @staticmethod
    def _convention(payload: dict) -> dict[str, str]:
        options = payload["options"] if isinstance(payload["options"], dict) else {}
        return payload.get("convention") or {k: options[k] for k in ("norm", "upsample") if k in options}

    @staticmethod
    def _adain_metadata(payload: dict) -> dict:
        options = payload["options"] if isinstance(payload["options"], dict) else {}
        return {"kind": "adain", "options": options, "steps": payload["state"].get("step"), "source": "checkpoint"}

    @staticmethod
    def _metadata(payload: dict) -> dict:
        options = payload["options"] if isinstance(payload["options"], dict) else {}
        metadata = {"style_image": payload.get("style_name"), "options": options, "steps": payload["state"].get("step"),
                    "source": "checkpoint"}
        if len(payload.get("style_names") or []) > 1:
            metadata["styles"] = [{"name": Path(name).stem} for name in payload["style_names"]]
        return metadata


class OnnxExportReader:
    """``*.onnx`` written by ``styleforge export`` or ``quantize`` (its ``styleforge_format``
    metadata names the kind)."""

    name = "onnx-export"

    def claims(self, path: Path) -> bool:
        """``.onnx`` files (tried after :class:`OnnxZooReader`, which claims the zoo's)."""
        return path.suffix.lower() == ".onnx"

    def inspect(self, path: Path) -> ModelInfo:
        """Kind and styles from the graph's metadata."""
        from styleforge.runtime.exports import ADAIN_FORMAT
        from styleforge.runtime.sessions import read_model_info

        header = read_model_info(path)[0]
        if header.get("styleforge_format") == ADAIN_FORMAT:
            return ModelInfo(path, self.name, ADAIN, 0, [], header, dict(header))
        if int(header.get("style_vector", "0") or 0) > 0:
            return ModelInfo(path, self.name, STYLE_VECTOR, 0, [], header, dict(header))
        # A multi-style export names its styles (the style_weights input); one exported
        # with --style-weights is a single-style graph whatever its convention says.
        try:
            names = [str(name) for name in json.loads(header["styles"])] if header.get("styles", "").startswith("[") else []
        except ValueError:
            raise StyleforgeError(f"'{path}': its 'styles' metadata is not a JSON list of names") from None
        count = len(names) if len(names) > 1 else 1
        return ModelInfo(path, self.name, TRANSFORM_NET, count, names if count > 1 else [path.stem], header, dict(header))

    def load(self, path: Path, device: str, runtime: str) -> tuple[StyleNetwork, dict]:
        """An :class:`~styleforge.nets.onnx.OnnxAdaINNet` or
        :class:`~styleforge.nets.onnx.OnnxTransformNet` and the graph's metadata."""
        from styleforge.nets.onnx import OnnxAdaINNet, OnnxTransformNet
        from styleforge.runtime.exports import ADAIN_FORMAT
        from styleforge.runtime.sessions import read_model_info

        adain = read_model_info(path)[0].get("styleforge_format") == ADAIN_FORMAT
        net = (OnnxAdaINNet if adain else OnnxTransformNet)(path, device, runtime)
        return net, dict(net.metadata)


class OnnxZooReader:
    """An ONNX Model Zoo fast-neural-style graph, run as published (fixed 224x224)."""

    name = "onnx-zoo"

    def claims(self, path: Path) -> bool:
        """``.onnx`` files with the zoo's one fixed input and no styleforge metadata."""
        from styleforge.models.formats.onnx_zoo import is_zoo_file

        return path.suffix.lower() == ".onnx" and is_zoo_file(path)

    def inspect(self, path: Path) -> ModelInfo:
        """One built-in style, named after the file."""
        return ModelInfo(path, self.name, TRANSFORM_NET, 1, [path.stem], {})

    def load(self, path: Path, device: str, runtime: str) -> tuple[StyleNetwork, dict]:
        """A :class:`~styleforge.models.formats.onnx_zoo.ZooOnnxNet` and its metadata."""
        from styleforge.models.formats.onnx_zoo import ZooOnnxNet

        net = ZooOnnxNet(path, device, runtime)
        return net, dict(net.metadata)


#: The readers, in the order :func:`reader_for` tries them (the last claims every file).
READERS: tuple[ModelReader, ...] = (CheckpointReader(), OnnxZooReader(), OnnxExportReader(), SafetensorsReader())


def reader_for(path: str | os.PathLike[str]) -> ModelReader:
    """The first reader in :data:`READERS` that claims ``path``."""
    file = Path(path)
    return next(reader for reader in READERS if reader.claims(file))


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """What the style-model file ``path`` holds, from its header alone.

    Raises:
        StyleforgeError: the file is unreadable or not a style model.
    """
    file = Path(path)
    return reader_for(file).inspect(file)


def load_network(source: str | os.PathLike[str] | ModelInfo, device: str = "cpu",
                 runtime: str = "auto") -> tuple[StyleNetwork, dict]:
    """The network in a style-model file and its metadata. PyTorch networks come on the
    CPU in eval mode with their saved parameters; ONNX files open a session on ``device``
    with ``runtime`` (``auto``, ``onnxruntime``, ``openvino``).

    Args:
        source: the file, or its :class:`ModelInfo` from :func:`inspect_model` (whose
            reader is then used as it is, without looking at the file again to find it).
        device: where an ONNX session runs.
        runtime: which runtime runs an ONNX file.

    Raises:
        StyleforgeError: the file is unreadable or not a style model.
    """
    if isinstance(source, ModelInfo):
        reader = next(r for r in READERS if r.name == source.reader)
        return reader.load(source.path, device, runtime)
    file = Path(source)
    return reader_for(file).load(file, device, runtime)
