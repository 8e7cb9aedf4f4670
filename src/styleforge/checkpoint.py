"""Training checkpoints of the feed-forward style network: one file format, read by
``train --resume`` and by ``load_style_model`` / ``transfer --model``.

A checkpoint (``OUT/checkpoint.pt``) is a ``torch.save`` dict of plain tensors and
containers, read back with ``torch.load(weights_only=True)`` (nothing is unpickled):

==============  =================================================================
key             content
==============  =================================================================
``model``       the transform network's ``state_dict``
``optimizer``   Adam's ``state_dict``
``scaler``      the gradient scaler's ``state_dict`` (fp16 training)
``state``       step, epoch, position in the epoch, skipped count, loss history
``rng``         every RNG state (torch, NumPy, Python, CUDA)
``options``     the :class:`~styleforge.config.TrainOptions` as a dict
``style_name``  the style image's file name
==============  =================================================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from styleforge.errors import StyleforgeError
from styleforge.fsutil import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("model", "options", "state")


def write_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, then rename); returns the path."""
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        StyleforgeError: missing, unreadable or not a styleforge training checkpoint.
    """
    file = Path(path)
    if not file.is_file():
        raise StyleforgeError(f"no checkpoint at '{file}'")
    try:
        payload = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises many types for a bad file)
        raise StyleforgeError(f"cannot read checkpoint '{file}': {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED_KEYS):
        raise StyleforgeError(f"'{file}' is not a styleforge training checkpoint (it lacks {', '.join(REQUIRED_KEYS)})")
    return payload
