"""The ``styleforge`` console script and ``python -m styleforge``: signal handlers first.

The CLI's own imports take a few hundred milliseconds (more on a loaded machine); a
Ctrl-C or SIGTERM in that time would otherwise end in a traceback or an unhandled
kill. Installing the handlers before them makes every stop after the interpreter's own
start-up a clean one (status 130/143, see :mod:`styleforge.utils.interrupts`).
"""

from __future__ import annotations

from styleforge.utils.interrupts import install_signal_handlers


def run() -> None:
    """Install the signal handlers, then run the CLI (exits with its status)."""
    install_signal_handlers()
    from styleforge.cli import run as run_cli

    run_cli()
