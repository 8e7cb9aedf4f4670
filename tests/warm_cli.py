"""Run ``python -m styleforge`` in a fresh process without paying ``import torch`` each time.

``import torch`` takes 2-2.5 s on the CI machine (more with both test workers busy), and
the suite starts the CLI about 200 times. A
*warm CLI server*, one per pytest process, imports PyTorch, NumPy and Pillow once and then
forks a child for each command. The child is a process of its own, as with
``subprocess.run``: its own working folder, environment, standard streams, file-size limit
and exit status; it runs the command exactly as ``python -m styleforge`` does
(``runpy.run_module("styleforge", run_name="__main__")``, so the real entry point, signal
handlers first), and exits through the interpreter's normal shutdown (``atexit``, stream
flush, an uncaught exception's traceback and status). Only the three third-party imports
are shared: styleforge itself is imported afresh in every child. On the 2-core CI machine
this took 217 s off the suite's 1607 s of test time (14.0 to 12.3 minutes).

What a warm child cannot show is how long a command takes to start or what it imports;
the tests of those (``tests/test_bad_inputs.py``'s instant refusals, ``tests/test_signals.py``,
``tests/test_interrupts.py``) start a real interpreter. ``STYLEFORGE_TEST_COLD_CLI=1``
makes :func:`run_styleforge` start a real interpreter every time, to check the whole suite
without the server.

Run as a script, this file is the server: it reads one JSON request per line on stdin
and answers each with one JSON line on stdout once the child has exited.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

#: Imported once by the server; nothing of styleforge's, so each child imports it afresh.
PRELOADED = ("torch", "numpy", "PIL.Image")

COLD_VARIABLE = "STYLEFORGE_TEST_COLD_CLI"


@dataclass
class CliResult:
    """What a finished command left: its exit status (negative: killed by that signal),
    standard output and standard error."""

    returncode: int
    stdout: str
    stderr: str


# ----------------------------------------------------------------------------- client side


class WarmCliServer:
    """The client end of one server process (started on first use, restarted if it died)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                cwd=tempfile.gettempdir(), env=dict(os.environ),
            )
        return self._proc

    def run(self, request: dict, timeout: float) -> dict:
        """Send one request; return the server's answer (``returncode``, ``timed_out``).

        Raises RuntimeError when the server dies or stops answering (it is then restarted
        by the next call)."""
        with self._lock:
            proc = self._started()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], timeout + 60)
            line = proc.stdout.readline() if ready else b""
            if not line:
                self.close()
                raise RuntimeError(f"the warm CLI server gave no answer to {request['argv']}")
            return json.loads(line)

    def close(self) -> None:
        """Stop the server (its children have all exited by then)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


_server = WarmCliServer()
atexit.register(_server.close)


def run_styleforge(argv: list[str], *, cwd: str | Path | None = None, env: dict[str, str] | None = None,
                   timeout: float = 300, stdout_path: str | None = None, file_size_limit: int | None = None,
                   python_flags: tuple[str, ...] = ()) -> CliResult:
    """Run ``python -m styleforge ARGV`` in a new process and wait for it.

    ``env`` is the child's whole environment (default: this process's); ``stdout_path``
    sends standard output to that file instead of capturing it (``/dev/full`` to test a
    full disk); ``file_size_limit`` sets RLIMIT_FSIZE, with SIGXFSZ ignored so that a
    write past it fails with EFBIG. ``python_flags`` (``-X importtime``...) need a real
    interpreter start, so they make the run a cold one. Raises
    ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the child is killed)."""
    env = dict(os.environ if env is None else env)
    cwd = str(cwd or os.getcwd())
    if python_flags or os.environ.get(COLD_VARIABLE) == "1" or not hasattr(os, "pidfd_open"):
        return _run_cold([*python_flags, "-m", "styleforge", *argv], cwd, env, timeout, stdout_path, file_size_limit)
    with tempfile.TemporaryDirectory(prefix="styleforge-cli-") as streams:
        out = stdout_path or os.path.join(streams, "stdout")
        err = os.path.join(streams, "stderr")
        answer = _server.run({"argv": argv, "cwd": cwd, "env": env, "stdout": out, "stderr": err,
                              "file_size_limit": file_size_limit, "timeout": timeout}, timeout)
        if answer["timed_out"]:
            raise subprocess.TimeoutExpired([sys.executable, "-m", "styleforge", *argv], timeout)
        return CliResult(answer["returncode"], "" if stdout_path else _read_text(out), _read_text(err))


def _read_text(path: str) -> str:
    """A captured stream as ``subprocess.run(text=True)`` decodes it (locale encoding,
    universal newlines)."""
    with open(path, encoding=None, newline=None) as stream:
        return stream.read()


def _run_cold(python_args: list[str], cwd: str, env: dict[str, str], timeout: float, stdout_path: str | None,
              file_size_limit: int | None) -> CliResult:
    """:func:`run_styleforge` with a real interpreter start: ``python PYTHON_ARGS``."""
    stdout = open(stdout_path, "w") if stdout_path else None  # noqa: SIM115
    try:
        proc = subprocess.run(
            [sys.executable, *python_args], check=False, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
            preexec_fn=(lambda: limit_file_size(file_size_limit)) if file_size_limit else None,
        )
    finally:
        if stdout:
            stdout.close()
    return CliResult(proc.returncode, proc.stdout or "", proc.stderr)


def limit_file_size(limit: int) -> None:
    """Make writes past ``limit`` bytes fail with EFBIG (instead of killing by SIGXFSZ)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


# ----------------------------------------------------------------------------- server side


def serve() -> dict:
    """Answer requests until stdin closes (then exit); in each forked child, return its
    request instead."""
    requests = os.fdopen(os.dup(0), "rb")  # the client sends the next request only after the answer
    answers = os.dup(1)
    while line := requests.readline():
        request = json.loads(line)
        child = os.fork()
        if child == 0:
            requests.close()
            os.close(answers)
            return request
        os.write(answers, json.dumps(_wait(child, request["timeout"])).encode() + b"\n")
    sys.exit(0)


def _wait(pid: int, timeout: float) -> dict:
    """Wait for child ``pid``, killing it after ``timeout`` seconds."""
    exited = os.pidfd_open(pid)
    try:
        timed_out = not select.select([exited], [], [], timeout)[0]
    finally:
        os.close(exited)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return {"returncode": os.waitstatus_to_exitcode(status), "timed_out": timed_out}


def become_command(request: dict) -> None:
    """Turn this forked child into ``python -m styleforge ARGV`` run as ``request`` says."""
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    # sys.stdin/stdout/stderr write through fds 0-2 and hold nothing yet (the server
    # talks through duplicates of its pipes), so they now read and write the new files.
    sys.argv = [sys.argv[0], *request["argv"]]  # runpy replaces argv[0] with the module's path
    os.chdir(request["cwd"])
    sys.path[0] = os.getcwd()  # as `python -m` puts the working folder first
    os.environ.clear()
    os.environ.update(request["env"])
    if request["file_size_limit"]:
        limit_file_size(request["file_size_limit"])


def _without_server_frames(hook, server_file: str):
    """``hook`` shown the traceback a fresh ``python -m`` would show (the frames of
    ``server_file``, the child's way into runpy, left out)."""

    def report(kind, value, traceback):
        while traceback is not None and traceback.tb_frame.f_code.co_filename == server_file:
            traceback = traceback.tb_next
        hook(kind, value.with_traceback(traceback), traceback)  # the hook prints value's own

    return report


def _clear_main_namespace() -> None:
    """Empty ``__main__`` (this file, run as the server) as a fresh interpreter's is:
    ``python -m`` runs the module in that namespace."""
    namespace = vars(sys.modules["__main__"])
    builtins = namespace["__builtins__"]
    namespace.clear()
    namespace["__builtins__"] = builtins


def main() -> None:
    """Preload, serve, and in each child run the command."""
    import importlib

    for module in PRELOADED:
        importlib.import_module(module)
    request = serve()
    become_command(request)
    import runpy

    run_as_main = runpy._run_module_as_main  # what `python -m styleforge` runs
    sys.excepthook = _without_server_frames(sys.excepthook, __file__)
    _clear_main_namespace()
    run_as_main("styleforge")


if __name__ == "__main__":
    main()
