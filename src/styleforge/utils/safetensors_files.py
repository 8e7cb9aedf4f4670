"""Reading safetensors files with their metadata, with one-line errors."""

from __future__ import annotations

import os
from typing import Any

from styleforge.errors import StyleforgeError, one_line


def read_safetensors_file(path: str | os.PathLike[str], framework: str, what: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Return (metadata, tensors) of a safetensors file.

    Args:
        path: the file.
        framework: ``numpy`` or ``pt`` (the tensor type returned).
        what: what the file should be, for the error message (e.g. ``model``).

    Raises:
        StyleforgeError: the file cannot be read or is not safetensors.
    """
    from safetensors import safe_open

    from styleforge.utils.fs import check_regular_file

    check_regular_file(path, what)
    try:
        with safe_open(str(path), framework=framework) as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001 (any failure of the parser on an untrusted file is a bad file)
        raise StyleforgeError(f"cannot read {what} '{path}': {one_line(exc, 200)}") from None
    return metadata, tensors


def read_safetensors_header(path: str | os.PathLike[str], what: str = "model") -> dict[str, str]:
    """The metadata of a safetensors file, without reading its tensors.

    Raises:
        StyleforgeError: the file cannot be read or is not safetensors.
    """
    from safetensors import safe_open

    from styleforge.utils.fs import check_regular_file

    check_regular_file(path, what)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # noqa: BLE001 (any failure of the parser on an untrusted file is a bad file)
        raise StyleforgeError(f"cannot read {what} '{path}': {one_line(exc, 200)}") from None
