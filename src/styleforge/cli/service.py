"""``styleforge serve`` (the web service) and ``styleforge worker`` (a Celery worker for
its scale-out mode)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import Any

from styleforge.cli.common import add_command, non_negative_int, positive_int
from styleforge.errors import StyleforgeError

SERVE_DESCRIPTION = """\
Serve the web page, the REST API (OpenAPI at /docs) and the thesis' /help and
/transform. By default jobs are kept in SQLite under --data and run by worker threads in
this process: nothing else to install or start, and jobs queued when it stops run at the
next start. With --broker redis://HOST:6379/0 jobs go to Celery workers
('styleforge worker', on any number of machines sharing --data and --models).
Settings (limits, retention, SMTP for result mails) come from --config FILE (TOML) and
STYLEFORGE_* variables: see docs/service.md.
"""

WORKER_DESCRIPTION = """\
Run a Celery worker for 'styleforge serve --broker URL': it takes jobs from Redis and
runs them with the same code as the embedded mode. Give it the same --data (a folder
every node shares) and --models as the server, or the same --config.
"""


def register(subparsers: Any) -> None:
    """Add the ``serve`` and ``worker`` commands."""
    serve = add_command(subparsers, "serve", "run the web service (page, REST API, jobs)", SERVE_DESCRIPTION)
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=non_negative_int, help="port (default: 8000; 0 picks a free one)")
    serve.add_argument("--workers", type=positive_int, help="embedded mode: jobs at once (default: 2 on 2+ cores, each "
                                                            "with half of them)")
    _shared_options(serve)
    serve.set_defaults(handler=run_serve)

    worker = add_command(subparsers, "worker", "run a Celery worker for 'serve --broker'", WORKER_DESCRIPTION)
    worker.add_argument("--concurrency", type=positive_int, default=1,
                        help="jobs run at once, one process each (each job already uses every core)")
    _shared_options(worker)
    worker.set_defaults(handler=run_worker)


def _shared_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", action="append", metavar="DIR",
                        help="folder of styles (repeatable; default: <styleforge home>/models)")
    parser.add_argument("--data", metavar="DIR", help="folder of the job database and files (default: <styleforge home>/service)")
    parser.add_argument("--broker", metavar="URL", help="redis:// URL of the Celery broker (serve: empty = embedded mode)")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (docs/service.md)")


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    _require_service_packages()
    from styleforge.service.settings import load_settings

    overrides = {"models": tuple(args.models) if args.models else None, "data": args.data, "broker": args.broker, **extra}
    return load_settings(args.config, overrides)


def _require_service_packages() -> None:
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "multipart", "celery") if importlib.util.find_spec(name) is None]
    if missing:
        raise StyleforgeError(f"the web service needs {', '.join(missing)}: pip install 'styleforge[service]'")


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def run_serve(args: argparse.Namespace) -> int:
    """Bind the port, build the app, and serve until Ctrl-C/SIGTERM."""
    import uvicorn

    from styleforge.service.app import create_app, embedded_workers
    from styleforge.service.settings import data_folder, redacted_url

    settings = _settings(args, host=args.host, port=args.port, workers=args.workers)
    _configure_logging()
    sock = _bind(settings.host, settings.port)
    app = create_app(settings)
    host, port = sock.getsockname()[:2]
    mode = f"Celery via {redacted_url(settings.broker)}" if settings.broker else f"embedded, {embedded_workers(settings)} job(s) at once"
    styles = len(app.state.service.catalog.styles())
    print(f"styleforge serve: http://{host}:{port}/ ({mode}; {styles} style(s); data in {data_folder(settings)})", flush=True)
    config = uvicorn.Config(app, log_level="info", timeout_keep_alive=5, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (bound here so a busy port is one clear line)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StyleforgeError(f"cannot listen on {host}:{port}: {reason} (choose another --port or --host)") from None
    sock.set_inheritable(True)
    return sock


def run_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker until stopped."""
    from styleforge.service.jobs.celery_app import run_worker as celery_worker
    from styleforge.service.settings import data_folder

    settings = _settings(args)
    if not settings.broker:
        raise StyleforgeError("a worker needs a broker: --broker redis://HOST:6379/0 (or 'broker' in --config / STYLEFORGE_BROKER)")
    _configure_logging()
    celery_worker(settings, args.concurrency, data_folder(settings))
    return 0
