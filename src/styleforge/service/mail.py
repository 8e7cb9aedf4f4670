"""Result mails: the stylised image as an attachment, or a note saying why the job failed.

Sent with the standard library's ``smtplib`` to the server of
:class:`~styleforge.config.SmtpSettings`. A mail problem is reported to the caller as
:class:`MailError` (one line, never the password) and never fails the job itself.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from styleforge.config import SmtpSettings
from styleforge.errors import one_line


class MailError(Exception):
    """The mail could not be sent; the message says why in one line."""


def result_message(smtp: SmtpSettings, to: str, style_name: str, attachment: bytes, filename: str, mime: str) -> EmailMessage:
    """A mail carrying the result image ``attachment`` (``mime`` e.g. ``image/jpeg``)."""
    msg = _message(smtp, to, f"Your picture in the style of {style_name}")
    msg.set_content(f"Your picture in the style of {style_name} is attached ({filename}).\n\n-- styleforge\n")
    maintype, subtype = mime.split("/", 1)
    msg.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def failure_message(smtp: SmtpSettings, to: str, style_name: str, reason: str) -> EmailMessage:
    """A mail saying the job failed and why."""
    msg = _message(smtp, to, f"Your picture in the style of {style_name} could not be made")
    msg.set_content(f"styleforge could not stylise your picture: {reason}\n\n-- styleforge\n")
    return msg


def _message(smtp: SmtpSettings, to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    return msg


def send(smtp: SmtpSettings, msg: EmailMessage) -> None:
    """Deliver ``msg`` through ``smtp``.

    Raises:
        MailError: connection, TLS, login or delivery failed.
    """
    try:
        if smtp.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if smtp.user:
                client.login(smtp.user, smtp.password)
            client.send_message(msg)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(f"{type(exc).__name__} from {smtp.host}:{smtp.port}: {one_line(exc)}") from None
