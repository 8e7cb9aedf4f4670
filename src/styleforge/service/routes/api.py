"""The REST API: styles, jobs (create from multipart or JSON, status, result, delete) and health."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from styleforge import __version__
from styleforge.service.catalog import encode_image, thumbnail
from styleforge.service.jobs.runner import RESULT_TYPES, download_name
from styleforge.service.jobs.store import DONE, FAILED, QUEUED, RUNNING, Job
from styleforge.service.refusals import Refusal, bad_params
from styleforge.service.routes.deps import Service, ServiceDep, client_of, find_job
from styleforge.service.submission import Upload, decode_base64_image

router = APIRouter(tags=["api"])

#: Longest long poll of ``GET /api/jobs/{id}?wait=``, and how often it looks at the job.
MAX_WAIT = 30.0
WAIT_STEP = 0.05


class StyleOut(BaseModel):
    """A style the service offers."""

    id: str
    name: str
    kind: Literal["fast", "gatys", "adain"]
    thumbnail_url: str
    needs_style_image: bool = Field(description="adain (any style): jobs must send the painting as 'style_image'")


class JobCreated(BaseModel):
    """A job was queued."""

    id: str = Field(description="128 random bits, URL-safe: the only handle on the job and its result")
    status_url: str
    result_url: str


class JobStatus(BaseModel):
    """Where a job stands."""

    id: str
    style: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(ge=0, le=1)
    position: int | None = Field(description="1-based place in the queue while queued")
    error: str | None
    result_url: str | None = Field(description="set once the job is done")
    filename: str = Field(description="the name the result downloads as")
    mail: str | None = Field(description="the result mail: sending, sent, or 'failed: reason' (null: none asked)")


class Health(BaseModel):
    """Liveness and load."""

    status: Literal["ok"]
    version: str
    mode: Literal["embedded", "celery"]
    queue_depth: int
    running: int
    workers_seen: list[str]
    styles: int


class Problem(BaseModel):
    """A refusal: what went wrong and what to do."""

    detail: str


ERRORS = {code: {"model": Problem} for code in (400, 404, 408, 409, 413, 415, 429, 503)}

_JSON_BODY = {
    "type": "object",
    "required": ["image", "style"],
    "properties": {
        "image": {"type": "string", "description": "the image, base64 (a data: URL prefix is accepted)"},
        "filename": {"type": "string"},
        "style": {"type": "string", "description": "a style id from GET /api/styles"},
        "email": {"type": "string", "description": "mail the result here (when the server has SMTP)"},
        "size": {"type": "integer", "description": "long side of the result in pixels"},
        "style_image": {"type": "string", "description": "adain styles only: the painting to take the style from, base64"},
    },
}
_FORM_BODY = {
    "type": "object",
    "required": ["file", "style"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "style": {"type": "string"},
        "email": {"type": "string"},
        "size": {"type": "integer"},
        "style_image": {"type": "string", "format": "binary", "description": "adain styles only: the painting"},
    },
}


@router.get("/api/styles", response_model=list[StyleOut])
def list_styles(service: ServiceDep) -> list[dict]:
    """Every style this server offers."""
    return [style.public() for style in service.catalog.styles().values()]


@router.get("/api/styles/{style_id}/thumbnail", responses={200: {"content": {"image/png": {}}}, 404: {"model": Problem}})
def style_thumbnail(style_id: str, service: ServiceDep) -> Response:
    """A small PNG picture of the style."""
    style = service.submissions.style(style_id)
    return Response(encode_image(thumbnail(style), "PNG"), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.post("/api/jobs", status_code=202, response_model=JobCreated, responses=ERRORS,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "multipart/form-data": {"schema": _FORM_BODY}, "application/json": {"schema": _JSON_BODY}}}})
async def create_job(request: Request, service: ServiceDep) -> JobCreated:
    """Queue a style-transfer job from a multipart upload (``file``, ``style``, ``email``,
    ``size``, ``style_image``) or a JSON body (``image`` in base64, ``filename``, ``style``,
    ``email``, ``size``, ``style_image`` in base64). ``style_image`` is the painting for a
    style of kind ``adain`` (any style), and refused for the others."""
    service.submissions.admit(client_of(request))
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        upload = await _multipart_upload(request)
    else:
        upload = _json_upload(await request.body())
    job = await run_in_threadpool(service.submissions.submit, upload)
    return JobCreated(id=job.id, status_url=f"/api/jobs/{job.id}", result_url=f"/api/jobs/{job.id}/result")


async def _multipart_upload(request: Request) -> Upload:
    async with request.form(max_files=2, max_fields=8) as form:
        file, painting = form.get("file"), form.get("style_image")
        if not isinstance(file, UploadFile):
            raise bad_params("the form needs a 'file' field holding the image")
        if painting is not None and not isinstance(painting, UploadFile):
            raise bad_params("'style_image' must be a file field holding the painting")
        fields = {key: form.get(key) for key in ("style", "email", "size")}
        if any(value is not None and not isinstance(value, str) for value in fields.values()):
            raise bad_params("'style', 'email' and 'size' must be text fields")
        return Upload(await file.read(), file.filename or "", _required_text(fields["style"], "style"),
                      fields["email"], _as_size(fields["size"]), await painting.read() if painting is not None else None)


def _json_upload(body: bytes) -> Upload:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_params("the body must be JSON (or multipart/form-data with a 'file' field)") from None
    if not isinstance(payload, dict):
        raise bad_params("the JSON body must be an object with 'image' and 'style'")
    filename = payload.get("filename") or ""
    if not isinstance(filename, str):
        raise bad_params("'filename' must be text")
    email = payload.get("email")
    if email is not None and not isinstance(email, str):
        raise bad_params("'email' must be text")
    painting = payload.get("style_image")
    return Upload(decode_base64_image(payload.get("image")), filename, _required_text(payload.get("style"), "style"),
                  email, _as_size(payload.get("size")), None if painting is None else decode_base64_image(painting, "style_image"))


def _required_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_params(f"'{name}' is required")
    return value.strip()


def _as_size(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit() or len(value) > 6:
            raise bad_params("'size' must be a whole number of pixels")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_params("'size' must be a whole number of pixels")
    return value


@router.get("/api/jobs/{job_id}", response_model=JobStatus, responses={404: {"model": Problem}})
async def job_status(job_id: str, service: ServiceDep, response: Response,
                     wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description=(
                         "long poll: answer as soon as the job's status or progress changes, or after this "
                         "many seconds (0 = at once)"))] = 0) -> JobStatus:
    """Status, progress (0..1), queue position and error of a job."""
    job = await run_in_threadpool(find_job, service, job_id)
    deadline = time.monotonic() + wait
    seen = (job.status, job.progress)
    while job.status in (QUEUED, RUNNING) and (job.status, job.progress) == seen and time.monotonic() < deadline:
        await asyncio.sleep(WAIT_STEP)
        job = await run_in_threadpool(find_job, service, job_id)
    response.headers["Cache-Control"] = "no-store"
    return await run_in_threadpool(status_of, service, job)


def status_of(service: Service, job: Job) -> JobStatus:
    """The :class:`JobStatus` of ``job``."""
    done = job.status == DONE
    return JobStatus(id=job.id, style=job.style, status=job.status, progress=job.progress,  # type: ignore[arg-type]
                     position=service.store.position(job), error=job.error,
                     result_url=f"/api/jobs/{job.id}/result" if done else None, filename=download_name(job),
                     mail=job.mail)


@router.get("/api/jobs/{job_id}/result", responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                                                    404: {"model": Problem}, 409: {"model": Problem}})
def job_result(job_id: str, service: ServiceDep) -> Response:
    """The result image (as an attachment named after the upload and the style)."""
    job = find_job(service, job_id)
    if job.status == FAILED:
        raise Refusal(409, f"the job failed: {job.error}")
    if job.status != DONE or not job.result_name:
        raise Refusal(409, f"the job is {job.status}: poll {f'/api/jobs/{job.id}'} until it is done")
    path = service.store.folder(job.id) / job.result_name
    if not path.is_file():
        raise Refusal(404, "the result is gone (it may have expired)")
    return FileResponse(path, media_type=RESULT_TYPES.get(path.suffix, "application/octet-stream"), filename=download_name(job), headers={"Cache-Control": "private, no-store"})


@router.delete("/api/jobs/{job_id}", status_code=204, responses={404: {"model": Problem}})
def delete_job(job_id: str, service: ServiceDep) -> Response:
    """Delete a job and its files (a running job is stopped at its next checkpoint)."""
    job = find_job(service, job_id)
    service.store.delete(job.id)
    return Response(status_code=204)


@router.get("/healthz", response_model=Health)
def health(service: ServiceDep) -> Health:
    """Queue depth, running jobs, workers seen recently and the version."""
    counts = service.store.counts()
    return Health(status="ok", version=__version__, mode=service.queue.mode, queue_depth=counts["queued"],  # type: ignore[attr-defined]
                  running=counts["running"], workers_seen=service.queue.workers_seen(),  # type: ignore[attr-defined]
                  styles=len(service.catalog.styles()))
