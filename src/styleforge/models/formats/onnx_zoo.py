"""The ONNX Model Zoo's fast-neural-style files (``candy-9.onnx``...): pytorch/examples'
network exported at opset 9 with a fixed 1x3x224x224 input ``input1``.

The weights are read from the graph, not run: the k-th ``Conv`` node's weight and bias
initialisers become TransformNet's k-th convolution, the k-th
``InstanceNormalization``'s scale and bias its k-th norm (both networks list their
layers in the same order). The converted model then runs at any size, in bf16, tiled,
exported again with dynamic axes, or quantised. A graph with another structure is
refused, naming the first node that does not fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from styleforge.errors import StyleforgeError, one_line
from styleforge.nets.transform_net import TransformNet

#: Node types the network may contain besides its Conv/InstanceNormalization layers.
ALLOWED = {"Conv", "InstanceNormalization", "Relu", "Add", "Pad", "Upsample", "Resize", "Constant", "Clip", "Identity",
           "Shape", "Gather", "Cast", "Concat", "Unsqueeze", "Slice", "Mul", "Floor", "Div"}


def convert_onnx(file: Path) -> dict[str, torch.Tensor]:
    """TransformNet state dict of a zoo file.

    Raises:
        StyleforgeError: unreadable file, or a graph that is not this network.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(file))
    except Exception as exc:  # onnx raises DecodeError, ValueError... for damaged files
        raise StyleforgeError(f"cannot read ONNX model '{file}': {one_line(exc)}") from None
    graph = model.graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    convs, norms = [], []
    for node in graph.node:
        if node.op_type not in ALLOWED:
            raise StyleforgeError(f"'{file}': node '{node.name or node.op_type}' ({node.op_type}) does not fit the fast-neural-style "
                                  "network (pytorch/examples' TransformerNet)")
        if node.op_type == "Conv":
            convs.append(_parameters(file, node, weights, 2))
        elif node.op_type == "InstanceNormalization":
            _check_epsilon(file, node)
            norms.append(_parameters(file, node, weights, 2))
    return _state_dict(file, convs, norms)


def _parameters(file: Path, node: object, weights: dict[str, np.ndarray], count: int) -> tuple[np.ndarray, ...]:
    names = list(node.input)[1:1 + count]  # type: ignore[attr-defined]
    missing = [name for name in names if name not in weights]
    if len(names) < count or missing:
        raise StyleforgeError(f"'{file}': node '{node.name or node.op_type}' has no stored weights "  # type: ignore[attr-defined]
                              f"({missing[0] if missing else 'a bias is missing'})")
    return tuple(weights[name] for name in names)


def _check_epsilon(file: Path, node: object) -> None:
    for attribute in node.attribute:  # type: ignore[attr-defined]
        if attribute.name == "epsilon" and not np.isclose(attribute.f, 1e-5, rtol=1e-3):
            raise StyleforgeError(f"'{file}': instance norm '{node.name}' uses epsilon {attribute.f:g}, not 1e-5")  # type: ignore[attr-defined]


def _state_dict(file: Path, convs: list, norms: list) -> dict[str, torch.Tensor]:
    template = TransformNet().state_dict()
    conv_prefixes = [k[: -len(".weight")] for k, v in template.items() if k.endswith(".weight") and v.ndim == 4]
    norm_prefixes = [k[: -len(".weight")] for k, v in template.items() if k.endswith(".weight") and v.ndim == 1]
    if len(convs) != len(conv_prefixes) or len(norms) != len(norm_prefixes):
        raise StyleforgeError(f"'{file}': {len(convs)} convolutions and {len(norms)} instance norms, but the fast-neural-style "
                              f"network has {len(conv_prefixes)} and {len(norm_prefixes)}")
    state = {}
    for prefix, (weight, bias) in [*zip(conv_prefixes, convs), *zip(norm_prefixes, norms)]:
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = torch.from_numpy(weight.copy()), torch.from_numpy(bias.copy())
    for key, value in state.items():
        if tuple(value.shape) != tuple(template[key].shape):
            raise StyleforgeError(f"'{file}': {key} has shape {tuple(value.shape)}, expected {tuple(template[key].shape)}")
    return {k: v.float() for k, v in state.items()}


#: The zoo files' fixed input: one 224x224 RGB image, 0-255, named ``input1``.
ZOO_INPUT = ("input1", [1, 3, 224, 224])


def convert_zoo_file(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The TransformNet state dict of a zoo file and its convention (pytorch/examples')."""
    from styleforge.models.formats import PYTORCH_EXAMPLES

    return convert_onnx(file), PYTORCH_EXAMPLES


def is_zoo_file(file: Path) -> bool:
    """Whether ``file`` is an ONNX graph with the zoo's fixed ``input1`` and no styleforge metadata."""
    from styleforge.runtime.onnx_header import read_header

    try:
        header = read_header(file)
    except Exception:  # noqa: BLE001 (not ONNX at all: the styleforge reader reports it)
        return False
    if "styleforge_format" in header.metadata or len(header.inputs) != 1:
        return False
    name, dims = header.inputs[0]
    return (name, list(dims)) == ZOO_INPUT


class ZooOnnxNet:
    """A zoo file run as it is through ONNX Runtime: each image is resized to the graph's
    fixed 224x224, stylised, and resized back (bilinear, antialiased). For the original
    resolution, tiling, bf16 or export, import the file instead (``styleforge models import``)."""

    def __init__(self, file: Path, device: str = "cpu", runtime: str = "auto") -> None:
        from styleforge.runtime.sessions import open_session

        self.session = open_session(file, device, runtime)
        self.metadata = {"source": f"{file.name} (ONNX Model Zoo file, run as-is at 224x224)"}
        self.device_description = f"{self.session.description}, as-is at 224x224"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise an (N, 3, H, W) 0-255 batch at 224x224; returns (N, 3, H, W)."""
        import torch.nn.functional as F

        height, width = x.shape[2:]
        outputs = []
        for image in x.float().cpu():
            small = F.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
            out = self.session.run({ZOO_INPUT[0]: small.contiguous().numpy()})[0]
            outputs.append(F.interpolate(torch.from_numpy(out), size=(height, width), mode="bilinear", align_corners=False))
        return torch.cat(outputs).clamp(0, 255).to(x.device)

    def record_norm_statistics(self, x: torch.Tensor) -> None:
        """Refused: a fixed-size graph cannot be tiled."""
        raise StyleforgeError("a zoo file runs at its fixed 224x224 and cannot be tiled; import it for full resolution "
                              "(styleforge models import FILE)")

    def clear_norm_statistics(self) -> None:
        """Nothing to clear."""

    def eval(self) -> ZooOnnxNet:
        return self
