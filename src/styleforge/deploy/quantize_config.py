"""Reading the course-style quantisation INI file into :class:`~styleforge.config.QuantizeOptions`.

Every key of the course's ``vgg19_int8.ini`` is read with its default (docs/quantize.md);
a missing section or required key, an unknown key or an unknown value is a one-line
error naming ``[section] key``. Comments after ``;`` or ``#`` are allowed, as in the
course's file.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from styleforge.config import QuantizeOptions
from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.fs import check_regular_file

#: Keys with a closed set of values.
CHOICES = {
    "color_mode": ("rgb", "bgr", "grey"),
    "activation_quantization_alg": ("naive", "threshold_search"),
    "weight_quantization_alg": ("naive", "threshold_search"),
    "quantization_type": ("int8", "int16"),
    "device_mode": ("clean", "origin", "mlu"),
}
OP_KINDS = ("Conv", "FC", "LRN")
REQUIRED = {("model", "original_models_path"), ("model", "save_model_path"), ("data", "data_path")}


def _floats(text: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(",") if v.strip())
    if not values:
        raise ValueError("no values")
    return values


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not True or False")


KEYS: dict[str, dict[str, Callable[[str], Any]]] = {
    "preprocess": {"mean": _floats, "std": _floats, "color_mode": str.strip, "crop": _ints, "calibration": str.strip},
    "config": {
        "activation_quantization_alg": str.strip, "weight_quantization_alg": str.strip, "quantization_type": str.strip,
        "int_op_list": _names, "channel_quantization": _bool, "device_mode": str.strip, "use_convfirst": _bool,
        "debug": _bool, "threshold_percentile": float, "float_first_last": _bool,
        "range_margin": float,
    },
    "model": {"input_tensor_names": _names, "output_tensor_names": _names, "original_models_path": str.strip,
              "save_model_path": str.strip},
    "data": {"data_path": str.strip, "batch_size": int, "num_runs": int},
}


def read_quantize_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> QuantizeOptions:
    """Parse an INI file into QuantizeOptions; ``overrides`` (command-line flags) win.

    Relative paths in ``[model]`` and ``[data]`` are taken relative to the INI file.
    """
    file = check_regular_file(path, "quantisation config")
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    try:
        parser.read_string(file.read_text(encoding="utf-8"), source=str(file))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise StyleforgeError(f"cannot read quantisation config '{file}': {one_line(exc, 160)}") from None
    values: dict[str, Any] = {}
    for section in parser.sections():
        if section not in KEYS:
            raise StyleforgeError(f"'{file}': unknown section [{section}]; expected {', '.join(f'[{s}]' for s in KEYS)}")
        for key, text in parser.items(section):
            values[key] = _parse(file, section, key, text)
    for section, key in REQUIRED:
        if key not in values and not (overrides or {}).get(key):
            raise StyleforgeError(f"'{file}': [{section}] {key} is missing")
    for key in ("original_models_path", "save_model_path", "data_path"):
        if key in values and values[key]:
            values[key] = str((file.parent / values[key]) if not Path(values[key]).is_absolute() else Path(values[key]))
    return validate_quantize_options(dataclasses.replace(QuantizeOptions(), **{**values, **(overrides or {})}))


def _parse(file: Path, section: str, key: str, text: str) -> Any:
    parser = KEYS[section].get(key)
    if parser is None:
        raise StyleforgeError(f"'{file}': unknown key [{section}] {key}; known: {', '.join(KEYS[section])}")
    try:
        return parser(text)
    except ValueError as exc:
        raise StyleforgeError(f"'{file}': [{section}] {key} = {text!r}: {exc}") from None


def validate_quantize_options(opts: QuantizeOptions) -> QuantizeOptions:
    """Check values that depend on each other; one line naming the key otherwise."""
    for key, allowed in CHOICES.items():
        if getattr(opts, key) not in allowed:
            raise StyleforgeError(f"{key} = {getattr(opts, key)!r}: use one of {', '.join(allowed)}")
    unknown = [op for op in opts.int_op_list if op not in OP_KINDS]
    if unknown or not opts.int_op_list:
        raise StyleforgeError(f"int_op_list = {', '.join(opts.int_op_list)!r}: use Conv, FC and/or LRN")
    channels = 1 if opts.color_mode == "grey" else 3
    for key in ("mean", "std"):
        if len(getattr(opts, key)) not in (1, channels):
            raise StyleforgeError(f"{key} needs {channels} value(s) for color_mode = {opts.color_mode}, or one for all")
    if any(s <= 0 for s in opts.std):
        raise StyleforgeError("std values must be > 0")
    if len(opts.crop) != 2 or min(opts.crop) < 1:
        raise StyleforgeError("crop needs two positive numbers: height, width")
    if opts.batch_size < 1 or opts.num_runs < 1:
        raise StyleforgeError("batch_size and num_runs must be >= 1")
    if not 50.0 < opts.threshold_percentile <= 100.0:
        raise StyleforgeError("threshold_percentile must be in (50, 100]")
    if opts.range_margin is not None and not 1.0 <= opts.range_margin <= 16.0:
        raise StyleforgeError("range_margin must be in [1, 16] (1 = the calibrated ranges as they are)")
    return opts
