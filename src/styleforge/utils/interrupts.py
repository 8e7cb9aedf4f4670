"""Ctrl-C and SIGTERM: one way to stop, never in the middle of a whole update, never lost.

* :func:`install_signal_handlers` (called by the CLI) makes SIGTERM raise
  :class:`Terminated`, a ``KeyboardInterrupt``, so a ``kill`` (a service manager, a
  batch scheduler, a container stop) takes the same path as Ctrl-C: temporary files
  removed, the best image or a checkpoint saved, and exit status 143 instead of 130.
* Python raises ``KeyboardInterrupt`` between any two bytecodes, so a Ctrl-C during a
  training step could leave some parameters updated and others not, with the step
  counter behind. :func:`deferred_interrupt` holds SIGINT and SIGTERM for the duration
  of such a block and raises right after, so what is saved afterwards is the state
  after a whole step.
* Two places where raising is never safe are handled by the installed handlers:

  - **Inside an import.** PyTorch's C++ extension imports Python modules from C++
    (pybind11); an exception raised there can end in ``std::terminate`` (the process
    aborts with a core dump, status 134), and one raised in importlib's module-lock
    callback is printed as "Exception ignored" and lost, so the command runs on. A
    signal that arrives while any import is running is redelivered every
    :data:`REDELIVER_AFTER` seconds until no import is, then raised.
  - **Inside ``__del__`` or a weakref callback.** Python prints such an exception and
    drops it. The handlers' exceptions that end there are redelivered the same way.

  Elsewhere, C code calling back into Python can still turn the ``KeyboardInterrupt``
  into an error of its own; :func:`stop_requested` tells the CLI that a stop arrived,
  so the command ends as stopped whatever surfaced.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

#: Seconds between retries of a signal that arrived where raising is unsafe.
REDELIVER_AFTER = 0.02

#: The stop signals received since :func:`install_signal_handlers` (by its handlers or
#: held by :func:`deferred_interrupt`), in order: see :func:`stop_requested`.
_received: list[int] = []

#: Source names of importlib's own frames: while one is on the stack, an import runs.
_IMPORT_MACHINERY = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM once :func:`install_signal_handlers` has run; exit status 143."""

    exit_status = 128 + signal.SIGTERM


class _Interrupted(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` of the installed SIGINT handler (told apart from others
    only so that a dropped one can be redelivered)."""


def _importing(frame: FrameType | None) -> bool:
    """Whether an import is running anywhere on the stack that ends in ``frame``."""
    while frame is not None:
        if frame.f_code.co_filename in _IMPORT_MACHINERY:
            return True
        frame = frame.f_back
    return False


def _redeliver_later(signum: int) -> None:
    """Send ``signum`` to the main thread again after :data:`REDELIVER_AFTER` seconds.

    A real signal (not ``_thread.interrupt_main``), so that a main thread blocked in a
    system call by then (a sleep, a socket read) is woken, as by the first one. The
    sender is a bare ``_thread`` thread: ``threading.Thread.start`` takes a lock that the
    main thread may hold where the handler runs (a ``__del__`` during a thread start),
    and a command that ends meanwhile is not held up by it."""
    main = threading.main_thread().ident

    def resend() -> None:
        time.sleep(REDELIVER_AFTER)
        signal.pthread_kill(main, signum)

    _thread.start_new_thread(resend, ())


def _raising(exception: type[KeyboardInterrupt]) -> Callable[[int, FrameType | None], None]:
    """A signal handler that raises ``exception``, or redelivers the signal later when
    it arrived inside an import."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum not in _received:
            _received.append(signum)
        if _importing(frame):
            _redeliver_later(signum)
            return
        raise exception()

    return handler


_raise_interrupted = _raising(_Interrupted)
_raise_terminated = _raising(Terminated)


def _redeliver_dropped(previous: Callable[[object], None]) -> Callable[[object], None]:
    """A ``sys.unraisablehook`` that redelivers the signal behind an exception of the
    installed handlers which Python dropped (raised in ``__del__`` or a callback), then
    reports it as ``previous`` does."""

    def hook(unraisable: object) -> None:
        exc = getattr(unraisable, "exc_value", None)
        if isinstance(exc, (Terminated, _Interrupted)):
            _redeliver_later(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
            return
        previous(unraisable)

    return hook


def install_signal_handlers() -> None:
    """Make SIGTERM raise :class:`Terminated` and SIGINT ``KeyboardInterrupt``, both
    deferred while an import runs and redelivered when Python drops them.

    A no-op outside the main thread and where they are installed already. SIGINT is
    left alone where it is ignored (the background job of a non-interactive shell,
    ``nohup``) or already handled by the embedding application. Meant for the CLI,
    which owns its process; the library never installs handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not _raise_terminated:
        forget_stops()
        signal.signal(signal.SIGTERM, _raise_terminated)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_interrupted)
    if not getattr(sys.unraisablehook, "_styleforge", False):
        sys.unraisablehook = _redeliver_dropped(sys.unraisablehook)
        sys.unraisablehook._styleforge = True  # type: ignore[attr-defined]


def absorb_further_stops() -> None:
    """Once a stop is reported and its exit status chosen, ignore further SIGINT and
    SIGTERM: a second Ctrl-C landing while the interpreter shuts down would otherwise
    raise there, or, once CPython's finalisation has restored the default dispositions,
    end the process by the signal instead of with 130/143 (``SIG_IGN`` is the one
    disposition finalisation keeps). For the console script, which exits next; a no-op
    outside the main thread."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def quiet_worker_stops(worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn`` (``worker_id`` unused): a stop sent to the whole
    process group (Ctrl-C at a terminal, a service manager's SIGTERM) ends the worker the
    way PyTorch's worker loop ends on Ctrl-C, quietly and with multiprocessing's clean-up
    run (its ``pymp-*`` temporary folder), while the main process saves and reports.

    Without it a worker dies by the signal (PyTorch's own worker handler re-raises one
    not sent by the parent): the main process then gets "DataLoader worker ... killed by
    signal" in the middle of its own stop, and the folders stay behind."""
    signal.signal(signal.SIGTERM, _end_worker)
    signal.signal(signal.SIGINT, _end_worker)


def _end_worker(signum: int, frame: FrameType | None) -> None:
    # After the first stop a second Ctrl-C is the main process's business (ignored here);
    # SIGTERM goes back to its default, so the parent's terminate() still ends a worker
    # that does not finish winding down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt


def forget_stops() -> None:
    """Clear the record behind :func:`stop_requested` (once a stop has been reported)."""
    _received.clear()


def stop_requested() -> int | None:
    """The stop signal received since :func:`install_signal_handlers` ran (SIGTERM if
    both were), or None.

    The ``KeyboardInterrupt`` a handler raises can be lost on its way: C code that
    calls back into Python may replace it with an error of its own, or drop it. The CLI
    asks this before it reports an error or success, so a stop always ends as one."""
    if signal.SIGTERM in _received:
        return signal.SIGTERM
    return _received[0] if _received else None


#: The handlers :func:`deferred_interrupt` may hold, per signal: where another one is
#: installed (the signal is ignored, or an embedding application handles it), holding
#: the signal would change what it does.
_HOLDABLE = {
    signal.SIGINT: (signal.default_int_handler, _raise_interrupted),
    signal.SIGTERM: (_raise_terminated,),
}


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held; one received meanwhile raises
    ``KeyboardInterrupt`` (or :class:`Terminated`) when the block ends.

    Only the default Ctrl-C handling and :func:`install_signal_handlers`'s are deferred:
    where a signal is ignored (SIGINT of a background job of a non-interactive shell,
    ``nohup``) or handled by the embedding application, and outside the main thread
    (where handlers cannot be set), it is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if previous[signum] in (_raise_interrupted, _raise_terminated) and signum not in _received:
            _received.append(signum)

    previous = {}
    for signum, holdable in _HOLDABLE.items():
        if signal.getsignal(signum) in holdable:
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
