"""Defaults and hyperparameters, in one place.

Every default the CLI shows in ``--help`` comes from a dataclass here, so the Python
API, the CLI and the documentation cannot drift apart. Environment variables that
change a default are read here too (and only here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Values accepted by every ``--device`` option.
DEVICE_CHOICES = ("auto", "cpu", "cuda")

#: Values accepted by every ``--precision`` option: fp32 is exact; bf16 (CPU with
#: AVX512-BF16/AMX, or CUDA) and fp16 (CUDA only) run under torch.autocast.
PRECISION_CHOICES = ("fp32", "bf16", "fp16")

#: Refuse images with more pixels than this (decompression-bomb guard). 64 megapixels
#: is a 8000x8000 photo, far beyond what any command here needs, and well under the
#: ~10 GB a malicious PNG could otherwise make Pillow allocate.
DEFAULT_MAX_PIXELS = 64_000_000


def max_pixels_from_env() -> int:
    """Return the pixel limit: ``STYLEFORGE_MAX_PIXELS`` if set (an integer), else the default."""
    raw = os.environ.get("STYLEFORGE_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        from styleforge.errors import StyleforgeError

        raise StyleforgeError(
            f"STYLEFORGE_MAX_PIXELS={raw!r} is not a positive integer; unset it or give e.g. 64000000"
        )
    return value


@dataclass(frozen=True)
class ClassifyOptions:
    """Options of ``styleforge classify`` / :meth:`styleforge.vgg.VGG19.classify`.

    Attributes:
        weights: cached weights name or a path to a .pth/.mat/.safetensors file.
        top_k: how many classes to report per image.
        size: side of the square network input (224 for ImageNet VGG19).
        batch_size: images per forward pass.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        repeat: run the whole classification this many times and report latency;
            the first run is the warm-up and is reported apart.
        precision: ``fp32`` (default, exact), ``bf16`` or ``fp16`` autocast; see
            ``benchmarks/classify.py`` for the speed and probability error of each.
    """

    weights: str = "vgg19"
    top_k: int = 5
    size: int = 224
    batch_size: int = 8
    device: str = "auto"
    repeat: int = 1
    precision: str = "fp32"
