"""The VGG19 layout (configuration E of Simonyan & Zisserman) and its layer names.

Shared by the weight-file readers, the PyTorch network and the NumPy engine; imports
nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable

from styleforge.errors import StyleforgeError

#: Conv layers per block: 64 x2 | 128 x2 | 256 x4 | 512 x4 | 512 x4, max-pool after each.
CONV_BLOCKS = (2, 2, 4, 4, 4)
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n in enumerate(CONV_BLOCKS, start=1) for i in range(1, n + 1))
FC_NAMES = ("fc6", "fc7", "fc8")
#: Output channels of the 16 conv layers of the ImageNet VGG19 (Simonyan & Zisserman's E).
IMAGENET_WIDTHS = tuple(width for width, count in zip((64, 128, 256, 512, 512), CONV_BLOCKS, strict=True) for _ in range(count))


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, count in enumerate(CONV_BLOCKS, start=1):
        for i in range(1, count + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return (*names, "fc6", "relu6", "fc7", "relu7", "fc8", "softmax")


#: The 43 layer names of the course, in forward order.
LAYER_NAMES: tuple[str, ...] = _layer_names()
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


def plan_extraction(names: Iterable[str], has_classifier: bool) -> tuple[list[str], int]:
    """Validate requested layer names; return them de-duplicated and the deepest index.

    Both VGG19 implementations (PyTorch and NumPy) run layers ``0..deepest`` and no more.

    Raises:
        StyleforgeError: no names, an unknown name, or a classifier layer requested from
            weights without fc6-fc8.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise StyleforgeError("no layer names given")
    unknown = [n for n in wanted if n not in LAYER_INDEX]
    if unknown:
        raise StyleforgeError(f"unknown VGG19 layer {unknown[0]!r}; valid names are {', '.join(LAYER_NAMES)}")
    deepest = max(LAYER_INDEX[n] for n in wanted)
    if deepest >= LAYER_INDEX["fc6"] and not has_classifier:
        raise StyleforgeError("these weights have no classifier (fc6-fc8); only conv/relu/pool layers are available")
    return wanted, deepest


def check_feature_layers(names: Iterable[str]) -> None:
    """Raise unless every name is a VGG19 conv, relu or pool layer (usable for losses).

    Raises:
        StyleforgeError: naming the first bad layer.
    """
    for layer in names:
        if layer not in LAYER_INDEX or LAYER_INDEX[layer] >= LAYER_INDEX["fc6"]:
            raise StyleforgeError(f"bad layer name {layer!r}: use VGG19 conv/relu/pool layers such as conv4_2 or relu3_1")


def min_input_side(names: Iterable[str]) -> int:
    """The smallest image side for which every layer in ``names`` has at least one
    position: 2 to the power of the number of 2x2 poolings up to the deepest layer
    (16 for conv5_1, 32 for pool5)."""
    deepest = max(LAYER_INDEX[n] for n in names)
    pools = sum(1 for name in LAYER_NAMES[: deepest + 1] if name.startswith("pool"))
    return 2**pools
