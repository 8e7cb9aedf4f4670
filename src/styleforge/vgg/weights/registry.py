"""The weights styleforge knows how to download, and where the cache lives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.utils.home import styleforge_home


@dataclass(frozen=True)
class WeightSpec:
    """A downloadable weights file.

    Attributes:
        name: the cache name users type (``styleforge weights download NAME``).
        url: the official download address.
        filename: the file's published name (an import of a file with this name is
            checked against the checksums below).
        approx_size: size in bytes, for messages before the download starts.
        description: one line for ``weights list``.
        sha256_prefix: leading hex digits of the SHA-256, as torchvision publishes them
            in its file names.
        md5: the published MD5, where that is the only checksum published.
    """

    name: str
    url: str
    filename: str
    approx_size: int
    description: str
    sha256_prefix: str | None = None
    md5: str | None = None


REGISTRY: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="vgg19",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            filename="vgg19-dcbb9e9d.pth",
            approx_size=574_673_361,
            description="torchvision ImageNet VGG19 (RGB [0,1], mean/std normalised)",
            sha256_prefix="dcbb9e9d",
        ),
        WeightSpec(
            name="vgg19-matconvnet",
            url="https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat",
            filename="imagenet-vgg-verydeep-19.mat",
            approx_size=534_904_783,
            description="MatConvNet imagenet-vgg-verydeep-19 (the course's file; RGB 0-255 minus mean)",
            md5="106118b7cf60435e6d8e04f6a6dc3657",
        ),
    )
}

DEFAULT_WEIGHTS = "vgg19"

#: Names of cached files (weights, installed style models, service styles): they become
#: file names and URL parts.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def weights_dir() -> Path:
    """Return the folder holding converted ``NAME.safetensors`` files."""
    return styleforge_home() / "weights"


def downloads_dir() -> Path:
    """Return the folder downloads stream into before conversion."""
    return styleforge_home() / "downloads"


def check_name(name: str, what: str = "weights") -> str:
    """Return ``name`` if it is a valid cache name (letters, digits, ``._-``; not ending in
    a suffix the cache itself adds), else raise naming ``what`` is being named."""
    if not NAME_PATTERN.match(name) or name.endswith((".safetensors", ".json")):
        raise StyleforgeError(
            f"invalid {what} name {name!r}: use up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
