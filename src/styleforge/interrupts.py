"""Keeping Ctrl-C from landing in the middle of an update that must be whole.

Python raises ``KeyboardInterrupt`` between any two bytecodes, so a Ctrl-C during a
training step could leave some parameters updated and others not, with the step counter
behind. :func:`deferred_interrupt` holds SIGINT for the duration of such a block and
raises it right after, so what is saved afterwards is the state after a whole step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block with SIGINT held; a Ctrl-C received meanwhile raises
    ``KeyboardInterrupt`` when the block ends.

    Only Python's default SIGINT handling is deferred: where SIGINT is ignored (a
    background job of a non-interactive shell, ``nohup``) or handled by the embedding
    application, and outside the main thread (where handlers cannot be set), the block
    runs as it would without this."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
