"""What styleforge writes into its exported ONNX files: the ``styleforge_format`` of each
kind of export and the names of the extra graph inputs, shared by the writers
(:mod:`styleforge.deploy`) and the readers (:mod:`styleforge.nets.onnx`,
:mod:`styleforge.vgg.onnx_classifier`)."""

from __future__ import annotations

import os
from pathlib import Path

from styleforge.errors import StyleforgeError

#: ``styleforge_format`` metadata of the two kinds of exported file.
STYLE_FORMAT = "styleforge-onnx-transformnet"
CLASSIFIER_FORMAT = "styleforge-onnx-vgg19"
ADAIN_FORMAT = "styleforge-onnx-adain"

#: The second input of a multi-style export: the style weights (K,).
STYLE_WEIGHTS = "style_weights"
#: The second input of a style-vector export (magenta-arbitrary): the style vector (D,).
STYLE_VECTOR = "style_vector"

#: Inputs and outputs of an exported AdaIN graph (:class:`OnnxAdaINNet`).
ADAIN_INPUTS = ("image", "style_mean", "style_std", "alpha", "content_mean", "content_std", "freeze")
ADAIN_OUTPUTS = ("stylized", "image_mean", "image_std")


def expect_format(file: Path | str, metadata: dict[str, str], expected: str, what: str) -> None:
    """Raise unless ``metadata`` (an exported file's) names the ``expected`` styleforge_format;
    ``what`` names the kind of file for the message."""
    found = metadata.get("styleforge_format")
    if found != expected:
        raise StyleforgeError(f"'{file}' is not a {what} exported by styleforge (styleforge_format={found!r})")


def source_label(source: str | os.PathLike[str] | bytes) -> str:
    """How messages name an ONNX ``source``: its path, or \"the exported model\" for bytes."""
    return "the exported model" if isinstance(source, bytes) else str(source)
