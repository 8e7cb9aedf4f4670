"""Shared fixtures: an isolated weights cache, synthetic weight files, CLI runner."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.synthetic import SourceWeights, random_weights, write_matconvnet_mat, write_torchvision_pth
from tests.warm_cli import CliResult, run_styleforge


def threads_per_xdist_worker() -> int | None:
    """The CPU threads each pytest-xdist worker may use (the machine's cores split evenly
    among the workers, at least 1), or None when the tests run in one process.

    Without this, every worker (and every CLI subprocess it starts) would run one
    OpenMP/oneDNN thread per core, and workers together would oversubscribe the cores,
    where OpenMP's spin-waiting makes each of them far slower."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(workers))


def pytest_configure(config: pytest.Config) -> None:
    """Split the cores among pytest-xdist workers (see threads_per_xdist_worker).

    Compiled operator libraries are build artefacts, not cache state a test could see:
    every test (and every CLI subprocess) shares the user's ops cache, so the native
    libraries are built once, not once per test; ONNX Runtime headers fetched into the
    user's cache by scripts/fetch-onnxruntime-headers are found too."""
    from styleforge.utils.home import styleforge_home

    threads = threads_per_xdist_worker()
    if threads is not None:
        import torch

        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by CLI subprocesses
        torch.set_num_threads(threads)

    real_home = styleforge_home()
    os.environ.setdefault("STYLEFORGE_OPS_CACHE", str(real_home / "ops"))
    if "STYLEFORGE_ORT_INCLUDE" not in os.environ and (real_home / "onnxruntime-include" / "onnxruntime_cxx_api.h").is_file():
        os.environ["STYLEFORGE_ORT_INCLUDE"] = str(real_home / "onnxruntime-include")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty STYLEFORGE_HOME, so no test sees a real cache."""
    home = tmp_path_factory.mktemp("styleforge-home")
    monkeypatch.setenv("STYLEFORGE_HOME", str(home))
    monkeypatch.delenv("STYLEFORGE_MAX_PIXELS", raising=False)
    # No detached OpenVINO conversions after small transfers (tests/transfer/test_runtimes.py turns one on).
    monkeypatch.setenv("STYLEFORGE_BACKGROUND_CONVERSION", "0")
    return home


@pytest.fixture(scope="session")
def tiny_source() -> SourceWeights:
    return random_weights(seed=1)


@pytest.fixture(scope="session")
def weight_files(tmp_path_factory: pytest.TempPathFactory, tiny_source: SourceWeights) -> dict[str, Path]:
    """The same random weights as a torchvision .pth and a MatConvNet .mat."""
    folder = tmp_path_factory.mktemp("weights")
    return {
        "pth": write_torchvision_pth(tiny_source, folder / "tiny_vgg.pth"),
        "mat": write_matconvnet_mat(tiny_source, folder / "tiny_vgg.mat"),
    }


def make_photo(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """Write a smooth random colour image (a stand-in photo)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(path)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    return [make_photo(tmp_path / f"photo{i}.{ext}", seed=i) for i, ext in enumerate(("png", "jpg", "webp"))]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run ``python -m styleforge ARGS`` in a new process with the test's environment plus
    ``env`` (forked from the warm CLI server: see tests/warm_cli.py)."""
    return run_styleforge(list(args), env={**os.environ, **(env or {})}, timeout=timeout)


def assert_user_error(result: CliResult, *fragments: str) -> None:
    """A user error: exit 2, exactly one stderr line starting 'styleforge: error:', no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("styleforge: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ----------------------------------------------------------------------------- a download server


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, int | None]] = {}  # path -> (body, declared length)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body, declared = self.routes.get(self.path, (b"", None))
        if self.path not in self.routes:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)  # a short body with a larger Content-Length = dropped connection

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict]]:
    """A loopback HTTP server: ``(base URL, routes)``; set ``routes[path] = (body, declared
    Content-Length or None)``."""
    routes: dict[str, tuple[bytes, int | None]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    finally:
        httpd.shutdown()
        httpd.server_close()
