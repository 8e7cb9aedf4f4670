"""Processes the service tests and benchmarks start: ``styleforge serve`` / ``styleforge
worker`` on loopback (port 0, the bound port read from the server's first line) and
``redis-server`` on a free port with append-only persistence.

Output goes to a temporary file (a pipe could fill and block the process).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


class Server:
    """A ``styleforge`` subprocess (serve or worker) with its output in a temporary file."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "styleforge", *args], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, start_new_session=True)
        self.base = ""

    def output(self) -> str:
        # pread, not seek + read: the child shares this file's offset, and moving it
        # would make the child's next write land over earlier output.
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def wait_for_output(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"the process exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output()}")

    def wait_until_serving(self, timeout: float = 60) -> "Server":
        match = self.wait_for_output(r"styleforge serve: (http://[\d.]+:\d+)/", timeout)
        self.base = match.group(1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(f"{self.base}/healthz never answered:\n{self.output()}")

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` to the whole process group and wait; returns the exit status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def wait_for_job(server: Server, job_id: str, timeout: float = 180, states: tuple[str, ...] = ("done", "failed"),
                 also: Sequence[Server] = ()) -> dict:
    """Poll the job until it reaches one of ``states``; returns its last status. The
    generous timeout is for loaded machines (parallel test workers on two cores ran a
    job 4x slower than alone); a passing test never waits for it. A failure shows the
    output of ``server`` and of the processes in ``also`` (workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(server.url(f"/api/jobs/{job_id}"), timeout=10).json()
        if status.get("status") in states:
            return status
        time.sleep(0.05)
    outputs = "\n".join(f"--- {p.proc.args[3]} (pid {p.proc.pid}):\n{p.output()}" for p in (server, *also))
    raise AssertionError(f"job {job_id} still {status} after {timeout} s:\n{outputs}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """``redis-server`` on loopback with append-only persistence in its own folder."""

    def __init__(self, folder: Path, binary: str = "redis-server") -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--maxmemory-policy", "noeviction", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start:\n{(self.folder / 'redis.log').read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the append-only file and exits
            self.proc.wait(20)
