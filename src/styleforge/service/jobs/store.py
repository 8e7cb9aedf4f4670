"""Job records in SQLite (WAL mode), and the folder of each job's files.

One database file, ``<data>/jobs.sqlite3``, holds every job; ``<data>/jobs/<id>/``
holds its upload and result. The web process and every worker (embedded threads or
Celery processes on other machines mounting the same ``--data``) open it; WAL lets
readers proceed while a writer commits, and each state change is one short transaction,
so a worker killed at any point leaves a consistent row behind.

States: ``queued`` -> ``running`` -> ``done`` | ``failed``. ``claim`` is the only way
into ``running`` and counts attempts, which bounds redelivery of a job whose worker died.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
#: An AdaIN job's painting is kept in the job's folder as ``style_image.<suffix>``.
STYLE_IMAGE_STEM = "style_image"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    style TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    size INTEGER,
    email TEXT,
    filename TEXT NOT NULL,
    input_name TEXT NOT NULL,
    result_name TEXT,
    error TEXT,
    mail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, seen REAL NOT NULL);
"""


def new_job_id() -> str:
    """A URL-safe id with 128 random bits: the only handle on a job and its result."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table."""

    seq: int
    id: str
    style: str
    kind: str
    status: str
    progress: float
    size: int | None
    email: str | None
    filename: str
    input_name: str
    result_name: str | None
    error: str | None
    mail: str | None
    attempts: int
    worker: str | None
    created: float
    started: float | None
    finished: float | None


class JobStore:
    """The job database and file folders under ``data``.

    Each thread keeps its own connection (sqlite3 connections are not shared between
    threads), so one store can serve a thread pool; processes each build their own.
    """

    def __init__(self, data: Path) -> None:
        self.data = Path(data)
        self.files = self.data / "jobs"
        self.files.mkdir(parents=True, exist_ok=True)
        self.database = self.data / "jobs.sqlite3"
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.database, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash in WAL mode
            self._local.db = db
        yield db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def folder(self, job_id: str) -> Path:
        """The folder of ``job_id``'s files."""
        return self.files / job_id

    def create(self, job_id: str, style: str, kind: str, filename: str, input_name: str,
               email: str | None, size: int | None) -> Job:
        """Record a queued job whose upload is already in :meth:`folder`; returns it."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, style, kind, status, size, email, filename, input_name, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, style, kind, QUEUED, size, email, filename, input_name, time.time()),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, or None when there is no such job (or it was deleted)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job(**dict(row)) if row else None

    def claim_next(self, worker: str) -> Job | None:
        """Move the oldest queued job to ``running`` for ``worker``; None when none waits."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY seq LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            self._mark_running(db, row["id"], worker)
        return self.get(row["id"])

    def claim(self, job_id: str, worker: str) -> Job | None:
        """Move ``job_id`` to ``running`` for ``worker`` if it is queued, or running for a
        worker that died (a redelivery); None when it is finished or gone."""
        with self._transaction() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] not in (QUEUED, RUNNING):
                return None
            self._mark_running(db, job_id, worker)
        return self.get(job_id)

    @staticmethod
    def _mark_running(db: sqlite3.Connection, job_id: str, worker: str) -> None:
        db.execute(
            "UPDATE jobs SET status = ?, attempts = attempts + 1, worker = ?, started = ?, progress = 0, error = NULL "
            "WHERE id = ?", (RUNNING, worker, time.time(), job_id))

    def set_progress(self, job_id: str, progress: float) -> None:
        """Record progress (0..1) of a running job."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = ?", (min(max(progress, 0.0), 1.0), job_id, RUNNING))

    def finish(self, job_id: str, result_name: str) -> bool:
        """Mark a running job done with its result file; False if it was deleted meanwhile."""
        with self._connect() as db:
            cursor = db.execute("UPDATE jobs SET status = ?, progress = 1, result_name = ?, finished = ? WHERE id = ? AND status = ?",
                                (DONE, result_name, time.time(), job_id, RUNNING))
        return cursor.rowcount == 1

    def fail(self, job_id: str, error: str) -> bool:
        """Mark a job failed with a one-line reason; False if it was finished or deleted."""
        with self._connect() as db:
            cursor = db.execute("UPDATE jobs SET status = ?, error = ?, finished = ? WHERE id = ? AND status IN (?, ?)",
                                (FAILED, error, time.time(), job_id, QUEUED, RUNNING))
        return cursor.rowcount == 1

    def set_mail(self, job_id: str, state: str) -> None:
        """Record what happened to the job's mail (``sent`` or ``failed: reason``)."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET mail = ? WHERE id = ?", (state, job_id))

    def delete(self, job_id: str) -> bool:
        """Delete the job and its files; False when there was no such job. A worker still
        running it notices at the end and discards its result."""
        with self._connect() as db:
            cursor = db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        return cursor.rowcount == 1

    def requeue_interrupted(self, max_attempts: int) -> tuple[int, int]:
        """At start-up of the embedded mode: jobs left ``running`` by a stopped process go
        back to the queue, or fail once started ``max_attempts`` times. Returns
        ``(requeued, failed)``."""
        with self._transaction() as db:
            failed = db.execute(
                "UPDATE jobs SET status = ?, finished = ?, error = ? WHERE status = ? AND attempts >= ?",
                (FAILED, time.time(), f"the server stopped during this job {max_attempts} times", RUNNING, max_attempts),
            ).rowcount
            requeued = db.execute("UPDATE jobs SET status = ?, progress = 0 WHERE status = ?", (QUEUED, RUNNING)).rowcount
        return requeued, failed

    def position(self, job: Job) -> int | None:
        """1-based place of a queued job in the queue; None for other states."""
        if job.status != QUEUED:
            return None
        with self._connect() as db:
            ahead = db.execute("SELECT COUNT(*) FROM jobs WHERE status = ? AND seq < ?", (QUEUED, job.seq)).fetchone()[0]
        return int(ahead) + 1

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state."""
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        found = {row["status"]: int(row["n"]) for row in rows}
        return {state: found.get(state, 0) for state in (QUEUED, RUNNING, DONE, FAILED)}

    def sweep(self, older_than: float) -> int:
        """Delete finished jobs (and files) that ended before ``older_than`` (a time.time()
        value), and any job folder without a row; returns the number of jobs deleted."""
        with self._connect() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE status IN (?, ?) AND finished < ?",
                                                  (DONE, FAILED, older_than)).fetchall()]
            for job_id in ids:
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            known = {r["id"] for r in db.execute("SELECT id FROM jobs").fetchall()}
        for job_id in ids:
            shutil.rmtree(self.folder(job_id), ignore_errors=True)
        for folder in self.files.iterdir():
            # A folder whose row is gone: a deleted job, or an upload refused mid-way.
            if folder.name not in known and folder.stat().st_mtime < older_than:
                shutil.rmtree(folder, ignore_errors=True)
        return len(ids)

    def heartbeat(self, worker: str) -> None:
        """Record that ``worker`` is alive now."""
        with self._connect() as db:
            db.execute("INSERT INTO workers (name, seen) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seen = excluded.seen",
                       (worker, time.time()))

    def workers_seen(self, within: float) -> list[str]:
        """Workers that reported in the last ``within`` seconds."""
        with self._connect() as db:
            rows = db.execute("SELECT name FROM workers WHERE seen >= ? ORDER BY name", (time.time() - within,)).fetchall()
        return [row["name"] for row in rows]
