"""Scale-out mode: jobs travel through Redis to Celery workers (``styleforge worker``).

The web process only publishes ``run_job(job_id)``; any number of workers on any number
of machines consume it with the same :class:`~.runner.JobRunner` the embedded mode uses,
reading the job store and files from the shared ``--data`` folder. Delivery settings,
after Celery's configuration guide and Redis broker notes:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a job whose worker process dies
  goes back to the queue instead of being acknowledged as done;
- the redelivery loop this allows is bounded by the store's attempt count
  (``max_attempts``), and running a job twice is harmless (the runner skips finished ones);
- Redis' ``visibility_timeout`` is set above ``job_timeout``, so a job still running is
  never handed to a second worker, while one whose whole worker machine died comes back
  after that timeout;
- the lock that serialises the workers' sweeps for such jobs expires within the same
  timeout: with kombu's default (300 s), a worker killed during its few-millisecond sweep
  would hold back every redelivery for five minutes;
- ``worker_prefetch_multiplier = 1``: a busy worker holds no job another could start.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sqlite3
import threading
from pathlib import Path

from styleforge.config import ServiceSettings
from styleforge.service.settings import redacted_url

log = logging.getLogger("styleforge.service")

TASK = "styleforge.run_job"
#: Seconds between a worker's heartbeats in the job store (shown by /healthz).
HEARTBEAT_SECONDS = 5.0


def visibility_timeout(settings: ServiceSettings) -> float:
    """Redis' redelivery delay for unacknowledged jobs: a quarter above the longest job,
    plus 5 s for the hand-over inside the worker."""
    return settings.job_timeout * 1.25 + 5.0


def make_celery(settings: ServiceSettings, concurrency: int | None = None) -> object:
    """A Celery app on ``settings.broker`` (Redis as broker and result backend).

    Args:
        settings: the service settings (broker, job timeout, attempts).
        concurrency: for workers, the pool's size (registers the job task, whose
            processes share the cores); None for the web process, which only publishes.
    """
    from celery import Celery

    app = Celery("styleforge", broker=settings.broker, backend=settings.broker)
    timeout = visibility_timeout(settings)
    # Scan for abandoned jobs every fifth of the timeout (at most every 10 s, kombu's
    # default), rather than kombu's default of every 100 s.
    transport = {"visibility_timeout": timeout, "unacked_restore_interval": max(1, min(10, int(timeout / 5))),
                 "unacked_restore_throttle": 1, "unacked_mutex_expire": int(min(300, timeout))}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        result_expires=int(settings.retention_hours * 3600),
        task_time_limit=settings.job_timeout,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
    )
    if concurrency is not None:
        _register_task(app, settings, concurrency)
    return app


def _register_task(app: object, settings: ServiceSettings, concurrency: int) -> None:
    @app.task(name=TASK, bind=True, autoretry_for=(sqlite3.OperationalError,), max_retries=settings.max_attempts,
              retry_backoff=True)  # type: ignore[attr-defined]
    def run_job(task: object, job_id: str) -> None:
        worker = f"{socket.gethostname()}:{task.request.hostname}"  # type: ignore[attr-defined]
        _runner(settings, concurrency).run_claimed(job_id, worker)


@functools.cache
def _runner(settings: ServiceSettings, concurrency: int) -> object:
    """The pool process's runner, built on first use (after Celery forks its pool), with
    PyTorch's threads set to this process's share of the cores."""
    from styleforge.service.catalog import Catalog
    from styleforge.service.jobs.runner import JobRunner, set_job_threads
    from styleforge.service.jobs.store import JobStore
    from styleforge.service.settings import data_folder

    set_job_threads(settings.threads, concurrency)
    store = JobStore(data_folder(settings))
    return JobRunner(settings, store, Catalog(settings).styles)


class CeleryQueue:
    """The web process's side of scale-out mode: publishes jobs; workers report through
    the shared job store."""

    mode = "celery"

    def __init__(self, settings: ServiceSettings, store: object) -> None:
        self.settings = settings
        self.store = store
        self.app = make_celery(settings)
        self.workers = 0

    def start(self) -> None:
        """Nothing to start here: the workers are separate processes."""
        log.info("jobs go to Celery workers through %s", redacted_url(self.settings.broker))

    def submit(self, job_id: str) -> None:
        """Publish ``job_id`` (the task id is the job id).

        Raises:
            kombu.exceptions.OperationalError: the broker is unreachable.
        """
        self.app.send_task(TASK, args=[job_id], task_id=job_id)  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Close the broker connections."""
        self.app.close()  # type: ignore[attr-defined]

    def workers_seen(self) -> list[str]:
        """Workers whose heartbeat reached the store in the last three periods."""
        return self.store.workers_seen(3 * HEARTBEAT_SECONDS)  # type: ignore[attr-defined]


def run_worker(settings: ServiceSettings, concurrency: int, data: Path) -> None:
    """Run a Celery worker (prefork pool of ``concurrency`` processes) until stopped,
    with a heartbeat thread writing to the job store."""
    from styleforge.service.jobs.store import JobStore

    app = make_celery(settings, concurrency)
    store = JobStore(data)
    name = f"{socket.gethostname()}:{os.getpid()}"
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            store.heartbeat(name)

    store.heartbeat(name)
    threading.Thread(target=beat, name="styleforge-heartbeat", daemon=True).start()
    _fail_jobs_over_the_time_limit(store, settings.job_timeout)
    _preload_job_code()
    log.info("worker %s consuming %s", name, redacted_url(settings.broker))
    try:
        app.worker_main(["worker", "--concurrency", str(concurrency), "--pool", "prefork",  # type: ignore[attr-defined]
                         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", f"styleforge-{os.getpid()}@%h"])
    finally:
        stop.set()


def _preload_job_code() -> None:
    """Import PyTorch and the job code in the worker's main process, before Celery forks
    its pool: each pool process then starts with them loaded, so its first job does not
    spend seconds of its time limit importing (about 3 s on a small machine).

    Imports only: nothing runs on a device before the fork (CUDA cannot cross a fork),
    and PyTorch's thread pool starts in each pool process on its first operation."""
    import styleforge.gatys.torch_engine  # noqa: F401  (PyTorch, VGG19, the Gatys engine)
    import styleforge.service.jobs.runner  # noqa: F401
    import styleforge.transfer.model  # noqa: F401  (fast and AdaIN models)


def _fail_jobs_over_the_time_limit(store: object, limit: float) -> None:
    """Record a job killed at Celery's hard time limit as failed.

    Celery kills the pool process and acknowledges the message as failed in the worker's
    main process, where it sends ``task_failure``; without this the store would show
    the job as running forever (the process that would have recorded it is gone).
    """
    from celery.exceptions import TimeLimitExceeded
    from celery.signals import task_failure

    from styleforge.service.jobs.runner import over_time_limit

    def on_failure(sender: object = None, task_id: str | None = None, exception: BaseException | None = None,
                   args: tuple | None = None, **_: object) -> None:
        if isinstance(exception, TimeLimitExceeded) and args:
            store.fail(args[0], over_time_limit(limit))  # type: ignore[attr-defined]

    task_failure.connect(on_failure, weak=False)
