"""Embedded mode: jobs queued (or running) when the server stops are done after the
next start, and the job store's own rules (order, attempts, sweep)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from styleforge.service.jobs.store import DONE, FAILED, QUEUED, RUNNING, JobStore, new_job_id
from tests.service.conftest import Server, photo_bytes, serve, wait_for_job


def test_jobs_survive_a_killed_server(servers: list[Server], style_folder: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    # One job at a time: two are left waiting. 400 iterations (several seconds): with 50 the
    # first job could finish before the three uploads on a loaded 2-core machine, and the
    # wait below for "running" never saw it.
    env = {"STYLEFORGE_VGG": str(weight_files["pth"]), "STYLEFORGE_GATYS_ITERATIONS": "400", "STYLEFORGE_GATYS_SIZE": "64",
           "STYLEFORGE_DEVICE": "cpu", "STYLEFORGE_WORKERS": "1"}
    first = serve(servers, style_folder, data, env=env)
    ids = [httpx.post(first.url("/api/jobs"), files={"file": ("p.png", photo_bytes(tmp_path))},
                      data={"style": style}).json()["id"] for style in ("starry", "wave", "candy")]
    deadline = time.monotonic() + 30
    while (status := httpx.get(first.url(f"/api/jobs/{ids[0]}")).json()["status"]) != "running":
        assert status == "queued", f"the first job was {status} before it was seen running"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.stop(signal.SIGKILL)  # no clean shutdown: the Gatys job is mid-run, two wait behind it
    store = JobStore(data)
    assert [store.get(i).status for i in ids] == [RUNNING, QUEUED, QUEUED]

    second = serve(servers, style_folder, data, env=env)
    assert "picked up 1 job(s) interrupted by the last stop" in second.output()
    for job_id in ids:
        assert wait_for_job(second, job_id)["status"] == "done"
    assert store.get(ids[0]).attempts == 2 and store.get(ids[1]).attempts == 1


def _queue(store: JobStore, style: str = "wave") -> str:
    job_id = new_job_id()
    store.folder(job_id).mkdir(parents=True)
    store.create(job_id, style, "fast", "a.png", "upload.png", None, None)
    return job_id


def test_store_claims_oldest_first_and_counts_attempts(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    a, b = _queue(store), _queue(store)
    assert store.position(store.get(b)) == 2
    claimed = store.claim_next("w1")
    assert (claimed.id, claimed.status, claimed.attempts, claimed.worker) == (a, RUNNING, 1, "w1")
    assert store.position(store.get(b)) == 1 and store.position(claimed) is None
    assert store.claim(a, "w2").attempts == 2  # a redelivery of a running job
    assert store.finish(a, "result.png") and store.get(a).status == DONE
    assert store.claim(a, "w3") is None  # finished: never run again
    assert not store.fail(a, "late") and store.get(a).status == DONE
    assert store.counts() == {QUEUED: 1, RUNNING: 0, DONE: 1, FAILED: 0}


def test_requeue_after_a_stop_is_bounded(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job_id = _queue(store)
    for attempt in range(1, 4):
        store.claim_next("w")
        requeued, failed = store.requeue_interrupted(max_attempts=3)
        assert (requeued, failed) == ((1, 0) if attempt < 3 else (0, 1))
    job = store.get(job_id)
    assert job.status == FAILED and "stopped during this job 3 times" in job.error


def test_deleted_running_job_cannot_finish(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job_id = _queue(store)
    store.claim_next("w")
    assert store.delete(job_id) and not store.folder(job_id).exists()
    assert not store.finish(job_id, "result.png") and store.get(job_id) is None


def test_sweep_removes_expired_jobs_and_orphan_folders(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    old, fresh, waiting = _queue(store), _queue(store), _queue(store)
    for job_id in (old, fresh):
        store.claim(job_id, "w")
        store.finish(job_id, "result.png")
    orphan = store.files / "orphan"
    orphan.mkdir()
    time.sleep(0.05)
    cutoff = time.time()
    time.sleep(0.05)
    store.fail(fresh, "x")  # no-op: already done; finished stays before the cutoff
    assert store.sweep(older_than=cutoff) == 2
    assert store.get(old) is None and store.get(fresh) is None and store.get(waiting) is not None
    assert not orphan.exists() and store.folder(waiting).exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_heartbeat_lists_recent_workers(tmp_path: Path, workers: int) -> None:
    store = JobStore(tmp_path)
    for index in range(workers):
        store.heartbeat(f"w{index}")
    assert store.workers_seen(within=5) == [f"w{i}" for i in range(workers)]
    assert store.workers_seen(within=-1) == []


def test_a_gatys_job_over_the_time_limit_fails_and_frees_its_worker(servers: list[Server], style_folder: Path,
                                                                    weight_files: dict[str, Path], tmp_path: Path) -> None:
    """Embedded mode keeps ``job_timeout`` too (its threads cannot be killed): the job stops
    at its next step, fails saying why, and the worker goes on to the next job."""
    env = {"STYLEFORGE_VGG": str(weight_files["pth"]), "STYLEFORGE_GATYS_ITERATIONS": "100000", "STYLEFORGE_GATYS_SIZE": "32",
           "STYLEFORGE_DEVICE": "cpu", "STYLEFORGE_WORKERS": "1", "STYLEFORGE_JOB_TIMEOUT": "3"}
    server = serve(servers, style_folder, tmp_path / "data", env=env)
    ids = [httpx.post(server.url("/api/jobs"), files={"file": ("p.png", photo_bytes(tmp_path))},
                      data={"style": style}).json()["id"] for style in ("starry", "wave")]
    started = time.monotonic()
    failed = wait_for_job(server, ids[0])
    assert failed["status"] == "failed", failed
    assert "longer than the 3 s limit (job_timeout)" in failed["error"], failed
    assert time.monotonic() - started < 60  # 100000 L-BFGS steps would take hours
    assert wait_for_job(server, ids[1])["status"] == "done"
