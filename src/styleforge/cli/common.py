"""Argument helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any, NoReturn

from styleforge.config import DEVICE_CHOICES
from styleforge.errors import StyleforgeError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with styleforge's error form: one line, ``styleforge: error: ...``, exit
    2, pointing at ``--help`` (instead of the whole usage block), and comma-separated
    negative numbers such as ``--style-blend -1,2`` read as values, not options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # No styleforge option starts with a digit, so "-1", "-.5" and "-1,2" are values.
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> NoReturn:
        """Raise the one-line user error (the CLI prints it and exits 2)."""
        raise StyleforgeError(f"{message}; see '{self.prog} --help'")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's one true default in ``--help`` and keeps description
    paragraphs as written.

    ``(default: X)`` is appended only where it says something: not when the help text
    already explains the default (e.g. "default: per weights convention"), not for
    ``None`` (no value: the help says what happens then) and not for flags.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def add_command(subparsers: Any, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    """Add a subcommand parser with the shared formatter."""
    return subparsers.add_parser(name, help=help_text, description=description, formatter_class=HelpFormatter)


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """Add ``--device auto|cpu|cuda``."""
    parser.add_argument("--device", default=default, choices=DEVICE_CHOICES, help="auto = CUDA when available, else CPU")


def add_runtime_option(parser: argparse.ArgumentParser, default: str = "auto", style_models: bool = False) -> None:
    """Add ``--runtime``: for exported ``.onnx`` classifiers ``auto|onnxruntime|openvino``;
    with ``style_models``, transfer's choices, ``pytorch`` included."""
    from styleforge.config import RUNTIME_CHOICES, TRANSFER_RUNTIME_CHOICES

    if style_models:
        parser.add_argument("--runtime", default=default, choices=TRANSFER_RUNTIME_CHOICES,
                            help="auto = OpenVINO on the CPU when it pays off for the job (the model is converted once and "
                                 "cached), else PyTorch; .onnx files: OpenVINO for INT8 files, else ONNX Runtime "
                                 "(docs/runtimes.md)")
        return
    parser.add_argument("--runtime", default=default, choices=RUNTIME_CHOICES,
                        help=".onnx models only: auto = OpenVINO for INT8 files on the CPU when installed, else ONNX Runtime")


def add_power_difference_option(parser: argparse.ArgumentParser, where: str) -> None:
    """Add ``--power-difference`` (squared differences through the PowerDifference operator)."""
    parser.add_argument("--power-difference", action="store_true",
                        help=f"compute {where} with the PowerDifference operator (torch.ops.styleforge.power_difference; "
                             "same results; the course's section 4.4)")


#: What ``--precision auto`` means, for commands that only run networks and for those
#: that optimise through them (training, Gatys: fp16's range is too narrow for gradients
#: where bf16 is available).
PRECISION_HELP = {
    "inference": "auto = fp16 on CUDA, bf16 on CPUs with native bf16 (AMX/AVX512-BF16), else fp32",
    "optimisation": "auto = bf16 on CPUs with native bf16 and bf16-capable GPUs, fp16 on older GPUs, else fp32",
    "gatys": "default: bf16 with --optimizer adam where the CPU or GPU runs bf16 natively (measured within 1 %% of fp32's "
             "loss), else fp32; auto = bf16 on CPUs with native bf16 and bf16-capable GPUs, fp16 on older GPUs, else fp32",
    "transfer": "auto = fp16 on CUDA, bf16 on CPUs with native bf16 (AMX/AVX512-BF16), else fp32; int8 = the model "
                "quantised once (cached) and run by OpenVINO or ONNX Runtime, its PSNR against fp32 printed",
}


def add_precision_option(parser: argparse.ArgumentParser, default: str, kind: str) -> None:
    """Add ``--precision auto|fp32|bf16|fp16`` (and ``int8`` for ``transfer``); ``kind`` (a
    :data:`PRECISION_HELP` key) says what auto picks."""
    from styleforge.config import PRECISION_CHOICES, TRANSFER_PRECISION_CHOICES

    choices = TRANSFER_PRECISION_CHOICES if kind == "transfer" else PRECISION_CHOICES
    parser.add_argument("--precision", default=default, choices=("auto", *choices), help=PRECISION_HELP[kind])


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json`` (machine-readable output on stdout)."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def _number(text: str, kind: type, low: float = -math.inf, inclusive: bool = True) -> Any:
    """Parse ``text`` as ``kind`` (int or a finite float) not below ``low``; argparse
    turns the ArgumentTypeError into the one-line error naming the option."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    if value < low or (value == low and not inclusive):
        raise argparse.ArgumentTypeError(f"{value:g} must be {'>=' if inclusive else '>'} {low:g}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, 0)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, 1)


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan or inf)."""
    return _number(text, float)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (loss weights)."""
    return _number(text, float, 0.0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rates, scales)."""
    return _number(text, float, 0.0, inclusive=False)


def add_input_paths(parser: argparse.ArgumentParser, metavar: str, help_text: str, many: bool) -> None:
    """Add inputs as positional ``METAVAR`` arguments or, as the course's scripts take
    them, ``--in-path`` (repeatable when ``many``); :func:`input_paths` merges them."""
    parser.add_argument("inputs", nargs="*" if many else "?", metavar=metavar, help=help_text)
    parser.add_argument("--in-path", action="append", default=None, metavar="PATH",
                        help=f"the same as {metavar} (the course's name)" + ("; repeatable" if many else ""))


def input_paths(args: argparse.Namespace, metavar: str, many: bool) -> list[str]:
    """The inputs given by :func:`add_input_paths`; one-line errors when none (or, for a
    single input, more than one) were given."""
    given = ([] if args.inputs is None else [args.inputs] if isinstance(args.inputs, str) else list(args.inputs))
    given += args.in_path or []
    if not given:
        raise StyleforgeError(f"give {metavar} (or --in-path)")
    if not many and len(given) > 1:
        raise StyleforgeError(f"give one {metavar}, either as an argument or with --in-path, not {len(given)}")
    return given


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")



def parse_list(text: str | None, option: str, kind: type = str) -> tuple | None:
    """Parse a comma-separated option value (``conv1_1,conv2_1`` or ``0.7,0.3``).

    Parsed in the handler rather than by argparse so that a bad value is a one-line
    user error (exit 2) naming the option, like every other user error.
    """
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise StyleforgeError(f"{option} needs a comma-separated list, got {text!r}")
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        raise StyleforgeError(f"bad {option} {text!r}: expected comma-separated {kind.__name__} values") from None


def check_output_suffix(path: str) -> None:
    """Fail early (before long work) when an output image has an unknown suffix."""
    from pathlib import Path

    from styleforge.images.io import WRITE_FORMATS

    if Path(path).suffix.lower() not in WRITE_FORMATS:
        raise StyleforgeError(f"output '{path}' needs an image suffix: {', '.join(sorted(WRITE_FORMATS))}")
