"""What styleforge reads of an ONNX file before it runs one: the metadata, the operator
domains it imports and the graph's inputs.

These are parsed with protobuf against the few fields of ONNX's ``ModelProto`` they live
in (field numbers from onnx/onnx.proto). Everything else in the file (nodes, weights) is
left unparsed. Importing the ``onnx`` package costs about 0.55 s, 0.47 s of it its
``ml_dtypes`` dependency. Every ``transfer`` of an ``.onnx`` file (and of
``--precision int8``'s copy) paid that before its first pixel, only to read these fields.
The graph itself is still read with ``onnx`` where it is needed (tiling's derived graphs,
quantisation, export).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: (message, [(field name, number, type, label, message type)]) of ModelProto's subset.
_SCHEMA = (
    ("StringStringEntryProto", [("key", 1, "string", "optional", None), ("value", 2, "string", "optional", None)]),
    ("OperatorSetIdProto", [("domain", 1, "string", "optional", None), ("version", 2, "int64", "optional", None)]),
    ("Dimension", [("dim_value", 1, "int64", "optional", None), ("dim_param", 2, "string", "optional", None)]),
    ("TensorShapeProto", [("dim", 1, "message", "repeated", "Dimension")]),
    ("TensorType", [("elem_type", 1, "int32", "optional", None), ("shape", 2, "message", "optional", "TensorShapeProto")]),
    ("TypeProto", [("tensor_type", 1, "message", "optional", "TensorType")]),
    ("ValueInfoProto", [("name", 1, "string", "optional", None), ("type", 2, "message", "optional", "TypeProto")]),
    ("GraphProto", [("input", 11, "message", "repeated", "ValueInfoProto")]),
    ("ModelProto", [("graph", 7, "message", "optional", "GraphProto"),
                    ("opset_import", 8, "message", "repeated", "OperatorSetIdProto"),
                    ("metadata_props", 14, "message", "repeated", "StringStringEntryProto")]),
)
_PACKAGE = "styleforge.onnx_header"


@dataclass(frozen=True)
class OnnxHeader:
    """The parts of an ONNX file read before running it.

    Attributes:
        metadata: ``metadata_props`` as a dict.
        domains: the operator-set domains the model imports (``""`` is ONNX's own).
        inputs: the graph inputs as (name, dims), a symbolic dimension given as 0.
    """

    metadata: dict[str, str]
    domains: frozenset[str]
    inputs: tuple[tuple[str, tuple[int, ...]], ...]


@functools.cache
def _model_class() -> Any:
    """The protobuf class of the ``ModelProto`` subset (built once, in a private pool)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(name="styleforge_onnx_header.proto", package=_PACKAGE, syntax="proto2")
    kinds = descriptor_pb2.FieldDescriptorProto
    for message_name, fields in _SCHEMA:
        message = file.message_type.add(name=message_name)
        for name, number, kind, label, type_name in fields:
            field = message.field.add(name=name, number=number, type=getattr(kinds, f"TYPE_{kind.upper()}"),
                                      label=getattr(kinds, f"LABEL_{label.upper()}"))
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ModelProto"))


def read_header(source: str | os.PathLike[str] | bytes) -> OnnxHeader:
    """The :class:`OnnxHeader` of an ONNX file (a path, or its bytes).

    Raises:
        OSError: the file cannot be read.
        google.protobuf.message.DecodeError: it is not a protobuf message.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    model = _model_class().FromString(data)
    inputs = tuple((value.name, tuple(dim.dim_value for dim in value.type.tensor_type.shape.dim))
                   for value in model.graph.input)
    return OnnxHeader({p.key: p.value for p in model.metadata_props}, frozenset(o.domain for o in model.opset_import), inputs)
