"""File-system helpers shared by every reader and writer: inputs are checked before any
work, outputs appear whole or not at all, and OS errors become one-line user errors.

Writing: :func:`write_bytes_atomic` (everything styleforge writes goes through it or
through :func:`atomic_path` for streams) writes a temporary file beside the destination,
checks that every byte reached the disk (a full disk or a file-size limit is an error,
never a truncated result), fsyncs, gives it the permissions a new file gets under the
user's umask (or those of the file it replaces), and renames it into place. Ctrl-C,
SIGTERM or any failure removes the temporary file and leaves the destination as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.interrupts import deferred_interrupt


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; move it into place on success.

    The temporary file lives in the destination's folder (so the final ``os.replace``
    is an atomic rename on the same file system) and keeps its suffix (so libraries
    that pick a format from the extension still work). If the ``with`` body raises,
    or is interrupted, the temporary file is removed and ``destination`` is left as it
    was. An ``OSError`` of its own steps (a file where a folder should be, permissions,
    the rename) becomes a :class:`StyleforgeError` naming ``destination``; errors of the
    body are the body's to report (:func:`write_bytes_atomic` reports its writes).

    Args:
        destination: the final path; its parent folders are created.

    Yields:
        The temporary path to write to.
    """
    dest = Path(destination)
    tmp: Path | None = None
    created = missing_folders(dest.parent)
    try:
        # Ctrl-C/SIGTERM are held while the temporary is created, so it never exists
        # outside the scope that removes it (found by tests/test_signals.py).
        with deferred_interrupt():
            tmp = _temporary_beside(dest)
        yield tmp
        try:
            os.chmod(tmp, _mode_for(dest))
            os.replace(tmp, dest)
        except OSError as exc:
            raise write_error(dest, exc) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        remove_empty_folders(created)
        raise


def write_together(outputs: Iterable[tuple[str | os.PathLike[str], bytes]]) -> None:
    """Write several outputs of one command all or none: each ``(destination, data)`` is
    written and verified in a temporary file beside its destination, and only when every
    one succeeded are they all moved into place. A write that fails (a full disk for the
    last of them, say) leaves every destination as it was. (Only a rename could still
    fail after another succeeded, as with any set of files.)

    Raises:
        StyleforgeError: naming the destination that could not be written.
    """
    with contextlib.ExitStack() as stack:
        for destination, data in outputs:
            tmp = stack.enter_context(atomic_path(destination))
            try:
                _write_all(tmp, data)
            except OSError as exc:
                raise write_error(Path(destination), exc) from None


def missing_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """``folder`` and those of its ancestors that do not exist yet, outermost first (the
    folders that creating ``folder`` would make)."""
    missing = []
    for path in [Path(folder), *Path(folder).parents]:
        if os.path.lexists(path):
            break
        missing.append(path)
    return missing[::-1]


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove those of ``folders`` (as :func:`missing_folders` lists them) that are empty,
    innermost first; a folder that holds anything is kept, and so are its parents."""
    for folder in reversed(list(folders)):
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def folder_removed_on_failure(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Run the block with ``folder`` to write into; if the block raises (a refusal, a full
    disk, a stop), the folders it created are removed again when empty, so a command that
    fails leaves no empty folder behind. The folder itself is created by the first write
    into it (:func:`atomic_path`).

    Yields:
        ``folder`` as a Path.
    """
    created = missing_folders(folder)
    try:
        yield Path(folder)
    except BaseException:
        remove_empty_folders(created)
        raise


def _temporary_beside(dest: Path) -> Path:
    """Create an empty temporary file in ``dest``'s folder (created if needed)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".part{dest.suffix}", dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(dest, exc) from None
    return Path(name)


def write_bytes_atomic(destination: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``destination`` atomically, verifying every byte was written.

    Returns:
        The destination path.

    Raises:
        StyleforgeError: the file could not be written completely (full disk, size
            limit, permissions...); nothing is left behind.
    """
    write_together([(destination, data)])
    return Path(destination)


def _write_all(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with no short write unnoticed, then fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(f"wrote {len(data) - len(view)} of {len(data)} bytes")
            view = view[written:]
        os.fsync(fd)
        if os.fstat(fd).st_size != len(data):
            raise OSError(f"the file holds {os.fstat(fd).st_size} of {len(data)} bytes")
    finally:
        os.close(fd)


def read_figures(path: str | os.PathLike[str]) -> dict[str, float]:
    """The numbers recorded in the JSON object at ``path`` (a cache's measurements), by
    name; a missing or unreadable file, or a value that is not a number, counts as absent."""
    try:
        data = json.loads(Path(path).read_text())
        return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def record_figures(path: str | os.PathLike[str], **values: float) -> None:
    """Merge ``values`` into the JSON object at ``path`` (its folder created), written
    atomically; a cache that cannot be written only loses the figures."""
    with contextlib.suppress(OSError, StyleforgeError):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, json.dumps(read_figures(path) | values, indent=1).encode())


def write_error(path: Path, exc: OSError) -> StyleforgeError:
    """The one-line error for a failed write of ``path``."""
    return StyleforgeError(f"cannot write '{path}': {os_reason(exc)}")


def os_reason(exc: OSError) -> str:
    """An OS error's reason without the path (which the message names itself)."""
    return exc.strerror or one_line(exc)


def check_regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` if it is an existing regular file; raise a one-line error otherwise.

    A FIFO, socket or device would block or never end, so only regular files (or links
    to them) are read.

    Args:
        path: the file.
        what: what it should be, for the message (e.g. ``image``, ``model file``).
    """
    file = Path(path)
    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        raise StyleforgeError(f"cannot read {what} '{file}': no such file") from None
    except OSError as exc:
        raise StyleforgeError(f"cannot read {what} '{file}': {os_reason(exc)}") from None
    if stat.S_ISDIR(mode):
        raise StyleforgeError(f"cannot read {what} '{file}': it is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise StyleforgeError(f"cannot read {what} '{file}': not a regular file (a pipe, socket or device)")
    return file


def check_output_file(path: str | os.PathLike[str], what: str, inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Check, before any long work, that ``path`` can be written as a file.

    Refuses a destination that is a folder, that would overwrite one of ``inputs``, or
    whose nearest existing parent is a file or not writable.

    Returns:
        ``path`` as a :class:`Path`.
    """
    dest = Path(path)
    if dest.is_dir():
        raise StyleforgeError(f"{what} '{dest}' is a folder; give a file name")
    for source in inputs:
        if _same_file(dest, Path(source)):
            raise StyleforgeError(f"{what} '{dest}' is also an input; choose another output name so the input is kept")
    _check_writable_parent(dest.parent, f"{what} '{dest}'")
    return dest


def check_output_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Check, before any long work, that ``path`` is (or can be created as) a writable folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise StyleforgeError(f"{what} '{folder}' is a file, not a folder; give a folder name")
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StyleforgeError(f"{what} '{folder}' is not writable")
        return folder
    _check_writable_parent(folder.parent, f"{what} '{folder}'")
    return folder


def human_size(num_bytes: float) -> str:
    """Return a size such as ``548.1 MB`` (decimal units, as download pages state them)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(num_bytes) < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError("unreachable")


def _check_writable_parent(parent: Path, subject: str) -> None:
    """The nearest existing ancestor of ``parent`` must be a writable folder."""
    ancestor = parent if str(parent) else Path(".")
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise StyleforgeError(f"cannot write {subject}: '{ancestor}' is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise StyleforgeError(f"cannot write {subject}: folder '{ancestor}' is not writable")


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file: the same inode (hard links included) or,
    for a path not written yet, the same resolved path."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def _mode_for(dest: Path) -> int:
    """Permissions for a written file: those of the file it replaces, else what a new
    file gets under the umask (mkstemp's 0600 would hide results from other users and
    from a web server)."""
    try:
        return stat.S_IMODE(dest.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


@lru_cache(maxsize=1)
def _umask() -> int:
    # The only portable way to read the umask is to set it and set it back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def describe_start(head: bytes) -> str:
    """What the first bytes ``head`` of a file that should hold data look like, for a
    message saying what it is instead: empty, text, or other binary data."""
    if not head:
        return "it is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with the bytes {head[:8].hex(' ')}"
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return f"it is text, starting {text.strip()[:30]!r}"
    return f"it starts with the bytes {head[:8].hex(' ')}"
