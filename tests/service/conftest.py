"""Real servers for the service tests: ``styleforge serve`` / ``styleforge worker`` as
subprocesses on loopback (port 0, the bound port read from the server's first line),
``redis-server`` on a free port, small synthetic style models and VGG19 weights.

Server output goes to a temporary file (a pipe could fill and block the server) and is
printed when a test fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import make_photo
from tests.synthetic import random_style_network

REQUIRE = os.environ.get("STYLEFORGE_REQUIRE_SERVICES") == "1"


def require_program(path: str) -> str:
    """``path`` of a program the tests need; skipped when absent (a failure under CI,
    which installs it)."""
    found = shutil.which(path)
    if found is None:
        if REQUIRE:
            pytest.fail(f"{path} is required (STYLEFORGE_REQUIRE_SERVICES=1) but not installed")
        pytest.skip(f"{path} is not installed (Debian package; .ci/run installs it)")
    return found


@pytest.fixture(scope="session")
def style_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two fast styles (random full-size networks with thumbnails) and one Gatys painting."""
    from styleforge.transfer import save_style_model

    folder = tmp_path_factory.mktemp("styles")
    painting = make_photo(folder / "starry.png", size=(40, 40), seed=7)
    save_style_model(random_style_network(0), folder / "wave.safetensors", {"name": "The Wave"}, Image.open(painting))
    save_style_model(random_style_network(1), folder / "candy.safetensors", {}, None)
    return folder


class Server:
    """A ``styleforge`` subprocess (serve or worker) with its output in a temporary file."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "styleforge", *args], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, start_new_session=True)
        self.base = ""

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

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


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[list[Server]]:
    """Servers a test starts; stopped at the end, their output printed if the test failed."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for server in started:
            print(f"---- {' '.join(server.proc.args[3:])}\n{server.output()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def serve(servers: list[Server], style_folder: Path, data: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """Start ``styleforge serve`` on a free loopback port and wait until it answers."""
    server = Server(["serve", "--port", "0", "--models", str(style_folder), "--data", str(data), *extra], env)
    servers.append(server)
    return server.wait_until_serving()


def wait_for_job(server: Server, job_id: str, timeout: float = 60, states: tuple[str, ...] = ("done", "failed")) -> dict:
    """Poll the job until it reaches one of ``states``; returns its last status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(server.url(f"/api/jobs/{job_id}"), timeout=10).json()
        if status.get("status") in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {status} after {timeout} s:\n{server.output()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """``redis-server`` on loopback with append-only persistence in its own folder."""

    def __init__(self, folder: Path) -> None:
        self.binary = require_program("redis-server")
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


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder).start()
    yield server
    server.stop()


def photo_bytes(tmp_path: Path, name: str = "photo.jpg", size: tuple[int, int] = (80, 60), seed: int = 3) -> bytes:
    """A small photo encoded as its suffix says."""
    return make_photo(tmp_path / name, size=size, seed=seed).read_bytes()
