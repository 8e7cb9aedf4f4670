"""Large freed blocks are kept for reuse (styleforge.utils.memory): no page faults on the
second allocation of a feature-map-sized tensor, opt-outs respected, and the command
applies it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from styleforge import cli
from styleforge.utils.memory import ALLOCATOR_VARIABLE, reuse_freed_memory
from tests.conftest import assert_user_error, run_cli

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: Allocates, fills and frees a 64 MB tensor five times after 12 warm-up rounds; prints
#: whether reuse was applied and the minor page faults per round. (The heap settles
#: after a few rounds: posix_memalign's alignment slack keeps the first freed blocks
#: from fitting the next request exactly, so the heap first grows by a few blocks.)
SCRIPT = """
import resource, sys, torch
from styleforge.utils.memory import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def round_trip():
    block = torch.empty(16 * 2**20)
    block.fill_(1.0)
    del block
for _ in range(12):
    round_trip()
before = faults()
for _ in range(5):
    round_trip()
print(applied, (faults() - before) / 5)
"""


def _faults_per_round(mode: str) -> tuple[bool, float]:
    env = {k: v for k, v in os.environ.items() if k not in (ALLOCATOR_VARIABLE, "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    applied, faults = done.stdout.split()
    return applied == "True", float(faults)


def _huge_pages_always() -> bool:
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return setting.exists() and "[always]" in setting.read_text()


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_a_freed_large_block_is_reused_without_page_faults() -> None:
    applied, reused = _faults_per_round("reuse")
    assert applied and reused < 100  # 64 MB is 16,384 pages of 4 KB
    if not _huge_pages_always():  # with 2 MB pages the default faults only ~32 times too
        _, default = _faults_per_round("default")
        assert default > 10_000


def test_the_user_can_keep_the_system_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOCATOR_VARIABLE, "system")
    assert reuse_freed_memory() is False
    monkeypatch.delenv(ALLOCATOR_VARIABLE)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=1000")  # the user's own malloc settings win
    assert reuse_freed_memory() is False


def test_the_command_applies_it_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(cli, "reuse_freed_memory", lambda: calls.append("reuse") or True)
    monkeypatch.setattr(cli, "build_parser", lambda: calls.append("parse") or pytest.fail("stop here"))
    with pytest.raises(pytest.fail.Exception):
        cli.main(["--version"])
    assert calls == ["reuse", "parse"]


def test_an_unknown_allocator_choice_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("models", "list", env={ALLOCATOR_VARIABLE: "jemalloc", "STYLEFORGE_HOME": str(tmp_path)})
    assert_user_error(result, "STYLEFORGE_ALLOCATOR='jemalloc' is not one of reuse, system")
    assert not any(tmp_path.iterdir())  # nothing written
