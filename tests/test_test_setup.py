"""The test suite's own set-up: parallel workers share the cores instead of oversubscribing them."""

from __future__ import annotations

import os

import pytest
import torch

from tests.conftest import threads_per_xdist_worker


def test_workers_split_the_cores_and_a_single_process_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "1")
    cores = threads_per_xdist_worker()
    assert cores is not None and cores == len(os.sched_getaffinity(0))
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert threads_per_xdist_worker() == max(1, cores // 2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(4 * cores))
    assert threads_per_xdist_worker() == 1
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    assert threads_per_xdist_worker() is None


def test_this_worker_runs_its_share_of_threads() -> None:
    share = threads_per_xdist_worker()
    if share is None:
        pytest.skip("not under pytest-xdist")
    assert torch.get_num_threads() == share and os.environ["OMP_NUM_THREADS"] == str(share)
