"""The ASGI app: ``create_app(settings)`` builds it with its own store, styles and job
queue (the embedded pool, or Celery when ``settings.broker`` is set), so tests and
embedders can build as many as they like; nothing runs at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from styleforge import __version__
from styleforge.config import ServiceSettings
from styleforge.service.catalog import Catalog
from styleforge.service.jobs.runner import JobRunner, usable_cores
from styleforge.service.jobs.store import JobStore
from styleforge.service.limits import BodyLimitMiddleware
from styleforge.service.refusals import PARAMS_ERROR, Refusal
from styleforge.service.routes import api, legacy, pages
from styleforge.service.routes.deps import Service
from styleforge.service.settings import data_folder
from styleforge.service.submission import Submissions

log = logging.getLogger("styleforge.service")


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the service for ``settings`` (the queue starts with the app's lifespan)."""
    store = JobStore(data_folder(settings))
    catalog = Catalog(settings)
    queue = make_queue(settings, store, catalog)
    service = Service(settings, store, catalog, queue, Submissions(settings, store, catalog, queue))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(queue.start)  # type: ignore[attr-defined]
        sweeper = asyncio.create_task(_sweep_forever(store, settings))
        try:
            yield
        finally:
            sweeper.cancel()
            await run_in_threadpool(queue.stop)  # type: ignore[attr-defined]

    app = FastAPI(title="styleforge", version=__version__, lifespan=lifespan,
                  description="Neural style transfer as a service: styles, jobs and results. "
                              "The thesis' /help and /transform are kept for its clients.")
    app.state.service = service
    app.include_router(api.router)
    app.include_router(legacy.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, timeout=settings.request_timeout)
    app.add_exception_handler(Refusal, _refusal_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_response)  # type: ignore[arg-type]
    return app


def make_queue(settings: ServiceSettings, store: JobStore, catalog: Catalog) -> object:
    """The embedded pool, or the Celery publisher when a broker is configured."""
    if settings.broker:
        from styleforge.service.jobs.celery_app import CeleryQueue

        return CeleryQueue(settings, store)
    from styleforge.service.jobs.embedded import EmbeddedPool

    runner = JobRunner(settings, store, catalog.styles)
    return EmbeddedPool(store, runner, embedded_workers(settings), settings.max_attempts, settings.threads)


def embedded_workers(settings: ServiceSettings) -> int:
    """The embedded pool's size: ``settings.workers``, else 2 where there are 2+ cores."""
    return settings.workers or min(2, usable_cores())


async def _refusal_response(request: Request, exc: Refusal) -> JSONResponse:
    if legacy.is_legacy(request.url.path):
        body = {"status": exc.legacy, "message": exc.message}
    else:
        body = {"detail": exc.message}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
    return await _refusal_response(request, Refusal(422, message, PARAMS_ERROR))


async def _sweep_forever(store: JobStore, settings: ServiceSettings) -> None:
    """Delete expired jobs now and every ``sweep_interval`` seconds."""
    while True:
        try:
            removed = await run_in_threadpool(store.sweep, time.time() - settings.retention_hours * 3600)
            if removed:
                log.info("retention sweep removed %d expired job(s)", removed)
        except Exception:  # a sweep problem must not stop the service; try again later
            log.exception("retention sweep failed")
        await asyncio.sleep(settings.sweep_interval)
