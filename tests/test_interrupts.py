"""Ctrl-C held until a block that must be whole has finished."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from styleforge.interrupts import deferred_interrupt


def test_sigint_inside_the_block_is_raised_after_it() -> None:
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("rest of the block")
    assert finished == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_no_interrupt_and_handler_restored() -> None:
    with deferred_interrupt():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_the_block_just_runs() -> None:
    ran = []

    def body() -> None:
        with deferred_interrupt():
            ran.append(1)

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert ran == [1]


def test_an_ignored_or_custom_sigint_is_left_alone() -> None:
    seen = []
    for handler in (signal.SIG_IGN, lambda signum, frame: seen.append(signum)):
        previous = signal.signal(signal.SIGINT, handler)
        try:
            with deferred_interrupt():
                os.kill(os.getpid(), signal.SIGINT)
            assert signal.getsignal(signal.SIGINT) is handler
        finally:
            signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIGINT]
