"""ImageNet-1k class names shipped with the package (index order of VGG19's logits)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

import numpy as np


class Prediction(NamedTuple):
    """One classification result: ``(class_id, class_name, probability)``."""

    class_id: int
    class_name: str
    probability: float


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """Return the 1000 ImageNet class names; index 0 is ``tench``, 281 ``tabby``."""
    text = resources.files("styleforge.data").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"packaged imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


def class_names_for(num_classes: int, names: list[str] | None = None) -> list[str]:
    """Return names for ``num_classes`` outputs.

    Args:
        num_classes: size of the classifier output.
        names: names carried by the weights file, if any (used when the count matches).

    Returns:
        ``names`` if given and of the right length; the ImageNet names for 1000 outputs;
        otherwise ``class_0``, ``class_1``, ...
    """
    if names is not None and len(names) == num_classes:
        return list(names)
    if num_classes == 1000:
        return list(imagenet_classes())
    return [f"class_{i}" for i in range(num_classes)]


def top_predictions(probs: np.ndarray, class_names: Sequence[str], top_k: int) -> list[list[Prediction]]:
    """Turn (N, classes) probabilities into per-image top-k predictions, best first.

    Ties keep the lower class id first (a stable sort), so both engines rank alike.
    """
    probs = np.asarray(probs, dtype=np.float64)
    k = max(1, min(top_k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[Prediction(int(i), class_names[int(i)], float(row[i])) for i in idx] for row, idx in zip(probs, order, strict=True)]
