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
from styleforge.transform_net import TransformNet

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
