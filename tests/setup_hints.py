"""What installs each system-level thing the tests need, for the skips that name it.

``scripts/test`` installs all of these itself (as root, with Debian's packages reachable);
these hints are for a run without it: plain pytest, or a machine without root."""

from __future__ import annotations

#: Debian package of each program the tests start or build with.
DEBIAN_PACKAGES = {"redis-server": "redis-server", "/usr/bin/chromium": "chromium", "c++": "g++"}

#: The command that fetches ONNX Runtime's C++ headers into the styleforge cache, where
#: the tests (and styleforge) look by themselves.
ORT_HEADERS_COMMAND = "scripts/fetch-onnxruntime-headers"


def install_hint(program: str) -> str:
    """How to get ``program`` (a key of :data:`DEBIAN_PACKAGES`): the apt command, and
    that ``scripts/test`` runs it."""
    return f"install it with 'apt-get install {DEBIAN_PACKAGES[program]}' as root, or run scripts/test, which does"


def ort_headers_hint() -> str:
    """How to get ONNX Runtime's C++ headers for the native custom-op tests."""
    return (f"run '{ORT_HEADERS_COMMAND}' (or 'apt-get install libonnxruntime-dev' on Debian 13), "
            "or run scripts/test, which does")
