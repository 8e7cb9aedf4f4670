"""Why a request is refused: one exception type with its HTTP status, a one-line message,
and the status word the thesis' API answers with.

Routes and the body-limit middleware raise :class:`Refusal`; the app's handler renders it
as ``{"detail": message}`` on the REST API and as ``{"status": WORD, "message": message}``
on the thesis' ``/transform`` and ``/help``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PARAMS_ERROR = "PARAMS ERROR"
FILENAME_NOT_SUPPORTED = "FILENAME NOT SUPPORT"
EMAIL_FORMAT_ERROR = "EMAIL FORMAT ERROR"
MODEL_NOT_EXISTS = "MODEL NOT EXISTS"
IMAGE_ERROR = "IMAGE ERROR"
TOO_MANY_REQUESTS = "TOO MANY REQUESTS"
QUEUE_FULL = "QUEUE FULL"
SERVICE_UNAVAILABLE = "SERVICE UNAVAILABLE"
REQUEST_TIMEOUT = "REQUEST TIMEOUT"


@dataclass
class Refusal(Exception):
    """A request the service will not take: ``status`` (4xx, or 503 when it cannot right
    now), ``message`` (one line saying what to do), ``legacy`` (the thesis' status word)
    and extra response ``headers`` (e.g. Retry-After)."""

    status: int
    message: str
    legacy: str = PARAMS_ERROR
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def bad_params(message: str) -> Refusal:
    """400: a missing or malformed field."""
    return Refusal(400, message, PARAMS_ERROR)


def bad_image(message: str, status: int = 400) -> Refusal:
    """400 (corrupt, bad base64), 413 (too big) or 415 (not an image type)."""
    return Refusal(status, message, IMAGE_ERROR)
