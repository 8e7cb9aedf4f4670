"""The ONNX header reader (styleforge.runtime.onnx_header): the same metadata, domains and
inputs as the onnx package reads, for every kind of file styleforge writes, and a
transfer of an exported file that never imports onnx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from styleforge.deploy.export import export_style_model
from styleforge.errors import StyleforgeError
from styleforge.runtime.custom_ops import DOMAIN
from styleforge.runtime.onnx_header import read_header
from styleforge.runtime.sessions import read_model_info


def onnx_view(path: Path) -> tuple[dict[str, str], frozenset[str], tuple]:
    """What the onnx package reads of the same fields."""
    model = onnx.load(str(path))
    inputs = tuple((i.name, tuple(d.dim_value for d in i.type.tensor_type.shape.dim)) for i in model.graph.input)
    return {p.key: p.value for p in model.metadata_props}, frozenset(o.domain for o in model.opset_import), inputs


@pytest.mark.parametrize("kind", ["float", "power-difference", "zoo-like"])
def test_the_header_is_what_onnx_reads(kind: str, style_model: Path, exported: Path, tmp_path: Path) -> None:
    if kind == "float":
        path = exported
    elif kind == "power-difference":
        path = export_style_model(style_model, tmp_path / "pd.onnx", power_difference=True).path
    else:  # a file without styleforge metadata and with a fixed input, as the ONNX Model Zoo's
        model = onnx.load(str(exported))
        del model.metadata_props[:]
        for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, 224, 224), strict=True):
            dim.dim_value = value
        onnx.save(model, str(path := tmp_path / "zoo.onnx"))
    header = read_header(path)
    assert (header.metadata, header.domains, header.inputs) == onnx_view(path)
    assert read_header(path.read_bytes()) == header
    assert (DOMAIN in header.domains) == (kind == "power-difference")
    assert ("styleforge_format" in header.metadata) == (kind != "zoo-like")


def test_a_file_that_is_not_onnx_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xfe not a protobuf \x00\x01" * 8)
    with pytest.raises(StyleforgeError, match="cannot read ONNX model"):
        read_model_info(bad)


def test_transferring_an_exported_file_does_not_import_onnx(exported: Path) -> None:
    code = ("import sys; from PIL import Image; from styleforge.config import TransferOptions; "
            "from styleforge.transfer.model import load_style_model; "
            f"m = load_style_model({str(exported)!r}, options=TransferOptions(device='cpu')); "
            "m.stylize(Image.new('RGB', (40, 32), (90, 140, 200))); print('onnx' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
