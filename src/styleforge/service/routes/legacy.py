"""The thesis' API (chapter 5), kept working for its clients: ``GET /help``,
``POST /transform`` and ``/static/models_image/<model>.jpg``.

``/transform`` takes ``{email, filename, image (base64), model}`` as JSON whatever the
Content-Type says: jQuery's ``$.ajax`` sends ``JSON.stringify(...)`` with its default
``application/x-www-form-urlencoded``; a form-encoded body of the same fields works too.
Answers carry the thesis' status words (``SUBMIT_SUCCESS``, ``PARAMS ERROR``,
``FILENAME NOT SUPPORT``, ``EMAIL FORMAT ERROR``, ``MODEL NOT EXISTS``, ``IMAGE ERROR``)
plus a ``message`` saying what to fix.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from styleforge.images.io import IMAGE_SUFFIXES
from styleforge.service.catalog import encode_image, thumbnail
from styleforge.service.refusals import FILENAME_NOT_SUPPORTED, Refusal, bad_params
from styleforge.service.routes.deps import ServiceDep, client_of
from styleforge.service.submission import Upload, check_email, decode_base64_image

router = APIRouter(tags=["thesis API"])

#: Paths answered in the thesis' ``{status, message}`` shape.
LEGACY_PATHS = ("/help", "/transform")
THUMBNAILS = "/static/models_image/"
FORMATS = sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)


class Help(BaseModel):
    """The models on offer (ids) and the accepted file types."""

    status: Literal["HELP_SUCCESS"]
    models: list[str]
    format: list[str]


class Submitted(BaseModel):
    """A job was queued."""

    status: Literal["SUBMIT_SUCCESS"]
    id: str
    status_url: str


class LegacyProblem(BaseModel):
    """A refusal in the thesis' shape."""

    status: str
    message: str


@router.get("/help", response_model=Help)
def help_(service: ServiceDep) -> Help:
    """Model ids (thumbnails at ``/static/models_image/<id>.jpg``) and accepted formats."""
    return Help(status="HELP_SUCCESS", models=list(service.catalog.styles()), format=FORMATS)


@router.post("/transform", response_model=Submitted,
             responses={code: {"model": LegacyProblem} for code in (400, 404, 408, 413, 415, 429, 503)},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["filename", "image", "model"],
                 "properties": {"email": {"type": "string"}, "filename": {"type": "string"},
                                "image": {"type": "string"}, "model": {"type": "string"}}}}}}})
async def transform(request: Request, service: ServiceDep) -> Submitted:
    """Queue a job from ``{email, filename, image, model}`` (JSON, whatever the Content-Type)."""
    service.submissions.admit(client_of(request))
    fields = _fields(await request.body())
    filename, model = _text(fields, "filename"), _text(fields, "model")
    if PurePosixPath(filename).suffix.lower() not in IMAGE_SUFFIXES:
        raise Refusal(400, f"the file name must end in one of {', '.join('.' + f for f in FORMATS)}", FILENAME_NOT_SUPPORTED)
    email = check_email(fields.get("email"))
    service.submissions.style(model)
    upload = Upload(decode_base64_image(fields.get("image")), filename, model, email)
    job = await run_in_threadpool(service.submissions.submit, upload)
    return Submitted(status="SUBMIT_SUCCESS", id=job.id, status_url=f"/api/jobs/{job.id}")


def _fields(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        payload = _form_fields(body)
    if not isinstance(payload, dict):
        raise bad_params("the body must be a JSON object {email, filename, image, model}")
    return payload


def _form_fields(body: bytes) -> dict:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=8)
    except (ValueError, UnicodeDecodeError):
        raise bad_params("the body must be a JSON object {email, filename, image, model}") from None
    return {key: values[-1] for key, values in parsed.items()}


def _text(fields: dict, name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_params(f"'{name}' is required")
    return value.strip()


def is_legacy(path: str) -> bool:
    """True for the thesis' paths, whose refusals use its ``{status, message}`` shape."""
    return path in LEGACY_PATHS or path.startswith(THUMBNAILS)


@router.get(THUMBNAILS + "{model}.jpg", responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": LegacyProblem}})
def model_image(model: str, service: ServiceDep) -> Response:
    """The style's thumbnail as JPEG (the thesis page's gallery pictures)."""
    style = service.submissions.style(model)
    return Response(encode_image(thumbnail(style), "JPEG"), media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=3600"})
