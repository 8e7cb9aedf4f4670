"""VGG19 weights: formats, the download registry, and the local cache.

* :mod:`~styleforge.vgg.weights.formats`: readers for torchvision .pth, MatConvNet .mat and
  styleforge .safetensors into one canonical layout, and the safetensors writer;
* :mod:`~styleforge.vgg.weights.registry`: what can be downloaded and where the cache is;
* :mod:`styleforge.utils.download` (shared with ``styleforge models``): streaming, verified, atomic downloads;
* :mod:`~styleforge.vgg.weights.store`: the cache operations behind ``styleforge weights``.
"""

from styleforge.vgg.weights.formats import WeightsBundle, read_weights_file, write_safetensors
from styleforge.vgg.weights.registry import DEFAULT_WEIGHTS, REGISTRY
from styleforge.vgg.weights.store import (
    download_weights,
    import_weights,
    list_weights,
    load_bundle,
    remove_weights,
    weights_path,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "REGISTRY",
    "WeightsBundle",
    "download_weights",
    "import_weights",
    "list_weights",
    "load_bundle",
    "read_weights_file",
    "remove_weights",
    "weights_path",
    "write_safetensors",
]
