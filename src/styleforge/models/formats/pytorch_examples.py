"""pytorch/examples ``fast_neural_style`` checkpoints (``candy.pth``, ``mosaic.pth``...).

Their ``TransformerNet`` has TransformNet's layers under other names::

    conv1.conv2d.*          -> conv1.conv.*          in1..in3.*     -> norm1..norm3.*
    resK.convJ.conv2d.*     -> residuals.K-1.convJ.conv.*
    resK.inJ.*              -> residuals.K-1.normJ.*
    deconv1/2.conv2d.*      -> up1/2.conv.conv.*     in4, in5.*     -> norm4, norm5.*
    deconv3.conv2d.*        -> conv_out.conv.*

Files saved by older PyTorch also carry ``inN.running_mean/var`` (instance norm never
uses them); they are dropped. Any other key is refused, naming it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from styleforge.errors import StyleforgeError

_RULES = (
    (re.compile(r"^conv([123])\.conv2d\.(weight|bias)$"), r"conv\1.conv.\2"),
    (re.compile(r"^in([1-5])\.(weight|bias)$"), r"norm\1.\2"),
    (re.compile(r"^res([1-5])\.conv([12])\.conv2d\.(weight|bias)$"), None),
    (re.compile(r"^res([1-5])\.in([12])\.(weight|bias)$"), None),
    (re.compile(r"^deconv([12])\.conv2d\.(weight|bias)$"), r"up\1.conv.conv.\2"),
    (re.compile(r"^deconv3\.conv2d\.(weight|bias)$"), r"conv_out.conv.\1"),
)
_DROPPED = re.compile(r"^(res[1-5]\.)?in[1-5]\.(running_mean|running_var|num_batches_tracked)$")


def convert_state_dict(state: object, source: str) -> dict[str, torch.Tensor]:
    """TransformNet keys for a pytorch/examples state dict.

    Raises:
        StyleforgeError: not a state dict, or a key outside the layout (named).
    """
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StyleforgeError(f"'{source}' is not a state dict of tensors (pytorch/examples saves TransformerNet().state_dict())")
    converted = {}
    for key, value in state.items():
        if _DROPPED.match(key):
            continue
        target = _target(key)
        if target is None:
            raise StyleforgeError(f"'{source}': key '{key}' does not fit pytorch/examples' TransformerNet "
                                  "(expected conv1.conv2d.*, in1.*, res1.conv1.conv2d.*, deconv1.conv2d.*, ...)")
        converted[target] = value.detach().float()
    return converted


def convert_file(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The TransformNet state dict of a pytorch/examples ``.pth``/``.model`` file (read
    without unpickling code) and its convention.

    Raises:
        StyleforgeError: unreadable, or keys that are not this network's.
    """
    from styleforge.models.formats import PYTORCH_EXAMPLES
    from styleforge.utils.torch_files import load_torch_file

    return convert_state_dict(load_torch_file(file, "pytorch/examples model"), str(file)), PYTORCH_EXAMPLES


def _target(key: str) -> str | None:
    for pattern, replacement in _RULES:
        match = pattern.match(key)
        if not match:
            continue
        if replacement is not None:
            return pattern.sub(replacement, key)
        block, index, kind = match.groups()
        layer = "conv" if ".conv" in key else "norm"
        suffix = ".conv" if layer == "conv" else ""
        return f"residuals.{int(block) - 1}.{layer}{index}{suffix}.{kind}"
    return None
