"""Service settings from defaults, a TOML file, ``STYLEFORGE_*`` variables and flags.

Later sources win: :class:`~styleforge.config.ServiceSettings` defaults, then the file
given by ``--config`` (top-level keys plus an ``[smtp]`` table), then the environment
(:func:`styleforge.config.service_environment`), then command-line flags. Every value is
converted to its field's type and checked; a bad one is one line naming its source.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from styleforge.config import DEVICE_CHOICES, SMTP_SECURITY_CHOICES, ServiceSettings, SmtpSettings, service_environment
from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.fs import check_regular_file

_POSITIVE = {"max_upload_bytes", "max_pixels", "max_queued", "rate_window", "request_timeout",
             "retention_hours", "sweep_interval", "default_size", "max_size", "gatys_size", "gatys_iterations",
             "job_timeout", "max_attempts", "workers", "threads", "timeout"}


def load_settings(config_file: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> ServiceSettings:
    """Return the effective settings.

    Args:
        config_file: a TOML file, or None.
        overrides: values from command-line flags (None values are ignored).

    Raises:
        StyleforgeError: unreadable file, unknown key, or a value of the wrong kind.
    """
    layers: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if config_file is not None:
        table = _read_toml(Path(config_file))
        smtp = table.pop("smtp", {})
        if not isinstance(smtp, dict):
            raise StyleforgeError(f"{config_file}: 'smtp' must be a table ([smtp])")
        layers.append((str(config_file), table, smtp))
    env = service_environment()
    layers.append(("the environment (STYLEFORGE_*)", env["service"], env["smtp"]))
    layers.append(("the command line", {k: v for k, v in (overrides or {}).items() if v is not None}, {}))
    service: dict[str, Any] = {}
    smtp_values: dict[str, Any] = {}
    for source, top, mail in layers:
        service.update(_converted(ServiceSettings, top, source))
        smtp_values.update(_converted(SmtpSettings, mail, source))
    settings = ServiceSettings(**service, smtp=SmtpSettings(**smtp_values))
    return _checked(settings)


def _read_toml(file: Path) -> dict[str, Any]:
    check_regular_file(file, "config file")
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StyleforgeError(f"{file}: not a valid TOML file ({one_line(exc)})") from None


def _converted(cls: type, values: dict[str, Any], source: str) -> dict[str, Any]:
    """Convert ``values`` to the types of ``cls``'s fields (text from the environment,
    TOML values from a file)."""
    defaults = {f.name: f for f in dataclasses.fields(cls) if f.name != "smtp"}
    out: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise StyleforgeError(f"{source}: unknown setting '{key}' (known: {known})")
        out[key] = _convert(key, raw, defaults[key], source)
    return out


def _convert(key: str, raw: Any, spec: dataclasses.Field, source: str) -> Any:
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc]
    try:
        if key == "models":
            items = raw.split(os.pathsep) if isinstance(raw, str) else list(raw)
            return tuple(str(item) for item in items if str(item))
        if key in ("workers", "threads"):
            return None if raw in ("", None) else _as_int(raw)
        if isinstance(default, bool):
            return str(raw).lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return _as_int(raw)
        if isinstance(default, float):
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError("expected text")
        return raw
    except (TypeError, ValueError):
        raise StyleforgeError(f"{source}: setting '{key}' has a bad value {raw!r} (expected {type(default).__name__})") from None


def _as_int(raw: Any) -> int:
    if isinstance(raw, float) and not raw.is_integer():
        raise ValueError("not an integer")
    return int(raw)


#: The runtimes a service can run its PyTorch styles in (``ServiceSettings.runtime``).
SERVICE_RUNTIMES = ("auto", "pytorch", "openvino")


def _checked(settings: ServiceSettings) -> ServiceSettings:
    for name in _POSITIVE:
        for holder in (settings, settings.smtp):
            value = getattr(holder, name, None)
            if value is not None and value <= 0:
                raise StyleforgeError(f"setting '{name}' must be positive, got {value}")
    if not 0 <= settings.port <= 65535:
        raise StyleforgeError(f"setting 'port' must be 0 (any free port) to 65535, got {settings.port}")
    if settings.rate_limit < 0:
        raise StyleforgeError(f"setting 'rate_limit' must be 0 (off) or positive, got {settings.rate_limit}")
    if settings.device not in DEVICE_CHOICES:
        raise StyleforgeError(f"setting 'device' must be one of {', '.join(DEVICE_CHOICES)}, got {settings.device!r}")
    if settings.runtime not in SERVICE_RUNTIMES:
        raise StyleforgeError(f"setting 'runtime' must be one of {', '.join(SERVICE_RUNTIMES)}, got {settings.runtime!r}")
    if settings.smtp.security not in SMTP_SECURITY_CHOICES:
        raise StyleforgeError(f"setting 'smtp.security' must be one of {', '.join(SMTP_SECURITY_CHOICES)}")
    if settings.broker and not settings.broker.startswith(("redis://", "rediss://", "unix://")):
        raise StyleforgeError("setting 'broker' must be a redis:// (or rediss://, unix://) URL; leave it empty for the embedded mode")
    if settings.default_size > settings.max_size:
        raise StyleforgeError(f"setting 'default_size' ({settings.default_size}) is above 'max_size' ({settings.max_size})")
    return settings


def data_folder(settings: ServiceSettings) -> Path:
    """The folder holding the job database and files (created)."""
    from styleforge.utils.home import styleforge_home

    folder = (Path(settings.data).expanduser() if settings.data else styleforge_home() / "service").resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StyleforgeError(f"cannot create the data folder '{folder}': {one_line(exc)}") from None
    return folder


def model_folders(settings: ServiceSettings) -> list[Path]:
    """The folders scanned for styles; by default the installed models' folder
    (``styleforge models``), which need not exist."""
    from styleforge.models.names import models_dir

    if settings.models:
        return [Path(m).expanduser() for m in settings.models]
    return [models_dir()]


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
