"""Result mails against a local SMTP server (aiosmtpd on loopback): the attachment decodes
to the result image, a failed job mails its reason, and a mail failure never fails the
job nor prints the password."""

from __future__ import annotations

import email
import email.policy
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server, free_port, photo_bytes, serve, wait_for_job


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} mails arrived"
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def mail_env(port: int, **extra: str) -> dict[str, str]:
    return {"STYLEFORGE_SMTP_HOST": "127.0.0.1", "STYLEFORGE_SMTP_PORT": str(port), "STYLEFORGE_SMTP_SECURITY": "none",
            "STYLEFORGE_SMTP_SENDER": "styles@example.org", "STYLEFORGE_MAX_PIXELS": "40000", **extra}


def test_result_and_failure_mails(servers: list[Server], smtp: tuple[Inbox, int], style_folder: Path, tmp_path: Path) -> None:
    inbox, port = smtp
    models = tmp_path / "models"
    shutil.copytree(style_folder, models)
    server = serve(servers, models, tmp_path / "data", env=mail_env(port))
    files = {"file": ("beach.jpg", photo_bytes(tmp_path))}
    job = httpx.post(server.url("/api/jobs"), files=files, data={"style": "wave", "email": "ana@example.org", "size": "40"}).json()
    status = wait_for_job(server, job["id"])
    result = httpx.get(server.url(job["result_url"])).content
    [message] = inbox.wait_for(1)
    assert message["To"] == "ana@example.org" and message["From"] == "styles@example.org"
    assert "The Wave" in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "beach-wave.jpg" and attachment.get_content_type() == "image/jpeg"
    assert attachment.get_content() == result
    deadline = time.monotonic() + 10
    while status["mail"] != "sent":
        assert time.monotonic() < deadline, status
        status = httpx.get(server.url(f"/api/jobs/{job['id']}")).json()

    # A model file broken after the server listed it: the job fails in the worker and the
    # reason is mailed.
    (models / "candy.safetensors").write_bytes(b"not a safetensors file")
    failing = httpx.post(server.url("/api/jobs"), files={"file": ("p.png", photo_bytes(tmp_path, "p.png"))},
                         data={"style": "candy", "email": "bo@example.org"}).json()
    failed = wait_for_job(server, failing["id"])
    assert failed["status"] == "failed" and "candy.safetensors" in failed["error"] and str(models) not in failed["error"]
    note = inbox.wait_for(2)[1]
    assert note["To"] == "bo@example.org" and "could not be made" in note["Subject"]
    assert "candy.safetensors" in note.get_content() and not list(note.iter_attachments())


def test_a_mail_failure_never_fails_the_job(servers: list[Server], smtp: tuple[Inbox, int], style_folder: Path, tmp_path: Path) -> None:
    _, port = smtp
    secret = "pa55-do-not-log-me"
    # aiosmtpd offers no AUTH here, so the login fails after the job is done.
    server = serve(servers, style_folder, tmp_path / "data",
                   env=mail_env(port, STYLEFORGE_SMTP_USER="ana", STYLEFORGE_SMTP_PASSWORD=secret))
    job = httpx.post(server.url("/api/jobs"), files={"file": ("p.jpg", photo_bytes(tmp_path))},
                     data={"style": "wave", "email": "ana@example.org", "size": "32"}).json()
    status = wait_for_job(server, job["id"])
    deadline = time.monotonic() + 10
    while not (status["mail"] or "").startswith("failed"):
        assert time.monotonic() < deadline, status
        status = httpx.get(server.url(f"/api/jobs/{job['id']}")).json()
    assert status["status"] == "done" and "AUTH" in status["mail"]
    assert httpx.get(server.url(job["result_url"])).status_code == 200
    assert secret not in server.output()
