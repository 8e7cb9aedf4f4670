"""Ctrl-C held until a block that must be whole has finished; signals that arrive where\nraising is unsafe (inside an import, inside ``__del__``) raised once it is safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from styleforge.utils.interrupts import deferred_interrupt


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


# --- the CLI's handlers (install_signal_handlers), each in its own process -------------

def _run(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the CLI's handlers installed first; returns the finished process."""
    prelude = "import os, signal, sys, time\nfrom styleforge.utils.interrupts import install_signal_handlers\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("handlers", ["installed", "plain"])
def test_sigterm_inside_pytorchs_cxx_import_waits_for_the_import(handlers: str) -> None:
    """torch._C._c10d_init imports Python modules from C++: an exception raised in one
    aborts the process (std::terminate, status 134). The signal is sent from the first
    Python call made from there; with the handlers installed it is raised after
    ``import torch`` has finished. "plain" is the handler without the deferral, showing
    the spot is a real one."""
    result = _run("""
        from styleforge.utils.interrupts import Terminated
        if sys.argv[1] == "installed":
            install_signal_handlers()
        else:
            signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(Terminated()))
        inside, sent = [], []

        def watch(frame, event, arg):
            if event in ("c_call", "c_return", "c_exception") and getattr(arg, "__qualname__", "") == "_c10d_init":
                inside.append(1) if event == "c_call" else inside.pop()
            elif event == "call" and inside and not sent:
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGTERM)

        sys.setprofile(watch)
        try:
            import torch
            sys.setprofile(None)
            time.sleep(30)
        except Terminated:
            print("sent", bool(sent), "complete", hasattr(torch, "nn"), "late", round(time.monotonic() - sent[0], 2))
            sys.exit(143)
        """, handlers)
    if handlers == "plain":
        assert result.returncode == -signal.SIGABRT and "terminate called" in result.stderr, result
        return
    assert result.returncode == 143, result
    words = result.stdout.split()
    assert words[:4] == ["sent", "True", "complete", "True"], result.stdout
    assert float(words[5]) < 10, result.stdout  # raised once the import ended, not after the sleep


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_inside_an_import_is_raised_once_the_module_is_complete(sig: signal.Signals, tmp_path: Path) -> None:
    (tmp_path / "slow_module.py").write_text(
        "import os, signal, sys\n"
        "os.kill(os.getpid(), int(sys.argv[1]))\n"
        "parts = [n for n in range(100_000)]  # plenty of bytecode boundaries after the signal\n"
        "complete = True\n"
    )
    result = _run("""
        sys.path.insert(0, ".")
        install_signal_handlers()
        try:
            import slow_module
            time.sleep(30)
        except KeyboardInterrupt as exc:
            print(type(exc).__name__, sys.modules["slow_module"].complete)
        """, str(int(sig)), cwd=tmp_path)
    assert result.returncode == 0, result
    assert result.stdout.split() == ["Terminated" if sig == signal.SIGTERM else "_Interrupted", "True"], result


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_python_drops_in_del_is_redelivered(sig: signal.Signals) -> None:
    """An exception raised in ``__del__`` is printed and dropped by Python; the command
    would run on. The handlers' own is redelivered and stops the run."""
    result = _run("""
        install_signal_handlers()

        class Sends:
            def __del__(self):
                os.kill(os.getpid(), int(sys.argv[1]))
                sum(range(100_000))

        try:
            Sends()
            time.sleep(30)
            print("ran on")
        except KeyboardInterrupt as exc:
            print(type(exc).__name__)
        """, str(int(sig)))
    assert result.returncode == 0, result
    assert result.stdout.split() == ["Terminated" if sig == signal.SIGTERM else "_Interrupted"], result
    assert "Exception ignored" not in result.stderr, result.stderr


def test_installing_leaves_an_ignored_sigint_ignored_and_keeps_holding() -> None:
    result = _run("""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        install_signal_handlers()
        print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
        from styleforge.utils.interrupts import Terminated, deferred_interrupt
        done = []
        try:
            with deferred_interrupt():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append(1)
        except Terminated:
            print("held", done == [1])
        """)
    assert result.stdout.split() == ["True", "held", "True"], result


def _run_cli_with_handler(handler: str, sig: signal.Signals) -> subprocess.CompletedProcess[str]:
    """Run the real CLI entry (``styleforge.launch.run``) with ``classify``'s handler
    replaced by ``handler``, the source of ``handler(args, signum)``; returns the
    finished process."""
    return _run(textwrap.dedent(handler) + textwrap.dedent("""
        import styleforge.cli.classify
        signum = int(sys.argv[1])
        styleforge.cli.classify.run = lambda args: handler(args, signum)
        sys.argv = ["styleforge", "classify", "photo.png"]
        from styleforge.launch import run
        run()
        """), str(int(sig)))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("library", ["replaces it with its own error", "swallows it and runs on"])
def test_a_stop_a_library_loses_still_ends_as_a_stop(library: str, sig: signal.Signals) -> None:
    """C code calling back into Python can turn the KeyboardInterrupt raised there into
    its own exception (seen: PyTorch's "could not determine the shape of object type",
    reported as a bad model file, exit 2), or drop it. The command still ends as stopped."""
    outcome = "raise StyleforgeError('cannot read model: could not determine the shape')" if library.startswith(
        "replaces") else "return 0"
    result = _run_cli_with_handler(f"""
        from styleforge.errors import StyleforgeError

        def handler(args, signum):
            try:
                os.kill(os.getpid(), signum)
                time.sleep(30)
            except KeyboardInterrupt:
                {outcome}
            print("ran on")
        """, sig)
    assert result.returncode == (143 if sig == signal.SIGTERM else 130), result
    assert result.stderr.splitlines() == ["styleforge: terminated" if sig == signal.SIGTERM else "styleforge: interrupted"]
    assert result.stdout == ""
