"""Taking a job: every check an upload goes through, then the upload stored and the job
queued. The REST API and the thesis' /transform both submit through :class:`Submissions`.

Checks, cheapest first: rate limit (:meth:`Submissions.admit`, before the body is read), style, e-mail syntax, size, image type sniffed from
the bytes (never the name), pixel count from the header and of the result at the size asked, queue length, then a full
decode with the same reader the CLI uses (corrupt and truncated files are refused here,
not in a worker).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from PIL import Image, UnidentifiedImageError

from styleforge.config import ServiceSettings
from styleforge.errors import StyleforgeError
from styleforge.images.io import READ_FORMATS, long_side_size, read_image
from styleforge.service.catalog import ADAIN, Catalog, Style
from styleforge.service.jobs.runner import result_long_side
from styleforge.service.jobs.store import QUEUED, STYLE_IMAGE_STEM, Job, JobStore, new_job_id
from styleforge.service.limits import RateLimiter
from styleforge.service.refusals import (
    EMAIL_FORMAT_ERROR,
    MODEL_NOT_EXISTS,
    QUEUE_FULL,
    SERVICE_UNAVAILABLE,
    Refusal,
    bad_image,
    bad_params,
)
from styleforge.utils.fs import write_bytes_atomic

log = logging.getLogger("styleforge.service")

#: Upload suffix by sniffed Pillow format.
UPLOAD_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}
#: A pragmatic address check (RFC 5321 limits; one @; a dot in the domain; no spaces).
EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
MIN_SIZE = 16


@dataclass(frozen=True)
class Upload:
    """What a client sent: image bytes, its file name (may be empty), the style id, an
    optional e-mail address and long side, and for an "any style" (AdaIN) style the
    painting to take the style from."""

    data: bytes
    filename: str
    style: str
    email: str | None = None
    size: int | None = None
    style_image: bytes | None = None


class Submissions:
    """Checks uploads and queues jobs into ``store`` / ``queue``."""

    def __init__(self, settings: ServiceSettings, store: JobStore, catalog: Catalog, queue: object) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.queue = queue
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_window)

    def admit(self, client: str) -> None:
        """Count a submission by ``client`` before its body is read.

        Raises:
            Refusal: 429 when the client is over the rate limit.
        """
        self.limiter.check(client)

    def submit(self, upload: Upload) -> Job:
        """Check ``upload`` and queue it; returns the queued job.

        Raises:
            Refusal: the first check that fails.
        """
        style = self.style(upload.style)
        email = check_email(upload.email)
        size = self._check_size(upload.size)
        fmt, image_size = sniff_image(upload.data, self.settings.max_pixels)
        style_fmt = self._check_style_image(style, upload.style_image)
        self._check_result_pixels(style, size, image_size)
        self._check_queue()
        job_id = new_job_id()
        input_name = f"upload{UPLOAD_SUFFIXES[fmt]}"
        folder = self.store.folder(job_id)
        try:
            self._store_image(folder / input_name, upload.data, "the image")
            if upload.style_image is not None and style_fmt is not None:
                self._store_image(folder / f"{STYLE_IMAGE_STEM}{UPLOAD_SUFFIXES[style_fmt]}", upload.style_image, "the style image")
        except Refusal:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = self.store.create(job_id, style.id, style.kind, safe_filename(upload.filename, fmt), input_name, email, size)
        try:
            self.queue.submit(job.id)  # type: ignore[attr-defined]
        except Exception as exc:  # the broker is down: say so now, never lose the job silently
            self.store.fail(job.id, "the job queue is unreachable")
            log.error("cannot queue job %s: %s", job.id, exc)
            raise Refusal(503, "the job queue is unreachable right now: try again in a minute", SERVICE_UNAVAILABLE,
                          {"Retry-After": "60"}) from None
        return job

    def _store_image(self, path: object, data: bytes, what: str) -> None:
        """Write an uploaded image and decode it fully with the CLI's reader.

        Raises:
            Refusal: 400 when it cannot be decoded."""
        try:
            read_image(write_bytes_atomic(path, data), max_pixels=self.settings.max_pixels)  # type: ignore[arg-type]
        except StyleforgeError as exc:
            raise bad_image(f"{what} cannot be read: {_reason(exc)}") from None

    def _check_style_image(self, style: Style, data: bytes | None) -> str | None:
        """The sniffed format of an AdaIN job's painting (None for other styles).

        Raises:
            Refusal: 400 when an AdaIN style has no painting or another style has one; the
                image checks of :func:`sniff_image` otherwise."""
        if style.kind != ADAIN:
            if data is not None:
                raise bad_params(f"style '{style.id}' has its style built in; 'style_image' is only for styles whose "
                                 "kind is adain (any style)")
            return None
        if not data:
            raise bad_params(f"style '{style.id}' takes any painting: send it as 'style_image'")
        return sniff_image(data, self.settings.max_pixels)[0]

    def style(self, style_id: str) -> Style:
        """The style named ``style_id``.

        Raises:
            Refusal: 404 when there is no such style.
        """
        style = self.catalog.styles().get(style_id)
        if style is None:
            raise Refusal(404, f"there is no style '{style_id[:64]}': GET /api/styles lists them", MODEL_NOT_EXISTS)
        return style

    def _check_size(self, size: int | None) -> int | None:
        if size is None:
            return None
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= self.settings.max_size:
            raise bad_params(f"size must be a whole number of pixels from {MIN_SIZE} to {self.settings.max_size}")
        return size

    def _check_result_pixels(self, style: Style, size: int | None, image_size: tuple[int, int]) -> None:
        long_side = result_long_side(self.settings, style.kind, size, image_size)
        width, height = long_side_size(image_size, long_side)
        if width * height > self.settings.max_pixels:
            raise bad_image(f"at a long side of {long_side} px the result would be {width}x{height} "
                            f"({width * height:,} pixels), over the limit of {self.settings.max_pixels:,}: ask a smaller size", 413)

    def _check_queue(self) -> None:
        if self.store.counts()[QUEUED] >= self.settings.max_queued:
            raise Refusal(503, f"the queue is full ({self.settings.max_queued} jobs waiting): try again in a minute",
                          QUEUE_FULL, {"Retry-After": "60"})


def _reason(exc: StyleforgeError) -> str:
    # read_image names the server-side path; the client only needs the reason after it.
    text = str(exc)
    return text.split("': ", 1)[1] if "': " in text else text


def sniff_image(data: bytes, max_pixels: int) -> tuple[str, tuple[int, int]]:
    """The Pillow format and ``(width, height)`` of ``data`` from its content, checked
    against ``max_pixels``.

    Raises:
        Refusal: 400 empty, 415 not a JPEG/PNG/WebP/BMP image, 413 too many pixels.
    """
    if not data:
        raise bad_image("the image is empty")
    try:
        with Image.open(io.BytesIO(data), formats=list(READ_FORMATS)) as img:
            fmt, (width, height) = img.format or "", img.size
    except UnidentifiedImageError:
        raise bad_image("not a JPEG, PNG, WebP or BMP image (the type is read from the content, not the name)", 415) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise bad_image(f"the image header is corrupt ({type(exc).__name__})") from None
    if width * height > max_pixels:
        raise bad_image(f"the image is {width}x{height} ({width * height:,} pixels), over the limit of {max_pixels:,}", 413)
    return fmt, (width, height)


def decode_base64_image(text: object, field: str = "image") -> bytes:
    """Bytes of a base64 image, with or without a ``data:image/...;base64,`` prefix
    (``field`` names it in messages).

    Raises:
        Refusal: 400 when ``text`` is not a string or not valid base64.
    """
    if not isinstance(text, str) or not text:
        raise bad_params(f"'{field}' must be a non-empty base64 string")
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise bad_image(f"'{field}' is a data URL without base64 content")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_image(f"'{field}' is not valid base64") from None


def check_email(email: object) -> str | None:
    """A stripped e-mail address, or None when none was given.

    Raises:
        Refusal: 400 when it is not a plausible address.
    """
    if email is None or (isinstance(email, str) and not email.strip()):
        return None
    if not isinstance(email, str) or len(email.strip()) > 254 or not EMAIL.match(email.strip()):
        raise Refusal(400, "the e-mail address is not valid (expected name@example.org)", EMAIL_FORMAT_ERROR)
    return email.strip()


def safe_filename(name: str | None, fmt: str) -> str:
    """A harmless display name for an upload: the last path component (either slash),
    unusual characters replaced, no leading dots, at most 100 characters; the suffix
    follows the sniffed format."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    stem = re.sub(r"[^\w.\- ]+", "_", PurePosixPath(base).stem, flags=re.ASCII).strip(" ._")[:100] or "image"
    return stem + UPLOAD_SUFFIXES.get(fmt, ".png")
