"""The ``styleforge`` command: a thin argparse layer over the Python API.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``handler`` to a function taking the parsed arguments and returning
an exit status. Heavy imports happen inside the handlers, so ``--help`` is instant.

User errors (:class:`~styleforge.errors.StyleforgeError`) print one line,
``styleforge: error: <message>``, and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from styleforge import __version__
from styleforge.cli import classify as classify_cmd
from styleforge.cli import johnson as johnson_cmd
from styleforge.cli import stylize as stylize_cmd
from styleforge.cli import weights as weights_cmd
from styleforge.errors import StyleforgeError

COMMANDS = (weights_cmd, classify_cmd, stylize_cmd, johnson_cmd)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="styleforge",
        description="Neural style transfer and the VGG19 network behind it.",
    )
    parser.add_argument("--version", action="version", version=f"styleforge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except StyleforgeError as exc:
        print(f"styleforge: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("styleforge: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
