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
``style_name``  the style image's file name (``multistyle`` for several)
``style_names`` every style image's file name, in style-index order
``convention``  the network's :meth:`~styleforge.nets.transform_net.TransformNet.convention`
==============  =================================================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from styleforge.errors import StyleforgeError
from styleforge.utils.torch_files import load_torch_file, save_torch_file

REQUIRED_KEYS = ("model", "options", "state")


def write_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` to ``path`` atomically (verified write, then rename); returns the path."""
    return save_torch_file(payload, path)


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        StyleforgeError: missing, unreadable or not a styleforge training checkpoint.
    """
    file = Path(path)
    if not file.exists():
        raise StyleforgeError(f"no checkpoint at '{file}'")
    payload = load_torch_file(file, "checkpoint", map_location=map_location)
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED_KEYS):
        raise StyleforgeError(f"'{file}' is not a styleforge training checkpoint (it lacks {', '.join(REQUIRED_KEYS)})")
    return payload
