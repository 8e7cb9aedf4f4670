"""Ctrl-C and SIGTERM: one way to stop, and never in the middle of a whole update.

* :func:`raise_on_sigterm` (installed by the CLI) makes SIGTERM raise :class:`Terminated`,
  a ``KeyboardInterrupt``, so a ``kill`` (a service manager, a batch scheduler, a
  container stop) takes the same path as Ctrl-C: temporary files removed, the best
  image or a checkpoint saved, and exit status 143 instead of 130.
* Python raises ``KeyboardInterrupt`` between any two bytecodes, so a Ctrl-C during a
  training step could leave some parameters updated and others not, with the step
  counter behind. :func:`deferred_interrupt` holds SIGINT and SIGTERM for the duration
  of such a block and raises right after, so what is saved afterwards is the state
  after a whole step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM once :func:`raise_on_sigterm` is installed; exit status 143."""

    exit_status = 128 + signal.SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def raise_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


#: The signals held by :func:`deferred_interrupt`, with the handler each must have for
#: holding it to be right (Python's own Ctrl-C handling, our SIGTERM handling).
_HELD = ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _raise_terminated))


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held; one received meanwhile raises
    ``KeyboardInterrupt`` (or :class:`Terminated`) when the block ends.

    Only the default Ctrl-C handling and :func:`raise_on_sigterm`'s are deferred: where
    a signal is ignored (SIGINT of a background job of a non-interactive shell,
    ``nohup``) or handled by the embedding application, and outside the main thread
    (where handlers cannot be set), it is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {}
    for signum, expected in _HELD:
        if signal.getsignal(signum) is expected:
            previous[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if signal.SIGTERM in received:
        raise Terminated()
    if received:
        raise KeyboardInterrupt
