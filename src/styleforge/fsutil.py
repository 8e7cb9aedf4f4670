"""File-system helpers shared by every writer: outputs appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; move it into place on success.

    The temporary file lives in the destination's folder (so the final ``os.replace``
    is an atomic rename on the same file system) and keeps its suffix (so libraries
    that pick a format from the extension still work). If the ``with`` body raises,
    or is interrupted with Ctrl-C, the temporary file is removed and ``destination``
    is left as it was.

    Args:
        destination: the final path; its parent folders are created.

    Yields:
        The temporary path to write to.
    """
    dest = Path(destination)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".part{dest.suffix}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def human_size(num_bytes: float) -> str:
    """Return a size such as ``548.1 MB`` (decimal units, as download pages state them)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(num_bytes) < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError("unreachable")
