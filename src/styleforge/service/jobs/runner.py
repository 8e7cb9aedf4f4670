"""The one job runner, shared by the embedded pool and the Celery workers: load the
style, read the upload, stylise, write the result, record it, mail it.

Every step that can go wrong for a user's reason (an unreadable upload, a style removed
since submission, Gatys without VGG19 weights) fails the job with a one-line reason;
anything else is a bug, also recorded as a failed job (with its type) and logged with
its traceback. Running a job twice is harmless: a job already finished is skipped, the
result is written atomically, and the mail goes out at most once.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from PIL import Image

from styleforge.config import GatysOptions, ServiceSettings, TransferOptions
from styleforge.errors import StyleforgeError, one_line
from styleforge.images.io import read_image, write_image
from styleforge.service import mail
from styleforge.service.catalog import ADAIN, GATYS, Style
from styleforge.service.jobs.store import STYLE_IMAGE_STEM, Job, JobStore

log = logging.getLogger("styleforge.service")

#: MIME type of each result suffix: JPEG photos give JPEG results, every other upload PNG.
RESULT_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}


class JobGone(Exception):
    """The job was deleted while it ran: stop and keep nothing."""


def over_time_limit(limit: float) -> str:
    """The failure reason of a job stopped at the ``job_timeout`` limit of ``limit`` seconds."""
    return f"the job ran longer than the {limit:g} s limit (job_timeout); try a smaller size or fewer iterations"


def result_suffix(input_name: str) -> str:
    """The result's suffix for an upload stored as ``input_name`` (its suffix is the
    sniffed format's): ``.jpg`` for JPEG uploads, ``.png`` otherwise."""
    return ".jpg" if Path(input_name).suffix == ".jpg" else ".png"


def result_long_side(settings: ServiceSettings, kind: str, requested: int | None, image_size: tuple[int, int]) -> int:
    """Long side of a job's result: the requested size, else the photo's own up to
    ``default_size``; Gatys results are capped at ``gatys_size``."""
    if kind == GATYS:
        return min(requested or max(image_size), settings.gatys_size)
    return requested or min(settings.default_size, max(image_size))


def download_name(job: Job) -> str:
    """The file name offered for a job's result: ``<upload stem>-<style><suffix>``."""
    stem = Path(job.filename).stem or "image"
    suffix = result_suffix(job.input_name)
    return f"{stem}-{job.style}{suffix}"


class JobRunner:
    """Runs jobs of ``store`` with the styles of ``styles`` (a callable returning the current
    ``{id: Style}``)."""

    def __init__(self, settings: ServiceSettings, store: JobStore, styles: Callable[[], dict[str, Style]]) -> None:
        self.settings = settings
        self.store = store
        self.styles = styles
        self._models_lock = threading.Lock()

    def run_claimed(self, job_id: str, worker: str) -> None:
        """Claim ``job_id`` (a Celery delivery) and run it; a finished or deleted job is
        skipped, one already started ``max_attempts`` times fails."""
        job = self.store.claim(job_id, worker)
        if job is None:
            log.info("job %s is finished or gone; nothing to do", job_id)
            return
        if job.attempts > self.settings.max_attempts:
            reason = f"the job was started {job.attempts - 1} times and its worker was lost each time"
            self._fail(job, reason)
            return
        self.execute(job)

    def execute(self, job: Job) -> None:
        """Run a job already claimed (status ``running``) to ``done`` or ``failed``."""
        started = time.perf_counter()
        try:
            style = self._style(job)
            result, mime = self._stylise(job, style, started + self.settings.job_timeout)
        except JobGone:
            log.info("job %s was deleted while running; result discarded", job.id)
            return
        except StyleforgeError as exc:
            self._fail(job, self._without_server_paths(str(exc)))
            return
        except Exception as exc:  # a bug: keep the service up, record and log it
            log.exception("job %s failed unexpectedly", job.id)
            self._fail(job, f"internal error ({type(exc).__name__}: {one_line(exc)})")
            return
        if not self.store.finish(job.id, result.name):
            self.store.delete(job.id)  # deleted meanwhile: remove what we wrote
            return
        log.info("job %s done in %.2f s (%s)", job.id, time.perf_counter() - started, job.style)
        self._mail_result(job, style, result, mime)

    def _without_server_paths(self, message: str) -> str:
        """``message`` with the server's folders removed (clients see file names only)."""
        from styleforge.service.settings import model_folders

        for folder in [self.store.files, *model_folders(self.settings)]:
            message = message.replace(f"{folder.resolve()}/", "").replace(f"{folder}/", "")
        return message

    def _style(self, job: Job) -> Style:
        style = self.styles().get(job.style)
        if style is None:
            raise StyleforgeError(f"the style '{job.style}' is no longer offered by this server")
        return style

    def _stylise(self, job: Job, style: Style, deadline: float) -> tuple[Path, str]:
        """Stylise the job's upload, stopping a Gatys run at ``deadline`` (``time.perf_counter``
        seconds); returns the written result and its MIME type."""
        folder = self.store.folder(job.id)
        upload = folder / job.input_name
        image = read_image(upload, max_pixels=self.settings.max_pixels)
        suffix = result_suffix(job.input_name)
        mime = RESULT_TYPES[suffix]
        if style.kind == GATYS:
            out = self._gatys(job, style, image, deadline)
        else:
            out = self._fast(job, style, image)
        if self.store.get(job.id) is None:
            raise JobGone
        result = write_image(out, folder / f"result{suffix}")
        return result, mime

    def _fast(self, job: Job, style: Style, image: Image.Image) -> Image.Image:
        # No progress steps: a fast job takes well under a second (each step would cost
        # a write and wake every long poll).
        if style.kind == ADAIN:
            return self._adain(job, style, image)
        model = self._fast_model(str(style.path), style.path.stat().st_mtime_ns, style.index)
        return model.stylize(image, size=result_long_side(self.settings, style.kind, job.size, image.size))

    def _adain(self, job: Job, style: Style, image: Image.Image) -> Image.Image:
        """Stylise toward the painting stored with the job. The model is loaded per job (its
        style differs every time); loading reads the file once and encodes the painting."""
        from styleforge.transfer.model import load_style_model

        paintings = sorted(self.store.folder(job.id).glob(f"{STYLE_IMAGE_STEM}.*"))
        if not paintings:
            raise StyleforgeError("the job's style image is missing")
        options = TransferOptions(device=self.settings.device, styles=(str(paintings[0]),))
        model = load_style_model(str(style.path), options=options)
        return model.stylize(image, size=result_long_side(self.settings, style.kind, job.size, image.size))

    def _fast_model(self, path: str, mtime_ns: int, index: int | None) -> object:
        with self._models_lock:
            return _cached_style_model(path, mtime_ns, self.settings.device, index, self.settings.runtime)

    def _gatys(self, job: Job, style: Style, image: Image.Image, deadline: float) -> Image.Image:
        from styleforge.gatys.driver import run_stylize

        size = result_long_side(self.settings, style.kind, job.size, image.size)
        opts = GatysOptions(size=size, iterations=self.settings.gatys_iterations, device=self.settings.device,
                            weights=self.settings.vgg)
        with self._models_lock:
            vgg = _cached_vgg(self.settings.vgg, self.settings.device)
        painting = read_image(style.path)

        def report(info: object) -> None:
            # The embedded pool's threads cannot be killed, so the limit is kept here, at
            # each step; under Celery this ends the job before the hard limit kills its process.
            if time.perf_counter() > deadline:
                raise StyleforgeError(over_time_limit(self.settings.job_timeout))
            step, total = info.step, info.total_steps  # type: ignore[attr-defined]
            if step % 5 == 0 or step == total:
                if self.store.get(job.id) is None:
                    raise JobGone
                self.store.set_progress(job.id, 0.95 * step / total)

        return run_stylize(image, [painting], opts, vgg=vgg, callback=report, progress=False).image

    def _fail(self, job: Job, reason: str) -> None:
        if self.store.fail(job.id, reason):
            log.info("job %s failed: %s", job.id, reason)
            self._mail_failure(job, reason)

    def _mail_result(self, job: Job, style: Style, result: Path, mime: str) -> None:
        if not (job.email and self.settings.smtp.enabled):
            return
        self._deliver(job, lambda: mail.result_message(self.settings.smtp, job.email, style.name,
                                                       result.read_bytes(), download_name(job), mime))

    def _mail_failure(self, job: Job, reason: str) -> None:
        if job.email and self.settings.smtp.enabled:
            self._deliver(job, lambda: mail.failure_message(self.settings.smtp, job.email, job.style, reason))

    def _deliver(self, job: Job, build: Callable[[], EmailMessage]) -> None:
        current = self.store.get(job.id)
        if current is None or current.mail is not None:  # at most one mail per job
            return
        self.store.set_mail(job.id, "sending")
        try:
            mail.send(self.settings.smtp, build())
        except (mail.MailError, OSError) as exc:
            log.warning("job %s: mail to its address failed: %s", job.id, exc)
            self.store.set_mail(job.id, f"failed: {one_line(exc)}")
            return
        self.store.set_mail(job.id, "sent")


@functools.lru_cache(maxsize=8)
def _cached_style_model(path: str, mtime_ns: int, device: str, index: int | None = None, runtime: str = "auto") -> object:
    """A loaded fast style model (style ``index`` of a multi-style one), kept while its file
    is unchanged (``mtime_ns`` is part of the key, so a replaced model file is reloaded),
    its whole images in the runtime ``runtime`` chooses for a long-lived service
    (:meth:`~styleforge.transfer.model.StyleModel.prepare`). A measurement that choice asks
    for runs when the service exits, as after ``transfer``: started at once, the measuring
    process took the service from 17.2 to 12.5 jobs/s on 2 cores while it ran."""
    from styleforge.transfer.model import load_style_model

    weights = None if index is None else str(index)
    if path.endswith(".onnx") and runtime == "pytorch":
        runtime = "auto"  # an exported file runs in its own runtime
    model = load_style_model(path, options=TransferOptions(device=device, style_weights=weights, runtime=runtime))
    log.info("style %s: %s", Path(path).name, model.prepare().line)
    return model


@functools.lru_cache(maxsize=1)
def _cached_vgg(source: str, device: str) -> object:
    from styleforge.vgg.network import load_vgg19

    return load_vgg19(source, device=device)


def set_job_threads(threads: int | None, workers: int) -> int:
    """Set PyTorch's intra-op threads for jobs: ``threads``, else ``OMP_NUM_THREADS``
    when set (what a PyTorch program uses by default), else the cores this process may
    use divided by ``workers``; returns the number set."""
    import torch

    count = threads or omp_threads() or max(1, usable_cores() // workers)
    torch.set_num_threads(count)
    return count


def omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a positive number of threads, or None when unset or not one
    (OpenMP reads a list there too: its first entry is the outer level's)."""
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
