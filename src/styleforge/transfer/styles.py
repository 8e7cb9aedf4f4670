"""The styles a loaded model is asked for: ``--style-weights`` blends of built-in styles,
and the paintings given with ``--style`` to a network that takes any painting (AdaIN's
relu4_1 statistics, a style-vector network's predicted vector), blended the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.images.io import read_image, resize_long_side
from styleforge.images.tensors import images_to_tensor, tensor_to_images
from styleforge.models.blends import style_mix
from styleforge.nets.adain import blend_statistics


def style_vector_stylizer(file: Path, net: object, metadata: dict, opts: TransferOptions) -> tuple[torch.nn.Module, dict]:
    """``net`` (a style-vector TransformNet or its ONNX export) conditioned on the vector of
    ``opts.styles``, moving toward each photo's own with ``--strength-mode norm``
    (:class:`~styleforge.nets.transform_net.StyleVectorStylizer`), and the metadata naming the
    paintings. The predictor is the one ``metadata`` names beside ``file``.

    Raises:
        StyleforgeError: --alpha given, the predictor missing or altered, no painting.
    """
    from styleforge.models.formats.magenta import load_style_predictor
    from styleforge.nets.transform_net import StyleVectorStylizer

    predictor = load_style_predictor(file, metadata)
    vector, styles = style_vector(file, opts, predictor)
    strength = opts.strength if opts.strength_mode == "norm" else 1.0
    own_vector = lambda x: torch.from_numpy(predictor(tensor_to_images(x)[0]))  # noqa: E731 (the photo's own style)
    return StyleVectorStylizer(net, vector, strength, own_vector), styles


def style_vector(file: Path, opts: TransferOptions, predict: Callable[[Image.Image], np.ndarray]) -> tuple[torch.Tensor, dict]:
    """The style vector of ``opts.styles`` for the style-vector model ``file``: each
    painting's vector by ``predict``, averaged with ``opts.style_weights`` (equal weights
    when absent), and the metadata naming them.

    Raises:
        StyleforgeError: no style given, an unreadable style image or bad weights.
    """
    names = [Path(style).stem for style in opts.styles]
    weights = style_mix(opts.style_weights, names, len(names), given=True) if opts.style_weights is not None else None
    vectors = np.stack([predict(read_image(style)) for style in opts.styles])
    vector = np.average(vectors, axis=0, weights=weights)
    styles = [{"name": name, "style_image": str(style)} for name, style in zip(names, opts.styles, strict=True)]
    return torch.from_numpy(vector.astype(np.float32)), {"styles": styles, "style_image": " + ".join(names)}


def adain_style(file: Path, opts: TransferOptions, statistics: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The blended relu4_1 (mean, std) of ``opts.styles`` for the AdaIN model ``file``, and the
    metadata naming them. Each style image is resized to ``opts.style_size`` (long side) and
    centre-cropped to multiples of 8, so the encoder sees the same pixels in every runtime.

    Raises:
        StyleforgeError: no style given, an unreadable style image, bad weights, or an
            option that does not apply to AdaIN.
    """
    names = [Path(style).stem for style in opts.styles]
    weights = style_mix(opts.style_weights, names, len(names), given=True) if opts.style_weights is not None else None
    found = [statistics(_style_pixels(read_image(style), opts.style_size)) for style in opts.styles]
    mean, std = blend_statistics([(torch.as_tensor(m), torch.as_tensor(s)) for m, s in found], weights)
    styles = [{"name": name, "style_image": str(style)} for name, style in zip(names, opts.styles, strict=True)]
    return mean, std, {"styles": styles, "style_image": " + ".join(names)}


def _style_pixels(image: Image.Image, style_size: int) -> torch.Tensor:
    """A style image resized to ``style_size`` (long side) and centre-cropped to sides that
    are multiples of 8, as a (1, 3, h, w) 0-255 tensor."""
    image = resize_long_side(image.convert("RGB"), style_size)
    width, height = (max(8, side - side % 8) for side in image.size)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return images_to_tensor([image.crop((left, top, left + width, top + height))], torch.device("cpu"))
