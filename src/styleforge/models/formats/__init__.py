"""Readers of published style-network layouts; each returns a :class:`~styleforge.nets.transform_net.TransformNet`
state dict and the network's convention."""

from __future__ import annotations

#: pytorch/examples' TransformerNet conventions in TransformNet's terms: 0-255 fed
#: directly, the last convolution clamped to [0, 255], nearest x2 upsampling + conv.
PYTORCH_EXAMPLES = {"norm": "instance", "upsample": "resize", "input_divisor": "1", "output": "clamp"}
