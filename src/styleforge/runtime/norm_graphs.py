"""Two graphs derived from an exported style network so ONNX files can be run in tiles.

Tiles must be normalised with the whole image's instance-norm statistics, as the
PyTorch network does in its ``record``/``freeze`` modes (:mod:`styleforge.transfer.model`).
An exported file has one graph with ``InstanceNormalization`` nodes that compute their
own statistics, so two variants are derived from it in memory (the file is unchanged):

* :func:`statistics_graph` adds, for the input ``x`` of every instance norm ``i``, the
  outputs ``norm_mean_i = mean_hw(x)`` and ``norm_var_i = mean_hw((x - mean)^2)``
  (shape (N, C)), the biased variance instance norm uses;
* :func:`frozen_statistics_graph` replaces every ``InstanceNormalization(x, scale, B)``
  by ``BatchNormalization(x, scale, B, norm_mean_i, norm_var_i)`` in inference mode,
  ``scale * (x - mean) / sqrt(var + eps) + B``, with the statistics as graph inputs of
  shape (C,).

Both work on float and on quantised (QDQ) files, where the instance norms stay float.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from styleforge.errors import StyleforgeError

MEAN, VAR = "norm_mean_{}", "norm_var_{}"


def instance_norm_nodes(model: Any) -> list[Any]:
    """The graph's ``InstanceNormalization`` nodes, in graph order."""
    return [node for node in model.graph.node if node.op_type == "InstanceNormalization"]


def statistics_graph(model: Any) -> Any:
    """A copy of ``model`` that also outputs every instance norm's input statistics."""
    import onnx
    from onnx import TensorProto, helper

    derived = _copy(model)
    graph = derived.graph
    keep_axes = _axes(graph, "norm_stats_axes")
    for i, node in enumerate(instance_norm_nodes(derived)):
        x = node.input[0]
        mean_keep, centred, square = (f"norm_stats_{i}_{part}" for part in ("mean_keep", "centred", "square"))
        graph.node.extend([
            *_reduce_mean(derived, x, mean_keep, keep_axes, keepdims=1),
            helper.make_node("Squeeze", [mean_keep, keep_axes], [MEAN.format(i)]),
            helper.make_node("Sub", [x, mean_keep], [centred]),
            helper.make_node("Mul", [centred, centred], [square]),
            *_reduce_mean(derived, square, VAR.format(i), keep_axes, keepdims=0),
        ])
        for name in (MEAN.format(i), VAR.format(i)):
            graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", f"channels_{i}"]))
    onnx.checker.check_model(derived)
    return derived


def frozen_statistics_graph(model: Any) -> Any:
    """A copy of ``model`` whose instance norms take their statistics as inputs."""
    import onnx
    from onnx import TensorProto, helper

    derived = _copy(model)
    graph = derived.graph
    for i, node in enumerate(instance_norm_nodes(derived)):
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        x, scale, bias = node.input
        replacement = helper.make_node("BatchNormalization", [x, scale, bias, MEAN.format(i), VAR.format(i)],
                                       list(node.output), name=f"{node.name}_frozen", epsilon=eps)
        node.CopyFrom(replacement)
        for name in (MEAN.format(i), VAR.format(i)):
            graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"channels_{i}"]))
    onnx.checker.check_model(derived)
    return derived


def _copy(model: Any) -> Any:
    import onnx

    derived = onnx.ModelProto()
    derived.CopyFrom(model)
    if not instance_norm_nodes(derived):
        raise StyleforgeError("this ONNX style model has no instance norms; its tiles need no shared statistics")
    return derived


def _opset(model: Any) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _axes(graph: Any, name: str) -> str:
    """An int64 initializer [2, 3] (the spatial axes), shared by the added reductions."""
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.array([2, 3], dtype=np.int64), name))
    return name


def _reduce_mean(model: Any, x: str, out: str, axes: str, keepdims: int) -> list[Any]:
    """ReduceMean over the spatial axes (axes as an input from opset 18, an attribute before)."""
    from onnx import helper

    if _opset(model) >= 18:
        return [helper.make_node("ReduceMean", [x, axes], [out], keepdims=keepdims)]
    return [helper.make_node("ReduceMean", [x], [out], axes=[2, 3], keepdims=keepdims)]
