"""The embedded mode's worker pool: threads in the server process that take queued jobs
from the SQLite store and run them, oldest first.

Nothing else to install or start. Jobs survive a restart because the queue *is* the
store: at start-up, jobs the previous process left ``running`` go back to the queue
(or fail after ``max_attempts`` starts), and every queued job is then taken in order.
PyTorch releases the GIL inside its kernels, so threads suffice; each job already uses
every core, so one worker is the default and ``N`` workers split the cores between them.
"""

from __future__ import annotations

import logging
import os
import threading

from styleforge.service.jobs.runner import JobRunner, set_job_threads
from styleforge.service.jobs.store import JobStore

log = logging.getLogger("styleforge.service")


class EmbeddedPool:
    """``workers`` threads running jobs of ``store`` through ``runner``."""

    mode = "embedded"

    def __init__(self, store: JobStore, runner: JobRunner, workers: int, max_attempts: int, threads: int | None = None) -> None:
        self.store = store
        self.runner = runner
        self.workers = workers
        self.threads = threads
        self.max_attempts = max_attempts
        self._wake = threading.Event()  # set when a job is queued
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.name = f"embedded-{os.getpid()}"

    def start(self) -> None:
        """Requeue interrupted jobs, size PyTorch's threads to the pool, start the threads."""
        requeued, failed = self.store.requeue_interrupted(self.max_attempts)
        if requeued or failed:
            log.info("picked up %d job(s) interrupted by the last stop (%d failed after %d attempts)",
                     requeued, failed, self.max_attempts)
        set_job_threads(self.threads, self.workers)
        for index in range(self.workers):
            thread = threading.Thread(target=self._loop, args=(f"{self.name}/{index}",), name=f"styleforge-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job_id: str) -> None:
        """Wake a worker: a job was queued (the job is already in the store)."""
        self._wake.set()

    def stop(self, timeout: float = 0.5) -> None:
        """Ask the threads to stop after their current job. A job still running when the
        process exits stays ``running`` in the store and is requeued at the next start."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, worker: str) -> None:
        while not self._stopping.is_set():
            self.store.heartbeat(self.name)
            # Cleared before looking, so a job queued after the look sets it again and
            # the wait below returns at once.
            self._wake.clear()
            job = self.store.claim_next(worker)
            if job is None:
                self._wake.wait(timeout=5.0)
                continue
            self.runner.execute(job)

    def workers_seen(self) -> list[str]:
        """This process's pool, while its threads live."""
        return [self.name] if any(t.is_alive() for t in self._threads) else []
