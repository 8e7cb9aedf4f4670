"""Preprocessing conventions of VGG weight files (no PyTorch needed here).

Each weights file was trained on images prepared in one way; feeding it images prepared
another way silently degrades every result. A :class:`Convention` records that way and
travels in the metadata of every safetensors file styleforge writes, and every user of
the weights (classifier, Gatys, Johnson training, NumPy engine) applies it:

    x = (pixels_in_[0,1] * input_scale - mean) / std        (per RGB channel)

=================  ===========  ===========================  =====================  ========
convention         input_scale  mean (R, G, B)               std                    resize
=================  ===========  ===========================  =====================  ========
``torchvision``    1            0.485, 0.456, 0.406          0.229, 0.224, 0.225    crop
``matconvnet``     255          123.68, 116.779, 103.939     1, 1, 1                squash
=================  ===========  ===========================  =====================  ========

Resize policies for classification at ``size`` (224):

* ``crop``: scale the shorter side to ``round(size / 0.875)`` (256) with bilinear
  filtering, then take the central ``size x size`` square (torchvision's ImageNet
  evaluation transform);
* ``squash``: resize straight to ``size x size``, ignoring the aspect ratio (what the
  course's MatConvNet lab does with ``imresize``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from styleforge.errors import StyleforgeError
from styleforge.utils.limits import check_pixel_budget

RESIZE_POLICIES = ("crop", "squash")

#: torchvision's ImageNet evaluation crop ratio (224 / 256).
CROP_RATIO = 0.875


@dataclass(frozen=True)
class Convention:
    """How images must be prepared for one set of VGG weights.

    Attributes:
        name: a label (``torchvision``, ``matconvnet`` or a user's own).
        input_scale: the pixel range the network was trained on: 1.0 for [0, 1],
            255.0 for [0, 255].
        mean: per-channel RGB mean subtracted after scaling.
        std: per-channel RGB divisor applied after the mean.
        resize: default resize policy for classification, ``crop`` or ``squash``.
    """

    name: str
    input_scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "crop"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_POLICIES:
            raise StyleforgeError(f"unknown resize policy {self.resize!r}; use one of {', '.join(RESIZE_POLICIES)}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise StyleforgeError("a preprocessing convention needs 3 means and 3 positive standard deviations")

    def to_json(self) -> str:
        """Return the convention as a JSON string (stored in safetensors metadata)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Convention:
        """Parse :meth:`to_json` output; raises StyleforgeError when malformed."""
        try:
            raw = json.loads(text)
            return cls(
                name=str(raw["name"]),
                input_scale=float(raw["input_scale"]),
                mean=tuple(float(v) for v in raw["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in raw["std"]),  # type: ignore[arg-type]
                resize=str(raw.get("resize", "crop")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StyleforgeError(f"malformed preprocessing convention in weights metadata: {exc}") from None


TORCHVISION = Convention(
    name="torchvision",
    input_scale=1.0,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    resize="crop",
)

MATCONVNET = Convention(
    name="matconvnet",
    input_scale=255.0,
    mean=(123.68, 116.779, 103.939),
    std=(1.0, 1.0, 1.0),
    resize="squash",
)


def resize_for_network(img: Image.Image, size: int, policy: str) -> Image.Image:
    """Resize an RGB image to a ``size x size`` network input by ``policy``.

    Args:
        img: an RGB PIL image of any size.
        size: the side of the square output.
        policy: ``crop`` or ``squash`` (see the module docstring).

    Returns:
        A ``size x size`` RGB PIL image.
    """
    if policy == "squash":
        check_pixel_budget(size, size, f"resizing to {size}x{size}")
        return img.resize((size, size), Image.Resampling.BILINEAR)
    if policy != "crop":
        raise StyleforgeError(f"unknown resize policy {policy!r}; use one of {', '.join(RESIZE_POLICIES)}")
    return center_crop_square(img, size, short_side=round(size / CROP_RATIO))


def center_crop_square(img: Image.Image, size: int, short_side: int | None = None) -> Image.Image:
    """Scale the shorter side to ``short_side`` (default ``size``), then take the central square.

    Args:
        img: an RGB PIL image.
        size: side of the square output.
        short_side: the shorter side after scaling (>= size).

    Returns:
        A ``size x size`` image (bilinear resampling).
    """
    short = short_side or size
    width, height = img.size
    scale = short / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    check_pixel_budget(new_w, new_h, f"scaling a {width}x{height} image so its shorter side is {short}")
    resized = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return resized.crop((left, top, left + size, top + size))


def network_input(images: Sequence[Image.Image], size: int, policy: str) -> np.ndarray:
    """Resize PIL images by ``policy`` into a (N, 3, size, size) float32 batch in [0, 1].

    The weights' normalisation (mean, std, input scale) is applied afterwards by each
    engine's ``normalize``; this step is shared so both engines see the same pixels.
    """
    if not images:
        raise StyleforgeError("no images to preprocess")
    arrays = [np.asarray(resize_for_network(img.convert("RGB"), size, policy), dtype=np.uint8) for img in images]
    return np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
