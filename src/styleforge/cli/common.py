"""Argument helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from styleforge.config import DEVICE_CHOICES


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults in ``--help`` and keeps description paragraphs as written."""


def add_command(subparsers: Any, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    """Add a subcommand parser with the shared formatter."""
    return subparsers.add_parser(name, help=help_text, description=description, formatter_class=HelpFormatter)


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """Add ``--device auto|cpu|cuda``."""
    parser.add_argument("--device", default=default, choices=DEVICE_CHOICES, help="auto = CUDA when available, else CPU")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json`` (machine-readable output on stdout)."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")

