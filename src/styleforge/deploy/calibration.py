"""Calibration data for post-training quantisation, as the course's ``calibrate_data.py``.

``default_preprocess_cali`` reads ``[data] data_path`` (an image-list file, one path per
line relative to the list, or a folder searched recursively), takes the first
``batch_size * num_runs`` images in order, resizes each to cover ``[preprocess] crop``
and centre-crops it, orders the channels by ``color_mode``, and applies
``(pixel - mean) / std`` on 0-255 pixels. A ``module:function`` named in
``calibration`` replaces it: it gets the options and returns an iterable of
(batch, C, H, W) float32 arrays.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from styleforge.config import QuantizeOptions
from styleforge.errors import StyleforgeError
from styleforge.images.io import find_images, read_image
from styleforge.utils.limits import check_pixel_budget

DEFAULT_CALIBRATION = "default_preprocess_cali"


def calibration_files(opts: QuantizeOptions) -> list[Path]:
    """The images that calibrate, in order; refuses a set too small for batch_size x num_runs."""
    source = Path(opts.data_path)
    if source.is_dir():
        files = find_images(source)
    elif source.is_file():
        lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
        files = [(source.parent / line) if not Path(line).is_absolute() else Path(line) for line in lines if line and not line.startswith("#")]
    else:
        raise StyleforgeError(f"[data] data_path '{source}' does not exist (give an image folder or an image-list file)")
    needed = opts.batch_size * opts.num_runs
    if len(files) < needed:
        raise StyleforgeError(f"[data] data_path '{source}' has {len(files)} image(s); batch_size x num_runs needs {needed}")
    return files[:needed]


def prepare_image(image: Image.Image, opts: QuantizeOptions) -> np.ndarray:
    """One calibration image as a (C, H, W) float32 array (see the module docstring)."""
    height, width = opts.crop
    scale = max(height / image.height, width / image.width)
    size = check_pixel_budget(max(width, round(image.width * scale)), max(height, round(image.height * scale)), "calibration resize")
    resized = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    cropped = resized.crop((left, top, left + width, top + height))
    if opts.color_mode == "grey":
        pixels = np.asarray(cropped.convert("L"), dtype=np.float32)[..., None]
    else:
        pixels = np.asarray(cropped, dtype=np.float32)
        pixels = pixels[..., ::-1] if opts.color_mode == "bgr" else pixels
    mean = np.asarray(opts.mean, dtype=np.float32)
    std = np.asarray(opts.std, dtype=np.float32)
    return ((pixels - mean) / std).transpose(2, 0, 1).copy()


def default_preprocess_cali(opts: QuantizeOptions) -> Iterator[np.ndarray]:
    """Batches of calibration inputs from ``data_path`` (module docstring)."""
    files = calibration_files(opts)
    for start in range(0, len(files), opts.batch_size):
        yield np.stack([prepare_image(read_image(f), opts) for f in files[start : start + opts.batch_size]])


def calibration_batches(opts: QuantizeOptions) -> list[np.ndarray]:
    """All calibration batches from the reader named by ``calibration``."""
    if opts.calibration == DEFAULT_CALIBRATION:
        return list(default_preprocess_cali(opts))
    module_name, _, function = opts.calibration.partition(":")
    try:
        reader = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError, ValueError):
        raise StyleforgeError(f"[preprocess] calibration = {opts.calibration!r}: not {DEFAULT_CALIBRATION} "
                              "nor an importable module:function") from None
    batches = [np.asarray(b, dtype=np.float32) for b in reader(opts)]
    if not batches:
        raise StyleforgeError(f"[preprocess] calibration = {opts.calibration!r} gave no data")
    return batches
