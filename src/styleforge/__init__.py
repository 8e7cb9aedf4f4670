"""styleforge: neural style transfer and the VGG19 network behind it.

The public API (SPEC section 7)::

    import styleforge as sf
    vgg = sf.load_vgg19("vgg19", device="cpu")
    x = vgg.preprocess(images, size=224)
    logits = vgg(x)
    feats = vgg.extract(x, ["relu1_1", "conv4_2"])
    top = vgg.classify(images, top_k=5)

Heavy modules (PyTorch) are imported on first use of a name that needs them, so
``import styleforge`` and ``styleforge --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from styleforge.errors import StyleforgeError

__version__ = "0.1.0"

_LAZY = {
    "load_vgg19": "styleforge.vgg.network",
    "VGG19": "styleforge.vgg.network",
    "LAYER_NAMES": "styleforge.vgg.network",
    "Prediction": "styleforge.vgg.network",
    "classify_files": "styleforge.classify",
    "stylize": "styleforge.gatys.driver",
    "run_stylize": "styleforge.gatys.driver",
    "GatysOptions": "styleforge.config",
    "TrainOptions": "styleforge.config",
    "TransferOptions": "styleforge.config",
    "VideoOptions": "styleforge.config",
    "transfer_video": "styleforge.video.transfer",
    "import_model": "styleforge.models.store",
    "download_model": "styleforge.models.store",
    "TransformNet": "styleforge.nets.transform_net",
    "train": "styleforge.training.johnson",
    "train_adain": "styleforge.training.adain",
    "AdaINTrainOptions": "styleforge.config",
    "load_style_model": "styleforge.transfer.model",
    "read_image": "styleforge.images.io",
    "write_image": "styleforge.images.io",
    "Convention": "styleforge.vgg.preprocessing",
    "reuse_freed_memory": "styleforge.utils.memory",
}

__all__ = ["StyleforgeError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'styleforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
