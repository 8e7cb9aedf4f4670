"""The ``styleforge`` command: a thin argparse layer over the Python API.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``handler`` to a function taking the parsed arguments and returning
an exit status. Heavy imports happen inside the handlers, so ``--help`` is instant.

Exit status: 0 done; 1 done in part (``transfer`` skipped unreadable inputs and wrote
the rest, ``check-data`` found unreadable files); 2 a user error, including argument
errors (:class:`~styleforge.errors.StyleforgeError`: one line,
``styleforge: error: <message>``, never a traceback, nothing half-written left); 130
Ctrl-C; 143 SIGTERM (handled like Ctrl-C: cleanup, best result or checkpoint saved).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Sequence

from styleforge import __version__
from styleforge.cli import adain as adain_cmd
from styleforge.cli import classify as classify_cmd
from styleforge.cli import deploy as deploy_cmd
from styleforge.cli import graph as graph_cmd
from styleforge.cli import johnson as johnson_cmd
from styleforge.cli import models as models_cmd
from styleforge.cli import service as service_cmd
from styleforge.cli import stylize as stylize_cmd
from styleforge.cli import weights as weights_cmd
from styleforge.cli.common import ArgumentParser
from styleforge.errors import StyleforgeError
from styleforge.utils.fs import os_reason
from styleforge.utils.interrupts import (
    Terminated,
    absorb_further_stops,
    forget_stops,
    install_signal_handlers,
    stop_requested,
)
from styleforge.utils.memory import reuse_freed_memory

COMMANDS = (weights_cmd, classify_cmd, stylize_cmd, johnson_cmd, adain_cmd, deploy_cmd, graph_cmd, service_cmd, models_cmd)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = ArgumentParser(
        prog="styleforge",
        description="Neural style transfer and the VGG19 network behind it.",
    )
    parser.add_argument("--version", action="version", version=f"styleforge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (see :mod:`styleforge.cli`)."""
    install_signal_handlers()
    try:
        return _run_command(argv)
    finally:
        forget_stops()  # reported: a later main() in this process starts afresh


def _run_command(argv: Sequence[str] | None) -> int:
    """Parse ``argv``, run its handler and turn every outcome into an exit status."""
    try:
        reuse_freed_memory()  # page faults were a quarter of CPU inference time (styleforge.utils.memory)
        args = build_parser().parse_args(argv)
        status = int(args.handler(args) or 0)
    except KeyboardInterrupt as exc:
        return _stopped(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    except Exception as exc:
        signum = stop_requested()
        if signum is not None:
            # The stop surfaced as another error: C code calling back into Python
            # (PyTorch building a tensor, a decoder) may replace the KeyboardInterrupt
            # raised there with its own exception.
            return _stopped(signum)
        failed = _error_status(exc)
        if failed is None:
            raise
        return failed
    signum = stop_requested()
    if signum is not None:  # the stop was swallowed by a library and the command ran on: it still ends as a stop
        return _stopped(signum)
    return _flush_stdout(status)


def _stopped(signum: int) -> int:
    """Report a stop by SIGINT (130) or SIGTERM (143) and return its status."""
    terminated = signum == signal.SIGTERM
    print(f"styleforge: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
    return Terminated.exit_status if terminated else 130


def _error_status(exc: Exception) -> int | None:
    """Report an expected failure in one line and return its status; None for a bug
    (which keeps its traceback)."""
    if isinstance(exc, StyleforgeError):
        return _fail(str(exc), exc.exit_status)
    if isinstance(exc, BrokenPipeError):  # the reader went away (| head): stop quietly, as shell tools do
        _detach_stdout()
        return 128 + 13
    if isinstance(exc, OSError):
        # An environment problem outside the paths a command checks (a full or closed
        # stdout, a file vanishing mid-run): one line naming what failed.
        if exc.filename:
            return _fail(f"cannot access '{exc.filename}': {os_reason(exc)}", 2)
        # Every file styleforge writes reports its own path; what is left is stdout.
        output_errors = (errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EBADF, errno.EPIPE)
        return _fail(f"{'cannot write standard output' if exc.errno in output_errors else 'system error'}: {os_reason(exc)}", 2)
    if isinstance(exc, MemoryError):
        return _fail("out of memory: use a smaller --size or --batch-size (or a machine with more memory)", 2)
    return None


def _flush_stdout(status: int) -> int:
    """Flush stdout, so a full one is reported here and not at interpreter exit; returns
    ``status``, or the status of that failure."""
    if sys.stdout is None:  # started with stdout closed: there is nothing to flush
        return status
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _detach_stdout()
        return 128 + 13
    except (OSError, ValueError) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else "it is closed"
        return _fail(f"cannot write standard output: {reason}", 2)
    return status


def _fail(message: str, status: int) -> int:
    """Print the one-line error and return ``status``."""
    print(f"styleforge: error: {message}", file=sys.stderr)
    if _stdout_failed():
        _detach_stdout()
    return status


def _stdout_failed() -> bool:
    if sys.stdout is None:
        return False
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        return True
    return False


def _detach_stdout() -> None:
    """Point stdout at /dev/null so Python's exit-time flush cannot fail a second time."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run() -> None:
    """Console-script entry point: exits with :func:`main`'s status, a stop's unchanged by
    a second signal during the exit."""
    status = main()
    if status in (130, Terminated.exit_status):
        absorb_further_stops()
    sys.exit(status)
