"""Which ``transfer`` options apply to which style-model file, in one table.

Each :class:`OptionRule` pairs an option a user set with the kind of file it does not
apply to, and says what to do instead. :func:`check_transfer_options` runs the table
against a file's :class:`~styleforge.models.loading.ModelInfo` before its network is
loaded, so a refusal costs no more than reading the header.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.models.loading import ADAIN, STYLE_VECTOR, TRANSFORM_NET, ModelInfo, inspect_model, reader_for


@dataclass(frozen=True)
class OptionRule:
    """``message`` (formatted with ``file``) when ``given(options)`` and ``refuses(info)``."""

    given: Callable[[TransferOptions], bool]
    refuses: Callable[[ModelInfo], bool]
    message: str


def _onnx(info: ModelInfo) -> bool:
    return info.runtime == "onnx"


def _norm_strength(opts: TransferOptions) -> bool:
    return opts.strength_mode == "norm"


#: The rules, checked in order; the first that matches is the refusal.
RULES: tuple[OptionRule, ...] = (
    OptionRule(lambda o: o.compile, _onnx,
               "--compile applies to PyTorch models; an ONNX model is already compiled by its runtime"),
    OptionRule(lambda o: o.power_difference, _onnx,
               "--power-difference applies to PyTorch models; an ONNX file holds the operator only if it was exported "
               "with 'styleforge export --power-difference'"),
    OptionRule(lambda o: o.runtime == "pytorch", _onnx,
               "--runtime pytorch runs PyTorch models; an .onnx file runs in onnxruntime or openvino (or give the "
               ".safetensors model)"),
    OptionRule(lambda o: o.precision == "int8", _onnx,
               "--precision int8 quantises a PyTorch model; '{file}' is an ONNX file already (quantise it with "
               "'styleforge quantize' and transfer the INT8 file, or give the .safetensors model)"),
    OptionRule(lambda o: o.precision == "int8", lambda i: i.kind in (ADAIN, STYLE_VECTOR),
               "--precision int8 quantises networks with their styles built in; '{file}' takes the style as an input, "
               "whose range shipped photos cannot calibrate: export it ('styleforge export'), quantise it "
               "('styleforge quantize') and transfer the .onnx file"),
    OptionRule(lambda o: o.runtime == "onnxruntime" and o.precision != "int8", lambda i: not _onnx(i),
               "--runtime onnxruntime runs exported .onnx files; for '{file}' use --runtime pytorch or openvino, "
               "--precision int8 (an INT8 copy), or export it first with 'styleforge export'"),
    OptionRule(lambda o: o.alpha != 1.0, lambda i: i.kind in (TRANSFORM_NET, STYLE_VECTOR),
               "--alpha is AdaIN's content-style trade-off; for '{file}' use --strength"),
    OptionRule(_norm_strength, lambda i: _onnx(i) and i.kind != STYLE_VECTOR,
               "--strength-mode norm changes the network's parameters, which an ONNX file fixes; use --strength-mode "
               "pixel, or the .safetensors model"),
    OptionRule(_norm_strength, lambda i: i.kind == ADAIN,
               "--strength-mode norm is for instance-norm networks; an AdaIN model has --alpha (its own content-style "
               "trade-off) or --strength-mode pixel"),
    OptionRule(_norm_strength, lambda i: i.kind == TRANSFORM_NET and i.header.get("norm", "instance") != "instance",
               "--strength-mode norm needs an instance-norm network; '{file}' uses {norm} norm (use --strength-mode pixel)"),
    OptionRule(lambda o: not o.styles, lambda i: i.kind == ADAIN,
               "'{file}' is an AdaIN model, which takes any painting as the style: give one or more with --style IMAGE"),
    OptionRule(lambda o: not o.styles, lambda i: i.kind == STYLE_VECTOR,
               "'{file}' takes any painting as the style: give one or more with --style IMAGE"),
    OptionRule(lambda o: bool(o.styles), lambda i: i.kind == TRANSFORM_NET,
               "--style images are for models that take any painting (AdaIN, magenta-arbitrary); '{file}' has its style "
               "built in (a multi-style model takes --style-weights)"),
    OptionRule(lambda o: o.style_weights is not None, lambda i: _onnx(i) and i.kind == TRANSFORM_NET and i.styles == 1,
               "--style-weights needs a multi-style model; '{file}' holds one style (export a multi-style model without "
               "--style-weights to keep every style)"),
)


def check_transfer_options(info: ModelInfo, opts: TransferOptions) -> None:
    """Raise the first :data:`RULES` refusal of ``opts`` for the file ``info`` describes.

    Raises:
        StyleforgeError: an option that does not apply to this kind of model.
    """
    for rule in RULES:
        if rule.given(opts) and rule.refuses(info):
            raise StyleforgeError(rule.message.format(file=info.path, norm=info.header.get("norm", "instance")))


#: The kind of a file whose header cannot be read: only the rules that need no header apply.
UNREAD = "unread"


def checked_model_info(path: str | os.PathLike[str], opts: TransferOptions) -> ModelInfo:
    """The :class:`~styleforge.models.loading.ModelInfo` of ``path`` once ``opts`` passed
    :data:`RULES`. For a file whose header cannot be read, the rules that need none (an
    option no ONNX file takes, say) still refuse first, then the reader's error is raised.

    Raises:
        StyleforgeError: an option that does not apply, or an unreadable file.
    """
    try:
        info = inspect_model(path)
    except StyleforgeError:
        check_transfer_options(ModelInfo(Path(path), reader_for(path).name, UNREAD, 0), opts)
        raise
    check_transfer_options(info, opts)
    return info
