"""The VGG19 layout (configuration E of Simonyan & Zisserman) and its layer names.

Shared by the weight-file readers, the PyTorch network and the NumPy engine; imports
nothing heavy.
"""

from __future__ import annotations

#: Conv layers per block: 64 x2 | 128 x2 | 256 x4 | 512 x4 | 512 x4, max-pool after each.
CONV_BLOCKS = (2, 2, 4, 4, 4)
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n in enumerate(CONV_BLOCKS, start=1) for i in range(1, n + 1))
FC_NAMES = ("fc6", "fc7", "fc8")


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
