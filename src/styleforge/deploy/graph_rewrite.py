"""Rewriting an existing ONNX file to use PowerDifference (the course's section 4.4
exercise: modify an exported style model so its squared differences use the new op).

:func:`rewrite_squared_difference` replaces, in any ONNX graph:

* ``Pow(Sub(X, Y), c)`` with a constant scalar ``c`` by ``PowerDifference(X, Y, z=c)``;
* ``Mul(Sub(X, Y), Sub(X, Y))`` (one Sub used twice) by ``PowerDifference(X, Y, z=2)``;
* ``InstanceNormalization(x, scale, B)`` by its definition written out, the variance
  through the operator: ``m = ReduceMean(x)``, ``v = ReduceMean(PowerDifference(x, m,
  z=2))``, ``(x - m) * scale / sqrt(v + eps) + B`` over the spatial axes (an export
  made without ``--power-difference`` holds its squared differences inside these).

A ``Sub`` still used elsewhere is kept. The result imports the ``styleforge`` domain and
passes ``onnx.checker``; it runs on ONNX Runtime with styleforge's kernel
(:mod:`~styleforge.runtime.custom_ops`) and gives the original's outputs (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from styleforge.errors import StyleforgeError
from styleforge.runtime.custom_ops import DOMAIN, OP_TYPE, VERSION, register_schema


@dataclass
class RewriteReport:
    """How many patterns of each kind were replaced."""

    pow_sub: int = 0
    mul_sub: int = 0
    instance_norms: int = 0

    @property
    def total(self) -> int:
        """PowerDifference nodes added."""
        return self.pow_sub + self.mul_sub + self.instance_norms


def rewrite_squared_difference(model: Any) -> tuple[Any, RewriteReport]:
    """A rewritten copy of ``model`` (an ``onnx.ModelProto``) and what was replaced."""
    import onnx

    register_schema()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    report = RewriteReport()
    constants = _scalar_constants(graph)
    producers = {out: node for node in graph.node for out in node.output}
    new_nodes = []
    for node in graph.node:
        replacement = _replace_square(node, producers, constants, report) or _expand_instance_norm(node, graph, rewritten, report)
        new_nodes.extend(replacement if replacement is not None else [node])
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused_subs(graph)
    if report.total and not any(o.domain == DOMAIN for o in rewritten.opset_import):
        rewritten.opset_import.add(domain=DOMAIN, version=VERSION)
    onnx.checker.check_model(rewritten, check_custom_domain=True)
    return rewritten, report


def _power_difference(x: str, y: str, out: str, z: float, name: str) -> Any:
    from onnx import helper

    return helper.make_node(OP_TYPE, [x, y], [out], name=name, domain=DOMAIN, z=float(z))


def _replace_square(node: Any, producers: dict[str, Any], constants: dict[str, float], report: RewriteReport) -> list[Any] | None:
    """Pow(Sub, c) or Mul(Sub, same Sub) -> one PowerDifference node; None otherwise."""
    if node.op_type == "Pow" and not node.domain and node.input[1] in constants:
        sub = producers.get(node.input[0])
        if sub is not None and sub.op_type == "Sub" and not sub.domain:
            report.pow_sub += 1
            return [_power_difference(sub.input[0], sub.input[1], node.output[0], constants[node.input[1]], node.name or f"pd_pow_{report.pow_sub}")]
    if node.op_type == "Mul" and not node.domain and node.input[0] == node.input[1]:
        sub = producers.get(node.input[0])
        if sub is not None and sub.op_type == "Sub" and not sub.domain:
            report.mul_sub += 1
            return [_power_difference(sub.input[0], sub.input[1], node.output[0], 2.0, node.name or f"pd_mul_{report.mul_sub}")]
    return None


def _expand_instance_norm(node: Any, graph: Any, model: Any, report: RewriteReport) -> list[Any] | None:
    """InstanceNormalization -> mean, PowerDifference, mean, normalise (module docstring)."""
    from onnx import helper, numpy_helper

    if node.op_type != "InstanceNormalization" or node.domain:
        return None
    i = report.instance_norms
    report.instance_norms += 1
    eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    x, scale, bias = node.input
    p = f"pd_in{i}_"
    graph.initializer.extend([
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), p + "axes"),
        numpy_helper.from_array(np.array([1, -1, 1, 1], dtype=np.int64), p + "shape"),
        numpy_helper.from_array(np.array(eps, dtype=np.float32), p + "eps"),
    ])
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 18:
        raise StyleforgeError(f"the graph's opset is {opset}; the rewrite writes opset-18 reductions (export again with styleforge)")
    return [
        helper.make_node("ReduceMean", [x, p + "axes"], [p + "mean"], keepdims=1),
        _power_difference(x, p + "mean", p + "sq", 2.0, p + "power_difference"),
        helper.make_node("ReduceMean", [p + "sq", p + "axes"], [p + "var"], keepdims=1),
        helper.make_node("Add", [p + "var", p + "eps"], [p + "var_eps"]),
        helper.make_node("Sqrt", [p + "var_eps"], [p + "std"]),
        helper.make_node("Sub", [x, p + "mean"], [p + "centred"]),
        helper.make_node("Div", [p + "centred", p + "std"], [p + "normalised"]),
        helper.make_node("Reshape", [scale, p + "shape"], [p + "scale"]),
        helper.make_node("Reshape", [bias, p + "shape"], [p + "bias"]),
        helper.make_node("Mul", [p + "normalised", p + "scale"], [p + "scaled"]),
        helper.make_node("Add", [p + "scaled", p + "bias"], list(node.output), name=node.name or p + "out"),
    ]


def _scalar_constants(graph: Any) -> dict[str, float]:
    """Tensor name -> value for scalar (one-element) initializers and Constant nodes."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and not node.domain:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                values[node.output[0]] = numpy_helper.to_array(attr.t)
    return {name: float(v.reshape(-1)[0]) for name, v in values.items() if v.size == 1 and np.issubdtype(v.dtype, np.floating)}


def _drop_unused_subs(graph: Any) -> None:
    """Remove Sub nodes whose outputs nothing reads any more (replaced patterns)."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [node for node in graph.node if not (node.op_type == "Sub" and not node.domain and node.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(keep)


def rewrite_file(source: str, output: str) -> RewriteReport:
    """Rewrite the ONNX file ``source`` into ``output`` (written atomically); refuses a
    graph with nothing to replace."""
    import onnx

    from styleforge.utils.fs import check_output_file, check_regular_file, write_bytes_atomic

    file = check_regular_file(source, "ONNX model")
    target = check_output_file(output, "output", [file])
    if target.suffix.lower() != ".onnx":
        raise StyleforgeError(f"output '{target}' needs the suffix .onnx")
    try:
        model = onnx.load(str(file))
    except Exception as exc:  # noqa: BLE001 (protobuf's DecodeError and friends)
        raise StyleforgeError(f"cannot read ONNX model '{file}': {' '.join(str(exc).split())[:200]}") from None
    rewritten, report = rewrite_squared_difference(model)
    if not report.total:
        raise StyleforgeError(f"'{file}' has no (X - Y)^2, (X - Y)*(X - Y), Pow(Sub(X, Y), c) or InstanceNormalization to rewrite")
    metadata = {p.key: p.value for p in rewritten.metadata_props}
    if metadata.get("styleforge_format"):
        del rewritten.metadata_props[:]
        for key, value in {**metadata, "power_difference": "rewritten"}.items():
            rewritten.metadata_props.add(key=key, value=value)
    write_bytes_atomic(target, rewritten.SerializeToString())
    return report
