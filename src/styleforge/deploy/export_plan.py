"""What ``export`` reads and writes, checked before PyTorch is imported.

The output's folder, suffix and distinctness from the input, and the model file, are
checked here without PyTorch (about 3 s to import on a small machine), so ``export``
and ``bench`` refuse a bad path at once; :mod:`~styleforge.deploy.export` runs the same
checks for callers of the Python API.
"""

from __future__ import annotations

import os
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.utils.fs import check_output_file


def onnx_target(output: str | os.PathLike[str], inputs: list[str | os.PathLike[str]] | None = None) -> Path:
    """The checked path of an ONNX file to write: its folder can be written, its suffix
    is ``.onnx`` and it is none of ``inputs``.

    Raises:
        StyleforgeError: any of these does not hold.
    """
    target = check_output_file(output, "output", inputs or [])
    if target.suffix.lower() != ".onnx":
        raise StyleforgeError(f"output '{target}' needs the suffix .onnx")
    return target
