"""Pretrained style networks styleforge can download.

Each entry lists mirror URLs tried in order; whatever the source, the file must match
the published SHA-256 before it is converted. The ONNX Model Zoo's fast-neural-style
files (pytorch/examples' network exported at opset 9) are published with these
checksums in the zoo's Git LFS pointers, 6,728,029 bytes each. The zoo moved its files
from GitHub LFS to Hugging Face in 2025: ``styleforge models download NAME --url URL``
takes any other copy, checked against the same SHA-256.

jcjohnson/fast-neural-style's ten Torch7 models are served from Stanford with no
published checksum. They are listed too (``jcjohnson-*``), with ``sha256=None``: the
download is taken over HTTPS as it is, its SHA-256 is printed and recorded in the
model's JSON, and ``styleforge models import`` of the same file later gives the same
model. Their licence is the project's: free for personal or research use.
"""

from __future__ import annotations

from dataclasses import dataclass

from styleforge.errors import StyleforgeError

ZOO_PATH = "validated/vision/style_transfer/fast_neural_style/model"
ZOO_LICENCE = "BSD-3-Clause (pytorch/examples; ONNX Model Zoo)"


@dataclass(frozen=True)
class ModelSpec:
    """A downloadable style network.

    Attributes:
        name: what users type (``styleforge models download NAME``).
        filename: the published file name (an import of a file with this name is checked
            against ``sha256``).
        urls: mirrors, tried in order.
        sha256: the published SHA-256 of the file (None: none is published; see above).
        size: bytes (None when not published).
        layout: the format reader (``onnx-zoo``, ``pytorch-examples`` or ``torch7-fast-neural-style``).
        source, licence: recorded in the converted model's metadata.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None
    layout: str
    source: str
    licence: str


def _zoo(name: str, sha256: str) -> ModelSpec:
    filename = f"{name}-9.onnx"
    return ModelSpec(
        name=name, filename=filename, sha256=sha256, size=6_728_029, layout="onnx-zoo",
        urls=(f"https://github.com/onnx/models/raw/main/{ZOO_PATH}/{filename}",
              f"https://media.githubusercontent.com/media/onnx/models/main/{ZOO_PATH}/{filename}"),
        source=f"ONNX Model Zoo, fast_neural_style/{filename} (pytorch/examples' TransformerNet)", licence=ZOO_LICENCE)


JCJOHNSON_URL = "https://cs.stanford.edu/people/jcjohns/fast-neural-style/models"
JCJOHNSON_LICENCE = "free for personal or research use; commercial use: ask the author (jcjohnson/fast-neural-style)"


def _jcjohnson(folder: str, style: str) -> ModelSpec:
    prefix = "jcjohnson-" + ("eccv16-" if folder == "eccv16" else "")
    return ModelSpec(
        name=prefix + style.replace("_", "-"), filename=f"{style}.t7", urls=(f"{JCJOHNSON_URL}/{folder}/{style}.t7",),
        sha256=None, size=None, layout="torch7-fast-neural-style",
        source=f"jcjohnson/fast-neural-style, models/{folder}/{style}.t7 (Johnson, Alahi & Fei-Fei 2016)",
        licence=JCJOHNSON_LICENCE)


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    _zoo("candy", "9d11a3529d1e547da6ae07201d93484dbab2ec0a3614535752c8f40f0fe2968a"),
    _zoo("mosaic", "fa646dedade881243f8d5a2ceb7de2b93675b21fc24f7482894ac4851a9a0a47"),
    _zoo("pointilism", "5ee2b8d4d6bc60a777f54e0fe96a1b717360a004b79d56c67390d4a975b14d98"),
    _zoo("rain-princess", "4162912e6f75fedef6f810ae989b9e10d3d5d43308dab34b027c850cf255e152"),
    _zoo("udnie", "8656b6ce7dec8f22ee13c2d557d6b67bd6f550dde88d0f2e7c9972aeb765cc0d"),
    *(_jcjohnson("instance_norm", style) for style in ("candy", "la_muse", "mosaic", "feathers", "the_scream", "udnie")),
    *(_jcjohnson("eccv16", style) for style in ("the_wave", "starry_night", "la_muse", "composition_vii")),
)}


def model_spec(name: str) -> ModelSpec:
    """The registry entry ``name``.

    Raises:
        StyleforgeError: no such entry (the message lists the known names).
    """
    if name not in MODELS:
        raise StyleforgeError(f"no download is known for style '{name}'; known: {', '.join(MODELS)} "
                              "(or import a file you have: styleforge models import PATH)")
    return MODELS[name]


def spec_for_file(filename: str) -> ModelSpec | None:
    """The checksum-published entry whose file is named ``filename``, if any (files without
    a published checksum cannot be told apart by name: eccv16 and instance_norm both have
    ``la_muse.t7``)."""
    return next((spec for spec in MODELS.values() if spec.filename == filename and spec.sha256), None)
