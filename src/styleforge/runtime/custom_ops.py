"""PowerDifference in ONNX and ONNX Runtime: the node ``styleforge.PowerDifference``.

* **Node**: ``Z = PowerDifference(X, Y)`` in the domain ``styleforge`` (version 1) with
  the float attribute ``z``: :math:`Z = (X - Y)^z`, NumPy broadcasting, float32 (the
  schema also admits double and bfloat16 for other runtimes). :func:`register_schema`
  registers it with ``onnx`` so ``onnx.checker`` and shape inference accept it.
* **Export**: :func:`translation_table` maps ``torch.ops.styleforge.power_difference``
  to that node for ``torch.onnx.export(..., dynamo=True, custom_translation_table=...)``.
* **ONNX Runtime**: :func:`register_with_onnxruntime` adds a kernel to session options:
  the native custom-op library (C++, :mod:`styleforge.ops.ort_library`) when it can be
  built, else a Python kernel through ``onnxruntime-extensions`` (NumPy; about 10x
  slower). It returns which one, and every command that runs such a file says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from styleforge.errors import StyleforgeError

DOMAIN = "styleforge"
OP_TYPE = "PowerDifference"
VERSION = 1


def register_schema() -> None:
    """Register the node's schema with ``onnx`` (once per process)."""
    import onnx.defs
    from onnx.defs import OpSchema

    if onnx.defs.has(OP_TYPE, DOMAIN):
        return
    schema = OpSchema(
        OP_TYPE, DOMAIN, VERSION,
        doc="(X - Y)^z with NumPy broadcasting (styleforge; the course's section 4.4).",
        inputs=[OpSchema.FormalParameter("X", "T"), OpSchema.FormalParameter("Y", "T")],
        outputs=[OpSchema.FormalParameter("Z", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(double)", "tensor(bfloat16)"], "floating-point tensors")],
        attributes=[OpSchema.Attribute("z", OpSchema.AttrType.FLOAT, "the exponent")],
    )
    onnx.defs.register_schema(schema)


def translation_table() -> dict[Any, Any]:
    """``custom_translation_table`` entry writing the operator as one PowerDifference node."""
    import onnxscript
    import torch

    import styleforge.ops  # noqa: F401  (registers torch.ops.styleforge.power_difference)

    opset = onnxscript.values.Opset(domain=DOMAIN, version=VERSION)

    def power_difference(x: Any, y: Any, z: float) -> Any:
        return opset.PowerDifference(x, y, z=z)

    return {torch.ops.styleforge.power_difference.default: power_difference}


def uses_custom_domain(model: Any) -> bool:
    """True when the ONNX model imports the ``styleforge`` domain (it has our nodes)."""
    return any(o.domain == DOMAIN for o in model.opset_import)


def register_with_onnxruntime(options: Any) -> str:
    """Add a PowerDifference kernel to ONNX Runtime ``SessionOptions``; returns which:
    ``native`` (the C++ custom-op library) or ``python`` (onnxruntime-extensions)."""
    from styleforge.ops.ort_library import ort_library_path

    library = ort_library_path()
    if library is not None:
        options.register_custom_ops_library(str(library))
        return "native"
    options.register_custom_ops_library(_extensions_library())
    return "python"


def _extensions_library() -> str:
    """onnxruntime-extensions' library with our Python kernel registered in it."""
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError:
        raise StyleforgeError("this ONNX file holds PowerDifference nodes: build the native custom-op library (see "
                              "docs/power-difference.md) or pip install onnxruntime-extensions") from None
    if not getattr(_extensions_library, "registered", False):
        onnx_op(op_type=f"{DOMAIN}::{OP_TYPE}", inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
                outputs=[PyCustomOpDef.dt_float], attrs={"z": PyCustomOpDef.dt_float})(_numpy_power_difference)
        _extensions_library.registered = True  # type: ignore[attr-defined]
    return get_library_path()


def _numpy_power_difference(x: np.ndarray, y: np.ndarray, **attributes: float) -> np.ndarray:
    """The Python kernel: the same special cases as the PyTorch operator (z = 1, 2)."""
    z = float(attributes["z"])
    difference = np.subtract(x, y, dtype=np.float32)
    if z == 2.0:
        return difference * difference
    if z == 1.0:
        return difference
    return np.power(difference, np.float32(z))
