"""What every route needs, taken from the app's state (set by :func:`~styleforge.service.app.create_app`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from styleforge.config import ServiceSettings
from styleforge.service.catalog import Catalog
from styleforge.service.jobs.store import Job, JobStore
from styleforge.service.refusals import Refusal
from styleforge.service.submission import Submissions

#: Job ids as :func:`~styleforge.service.jobs.store.new_job_id` makes them (22 URL-safe characters).
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


@dataclass
class Service:
    """The parts of a running service."""

    settings: ServiceSettings
    store: JobStore
    catalog: Catalog
    queue: object
    submissions: Submissions


def get_service(request: Request) -> Service:
    """The service of the app handling ``request``."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def find_job(service: Service, job_id: str) -> Job:
    """The job ``job_id``.

    Raises:
        Refusal: 404 for a malformed or unknown id (the same answer, so ids cannot be probed).
    """
    job = service.store.get(job_id) if JOB_ID.match(job_id) else None
    if job is None:
        raise Refusal(404, "there is no such job (it may have expired)")
    return job


def client_of(request: Request) -> str:
    """The client's address, the key of the rate limit."""
    return request.client.host if request.client else "unknown"
