"""The one error class for mistakes a user can fix.

Anything raised as :class:`StyleforgeError` is a user error (bad file, unknown name,
missing weights...). The CLI prints its message on one line as
``styleforge: error: <message>`` and exits with status 2, never a traceback. Messages
say what went wrong *and* what to do next. Anything else escaping is a bug.
"""

from __future__ import annotations


class StyleforgeError(Exception):
    """A user-facing error: the message is complete, one line, and actionable."""

    exit_status = 2


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line (whitespace collapsed, cut at ``limit``
    characters), or its type name when it has none: the reason part of a user error."""
    text = " ".join(str(exc).split())[:limit]
    return text or type(exc).__name__
