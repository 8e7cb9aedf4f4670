"""Streaming downloads with a progress bar and checksum verification.

The file streams into a temporary file beside its destination while its SHA-256 (and
MD5, where that is what the publisher gives) is computed; only a complete file whose
checksums match is renamed into place. A dropped connection, a checksum mismatch or
Ctrl-C removes the temporary file, so nothing half-written is ever left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from styleforge.errors import StyleforgeError
from styleforge.utils.fs import atomic_path, write_error
from styleforge.utils.progress import Progress

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download_file` fetched: the final path, its size and SHA-256."""

    path: Path
    size: int
    sha256: str


def download_file(
    url: str,
    destination: str | Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    network_hint: str = "",
) -> DownloadResult:
    """Download ``url`` to ``destination``, verifying whichever checksums are given.

    Args:
        url: an http(s) (or file) URL.
        destination: the final path; written atomically.
        sha256: the full expected SHA-256 (hex), if published.
        sha256_prefix: the expected leading hex digits of the SHA-256 (torchvision style).
        md5: the expected MD5 (hex), if that is what is published.
        progress: show a progress bar (TTY) or progress lines.
        timeout: seconds to wait for the server on connect and on each read.
        network_hint: appended to the message when the server cannot be reached.

    Returns:
        A :class:`DownloadResult`.

    Raises:
        StyleforgeError: network failure, truncated transfer or checksum mismatch; the
            destination is untouched in every case.
    """
    dest = Path(destination)
    sha = hashlib.sha256()
    md5_hash = hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "styleforge"})
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(request, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            written = 0
            with _opened(tmp, dest) as out, Progress(total, f"downloading {dest.name}", unit="B", enabled=progress) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    _write(out, chunk, dest)
                    sha.update(chunk)
                    md5_hash.update(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            if total is not None and written != total:
                raise StyleforgeError(
                    f"download of {url} stopped after {written:,} of {total:,} bytes; nothing was saved, run the command again"
                )
            _verify(url, sha.hexdigest(), md5_hash.hexdigest(), sha256=sha256, sha256_prefix=sha256_prefix, md5=md5)
    except urllib.error.HTTPError as exc:
        raise StyleforgeError(f"cannot download {url}: HTTP {exc.code} {exc.reason}{network_hint}") from None
    except http.client.IncompleteRead as exc:
        raise StyleforgeError(
            f"download of {url} stopped after {len(exc.partial):,} bytes of a chunk; nothing was saved, run the command again"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StyleforgeError(f"cannot download {url}: {' '.join(str(reason).split())}{network_hint}") from None
    return DownloadResult(path=dest, size=written, sha256=sha.hexdigest())


@contextlib.contextmanager
def _opened(tmp: Path, dest: Path) -> Iterator[BinaryIO]:
    """``tmp`` open for writing; a failure to write or close it (a full disk) is a
    one-line error naming ``dest``, never mistaken for a network error."""
    try:
        handle = open(tmp, "wb")  # noqa: SIM115 (closed below, where its error is reported)
    except OSError as exc:
        raise write_error(dest, exc) from None
    try:
        yield handle
    finally:
        try:
            handle.close()
        except OSError as exc:
            raise write_error(dest, exc) from None


def _write(out: BinaryIO, chunk: bytes, dest: Path) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        raise write_error(dest, exc) from None


def _verify(url: str, got_sha256: str, got_md5: str, *, sha256: str | None, sha256_prefix: str | None, md5: str | None) -> None:
    checks = [
        ("SHA-256", sha256, got_sha256, got_sha256 == (sha256 or "").lower()),
        ("SHA-256 prefix", sha256_prefix, got_sha256, got_sha256.startswith((sha256_prefix or "").lower())),
        ("MD5", md5, got_md5, got_md5 == (md5 or "").lower()),
    ]
    for label, expected, got, ok in checks:
        if expected and not ok:
            raise StyleforgeError(
                f"checksum mismatch for {url}: {label} expected {expected}, got {got}; "
                "the file was not saved (corrupt transfer or a changed file: try again)"
            )


def download_from_mirrors(urls: tuple[str, ...], destination: str | Path, *, sha256: str | None, progress: bool = True,
                          network_hint: str = "") -> DownloadResult:
    """Download the file published at ``urls`` (mirrors, tried in order), verifying the
    SHA-256 whatever the source (when one is published: ``sha256=None`` takes the first
    complete copy); the first complete, matching copy wins.

    Raises:
        StyleforgeError: every mirror failed; the message names each one's reason.
    """
    failures = []
    for url in urls:
        try:
            return download_file(url, destination, sha256=sha256, progress=progress)
        except StyleforgeError as exc:
            failures.append(str(exc))
    copy = "a verified copy" if sha256 else "a complete copy"
    raise StyleforgeError(f"no mirror gave {copy} ({'; '.join(failures)}){network_hint}")


def verify_file_checksums(path: Path, *, sha256: str | None = None, sha256_prefix: str | None = None,
                          md5: str | None = None) -> str:
    """Check a local file against published checksums; returns its SHA-256 hex.

    Raises:
        StyleforgeError: when a given checksum does not match.
    """
    sha = hashlib.sha256()
    md5_hash = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            sha.update(block)
            md5_hash.update(block)
    _verify(str(path), sha.hexdigest(), md5_hash.hexdigest(), sha256=sha256, sha256_prefix=sha256_prefix, md5=md5)
    return sha.hexdigest()
