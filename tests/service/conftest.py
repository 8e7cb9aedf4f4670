"""Real servers for the service tests (:mod:`tests.service.processes`: ``styleforge
serve`` / ``worker`` subprocesses on loopback, ``redis-server``) and small synthetic
style models. Each server's output is printed when its test fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import make_photo
from tests.service.processes import RedisServer, Server, free_port, wait_for_job  # noqa: F401 (re-exported to the tests)
from tests.setup_hints import install_hint
from tests.synthetic import random_style_network

REQUIRE = os.environ.get("STYLEFORGE_REQUIRE_SERVICES") == "1"


def require_program(path: str) -> str:
    """``path`` of a program the tests need; skipped when absent (a failure under CI,
    which installs it)."""
    found = shutil.which(path)
    if found is None:
        if REQUIRE:
            pytest.fail(f"{path} is required (STYLEFORGE_REQUIRE_SERVICES=1) but not installed")
        pytest.skip(f"{path} is not installed: {install_hint(path)}")
    return found


@pytest.fixture(scope="session")
def style_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two fast styles (random full-size networks with thumbnails) and one Gatys painting."""
    from styleforge.models.files import save_style_model

    folder = tmp_path_factory.mktemp("styles")
    painting = make_photo(folder / "starry.png", size=(40, 40), seed=7)
    save_style_model(random_style_network(0), folder / "wave.safetensors", {"name": "The Wave"}, Image.open(painting))
    save_style_model(random_style_network(1), folder / "candy.safetensors", {}, None)
    return folder


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


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder, require_program("redis-server")).start()
    yield server
    server.stop()


def photo_bytes(tmp_path: Path, name: str = "photo.jpg", size: tuple[int, int] = (80, 60), seed: int = 3) -> bytes:
    """A small photo encoded as its suffix says."""
    return make_photo(tmp_path / name, size=size, seed=seed).read_bytes()
